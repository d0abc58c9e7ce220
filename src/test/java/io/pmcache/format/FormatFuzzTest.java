package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.pmcache.testing.FuzzInput;
import io.pmcache.testing.FuzzOutput;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Fuzz targets for the on-media decoders: each decodes fuzzer bytes laid out as one record on a
 * medium that ends exactly where the record (or the segment the caller says it is in) ends, so a
 * read past the record is an {@link IndexOutOfBoundsException}, not a silent read of a neighbour.
 *
 * <p>The contract checked for every input: the decoder returns (null or -1 for "invalid") or throws
 * the documented {@link MediaCorruptException}, nothing else; and every record it accepts keeps the
 * invariants the format documents (docs/format.md), re-encodes to a record that decodes the same,
 * and, for the two-slot records, the reader picks the valid slot with the highest sequence.
 *
 * <p>CRCs would stop a byte-mutating fuzzer at the first check, so each input carries a mode byte
 * whose bits say which CRCs to <em>forge</em>: computed as the format documents them, after the
 * fuzzer's bytes are in place. With a forged CRC the field checks behind it are what is fuzzed;
 * without, the CRC check itself and the bytes before it are.
 *
 * <p>Input layouts are given per target (little-endian fields read by {@link FuzzInput}; missing
 * bytes read as zero). Regression inputs live in {@code src/test/resources/io/pmcache/format/
 * FormatFuzzTestInputs/<target>/}; {@code bench/fuzz.sh} fuzzes one target for a while.
 */
class FormatFuzzTest {
    /** Largest medium the superblock target simulates (one buffer, allocated once, reused). */
    private static final long MAX_MEDIUM = 64L << 20;
    private static MemorySegment bigMedium;

    /**
     * The small targets' media and re-encoding space: slices of two buffers allocated once (a
     * fresh allocation per run would pile up off-heap memory between garbage collections), zeroed
     * before use. A slice is bounds-checked like a segment of its own.
     */
    private static final MemorySegment MEDIUM = Arena.global().allocate(128 << 10);
    private static final MemorySegment SCRATCH = Arena.global().allocate(128 << 10);

    private static MemorySegment medium(long size) {
        MemorySegment m = MEDIUM.asSlice(0, size);
        m.fill((byte) 0);
        return m;
    }

    private static MemorySegment scratch(long size) {
        MemorySegment m = SCRATCH.asSlice(0, size);
        m.fill((byte) 0);
        return m;
    }

    // ------------------------------------------------------------------ superblock

    /**
     * Input: mode u8 (bit 0: write the magic, bit 1: forge the CRC), medium size u32 (mod 64 MiB + 1),
     * then the 128 superblock bytes.
     */
    @FuzzTest
    void superblock(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        long mediumBytes = in.u32() % (MAX_MEDIUM + 1);
        byte[] record = in.bytes(Superblock.SIZE);
        MemorySegment medium = mediumBytes >= Superblock.SIZE
                ? big().asSlice(0, mediumBytes) : medium(mediumBytes);
        MemorySegment.copy(record, 0, medium, JAVA_BYTE, 0, (int) Math.min(Superblock.SIZE, mediumBytes));
        if (mediumBytes >= Superblock.SIZE) {
            if ((mode & 1) != 0) {
                medium.set(JAVA_LONG_UNALIGNED, 0, Superblock.MAGIC);
            }
            if ((mode & 2) != 0) {
                medium.set(JAVA_INT_UNALIGNED, 124, Crc.of(0, medium, 0, 124)); // "CRC32C of [0, 124), salt 0"
            }
        }
        boolean magic = Superblock.hasMagic(medium);
        Superblock sb;
        try {
            sb = Superblock.decode(medium, "fuzz");
        } catch (MediaCorruptException e) {
            require(e.getMessage().startsWith("fuzz: "), "the error names the medium: %s", e.getMessage());
            return;
        }
        require(magic, "accepted without the magic: %s", sb);
        require(sb.version() == Superblock.VERSION, "version: %s", sb);
        require((sb.flags() & ~Superblock.FLAGS_KNOWN) == 0, "unknown flags: %s", sb);
        require(Long.bitCount(sb.segmentSize()) == 1 && sb.segmentSize() >= Superblock.MIN_SEGMENT_SIZE
                && sb.segmentSize() <= Superblock.MAX_SEGMENT_SIZE, "segment size: %s", sb);
        require(sb.segmentCount() >= Superblock.MIN_SEGMENT_COUNT, "segment count: %s", sb);
        require(sb.segmentAreaOffset() == Layout.segmentAreaOffset(sb.segmentCount()), "segment area: %s", sb);
        long end = Math.addExact(sb.segmentAreaOffset(), Math.multiplyExact((long) sb.segmentCount(), sb.segmentSize()));
        require(end <= mediumBytes, "segments end at %d beyond the %d-byte medium: %s", end, mediumBytes, sb);
        require(sb.mediumSize() >= end && sb.mediumSize() <= mediumBytes,
                "recorded medium size outside [segments end %d, medium %d]: %s", end, mediumBytes, sb);
        require(sb.backingSize() >= 0, "backing size: %s", sb);
        sb.encode(medium);
        Superblock again = decodeOrFail(medium);
        require(again.equals(sb), "re-encoded superblock decodes as %s, was %s", again, sb);
    }

