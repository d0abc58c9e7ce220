package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.device.Ranges;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.BitSet;
import java.util.SplittableRandom;

/**
 * A backing disk that loses unflushed writes on a power cut: it keeps what was flushed plus an
 * arbitrary (seeded) subset of the 512-byte sectors written since the last flush.
 */
final class PowerCutBackingDevice implements BackingDevice {
    private static final int SECTOR = 512;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment live;
    private final MemorySegment durable;
    private final BitSet unflushed;

    PowerCutBackingDevice(long size) {
        live = arena.allocate(size, 4096);
        durable = arena.allocate(size, 4096);
        unflushed = new BitSet((int) (size / SECTOR));
    }

    @Override
    public long size() {
        return live.byteSize();
    }

    @Override
    public long fingerprint() {
        return 0x5eed;
    }

    @Override
    public String describe() {
        return "power-cut backing device (" + size() + " bytes)";
    }

    @Override
    public void read(long offset, MemorySegment dst) {
        Ranges.check(this, offset, dst.byteSize());
        MemorySegment.copy(live, offset, dst, 0, dst.byteSize());
    }

    @Override
    public synchronized void write(long offset, MemorySegment src, boolean fua) {
        Ranges.check(this, offset, src.byteSize());
        MemorySegment.copy(src, 0, live, offset, src.byteSize());
        if (src.byteSize() > 0) {
            unflushed.set((int) (offset / SECTOR), (int) ((offset + src.byteSize() - 1) / SECTOR) + 1);
        }
        if (fua) {
            flush();
        }
    }

    @Override
    public synchronized void flush() {
        for (int s = unflushed.nextSetBit(0); s >= 0; s = unflushed.nextSetBit(s + 1)) {
            MemorySegment.copy(live, (long) s * SECTOR, durable, (long) s * SECTOR, SECTOR);
        }
        unflushed.clear();
    }

    @Override
    public void trim(long offset, long length) {
        writeZeroes(offset, length, false);
    }

    @Override
    public synchronized void writeZeroes(long offset, long length, boolean fua) {
        Ranges.check(this, offset, length);
        live.asSlice(offset, length).fill((byte) 0);
        if (length > 0) {
            unflushed.set((int) (offset / SECTOR), (int) ((offset + length - 1) / SECTOR) + 1);
        }
        if (fua) {
            flush();
        }
    }

    /** The disk after a power cut: flushed sectors, plus a random subset of the unflushed ones. */
    synchronized PowerCutBackingDevice cut(long seed) {
        PowerCutBackingDevice after = new PowerCutBackingDevice(size());
        MemorySegment.copy(durable, 0, after.live, 0, size());
        SplittableRandom r = new SplittableRandom(seed);
        for (int s = unflushed.nextSetBit(0); s >= 0; s = unflushed.nextSetBit(s + 1)) {
            if (r.nextBoolean()) {
                MemorySegment.copy(live, (long) s * SECTOR, after.live, (long) s * SECTOR, SECTOR);
            }
        }
        MemorySegment.copy(after.live, 0, after.durable, 0, size());
        return after;
    }

    MemorySegment contents() {
        return live;
    }

    @Override
    public synchronized void close() {
        // A shared arena is only freed by closing it (two copies of the disk each). The harness
        // closes a cut disk after the workers of the instance using it stopped.
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
