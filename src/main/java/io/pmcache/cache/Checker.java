package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.Medium;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Offline, read-only verification of a cache medium: the superblock, both slots of the cache info
 * and of every segment's info, and the whole key log from the key tail (kset headers, seals, key
 * CRCs and bounds, data CRCs when asked). It never writes: it works on a read-only mapping and
 * builds no index, so it is safe on a cache that is not open anywhere (and harmless, if racy, on
 * one that is).
 *
 * <p>What is an error (corruption) and what is not: a torn or older copy in one metadata slot is
 * a warning (the other copy is used; what a segment's damaged slot held is restored as an open
 * would, see {@link SlotRecovery}, and the log is checked as the open will see it); an unsealed
 * kset is a warning (a crash left it open; the next open seals it) and invalid slots inside it are
 * expected; a key of a sealed kset that fails its CRC, bounds or data CRC, a key naming a
 * generation its segment's info cannot explain, both slots of a record failing, a log that ends
 * before the dirty tail, a loop in the log, or a lost log link that cannot be told are errors. A
 * backing device that is not the cache's is no corruption: the report says so apart
 * ({@link Report#wrongBacking}).
 */
public final class Checker {

    public enum Severity { INFO, WARNING, ERROR }

    /** One thing the check found. */
    public record Finding(Severity severity, String message) {
        @Override
        public String toString() {
            return severity.name().toLowerCase(java.util.Locale.ROOT) + ": " + message;
        }
    }

    /** Called from time to time with log segments walked and the chain's length. */
    @FunctionalInterface
    public interface Progress {
        void update(long done, long total);
    }

    /**
     * What the check found. Figures are null or zero when the check could not get that far (the
     * superblock or both cache-info slots unreadable).
     *
     * @param superblock       the decoded superblock, or null
     * @param cacheInfo        the newest valid cache info, or null
     * @param cacheInfoSlots   per slot: "valid (sequence N)", "unused" or "invalid"
     * @param segmentsTotal    segments in the cache
     * @param segmentsUsed     segments holding the key log or live data (as an open would count them)
     * @param logSegments      segments the key log occupies
     * @param ksets            ksets in the log from the key tail
     * @param ksetsUnsealed    of those, ksets left open by a crash
     * @param logBytes         bytes of those ksets
     * @param keys             valid keys in the log (live and stale)
     * @param liveKeys         keys whose data segment still has their generation (ZERO keys count)
     * @param staleKeys        keys whose segment was reclaimed after they were written back
     * @param badKeys          keys of sealed ksets failing their CRC or bounds checks
     * @param dataChecked      keys whose data CRC was verified
     * @param dataCrcErrors    of those, mismatches in sealed ksets
     * @param dirtyKeys        live dirty keys at or after the dirty tail
     * @param dirtyBytes       their total length: an upper bound of the dirty bytes (a range written
     *                         twice counts twice)
     * @param keyTail          from the cache info
     * @param dirtyTail        from the cache info
     * @param logEnd           where the walk ended: the key head an open would resume at
     * @param findings         warnings and errors, in the order found
     * @param wrongBacking     when a backing device was given and it is not the one the cache was
     *                         formatted for: why and what to do
     *                         ({@link WrongBackingDeviceException#mismatch});
     *                         else null
     */
    public record Report(Superblock superblock, CacheInfo cacheInfo, List<String> cacheInfoSlots,
                         int segmentsTotal, int segmentsUsed, int logSegments,
                         long ksets, long ksetsUnsealed, long logBytes, long keys, long liveKeys, long staleKeys,
                         long badKeys, long dataChecked, long dataCrcErrors, long dirtyKeys, long dirtyBytes,
                         LogPosition keyTail, LogPosition dirtyTail, LogPosition logEnd,
                         List<Finding> findings, WrongBackingDeviceException.Mismatch wrongBacking) {

        /** True when nothing was found that is corruption. */
        public boolean clean() {
            return errors() == 0;
        }

        public long errors() {
            return findings.stream().filter(f -> f.severity() == Severity.ERROR).count();
        }

        public long warnings() {
            return findings.stream().filter(f -> f.severity() == Severity.WARNING).count();
        }
    }

    private final Medium medium;
    private final MemorySegment m;
    private final BackingDevice backing;
    private final boolean verifyAllData;
    private final Progress progress;
    private final List<Finding> findings = new ArrayList<>();
    /** Why the backing device given is not the cache's, or null. */
    private WrongBackingDeviceException.Mismatch wrongBacking;
    /** Per-kind finding counts, to cap repetitive findings. */
    private int keyFindings;

    private Checker(Medium medium, BackingDevice backing, boolean verifyAllData, Progress progress) {
        this.medium = medium;
        this.m = medium.segment();
        this.backing = backing;
        this.verifyAllData = verifyAllData;
        this.progress = progress != null ? progress : (d, t) -> { };
    }

    /**
     * Checks {@code medium}.
     *
     * @param backing    when not null, also checks that the cache was formatted for this device
     * @param verifyData verify the data CRC of every live key even when the cache was formatted
     *                   without the data-CRC option (the CRC is always stored); with the option
     *                   they are verified anyway
     * @param progress   may be null
     */
    public static Report check(Medium medium, BackingDevice backing, boolean verifyData, Progress progress) {
        return new Checker(medium, backing, verifyData, progress).run();
    }

    private void error(String msg) {
        findings.add(new Finding(Severity.ERROR, msg));
    }

    private void warn(String msg) {
        findings.add(new Finding(Severity.WARNING, msg));
    }

    /** Key-level findings are capped so a badly damaged log does not print millions of lines. */
    private void keyFinding(Severity s, String msg) {
        keyFindings++;
        if (keyFindings <= 50) {
            findings.add(new Finding(s, msg));
        } else if (keyFindings == 51) {
            findings.add(new Finding(s, "more key findings not listed"));
        }
    }

    private Report run() {
        Superblock sb;
        try {
            sb = Superblock.decode(m, medium.describe());
        } catch (MediaCorruptException e) {
            error(e.getMessage());
            return partial(null, null, List.of());
        }
        wrongBacking = backing != null ? WrongBackingDeviceException.mismatch(sb, backing) : null;
        long id = sb.cacheId();
        int count = sb.segmentCount();

        // Cache info: both slots.
        List<String> slots = new ArrayList<>();
        long[] slotOffsets = {Layout.CACHE_INFO_SLOT0, Layout.CACHE_INFO_SLOT1};
        for (int i = 0; i < 2; i++) {
            CacheInfo ci = CacheInfo.decodeSlot(m, slotOffsets[i], id, sb);
            if (ci != null) {
                slots.add("valid (sequence " + ci.sequence() + ")");
            } else if (allZero(slotOffsets[i], CacheInfo.SIZE)) {
                slots.add("unused");
            } else {
                slots.add("invalid");
                warn("cache info slot " + i + " fails its CRC or bounds check (a torn or damaged copy; the other "
                        + "slot is used)");
            }
        }
        CacheInfo info = null;
        try {
            info = CacheInfo.read(m, id, sb, medium.describe());
        } catch (MediaCorruptException e) {
            error(e.getMessage());
            return partial(sb, null, slots);
        }

        // Segment infos: both slots of every segment.
        SegmentTable table = new SegmentTable(medium, id, count, sb.segmentSize(), sb.segmentAreaOffset());
        BitSet unknown = new BitSet(count);
        BitSet oneSlotDamaged = new BitSet(count);
        int tornSlots = 0;
        for (int s = 0; s < count; s++) {
            SegmentInfo a = SegmentInfo.decodeSlot(m, s, 0, id, count);
            SegmentInfo b = SegmentInfo.decodeSlot(m, s, 1, id, count);
            boolean tornA = a == null && !allZero(Layout.segmentInfoSlot(s, 0), SegmentInfo.SLOT_SIZE);
            boolean tornB = b == null && !allZero(Layout.segmentInfoSlot(s, 1), SegmentInfo.SLOT_SIZE);
            if (tornA) {
                tornSlots++;
            }
            if (tornB) {
                tornSlots++;
            }
            SegmentInfo si = SegmentInfo.read(m, s, id, count);
            if (si != null && (tornA || tornB)) {
                oneSlotDamaged.set(s);
            }
            if (si == null) {
                unknown.set(s);
                error("segment " + s + ": both info slots fail their CRC or bounds check; its generation is "
                        + "unknown and the keys pointing into it would be dropped");
                si = new SegmentInfo(0, 0, SegmentInfo.NO_NEXT);
            }
            table.load(s, si);
        }
        if (tornSlots > 0) {
            warn(tornSlots + " segment info slot(s) hold a torn or damaged copy (the other slot of each is valid)");
        }

        // The key log.
        LogReader reader = new LogReader(medium, table, id, sb.backingSize());
        // What damaged info slots held, where the log proves it (an open restores it; see SlotRecovery).
        SlotRecovery.Found restored = SlotRecovery.scan(reader, table, oneSlotDamaged, info.keyTail(),
                info.dirtyTail(), (from, to) -> table.adoptInMemory(from, table.generation(from), to));
        for (SlotRecovery.Link l : restored.links()) {
            warn("segment " + l.from() + ": its damaged info slot held the key log's link to segment " + l.to()
                    + " (kset #" + l.seq() + " starts there); the next open restores it");
        }
        for (SlotRecovery.Generation g : restored.generations()) {
            table.adoptInMemory(g.segment(), g.generation(), table.next(g.segment()));
            warn("segment " + g.segment() + ": its damaged info slot held generation " + g.generation()
                    + ", which its keys name; the next open restores it");
        }
        for (SlotRecovery.Unresolved u : restored.unresolved()) {
            error("segment " + u.segment() + ": its newest info slot is damaged and the key log ends at " + u.end()
                    + "; " + u.candidates() + " segments start with kset #" + u.end().ksetSeq()
                    + ", so which one went on is unknown: ksets after it would be lost");
        }
        LogTails.Decision tails = LogTails.decide(reader, count, info.keyTail(), info.dirtyTail());
        if (!tails.consistent()) {
            error(tails.problem() + " (as the next open will)");
        }
        Walk w = new Walk(sb, table, reader, unknown, tails.dirtyFrom().ksetSeq());
        w.total = chainLength(table, tails.walkFrom().segment());
        LogPosition end = w.walk(tails.walkFrom());
        progress.update(w.total, w.total);
        BitSet used = (BitSet) w.logSegments.clone();
        for (int s = 0; s < count; s++) {
            if (w.referenced.get(s)) {
                used.set(s);
            }
        }
        return new Report(sb, info, List.copyOf(slots), count, used.cardinality(), w.logSegments.cardinality(),
                w.ksets, w.unsealed, w.bytes, w.keys, w.live, w.stale, w.bad, w.dataChecked, w.dataErrors,
                w.dirtyKeys, w.dirtyBytes, info.keyTail(), info.dirtyTail(), end, List.copyOf(findings), wrongBacking);
    }

    private Report partial(Superblock sb, CacheInfo info, List<String> slots) {
        return new Report(sb, info, List.copyOf(slots), sb != null ? sb.segmentCount() : 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, null, null, null, List.copyOf(findings), wrongBacking);
    }

    private boolean allZero(long at, long len) {
        for (long i = 0; i < len; i++) {
            if (m.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at + i) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Segments linked from {@code first} (loop-safe): the progress total. */
    private static long chainLength(SegmentTable table, int first) {
        BitSet seen = new BitSet(table.count());
        int s = first;
        while (s != SegmentInfo.NO_NEXT && !seen.get(s)) {
            seen.set(s);
            s = table.next(s);
        }
        return Math.max(1, seen.cardinality());
    }

    /** One walk of the log, shared by the resume after a damaged stretch. */
    private final class Walk {
        final Superblock sb;
        final SegmentTable table;
        final LogReader reader;
        final BitSet unknown;
        final long dirtySeq;
        final boolean verifyData;
        final BitSet logSegments;
        final BitSet referenced;
        final KeyLiveness liveness;
        long total;
        long ksets;
        long unsealed;
        long bytes;
        long keys;
        long live;
        long stale;
        long bad;
        long dataChecked;
        long dataErrors;
        long dirtyKeys;
        long dirtyBytes;

        Walk(Superblock sb, SegmentTable table, LogReader reader, BitSet unknown, long dirtySeq) {
            this.sb = sb;
            this.table = table;
            this.reader = reader;
            this.unknown = unknown;
            this.dirtySeq = dirtySeq;
            this.verifyData = verifyAllData || sb.dataCrc();
            this.logSegments = new BitSet(table.count());
            this.referenced = new BitSet(table.count());
            this.liveness = new KeyLiveness(reader, table, unknown);
        }

        LogPosition walk(LogPosition from) {
            LogWalker.Result r = LogWalker.walk(reader, from, logSegments, new LogWalker.Visitor() {
                @Override
                public void kset(LogReader.KsetAt k) {
                    Walk.this.kset(k);
                }

                @Override
                public void enteredSegment(int segment) {
                    progress.update(Math.min(logSegments.cardinality(), total), total);
                }

                @Override
                public boolean gap(LogGap gap) {
                    error("key log damaged: " + gap + (gap.recoveredCapacity() > 0 ? "" : "; the next open "
                            + "puts sealed fillers in their place"));
                    return true; // read around it, as the next open will after repairing it
                }
            });
            if (r.why() == LogWalker.End.LOOP) {
                error("key log links back to segment " + r.loopSegment() + " (a loop) after " + r.end());
            }
            if (r.gap() != null) {
                error("key log damaged: " + r.gap() + "; the log ends at " + r.end());
            }
            return r.end();
        }

        private void kset(LogReader.KsetAt k) {
            ksets++;
            bytes += Kset.bytes(k.capacity());
            long seq = k.at().ksetSeq();
            if (k.sealCorrupt()) {
                unsealed++;
                error("kset #" + seq + " at " + k.at() + ": its seal (claiming " + k.claimedCount() + " keys) "
                        + (k.countContradicted() ? "is contradicted by a key after that count" : "fails its CRC")
                        + ": damaged; the next open reads it slot by slot and reseals it");
            } else if (k.sealDamaged()) {
                unsealed++;
                warn("kset #" + seq + " at " + k.at() + ": a torn seal (the power failed while it was sealed); the "
                        + "next open keeps its valid keys and seals it");
            } else if (!k.sealed()) {
                unsealed++;
                warn("kset #" + seq + " at " + k.at() + " is not sealed (the process or the power died while it was "
                        + "open); the next open keeps its valid keys and seals it");
            }
            for (int slot = 0; slot < k.slots(); slot++) {
                KeyLiveness.Slot s = liveness.judge(k, slot);
                KeyRecord key = s.key();
                switch (s.state()) {
                    case EMPTY -> {
                        if (k.keyFinal(slot) && k.sealCorrupt()) {
                            bad++;
                            keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot
                                    + ": empty below the count its seal claims; the key is lost");
                        }
                        continue;
                    }
                    case UNREADABLE -> {
                        if (k.keyFinal(slot)) {
                            bad++;
                            keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot
                                    + ": key fails its CRC or bounds check; the key is lost");
                        }
                        continue;
                    }
                    case TOMBSTONE -> {
                        bad++;
                        keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot + ": "
                                + (key.length() > 0 ? "[" + key.offset() + ", +" + key.length() + ")" : "a key or kset")
                                + " was lost to damage found by an earlier open (tombstone)");
                        continue;
                    }
                    case FUTURE -> {
                        bad++;
                        keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot + ": names generation "
                                + key.generation() + " of segment " + key.segment() + ", which is at "
                                + table.generation(key.segment()) + "; the key is lost");
                        continue;
                    }
                    default -> {
                    }
                }
                boolean current = s.state() == KeyLiveness.State.LIVE;
                if (current && (!k.sealed() || verifyData)) {
                    dataChecked++;
                    if (!reader.dataMatches(key)) {
                        if (k.keyFinal(slot)) {
                            dataErrors++;
                            keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot + ": data CRC mismatch for ["
                                    + key.offset() + ", +" + key.length() + ") in segment " + key.segment());
                        }
                        continue;
                    }
                }
                keys++;
                if (!current) {
                    if (s.state() == KeyLiveness.State.STALE && seq >= dirtySeq && key.dirty()) {
                        bad++;
                        keyFinding(Severity.ERROR, "kset #" + seq + " slot " + slot + ": dirty but names generation "
                                + key.generation() + " of segment " + key.segment() + ", which is at "
                                + table.generation(key.segment()) + ": the segment's info is damaged; the key is lost");
                    }
                    stale++;
                    continue;
                }
                live++;
                if (!key.zero()) {
                    referenced.set(key.segment());
                }
                if (seq >= dirtySeq && key.dirty()) {
                    dirtyKeys++;
                    dirtyBytes += key.length();
                }
            }
        }
    }
}
