package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.device.BlockDevice;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A cache on a {@link PowerCutMedium} in front of an in-memory backing device, owning both, with
 * the restarts tests need: clean reopen, process crash, and power cut.
 */
public final class CacheHarness implements BlockDevice {
    public static final long MIB = 1L << 20;

    private PowerCutMedium medium;
    private BackingDevice backing;
    /** A power-cut backing disk no instance uses any more, whose memory the next cut reuses. */
    private PowerCutBackingDevice spare;
    private final CacheOptions options;
    private Cache cache;

    private CacheHarness(PowerCutMedium medium, BackingDevice backing, CacheOptions options) throws IOException {
        this.medium = medium;
        this.backing = backing;
        this.options = options;
        this.cache = Cache.open(medium, backing, options);
    }

    /** A fresh cache of {@code segments} 1 MiB segments in front of {@code deviceSize} bytes. */
    public static CacheHarness create(int segments, long deviceSize, CacheOptions options, boolean dataCrc)
            throws IOException {
        return create(segments, new MemoryBackingDevice(deviceSize, 7), options, dataCrc);
    }

    public static CacheHarness create(int segments, BackingDevice backing, CacheOptions options, boolean dataCrc)
            throws IOException {
        long mediumSize = io.pmcache.format.Layout.segmentAreaOffset(segments) + segments * MIB;
        PowerCutMedium medium = PowerCutMedium.create(mediumSize);
        Cache.format(medium, backing, new FormatOptions(MIB, dataCrc));
        return new CacheHarness(medium, backing, options);
    }

    public Cache cache() {
        return cache;
    }

    public PowerCutMedium medium() {
        return medium;
    }

    public BackingDevice backing() {
        return backing;
    }

    /** Clean stop and start. */
    public void reopen() throws IOException {
        cache.close();
        cache = Cache.open(medium, backing, options);
    }

    /** kill -9: the workers are stopped without sealing anything; the mapped bytes survive as they are. */
    public void crash() throws IOException {
        freeze();
        PowerCutMedium image = medium.crash();
        medium.close();
        medium = image; // the backing disk keeps everything written to it: the OS has it
        cache = Cache.open(medium, backing, options);
    }

    /** Power loss: only what was persisted survives, plus an arbitrary subset of the rest. */
    public void powerCut(long seed) throws IOException {
        freeze();
        PowerCutMedium image = medium.cut(seed);
        BackingDevice disk = cutBacking(seed);
        medium.close();
        if (backing != disk && backing instanceof PowerCutBackingDevice old) {
            spare = old; // the old instance stopped: nothing uses it any more
        }
        medium = image;
        backing = disk;
        cache = Cache.open(medium, backing, options);
    }

    /** The backing disk after a power cut (the same disk unless it can lose unflushed writes). */
    private BackingDevice cutBacking(long seed) {
        if (backing instanceof PowerCutBackingDevice p) {
            PowerCutBackingDevice after = p.cut(seed ^ 0x5eed, spare); // built in the spare's memory
            spare = null;
            return after;
        }
        return backing;
    }

    /**
     * Stops the old instance's threads (each finishes the step it is in, which is the same as
     * crashing a little later) without sealing or persisting anything more. The image must be
     * taken only then: copying a medium that background threads are still storing into would
     * mix bytes from different instants — a state no real crash produces (say, a segment's new
     * data without the generation bump that preceded it).
     */
    private void freeze() {
        cache.abandonForTests();
    }

    @Override
    public long size() {
        return cache.size();
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        cache.read(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        cache.write(offset, src, fua);
    }

    @Override
    public void flush() throws IOException {
        cache.flush();
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        cache.trim(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        cache.writeZeroes(offset, length, fua);
    }

    @Override
    public void close() throws IOException {
        cache.close();
        medium.close();
        backing.close();
    }
}
