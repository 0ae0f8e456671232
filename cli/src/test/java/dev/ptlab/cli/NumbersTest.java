package dev.ptlab.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class NumbersTest {
    @Test
    void numbers() {
        assertThat(Numbers.parseNumber("A", "0")).isZero();
        assertThat(Numbers.parseNumber("A", "4096")).isEqualTo(4096);
        assertThat(Numbers.parseNumber("A", "0x1000")).isEqualTo(4096);
        assertThat(Numbers.parseNumber("A", "0X1_0000_0000")).isEqualTo(1L << 32);
        assertThat(Numbers.parseNumber("A", "0x7fffffffffffffff")).isEqualTo(Long.MAX_VALUE);
        assertThatThrownBy(() -> Numbers.parseNumber("A", "0x8000000000000000")).hasMessage(
                "A \"0x8000000000000000\" is too large; expected a value below 2^63");
        assertThatThrownBy(() -> Numbers.parseNumber("A", "-1")).hasMessageStartingWith("A \"-1\" is not a number");
        assertThatThrownBy(() -> Numbers.parseNumber("A", "0x")).hasMessageStartingWith("A \"0x\" is not a number");
        assertThatThrownBy(() -> Numbers.parseNumber("A", "4K")).hasMessageStartingWith("A \"4K\" is not a number");
    }

    @Test
    void sizes() {
        assertThat(Numbers.parseSize("S", "4K")).isEqualTo(4096);
        assertThat(Numbers.parseSize("S", "4k")).isEqualTo(4096);
        assertThat(Numbers.parseSize("S", "2M")).isEqualTo(2L << 20);
        assertThat(Numbers.parseSize("S", "1G")).isEqualTo(1L << 30);
        assertThat(Numbers.parseSize("S", "1T")).isEqualTo(1L << 40);
        assertThat(Numbers.parseSize("S", "0x3000")).isEqualTo(0x3000);
        assertThat(Numbers.parseSize("S", "0x1b")).isEqualTo(0x1b);
        assertThat(Numbers.parseSize("S", "0x2K")).isEqualTo(2048);
        assertThat(Numbers.parseSize("S", "12345")).isEqualTo(12345);
        assertThatThrownBy(() -> Numbers.parseSize("S", "4X")).hasMessage(
                "S \"4X\" has an unknown suffix \"X\"; expected a number with an optional K, M, G or T suffix (e.g. 4K, 2M, 1G, 0x3000)");
        assertThatThrownBy(() -> Numbers.parseSize("S", "K")).hasMessageStartingWith("S \"K\" is not a size");
        assertThatThrownBy(() -> Numbers.parseSize("S", "9000000T")).hasMessageStartingWith("S \"9000000T\" is too large");
    }

    @Test
    void readableForms() {
        assertThat(Numbers.size(4096)).isEqualTo("4K");
        assertThat(Numbers.size(2L << 20)).isEqualTo("2M");
        assertThat(Numbers.size(1L << 30)).isEqualTo("1G");
        assertThat(Numbers.size(3L << 29)).isEqualTo("1536M");
        assertThat(Numbers.size(1L << 40)).isEqualTo("1T");
        assertThat(Numbers.size(100)).isEqualTo("100");
        assertThat(Numbers.range(0x40000000L, 2L << 20)).isEqualTo("0x40000000-0x401fffff");
    }

    @Test
    void byteCounts() {
        assertThat(Numbers.bytes(0)).isEqualTo("0");
        assertThat(Numbers.bytes(512)).isEqualTo("512");
        assertThat(Numbers.bytes(1536)).isEqualTo("1536");
        assertThat(Numbers.bytes(2L << 20)).isEqualTo("2M");
        assertThat(Numbers.bytes((2L << 20) + 4096)).isEqualTo("2052K");
        assertThat(Numbers.bytes(1030L << 20)).isEqualTo("1030M");
        assertThat(Numbers.bytes((1030L << 20) + 4096)).isEqualTo("1.01G");
    }
}
