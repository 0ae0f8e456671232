package dev.ptlab.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A one-line JSON object built field by field (Jackson does the encoding). Keys keep their
 * insertion order; 64-bit values that are addresses or descriptors go in as hex strings.
 */
final class Json {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private final ObjectNode node = MAPPER.createObjectNode();

    Json put(String k, String v) {
        node.put(k, v);
        return this;
    }

    Json put(String k, long v) {
        node.put(k, v);
        return this;
    }

    Json put(String k, boolean v) {
        node.put(k, v);
        return this;
    }

    /** A hex string value, {@code "0x..."}: 64-bit values do not survive JSON numbers in every reader. */
    Json hex(String k, long v) {
        return put(k, Numbers.hex(v));
    }

    Json put(String k, Json nested) {
        node.set(k, nested.node);
        return this;
    }

    @Override
    public String toString() {
        try {
            return MAPPER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("JSON encoding of " + node + " failed", e);
        }
    }
}
