package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

class KeyRecordTest {
    @Test
    void encodedKeyDecodesAndCarriesTheSaltedCrcOfItsFirst60Bytes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(4096);
            m.fill((byte) 0x5a);                         // the reserved bytes must be written as zeros
            KeyRecord k = new KeyRecord(12345L << 12, 4096, KeyRecord.FLAG_DIRTY, 7, 8192, 3, 0xdeadbeef);
            long cacheId = 0x1234_5678_9abc_def0L;
            k.encode(m, 128, cacheId, 99, 5);
            assertThat(KeyRecord.decode(m, 128, cacheId, 99, 5, 1L << 40, 16, 1 << 24)).isEqualTo(k);
            assertThat(KeyRecord.decode(m, 128, cacheId, 99, 6, 1L << 40, 16, 1 << 24)).isNull();
            assertThat(m.get(JAVA_INT_UNALIGNED, 128 + 60))
                    .isEqualTo(Crc.of(cacheId ^ (99 * 131 + 5), m, 128, 60));
            for (int i = 36; i < 60; i++) {
                assertThat(m.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 128 + i)).isZero();
            }
            assertThat(m.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 128 + 64)).isEqualTo((byte) 0x5a);
        }
    }
}
