package io.pmcache.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

class NativeMemoryGuardTest {
  @Test
  void nativeAllocationsShowInTheMeasuredMemory() throws Exception {
    long before = NativeMemoryGuard.anonymousResidentBytes();
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment segment = arena.allocate(256L << 20);
      segment.fill((byte) 1); // touch every page so it is resident
      long during = NativeMemoryGuard.anonymousResidentBytes();
      assertThat(during - before).isGreaterThan(200L << 20);
    }
  }
}
