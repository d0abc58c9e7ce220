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
 *
 * <p>Its memory is freed when the device becomes unreachable (an automatic arena: a device cannot
 * be closed while an abandoned cache instance may still write to it). Fresh memory is costly to
 * fault in, so a cut can reuse a device nothing uses any more ({@link #cut(long, PowerCutBackingDevice)}).
 */
final class PowerCutBackingDevice implements BackingDevice {
    private static final int SECTOR = 512;
    private final Arena arena = Arena.ofAuto();
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
    PowerCutBackingDevice cut(long seed) {
        return cut(seed, null);
    }

    /**
     * The disk after a power cut, built in the memory of {@code spare} when it is not null: a
     * device of the same size that nothing reads or writes any more (it is overwritten whole).
     */
    synchronized PowerCutBackingDevice cut(long seed, PowerCutBackingDevice spare) {
        SplittableRandom r = new SplittableRandom(seed);
        return cut(r::nextBoolean, spare);
    }

    /** The disk after a power cut that kept every unflushed sector ({@code all}) or none of them. */
    synchronized PowerCutBackingDevice cutKeeping(boolean all) {
        return cut(() -> all, null);
    }

    /** Flushed sectors, plus each unflushed one (in sector order) for which {@code keep} says so. */
    private PowerCutBackingDevice cut(java.util.function.BooleanSupplier keep, PowerCutBackingDevice spare) {
        PowerCutBackingDevice after;
        if (spare != null && spare != this && spare.size() == size()) {
            after = spare;
            after.unflushed.clear();
        } else {
            after = new PowerCutBackingDevice(size());
        }
        MemorySegment.copy(durable, 0, after.live, 0, size());
        for (int s = unflushed.nextSetBit(0); s >= 0; s = unflushed.nextSetBit(s + 1)) {
            if (keep.getAsBoolean()) {
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
    public void close() {
        // memory is released with the (automatic) arena when unreachable; closing it here would
        // race the abandoned cache instance's last writeback step
    }
}