    private static Superblock decodeOrFail(MemorySegment medium) {
        try {
            return Superblock.decode(medium, "fuzz");
        } catch (MediaCorruptException e) {
            throw new AssertionError("a re-encoded superblock does not decode", e);
        }
    }

    // ------------------------------------------------------------------ cache info

    /**
     * Input: mode u8 (bit 0/1: forge slot 0/1's CRC), segment count 1 + u16, segment size
     * 2^(20 + u8 mod 11), cache id i64, then the 64 bytes of slot 0 and of slot 1.
     */
    @FuzzTest
    void cacheInfo(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        int count = 1 + in.u16();
        long segmentSize = 1L << (20 + in.u8() % 11);
        long cacheId = in.i64();
        Superblock sb = new Superblock(Superblock.VERSION, 0, segmentSize, count, Layout.segmentAreaOffset(count),
                1L << 40, 0, cacheId, 0, Layout.segmentAreaOffset(count) + count * segmentSize);
        MemorySegment m = medium(Layout.CACHE_INFO_SLOT1 + CacheInfo.SIZE);
        long[] slots = {Layout.CACHE_INFO_SLOT0, Layout.CACHE_INFO_SLOT1};
        for (int i = 0; i < 2; i++) {
            MemorySegment.copy(in.bytes(CacheInfo.SIZE), 0, m, JAVA_BYTE, slots[i], CacheInfo.SIZE);
            if ((mode & (1 << i)) != 0) { // "CRC32C of [0, 60), salted with the cache id"
                m.set(JAVA_INT_UNALIGNED, slots[i] + 60, Crc.of(cacheId, m, slots[i], 60));
            }
        }
        CacheInfo a = CacheInfo.decodeSlot(m, slots[0], cacheId, sb);
        CacheInfo b = CacheInfo.decodeSlot(m, slots[1], cacheId, sb);
        CacheInfo newest;
        try {
            newest = CacheInfo.read(m, cacheId, sb, "fuzz");
        } catch (MediaCorruptException e) {
            require(a == null && b == null, "read refused a valid slot: %s / %s", a, b);
            return;
        }
        require(newest != null, "read returned null");
        CacheInfo expected = a == null ? b : b == null ? a : a.sequence() >= b.sequence() ? a : b;
        require(newest.equals(expected), "read chose %s of %s / %s", newest, a, b);
        for (CacheInfo c : new CacheInfo[] {a, b}) {
            if (c == null) {
                continue;
            }
            require(c.sequence() >= 0 && c.sequence() < Long.MAX_VALUE, "sequence without a successor: %s", c);
            requireWithin(c.keyTail(), sb, c);
            requireWithin(c.dirtyTail(), sb, c);
            require(c.gcPercent() >= 0 && c.gcPercent() <= 90, "gc_percent: %s", c);
            require(c.dirtyTail().ksetSeq() >= c.keyTail().ksetSeq(), "dirty tail before key tail: %s", c);
            MemorySegment copy = scratch(CacheInfo.SIZE);
            c.encode(copy, 0, cacheId);
            require(c.equals(CacheInfo.decodeSlot(copy, 0, cacheId, sb)), "re-encoded %s does not decode", c);
        }
    }

