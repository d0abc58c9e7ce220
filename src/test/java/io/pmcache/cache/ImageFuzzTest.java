package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Crc;
import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.Medium;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.FuzzInput;
import io.pmcache.testing.FuzzOutput;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.slf4j.LoggerFactory;

/**
 * Fuzz target: open (replay) and check of a damaged cache image.
 *
 * <p>A small cache (8 segments of 1 MiB in front of 4 MiB) is formatted and given a deterministic
 * workload through the public API — three phases of writes with flushes, a detach (everything
 * written back, gc moves the key tail), a trim and a write of zeroes, a flushAll (the dirty tail
 * moves), more writes with flushes — and closed. Its medium image (and the backing device's) is
 * built once per JVM, with and without the data-CRC option. Each input is a list of mutations of the
 * image's metadata and key log; the mutated image is then checked ({@link Checker#check}) and
 * opened ({@link Cache#open}) on an in-memory medium, every sector of the device is read, and
 * (if the input asks) everything is written back and the backing device read too.
 *
 * <p>The contract: check returns a report; open, the reads, flushAll and close either succeed or
 * throw an {@link IOException} (a {@link io.pmcache.format.MediaCorruptException} for a refused
 * medium) — no other exception, no hang (the whole run is bounded by a watchdog). When no mutation
 * forged a record, also: every sector that reads successfully holds something once written there
 * (or the zeros it started with), never garbage, through the cache and on the backing device after
 * writeback. A forged record (damage under a valid CRC) is genuine as far as the medium can tell —
 * a key whose offset was forged shows other data there, data CRC or not — so forged inputs are
 * held to the first contract only. With {@code -Dpmcache.fuzz.strict=true}, also: when nothing was
 * forged and neither check nor open reported damage, every sector reads its newest value (no
 * silent loss: issue 9 items 1 and 2 fail this until they are fixed).
 *
 * <p>Input: flags u8 (bit 0: the data-CRC image, bit 1: flushAll after the reads, bit 2: check
 * verifies every data CRC), then up to {@link #MAX_MUTATIONS} mutations of 16 bytes each:
 * <pre>
 *  0  op u8      what to do (see {@link #mutate}), mod 12
 *  1  sel u8     bits 0-1: region for byte ops (0, 3: metadata records, 1: live ksets, 2: whole
 *                log segments); bit 0: slot for forged records; bit 1: value is a signed delta to
 *                the field; bit 2: re-seal the kset after forging a key
 *  2  len u16    span length, or which field / slot of a forged record
 *  4  pos u32    position in the region, or which record
 *  8  value i64  the value written, or a delta, or a second position
 * </pre>
 * Regression inputs: {@code src/test/resources/io/pmcache/cache/ImageFuzzTestInputs/mutatedImage/}.
 */
class ImageFuzzTest {
    private static final long MIB = 1L << 20;
    private static final int SEGMENTS = 8;
    private static final long DEVICE = 4 * MIB;
    private static final int SECTOR = 512;
    private static final long FINGERPRINT = 7;
    static final int MAX_MUTATIONS = 32;
    /** Generous: one run takes tens of milliseconds; only a hang comes near this on a loaded machine. */
    private static final Duration WATCHDOG = Duration.ofSeconds(60);
    private static final CacheOptions OPTIONS = new CacheOptions(1, -1, false, false);
    private static final boolean STRICT = Boolean.getBoolean("pmcache.fuzz.strict");

    private static final Image[] IMAGES = new Image[2];
    private static Level savedLevel;

    /** A live kset of the pristine image: absolute position, sequence, capacity, sealed count. */
    record KsetAt(long at, long seq, int capacity, int sealed) {
    }

    /** A write of the workload: sector contents name it (see {@link #fill}). Zero writes have {@code zero}. */
    record W(long id, long offset, long length, boolean zero) {
        boolean covers(long sector) {
            return offset <= sector && sector + SECTOR <= offset + length;
        }
    }

