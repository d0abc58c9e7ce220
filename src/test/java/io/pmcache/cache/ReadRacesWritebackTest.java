package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.MemoryBackingDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A read served from the backing device races a write of the same sectors that is acknowledged
 * and written back while the read copies. The backing device's copy can then tear (a file read
 * racing a pwrite does, at any byte). The read must still return, for every sector, the value
 * before or after the write, never a mix. (Found by {@link SameBlockRaceTest} on a loaded machine:
 * a sector whose first 448 bytes were the initial content and the rest a write's.)
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ReadRacesWritebackTest {
    private static final long MIB = Rig.MIB;
    private static final long AT = 5 * MIB + 8192;
    private static final int LEN = 4096;

    @Test
    void aMissRacingAWriteThatIsWrittenBackReturnsOneVersionPerSector() throws Exception {
        TearingRead backing = new TearingRead(new MemoryBackingDevice(32 * MIB, 7), AT, 448);
        try (Rig rig = Rig.format(16, backing, false)) {
            rig.open(new CacheOptions(1, 50, true, true));
            byte[] before = new byte[LEN];
            backing.delegate.read(AT, MemorySegment.ofArray(before));
            CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> {
                try {
                    return rig.read(AT, LEN);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            assertThat(backing.halfway.await(30, TimeUnit.SECONDS)).as("the read reached the backing device").isTrue();
            byte[] after = new byte[LEN];
            Arrays.fill(after, (byte) 0x5a);
            rig.cache.write(AT, MemorySegment.ofArray(after), false);
            rig.cache.flushAll(left -> { }); // written back while the read is halfway through its copy
            backing.go.countDown();
            byte[] got = read.get(30, TimeUnit.SECONDS);
            for (int s = 0; s < LEN / 512; s++) {
                boolean old = Arrays.equals(got, s * 512, (s + 1) * 512, before, s * 512, (s + 1) * 512);
                boolean neu = Arrays.equals(got, s * 512, (s + 1) * 512, after, s * 512, (s + 1) * 512);
                assertThat(old || neu).as("sector %d holds the value before or after the write, not a mix", s).isTrue();
            }
            assertThat(rig.read(AT, LEN)).isEqualTo(after);
        }
    }

    /** Its first read covering {@code at} copies {@code split} bytes, waits for {@link #go}, then copies the rest. */
    private static final class TearingRead implements BackingDevice {
        final BackingDevice delegate;
        final long at;
        final int split;
        final CountDownLatch halfway = new CountDownLatch(1);
        final CountDownLatch go = new CountDownLatch(1);

        TearingRead(BackingDevice delegate, long at, int split) {
            this.delegate = delegate;
            this.at = at;
            this.split = split;
        }

        @Override
        public void read(long offset, MemorySegment dst) throws IOException {
            if (halfway.getCount() == 0 || offset > at || offset + dst.byteSize() <= at) {
                delegate.read(offset, dst);
                return;
            }
            long first = at - offset + split;
            delegate.read(offset, dst.asSlice(0, first));
            halfway.countDown();
            try {
                go.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException();
            }
            delegate.read(offset + first, dst.asSlice(first));
        }

        @Override
        public long fingerprint() {
            return delegate.fingerprint();
        }

        @Override
        public String describe() {
            return delegate.describe();
        }

        @Override
        public long size() {
            return delegate.size();
        }

        @Override
        public void write(long offset, MemorySegment src, boolean fua) throws IOException {
            delegate.write(offset, src, fua);
        }

        @Override
        public void flush() throws IOException {
            delegate.flush();
        }

        @Override
        public void trim(long offset, long length) throws IOException {
            delegate.trim(offset, length);
        }

        @Override
        public void close() throws IOException {
            delegate.close();
        }
    }
}