    private static void requireWithin(LogPosition p, Superblock sb, Object record) {
        require(p.segment() >= 0 && p.segment() < sb.segmentCount() && p.offset() >= 0
                && p.offset() <= sb.segmentSize() && p.ksetSeq() > 0, "position %s outside the segments: %s", p, record);
    }

    // ------------------------------------------------------------------ segment info

    /**
     * Input: mode u8 (bit 0/1: forge slot 0/1's CRC), segment count 1 + u16 mod 1024, segment
     * u16 mod count, cache id i64, then the 32 bytes of slot 0 and of slot 1. The medium ends with
     * the segment table.
     */
    @FuzzTest
    void segmentInfo(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        int count = 1 + in.u16() % 1024;
        int seg = in.u16() % count;
        long cacheId = in.i64();
        MemorySegment m = medium(Layout.SEGMENT_TABLE + count * Layout.SEGMENT_TABLE_ENTRY);
        for (int slot = 0; slot < 2; slot++) {
            long at = Layout.segmentInfoSlot(seg, slot);
            MemorySegment.copy(in.bytes(SegmentInfo.SLOT_SIZE), 0, m, JAVA_BYTE, at, SegmentInfo.SLOT_SIZE);
            if ((mode & (1 << slot)) != 0) { // "CRC32C of [0, 24), salted with cache id XOR (segment · 0x9E3779B97F4A7C15)"
                m.set(JAVA_INT_UNALIGNED, at + 24, Crc.of(cacheId ^ (seg * 0x9E3779B97F4A7C15L), m, at, 24));
            }
        }
        SegmentInfo a = SegmentInfo.decodeSlot(m, seg, 0, cacheId, count);
        SegmentInfo b = SegmentInfo.decodeSlot(m, seg, 1, cacheId, count);
        SegmentInfo newest = SegmentInfo.read(m, seg, cacheId, count);
        SegmentInfo expected = a == null ? b : b == null ? a : a.sequence() >= b.sequence() ? a : b;
        require(Objects.equals(newest, expected), "read chose %s of %s / %s", newest, a, b);
        MemorySegment zeros = MemorySegment.ofArray(new byte[SegmentInfo.SLOT_SIZE]);
        SegmentInfo[] decoded = {a, b};
        for (int slot = 0; slot < 2; slot++) {
            SegmentInfo s = decoded[slot];
            boolean blank = m.asSlice(Layout.segmentInfoSlot(seg, slot), SegmentInfo.SLOT_SIZE).mismatch(zeros) < 0;
            require(SegmentInfo.slotDamaged(m, seg, slot, cacheId, count) == (s == null && !blank),
                    "slot %d: damaged means invalid and not blank (decoded %s, blank %s)", slot, s, blank);
            if (s == null) {
                continue;
            }
            require(s.sequence() >= 0 && s.sequence() < Long.MAX_VALUE, "sequence without a successor: %s", s);
            require(s.generation() >= 0, "generation: %s", s);
            require(s.next() == SegmentInfo.NO_NEXT || (s.next() >= 0 && s.next() < count && s.next() != seg),
                    "next of segment %d of %d: %s", seg, count, s);
            MemorySegment copy = scratch(m.byteSize());
            s.encode(copy, seg, slot, cacheId);
            require(s.equals(SegmentInfo.decodeSlot(copy, seg, slot, cacheId, count)), "re-encoded %s does not decode", s);
        }
    }

    // ------------------------------------------------------------------ kset (header, seal, slots)

