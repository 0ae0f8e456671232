package dev.ptlab.core.arch;

/** Memory types a leaf can carry, as decoded from its descriptor. */
public enum MemAttr {
    NORMAL_WB, NORMAL_NC, DEVICE_nGnRE, DEVICE_nGnRnE, OTHER;
}
