package dev.ptlab.core;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** What a PageTableException carries besides its message: errno, place, and the refused argument. */
class PageTableExceptionTest {
    @Test
    void invalidArgumentNamesTheArgument() {
        PageTableException e = PageTableException.invalidArgument("pa-bits", (Object) 39, "is not one of 32, 36");
        assertThat(e.argument()).isEqualTo("pa-bits");
        assertThat(e.errno()).isEqualTo(Errno.EINVAL);
        assertThat(e).hasMessage("pa-bits: 39 is not one of 32, 36 (EINVAL)");
        assertThat(new PageTableException(Errno.ENOMEM, 0x1000, 2, "no frame").argument()).isNull();
    }

    /** withContext says where, and keeps what: errno, address, level, argument, and the original as cause. */
    @Test
    void withContextKeepsEverythingButTheMessage() {
        PageTableException e = new PageTableException(Errno.ENOMEM, 0x4000_0000L, 2, "the memory cache is empty");
        PageTableException c = e.withContext("vcpu1: stage-2 map of 0x40000000 failed");
        assertThat(c).hasMessage("vcpu1: stage-2 map of 0x40000000 failed: at 0x40000000 level 2: the memory cache is empty (ENOMEM)")
                .hasCause(e);
        assertThat(c.errno()).isEqualTo(Errno.ENOMEM);
        assertThat(c.address()).isEqualTo(0x4000_0000L);
        assertThat(c.level()).isEqualTo(2);
        assertThat(c.argument()).isNull();
        assertThat(PageTableException.invalidArgument("size", 0x3000L, "is odd").withContext("here").argument()).isEqualTo("size");
    }
}