    /**
     * Input: mode u8 (bit 0: write the magic and forge the header CRC, bit 1: put the expected
     * sequence into the header first, bit 2: forge every key slot's CRC, bit 3: seal it with the
     * count found in the seal), room u16 (bytes left in the segment from the kset), offset of the
     * kset in the medium u8, cache id i64, expected sequence i64, then the key bounds (device size
     * u32 · 4096, segment count 1 + u16, segment size 2^(20 + u8 mod 11)) and the kset's bytes
     * (up to room). The medium ends where the segment does.
     */
    @FuzzTest
    void kset(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        int room = in.u16();
        int at = in.u8();
        long cacheId = in.i64();
        long seq = in.i64();
        long deviceSize = in.u32() * 4096;
        int segmentCount = 1 + in.u16();
        long segmentSize = 1L << (20 + in.u8() % 11);
        MemorySegment m = medium(at + room);
        MemorySegment.copy(in.bytes(room), 0, m, JAVA_BYTE, at, room);
        if ((mode & 2) != 0 && room >= 16) {
            m.set(JAVA_LONG_UNALIGNED, at + 8, seq);
        }
        if ((mode & 1) != 0 && room >= 32) { // "header CRC32C of [8, 32), salted with the cache id"
            m.set(JAVA_INT_UNALIGNED, at, Kset.MAGIC);
            m.set(JAVA_INT_UNALIGNED, at + 4, Crc.of(cacheId, m, at + 8, 24));
        }
        int cap = Kset.validHeader(m, at, room, seq, cacheId);
        if (cap == -1) {
            return;
        }
        require(cap >= 1 && cap <= Kset.MAX_KEYS && Kset.bytes(cap) <= room, "capacity %d in %d bytes", cap, room);
        if ((mode & 4) != 0) {
            for (int i = 0; i < cap; i++) {
                long k = at + Kset.slotOffset(i);
                m.set(JAVA_INT_UNALIGNED, k + 60, keyCrc(m, k, cacheId, seq, i));
            }
        }
        if ((mode & 8) != 0) {
            int count = m.get(JAVA_INT_UNALIGNED, at + 40);
            if (count >= 0 && count <= cap) {
                Kset.writeSeal(m, at, seq, count, cacheId);
            }
        }
        int sealed = Kset.sealedCount(m, at, seq, cap, cacheId);
        require(sealed >= -1 && sealed <= cap, "sealed count %d of capacity %d", sealed, cap);
        require(sealed == -1 || Kset.hasSealMagic(m, at), "sealed without the seal magic");
        for (int i = 0; i < cap; i++) {
            long k = at + Kset.slotOffset(i);
            KeyRecord key = KeyRecord.decode(m, k, cacheId, seq, i, deviceSize, segmentCount, segmentSize);
            checkKey(m, k, key, cacheId, seq, i, deviceSize, segmentCount, segmentSize);
        }
    }

    // ------------------------------------------------------------------ key

    /**
     * Input: mode u8 (bit 0: forge the key CRC), offset of the key in the medium u8, cache id i64,
     * kset sequence i64, slot u8 mod 128, device size u32 · 512, segment count 1 + u16, segment size
     * 2^(20 + u8 mod 11), then the 64 key bytes. The medium ends with the key.
     */
    @FuzzTest
    void key(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        int at = in.u8();
        long cacheId = in.i64();
        long seq = in.i64();
        int slot = in.u8() % Kset.MAX_KEYS;
        long deviceSize = in.u32() * 512;
        int segmentCount = 1 + in.u16();
        long segmentSize = 1L << (20 + in.u8() % 11);
        MemorySegment m = medium(at + KeyRecord.SIZE);
        MemorySegment.copy(in.bytes(KeyRecord.SIZE), 0, m, JAVA_BYTE, at, KeyRecord.SIZE);
        if ((mode & 1) != 0) {
            m.set(JAVA_INT_UNALIGNED, at + 60, keyCrc(m, at, cacheId, seq, slot));
        }
        KeyRecord key = KeyRecord.decode(m, at, cacheId, seq, slot, deviceSize, segmentCount, segmentSize);
        checkKey(m, at, key, cacheId, seq, slot, deviceSize, segmentCount, segmentSize);
    }

    /** "key CRC32C of [0, 60), salted with cache id XOR (kset sequence · 131 + slot)" */
    private static int keyCrc(MemorySegment m, long at, long cacheId, long seq, int slot) {
        return Crc.of(cacheId ^ (seq * 131 + slot), m, at, 60);
    }