    /** A pristine image, the structure the mutations aim at, and what each sector must read. */
    record Image(byte[] medium, byte[] backing, long cacheId, int count, long area, List<long[]> metaRecords,
                 List<KsetAt> ksets, List<Integer> logSegments, List<W> writes, long[] newest) {
    }

    @BeforeAll
    static void quiet() {
        // Corrupt media log warnings and errors by design: millions of lines while fuzzing.
        Logger cache = (Logger) LoggerFactory.getLogger("io.pmcache.cache");
        savedLevel = cache.getLevel();
        cache.setLevel(Level.OFF);
    }

    @AfterAll
    static void loud() {
        ((Logger) LoggerFactory.getLogger("io.pmcache.cache")).setLevel(savedLevel);
    }

    @FuzzTest
    void mutatedImage(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int flags = in.u8();
        Image img = image((flags & 1) != 0);
        MemorySegment m = WorkMedium.INSTANCE.reset(img.medium);
        boolean forged = false;
        for (int i = 0; i < MAX_MUTATIONS && in.hasRemaining(); i++) {
            forged |= mutate(img, m, in.u8() % 12, in.u8(), in.u16(), in.u32(), in.i64());
        }
        boolean anyForged = forged;
        assertTimeoutPreemptively(WATCHDOG, () -> run(img, flags, anyForged),
                "open, check, reads and writeback of a damaged image must end");
    }

    /**
     * The medium every run opens: one buffer, refilled with the image before each run. A fresh
     * {@link PowerCutMedium} per run (two zeroed copies of the image) made allocation the largest
     * cost of a run; power cuts play no part here, so this medium only checks that every persist
     * lies within it, as {@link PowerCutMedium} does.
     */
    static final class WorkMedium implements Medium {
        static final WorkMedium INSTANCE = new WorkMedium();
        private final MemorySegment bytes = Arena.global().allocate(Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * MIB, 4096);

        MemorySegment reset(byte[] image) {
            MemorySegment.copy(image, 0, bytes, JAVA_BYTE, 0, image.length);
            return bytes;
        }

        @Override
        public MemorySegment segment() {
            return bytes;
        }

        @Override
        public long size() {
            return bytes.byteSize();
        }

        @Override
        public void persist(long offset, long length) {
            Objects.checkFromIndexSize(offset, length, bytes.byteSize());
        }

        @Override
        public String describe() {
            return "fuzzed image (" + bytes.byteSize() + " bytes in memory)";
        }

        @Override
        public void close() {
            // reused by the next run
        }
    }

