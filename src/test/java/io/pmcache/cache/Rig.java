package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A cache of 1 MiB segments on a {@link PowerCutMedium} whose options can change from one open to
 * the next, and whose medium can be damaged between a close and the next open.
 */
final class Rig implements AutoCloseable {
    static final long MIB = 1L << 20;

    final PowerCutMedium medium;
    final BackingDevice backing;
    Cache cache;

    private Rig(PowerCutMedium medium, BackingDevice backing) {
        this.medium = medium;
        this.backing = backing;
    }

    static Rig format(int segments, BackingDevice backing, boolean dataCrc) throws IOException {
        PowerCutMedium medium = PowerCutMedium.create(Layout.segmentAreaOffset(segments) + segments * MIB);
        Cache.format(medium, backing, new FormatOptions(MIB, dataCrc));
        return new Rig(medium, backing);
    }

    static Rig format(int segments, long deviceSize, boolean dataCrc) throws IOException {
        return format(segments, new MemoryBackingDevice(deviceSize, 7), dataCrc);
    }

    Cache open(CacheOptions options) throws IOException {
        cache = Cache.open(medium, backing, options);
        return cache;
    }

    void closeCache() throws IOException {
        if (cache != null) {
            cache.close();
            cache = null;
        }
    }

    MemorySegment bytes() {
        return medium.segment();
    }

    void write(WriteHistory model, long offset, int length) throws IOException {
        cache.write(offset, MemorySegment.ofArray(model.write(offset, length)), false);
    }

    byte[] read(long offset, int length) throws IOException {
        byte[] b = new byte[length];
        cache.read(offset, MemorySegment.ofArray(b));
        return b;
    }

    /** Every kset of the live log, from the key tail to the head, as an open cache sees it. */
    static List<LogReader.KsetAt> ksets(Cache c) {
        Engine e = c.engine();
        List<LogReader.KsetAt> out = new ArrayList<>();
        LogPosition pos = e.info.current().keyTail();
        while (true) {
            LogReader.KsetAt k = e.reader.read(pos);
            if (k == null) {
                return out;
            }
            out.add(k);
            pos = k.next();
        }
    }

    @Override
    public void close() throws IOException {
        closeCache();
        medium.close();
        backing.close();
    }
}