    private static void checkKey(MemorySegment m, long at, KeyRecord key, long cacheId, long seq, int slot,
                                 long deviceSize, int segmentCount, long segmentSize) {
        if (KeyRecord.isEmptySlot(m, at)) {
            require(key == null, "an empty slot decoded as %s", key);
        }
        if (key == null) {
            return;
        }
        require(key.length() > 0 && key.length() <= Layout.RANGE_SIZE, "length: %s", key);
        require(key.offset() >= 0 && key.end() <= deviceSize, "beyond the %d-byte device: %s", deviceSize, key);
        require(key.offset() >>> Layout.RANGE_SHIFT == (key.end() - 1) >>> Layout.RANGE_SHIFT,
                "crosses a 4 MiB range: %s", key);
        require((key.flags() & ~KeyRecord.FLAGS_KNOWN) == 0, "unknown flags: %s", key);
        if (!key.zero()) {
            require(key.segment() >= 0 && key.segment() < segmentCount, "segment of %d: %s", segmentCount, key);
            require(key.segmentOffset() >= 0 && (long) key.segmentOffset() + key.length() <= segmentSize,
                    "data beyond the %d-byte segment: %s", segmentSize, key);
            require(key.generation() >= 0, "generation: %s", key);
        }
        MemorySegment copy = scratch(KeyRecord.SIZE);
        key.encode(copy, 0, cacheId, seq, slot);
        KeyRecord again = KeyRecord.decode(copy, 0, cacheId, seq, slot, deviceSize, segmentCount, segmentSize);
        require(key.equals(again), "re-encoded %s decodes as %s", key, again);
    }

    // ------------------------------------------------------------------ regression inputs