    /**
     * Applies one mutation; true when it forged a record (its CRC made valid, or a valid record
     * copied elsewhere), which the medium cannot tell from a genuine one.
     */
    static boolean mutate(Image img, MemorySegment m, int op, int sel, int len, long pos, long value) {
        switch (op) {
            case 0 -> { // flip bits of one byte
                long at = region(img, sel, pos);
                m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ ((int) value | 1)));
            }
            case 1 -> m.set(JAVA_BYTE, region(img, sel, pos), (byte) value);
            case 2 -> {
                long at = Math.min(region(img, sel, pos), m.byteSize() - 4);
                m.set(JAVA_INT_UNALIGNED, at, (int) value);
            }
            case 3 -> {
                long at = Math.min(region(img, sel, pos), m.byteSize() - 8);
                m.set(JAVA_LONG_UNALIGNED, at, value);
            }
            case 4 -> { // zero a span (a lost page, a torn write)
                long at = region(img, sel, pos);
                m.asSlice(at, Math.min(1 + len % 4096, m.byteSize() - at)).fill((byte) 0);
            }
            case 5 -> { // copy 64 bytes from elsewhere in the region (a stale or misplaced record)
                long to = Math.min(region(img, sel, pos), m.byteSize() - 64);
                long from = Math.min(region(img, sel, value >>> 1), m.byteSize() - 64);
                MemorySegment.copy(m, from, m, to, 64);
                return true;
            }
            case 6 -> { // forge a cache-info field: "CRC32C of [0, 60), salted with the cache id"
                long slot = (sel & 1) == 0 ? Layout.CACHE_INFO_SLOT0 : Layout.CACHE_INFO_SLOT1;
                setField(m, slot + 4L * (len % 15), sel, value);
                m.set(JAVA_INT_UNALIGNED, slot + 60, Crc.of(img.cacheId, m, slot, 60));
                return true;
            }
            case 7 -> { // forge a segment-info field
                int seg = (int) (pos % img.count);
                long at = Layout.segmentInfoSlot(seg, sel & 1);
                setField(m, at + 4L * (len % 6), sel, value);
                m.set(JAVA_INT_UNALIGNED, at + 24, Crc.of(img.cacheId ^ (seg * 0x9E3779B97F4A7C15L), m, at, 24));
                return true;
            }
            case 8 -> { // forge a kset header field: "header CRC32C of [8, 32), salted with the cache id"
                KsetAt k = img.ksets.get((int) (pos % img.ksets.size()));
                setField(m, k.at + 8 + 4L * (len % 6), sel, value);
                m.set(JAVA_INT_UNALIGNED, k.at + 4, Crc.of(img.cacheId, m, k.at + 8, 24));
                return true;
            }
            case 9 -> { // forge a seal with another count
                KsetAt k = img.ksets.get((int) (pos % img.ksets.size()));
                int count = (sel & 2) != 0 ? Math.max(0, k.sealed) + (byte) value : (int) value;
                if (count >= 0 && count <= k.capacity) {
                    Kset.writeSeal(m, k.at, k.seq, count, img.cacheId);
                } else {
                    m.set(JAVA_INT_UNALIGNED, k.at + 40, count);
                }
                return true;
            }
            case 10 -> { // forge a key field: "CRC32C of [0, 60), salted with cache id XOR (kset sequence · 131 + slot)"
                KsetAt k = img.ksets.get((int) (pos % img.ksets.size()));
                int slot = (len & 0xff) % k.capacity;
                long at = k.at + Kset.slotOffset(slot);
                setField(m, at + 4L * ((len >>> 8) % 9), sel, value);
                m.set(JAVA_INT_UNALIGNED, at + 60, Crc.of(img.cacheId ^ (k.seq * 131 + slot), m, at, 60));
                if ((sel & 4) != 0 && k.sealed >= 0) {
                    Kset.writeSeal(m, k.at, k.seq, k.sealed, img.cacheId);
                }
                return true;
            }
            default -> { // forge a superblock field: "CRC32C of bytes [0, 124), salt 0"
                setField(m, 8 + 4L * (len % 29), sel, value);
                m.set(JAVA_INT_UNALIGNED, 124, Crc.of(0, m, 0, 124));
                return true;
            }
        }
        return false;
    }

    private static void setField(MemorySegment m, long at, int sel, long value) {
        int v = (sel & 2) != 0 ? m.get(JAVA_INT_UNALIGNED, at) + (byte) value : (int) value;
        m.set(JAVA_INT_UNALIGNED, at, v);
    }

    /** Maps {@code pos} into the region {@code sel} names: a byte of a metadata record, of a live kset, or of a log segment. */
    private static long region(Image img, int sel, long pos) {
        switch (sel & 3) {
            case 1 -> {
                long total = 0;
                for (KsetAt k : img.ksets) {
                    total += Kset.bytes(k.capacity);
                }
                long p = pos % total;
                for (KsetAt k : img.ksets) {
                    if (p < Kset.bytes(k.capacity)) {
                        return k.at + p;
                    }
                    p -= Kset.bytes(k.capacity);
                }
                throw new AssertionError("unreachable");
            }
            case 2 -> {
                long p = pos % (img.logSegments.size() * MIB);
                return img.area + img.logSegments.get((int) (p / MIB)) * MIB + p % MIB;
            }
            default -> {
                long total = 0;
                for (long[] r : img.metaRecords) {
                    total += r[1];
                }
                long p = pos % total;
                for (long[] r : img.metaRecords) {
                    if (p < r[1]) {
                        return r[0] + p;
                    }
                    p -= r[1];
                }
                throw new AssertionError("unreachable");
            }
        }
    }

    private static void run(Image img, int flags, boolean forged) throws IOException {
        Medium medium = WorkMedium.INSTANCE;
        MemoryBackingDevice backing = backing();
        backing.write(0, MemorySegment.ofArray(img.backing), false);
        Checker.Report report = Checker.check(medium, backing, (flags & 4) != 0, null);
        Cache cache;
        try {
            cache = Cache.open(medium, backing, OPTIONS);
        } catch (IOException refused) {
            return;
        }
        try {
            long damage = report.errors() + cache.status().corruptKeysSkipped() + cache.status().dataCrcErrors();
            Oracle oracle = forged ? Oracle.NONE : STRICT && damage == 0 ? Oracle.NEWEST : Oracle.ONCE_WRITTEN;
            verify(img, cache::read, oracle, report);
            if ((flags & 2) != 0) {
                try {
                    cache.flushAll(left -> { });
                } catch (IOException failed) {
                    return;
                }
                verify(img, backing::read, oracle == Oracle.NONE ? Oracle.NONE : Oracle.ONCE_WRITTEN, report);
            }
        } finally {
            try {
                cache.close();
            } catch (IOException ignored) {
                // allowed: the contract is about what escapes, and an IOException may
            }
        }
    }

    private static MemoryBackingDevice backingDevice;

    /** The backing device every run uses, rewritten with the image's before each. */
    private static synchronized MemoryBackingDevice backing() {
        if (backingDevice == null) {
            backingDevice = new MemoryBackingDevice(DEVICE, FINGERPRINT);
        }
        return backingDevice;
    }

    interface Reader {
        void read(long offset, MemorySegment dst) throws IOException;
    }

    /**
     * What a sector may read. A forged record (a valid CRC over damage) is a genuine record as far
     * as the medium can tell — a key whose offset was forged makes other data appear there, even
     * with data CRCs — so after a forgery only the exception and hang contract holds.
     */
    enum Oracle { NONE, ONCE_WRITTEN, NEWEST }

    /**
     * Reads the device in 1 MiB chunks: a chunk may fail with an IOException (unless {@code NEWEST});
     * every sector read must hold zeros or a write's content for it, and with {@code NEWEST} the
     * newest one.
     */
    private static void verify(Image img, Reader reader, Oracle oracle, Checker.Report report) {
        boolean exact = oracle == Oracle.NEWEST;
        byte[] buf = new byte[(int) MIB];
        MemorySegment dst = MemorySegment.ofArray(buf);
        for (long off = 0; off < DEVICE; off += MIB) {
            try {
                reader.read(off, dst);
            } catch (IOException failed) {
                if (exact) {
                    throw new AssertionError("read at " + off + " failed though nothing was reported damaged", failed);
                }
                continue;
            }
            for (int s = 0; s < MIB && oracle != Oracle.NONE; s += SECTOR) {
                long sector = off + s;
                long id = dst.get(JAVA_LONG_UNALIGNED, s);
                boolean zeros = id == 0 && isZero(dst, s);
                if (!zeros && !isContentOf(img, id, sector, dst, s)) {
                    throw new AssertionError("sector at " + sector + " holds something never written there (first word 0x"
                            + Long.toHexString(id) + ")");
                }
                long want = img.newest[(int) (sector / SECTOR)];
                if (exact && (zeros ? want != 0 : want != id)) {
                    throw new AssertionError("silent loss: sector at " + sector + " reads " + (zeros ? "zeros" : "write #" + id)
                            + " instead of " + (want == 0 ? "zeros" : "write #" + want)
                            + " while check found no error and open counted no damage; check: " + report.findings());
                }
            }
        }
    }

    private static boolean isZero(MemorySegment s, int at) {
        for (int i = 0; i < SECTOR; i += 8) {
            if (s.get(JAVA_LONG_UNALIGNED, at + i) != 0) {
                return false;
            }
        }
        return true;
    }

    private static boolean isContentOf(Image img, long id, long sector, MemorySegment s, int at) {
        if (id < 1 || id > img.writes.size()) {
            return false;
        }
        W w = img.writes.get((int) id - 1);
        if (w.zero || !w.covers(sector)) {
            return false;
        }
        for (int i = 8; i < SECTOR; i += 8) {
            if (s.get(JAVA_LONG_UNALIGNED, at + i) != word(id, sector + i)) {
                return false;
            }
        }
        return true;
    }

    /** Word {@code i} of a sector written by write {@code id}: the id itself first, so a sector names its write. */
    private static long word(long id, long pos) {
        long z = id * 0x9E3779B97F4A7C15L + pos;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static byte[] fill(long id, long offset, int length) {
        byte[] b = new byte[length];
        MemorySegment s = MemorySegment.ofArray(b);
        for (int i = 0; i < length; i += 8) {
            s.set(JAVA_LONG_UNALIGNED, i, i % SECTOR == 0 ? id : word(id, offset + i));
        }
        return b;
    }

    // ------------------------------------------------------------------ the image

    static synchronized Image image(boolean dataCrc) {
        int i = dataCrc ? 1 : 0;
        if (IMAGES[i] == null) {
            IMAGES[i] = assertTimeoutPreemptively(Duration.ofMinutes(2), () -> build(dataCrc),
                    "building the image to mutate");
        }
        return IMAGES[i];
    }

    private static Image build(boolean dataCrc) throws IOException {
        long size = Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * MIB;
        List<W> writes = new ArrayList<>();
        long[] newest = new long[(int) (DEVICE / SECTOR)];
        try (PowerCutMedium medium = PowerCutMedium.create(size);
             MemoryBackingDevice backing = new MemoryBackingDevice(DEVICE, FINGERPRINT)) {
            Cache.format(medium, backing, new FormatOptions(MIB, dataCrc));
            Cache cache = Cache.open(medium, backing, new CacheOptions(1, 50, false, false));
            SplittableRandom r = new SplittableRandom(20261201);
            writeSome(cache, r, writes, newest, 1 * MIB);
            cache.detach(left -> { }); // all written back; gc moves the key tail past every kset
            writeSome(cache, r, writes, newest, 1 * MIB);
            zero(cache, writes, newest, 3 * MIB + 4096, 64 * 1024, false);
            zero(cache, writes, newest, 2 * MIB - 8192, 128 * 1024, true);
            cache.flush();
            cache.flushAll(left -> { }); // clean keys; the dirty tail moves
            writeSome(cache, r, writes, newest, 1 * MIB); // dirty keys after the dirty tail
            cache.close();
            MemorySegment m = medium.segment();
            Superblock sb = Cache.superblock(medium);
            long area = sb.segmentAreaOffset();
            List<long[]> meta = List.of(new long[] {0, Superblock.SIZE},
                    new long[] {Layout.CACHE_INFO_SLOT0, CacheInfo.SIZE}, new long[] {Layout.CACHE_INFO_SLOT1, CacheInfo.SIZE},
                    new long[] {Layout.SEGMENT_TABLE, SEGMENTS * Layout.SEGMENT_TABLE_ENTRY});
            List<KsetAt> ksets = new ArrayList<>();
            List<Integer> logSegments = new ArrayList<>();
            walk(m, sb, CacheInfo.read(m, sb.cacheId(), sb, "image"), ksets, logSegments);
            if (ksets.size() < 4) {
                throw new AssertionError("the workload left only " + ksets.size() + " live ksets");
            }
            return new Image(m.toArray(JAVA_BYTE), backing.toByteArray(), sb.cacheId(), SEGMENTS, area, meta,
                    List.copyOf(ksets), List.copyOf(logSegments), List.copyOf(writes), newest);
        }
    }

    /** Writes of 512 B to 128 KiB, {@code total} bytes in all, a flush after every few. */
    private static void writeSome(Cache cache, SplittableRandom r, List<W> writes, long[] newest, long total)
            throws IOException {
        for (long done = 0; done < total; ) {
            int length = SECTOR * (1 + (r.nextInt(4) == 0 ? r.nextInt(256) : r.nextInt(16)));
            long offset = r.nextLong((DEVICE - length) / SECTOR + 1) * SECTOR;
            long id = writes.size() + 1;
            writes.add(new W(id, offset, length, false));
            cache.write(offset, MemorySegment.ofArray(fill(id, offset, length)), r.nextInt(16) == 0);
            for (long s = offset; s < offset + length; s += SECTOR) {
                newest[(int) (s / SECTOR)] = id;
            }
            if (r.nextInt(3) == 0) {
                cache.flush();
            }
            done += length;
        }
        cache.flush();
    }

    private static void zero(Cache cache, List<W> writes, long[] newest, long offset, long length, boolean trim)
            throws IOException {
        writes.add(new W(writes.size() + 1, offset, length, true));
        if (trim) {
            cache.trim(offset, length);
        } else {
            cache.writeZeroes(offset, length, false);
        }
        for (long s = offset; s < offset + length; s += SECTOR) {
            newest[(int) (s / SECTOR)] = 0;
        }
    }

    /** The live ksets from the key tail, as the format documents the walk, and the log's segments. */
    private static void walk(MemorySegment m, Superblock sb, CacheInfo info, List<KsetAt> out, List<Integer> segs) {
        LogPosition p = info.keyTail();
        int seg = p.segment();
        long off = p.offset();
        long seq = p.ksetSeq();
        segs.add(seg);
        while (true) {
            if (sb.segmentSize() - off < Kset.MIN_BYTES) {
                SegmentInfo si = SegmentInfo.read(m, seg, sb.cacheId(), sb.segmentCount());
                if (si == null || si.next() == SegmentInfo.NO_NEXT || segs.contains(si.next())) {
                    return;
                }
                seg = si.next();
                off = 0;
                segs.add(seg);
            }
            long at = sb.segmentAreaOffset() + seg * sb.segmentSize() + off;
            int cap = Kset.validHeader(m, at, sb.segmentSize() - off, seq, sb.cacheId());
            if (cap < 0) {
                return;
            }
            out.add(new KsetAt(at, seq, cap, Kset.sealedCount(m, at, seq, cap, sb.cacheId())));
            off += Kset.bytes(cap);
            seq++;
        }
    }

    // ------------------------------------------------------------------ regression inputs

    /**
     * Writes the seed inputs into {@code args[0]} (the target's inputs directory). Positions are
     * taken from the image, which is the same for every build but its cache id.
     */
    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[0]);
        Files.createDirectories(dir);
        Image img = image(false);
        // The undamaged image: opened, read, written back; with data CRCs, checked in full.
        Files.write(dir.resolve("seed-pristine"), new FuzzOutput().u8(2).toByteArray());
        Files.write(dir.resolve("seed-pristine-datacrc"), new FuzzOutput().u8(1 | 2 | 4).toByteArray());
        // One bit of a kset's magic (issue 9 item 1's shape) and a zeroed key slot below a sealed
        // count (item 2's): in the first live kset, written back already, and in the first kset
        // after the dirty tail, whose keys are still dirty (silent loss until the items are fixed).
        MemorySegment m = MemorySegment.ofArray(img.medium);
        Superblock sb = Superblock.decode(m, "image");
        long dirtySeq = CacheInfo.read(m, img.cacheId, sb, "image").dirtyTail().ksetSeq();
        long first = 0;
        long firstDirty = -1;
        long sealedClean = -1;
        long sealedDirty = -1;
        for (KsetAt k : img.ksets) {
            if (k.seq >= dirtySeq && firstDirty < 0) {
                firstDirty = first;
            }
            if (k.sealed > 0 && (k.seq < dirtySeq ? sealedClean : sealedDirty) < 0) {
                if (k.seq < dirtySeq) {
                    sealedClean = first;
                } else {
                    sealedDirty = first;
                }
            }
            first += Kset.bytes(k.capacity);
        }
        Files.write(dir.resolve("seed-kset-magic-bit-written-back"), mutation(2, 0, 1, 0, 0, 0x10).toByteArray());
        Files.write(dir.resolve("seed-kset-magic-bit-dirty"), mutation(2, 0, 1, 0, firstDirty, 0x10).toByteArray());
        int slotSpan = io.pmcache.format.KeyRecord.SIZE - 1;
        Files.write(dir.resolve("seed-zeroed-key-slot-written-back"),
                mutation(2, 4, 1, slotSpan, sealedClean + Kset.slotOffset(0), 0).toByteArray());
        Files.write(dir.resolve("seed-zeroed-key-slot-dirty"),
                mutation(2, 4, 1, slotSpan, sealedDirty + Kset.slotOffset(0), 0).toByteArray());
        // The newest cache-info slot's key tail offset moved by 64, with a valid CRC.
        CacheInfo a = CacheInfo.decodeSlot(m, Layout.CACHE_INFO_SLOT0, img.cacheId, sb);
        CacheInfo b = CacheInfo.decodeSlot(m, Layout.CACHE_INFO_SLOT1, img.cacheId, sb);
        int newer = b != null && (a == null || b.sequence() > a.sequence()) ? 1 : 0;
        Files.write(dir.resolve("seed-forged-cache-info"), mutation(2, 6, newer | 2, 3, 0, 64).toByteArray());
        // A forged key: its length one byte longer, in a kset re-sealed around it.
        Files.write(dir.resolve("seed-forged-key"), mutation(3, 10, 2 | 4, 2 << 8, 0, 1).toByteArray());
        // A superblock with a segment count of 3 and a valid CRC.
        Files.write(dir.resolve("seed-forged-superblock"), mutation(0, 11, 0, 4, 0, 3).toByteArray());
        // Several kinds at once (so that crossover starts from inputs longer than one mutation):
        // a flipped bit in a sealed kset's slot, a zeroed span at the start of a log segment, a
        // byte set in the segment table, a bit of the older cache-info slot.
        FuzzOutput several = mutation(2 | 4, 0, 1, 0, sealedClean + Kset.slotOffset(0) + 9, 4);
        several.u8(4).u8(2).u16(511).i32(Kset.bytes(img.ksets.getFirst().capacity)).i64(0);
        several.u8(1).u8(0).u16(0).i32((int) (Superblock.SIZE + 2 * CacheInfo.SIZE + 17)).i64(0x7f);
        several.u8(0).u8(0).u16(0).i32(Superblock.SIZE + (1 - newer) * CacheInfo.SIZE + 20).i64(1);
        Files.write(dir.resolve("seed-several"), several.toByteArray());
        // Both segment-info slots of the first log segment zeroed.
        long table = Superblock.SIZE + 2L * CacheInfo.SIZE;
        Files.write(dir.resolve("seed-segment-info-zeroed"),
                mutation(2, 4, 0, 63, table + img.logSegments.getFirst() * Layout.SEGMENT_TABLE_ENTRY, 0).toByteArray());
    }

    private static FuzzOutput mutation(int flags, int op, int sel, int len, long pos, long value) {
        return new FuzzOutput().u8(flags).u8(op).u8(sel).u16(len).i32((int) pos).i64(value);
    }
}
