package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Layout;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The image of a freshly formatted cache with a fixed cache id and creation time, so that two runs
 * of the same workload store the same bytes (format takes a random id, which salts every CRC):
 * a power cut seeded the same way then keeps the same words, and a failure repeats exactly.
 */
final class DeterministicFormat {
    static final long CACHE_ID = 0x5eed_cafe_f00d_0001L;
    private static final long CREATED_MILLIS = 1_700_000_000_000L;

    private DeterministicFormat() {
    }

    /** A formatted image of {@code segments} 1 MiB segments for {@code backing}, both images equal. */
    static byte[] image(int segments, BackingDevice backing, boolean dataCrc) throws IOException {
        long size = Layout.segmentAreaOffset(segments) + segments * CacheHarness.MIB;
        try (PowerCutMedium m = PowerCutMedium.create(size)) {
            Cache.format(m, backing, new FormatOptions(CacheHarness.MIB, dataCrc));
            MemorySegment s = m.segment();
            Superblock sb = Cache.superblock(m);
            CacheInfo info = CacheInfo.read(s, sb.cacheId(), sb, m.describe());
            Superblock fixed = new Superblock(sb.version(), sb.flags(), sb.segmentSize(), sb.segmentCount(),
                    sb.segmentAreaOffset(), sb.backingSize(), sb.backingFingerprint(), CACHE_ID, CREATED_MILLIS,
                    sb.mediumSize());
            fixed.encode(s);
            info.encode(s, Layout.CACHE_INFO_SLOT0, CACHE_ID);
            for (int seg = 0; seg < segments; seg++) {
                new SegmentInfo(0, 0, SegmentInfo.NO_NEXT).encode(s, seg, 0, CACHE_ID);
            }
            return s.toArray(ValueLayout.JAVA_BYTE);
        }
    }
}
