package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.ptlab.core.mem.FrameAccess;
import dev.ptlab.core.mem.PhysicalMemory;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Seed 004's opaque table references, checked from outside the core: no code here can get a
 * table frame's {@code long[]}.
 */
class OpaqueFramesTest {
    @Test
    void theFrameGrantRefusesCallersOutsideTheCore() {
        assertThatThrownBy(() -> grantFromHere())
                .isInstanceOf(IllegalCallerException.class)
                .hasMessageContaining("dev.ptlab.cli.OpaqueFramesTest")
                .hasMessageContaining("VisitContext");
    }

    private static FrameAccess grantFromHere() {
        return FrameAccess.grant();
    }

    @Test
    void noPublicCoreApiHandsOutALongArrayExceptTheGrantedDoor() throws Exception {
        List<String> leaks = new ArrayList<>();
        int classes = 0;
        for (String name : coreClassNames()) {
            Class<?> c = Class.forName(name, false, getClass().getClassLoader());
            if (!Modifier.isPublic(c.getModifiers())) continue;
            classes++;
            for (Method m : c.getDeclaredMethods()) {
                int mod = m.getModifiers();
                if (!(Modifier.isPublic(mod) || Modifier.isProtected(mod))) continue;
                if (isLongArray(m.getReturnType()) && !(c == FrameAccess.class && m.getName().equals("frame"))) {
                    leaks.add(c.getName() + "." + m.getName());
                }
            }
            for (Field f : c.getDeclaredFields()) {
                int mod = f.getModifiers();
                if ((Modifier.isPublic(mod) || Modifier.isProtected(mod)) && isLongArray(f.getType())) {
                    leaks.add(c.getName() + "#" + f.getName());
                }
            }
        }
        assertThat(classes).as("public core classes scanned").isGreaterThan(40);
        assertThat(leaks).isEmpty();
    }

    private static boolean isLongArray(Class<?> t) {
        while (t.isArray()) {
            if (t.getComponentType() == long.class) return true;
            t = t.getComponentType();
        }
        return false;
    }

    /** Every class of the core artifact, whether the reactor hands us its classes directory or its jar. */
    private static List<String> coreClassNames() throws IOException, URISyntaxException {
        Path where = Path.of(PhysicalMemory.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<String> names = new ArrayList<>();
        if (Files.isDirectory(where)) {
            try (Stream<Path> s = Files.walk(where)) {
                s.filter(p -> p.toString().endsWith(".class")).forEach(p -> names.add(toName(where.relativize(p).toString())));
            }
        } else {
            try (JarFile jar = new JarFile(where.toFile())) {
                for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements(); ) {
                    String n = e.nextElement().getName();
                    if (n.startsWith("dev/ptlab/core/") && n.endsWith(".class")) names.add(toName(n));
                }
            }
        }
        names.removeIf(n -> n.endsWith("package-info") || n.endsWith("module-info"));
        return names;
    }

    private static String toName(String path) {
        return path.replace('\\', '/').replace('/', '.').replaceAll("\\.class$", "");
    }
}