    /** Writes valid records as seed inputs into {@code args[0]/<target>/} (the class's inputs directory). */
    public static void main(String[] args) throws java.io.IOException {
        java.nio.file.Path dir = java.nio.file.Path.of(args[0]);
        long cacheId = 0x1234_5678_9abc_def0L;
        long mib = 1L << 20;
        int count = 8;
        long area = Layout.segmentAreaOffset(count);

        MemorySegment sb = Arena.ofAuto().allocate(Superblock.SIZE);
        new Superblock(Superblock.VERSION, Superblock.FLAG_DATA_CRC, mib, count, area, 16 * mib, 7, cacheId,
                1_764_000_000_000L, area + count * mib).encode(sb);
        write(dir, "superblock", "seed-valid", new FuzzOutput().u8(0).i32((int) (area + count * mib))
                .bytes(sb.toArray(JAVA_BYTE)));
        write(dir, "superblock", "seed-valid-forged", new FuzzOutput().u8(3).i32((int) (area + count * mib + 4096))
                .bytes(sb.toArray(JAVA_BYTE)));
        // Found by the image target: 3 segments share 8's segment-area offset, and Cache.open then
        // failed with an IllegalArgumentException (parallel 1 needs 4 segments) instead of refusing the medium.
        new Superblock(Superblock.VERSION, 0, mib, 3, area, 16 * mib, 7, cacheId, 0, area + count * mib).encode(sb);
        write(dir, "superblock", "regress-three-segments", new FuzzOutput().u8(0).i32((int) (area + count * mib))
                .bytes(sb.toArray(JAVA_BYTE)));

        MemorySegment slot = Arena.ofAuto().allocate(CacheInfo.SIZE);
        FuzzOutput ci = new FuzzOutput().u8(0).u16(count - 1).u8(0).i64(cacheId);
        new CacheInfo(4, new LogPosition(2, 4096, 10), new LogPosition(3, 128, 12), 70).encode(slot, 0, cacheId);
        ci.bytes(slot.toArray(JAVA_BYTE));
        new CacheInfo(5, new LogPosition(2, 8192, 11), new LogPosition(3, 128, 12), 70).encode(slot, 0, cacheId);
        write(dir, "cacheInfo", "seed-valid", ci.bytes(slot.toArray(JAVA_BYTE)));
        // A valid CRC on the largest sequence: its successor would wrap and lose to the older copy.
        FuzzOutput max = new FuzzOutput().u8(0).u16(count - 1).u8(0).i64(cacheId);
        new CacheInfo(Long.MAX_VALUE, new LogPosition(2, 4096, 10), new LogPosition(3, 128, 12), 70)
                .encode(slot, 0, cacheId);
        write(dir, "cacheInfo", "regress-largest-sequence", max.bytes(slot.toArray(JAVA_BYTE)));

        int seg = 3;
        MemorySegment table = Arena.ofAuto().allocate(Layout.SEGMENT_TABLE + count * Layout.SEGMENT_TABLE_ENTRY);
        new SegmentInfo(6, 3, 5).encode(table, seg, 0, cacheId);
        new SegmentInfo(7, 4, SegmentInfo.NO_NEXT).encode(table, seg, 1, cacheId);
        write(dir, "segmentInfo", "seed-valid", new FuzzOutput().u8(0).u16(count - 1).u16(seg).i64(cacheId)
                .bytes(table.asSlice(Layout.segmentInfoSlot(seg, 0), 2 * SegmentInfo.SLOT_SIZE).toArray(JAVA_BYTE)));

        long seq = 42;
        int room = 4096;
        MemorySegment kset = Arena.ofAuto().allocate(room);
        KeyRecord[] keys = {
            new KeyRecord(0, 4096, KeyRecord.FLAG_DIRTY, 1, 0, 2, 0x1111),
            new KeyRecord(4 * mib - 512, 512, 0, 1, 4096, 2, 0x2222),
            new KeyRecord(8 * mib, 65536, KeyRecord.FLAG_ZERO | KeyRecord.FLAG_DIRTY, 0, 0, 0, 0)};
        Kset.writeHeader(kset, 0, seq, 4, 1, cacheId);
        for (int i = 0; i < keys.length; i++) {
            keys[i].encode(kset, Kset.slotOffset(i), cacheId, seq, i);
        }
        Kset.writeSeal(kset, 0, seq, keys.length, cacheId);
        write(dir, "kset", "seed-sealed", new FuzzOutput().u8(0).u16(room).u8(0).i64(cacheId).i64(seq)
                .i32((int) (16 * mib / 4096)).u16(count - 1).u8(0).bytes(kset.toArray(JAVA_BYTE)));
        Kset.writeHeader(kset, 0, seq, 4, 1, cacheId);
        keys[0].encode(kset, Kset.slotOffset(0), cacheId, seq, 0);
        write(dir, "kset", "seed-unsealed-at-segment-end", new FuzzOutput().u8(0).u16(Kset.bytes(4)).u8(64)
                .i64(cacheId).i64(seq).i32((int) (16 * mib / 4096)).u16(count - 1).u8(0)
                .bytes(kset.asSlice(0, Kset.bytes(4)).toArray(JAVA_BYTE)));

        MemorySegment key = Arena.ofAuto().allocate(KeyRecord.SIZE);
        keys[1].encode(key, 0, cacheId, seq, 5);
        write(dir, "key", "seed-valid", new FuzzOutput().u8(0).u8(0).i64(cacheId).i64(seq).u8(5)
                .i32((int) (16 * mib / 512)).u16(count - 1).u8(0).bytes(key.toArray(JAVA_BYTE)));
        keys[2].encode(key, 0, cacheId, seq, 5);
        write(dir, "key", "seed-zero-key", new FuzzOutput().u8(0).u8(3).i64(cacheId).i64(seq).u8(5)
                .i32((int) (16 * mib / 512)).u16(count - 1).u8(0).bytes(key.toArray(JAVA_BYTE)));
    }

    private static void write(java.nio.file.Path dir, String target, String name, FuzzOutput content)
            throws java.io.IOException {
        java.nio.file.Files.createDirectories(dir.resolve(target));
        java.nio.file.Files.write(dir.resolve(target).resolve(name), content.toByteArray());
    }

    // ------------------------------------------------------------------ helpers

    private static synchronized MemorySegment big() {
        if (bigMedium == null) {
            bigMedium = Arena.global().allocate(MAX_MEDIUM);
        }
        return bigMedium;
    }

    private static void require(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new AssertionError(String.format(format, args));
        }
    }
}
