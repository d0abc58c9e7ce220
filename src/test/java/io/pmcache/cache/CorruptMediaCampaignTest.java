package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.cache.MediaMutations.Mutation;
import io.pmcache.cache.MediaMutations.Region;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Crc;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A corrupt-media campaign: many seeded rounds, each of which damages one record of a cache image
 * that holds known flushed writes, then requires that the damage is survived and that no flushed
 * write is lost or changed without a word.
 *
 * <h2>Algorithm</h2>
 * <ol>
 *   <li><b>Bases</b> ({@link Variant}), built once, deterministically ({@link SteppedCache}, fixed
 *       cache id): a cache of 16 × 1 MiB segments in front of an 8 MiB disk, with a known
 *       workload of writes (one sector to 1.5 MiB), FUA writes, write-zeroes, trims and flushes,
 *       then: a clean stop; a process crash that leaves unsealed ksets (the last writes not
 *       flushed, some FUA); ~40,000 keys with writeback and gc (both tails moved, the log left
 *       its first segment, log and data segments reclaimed and reused), the last ~14,000 written
 *       back but not gc'd (the live log crosses a segment link), then dirty writes and a clean
 *       stop; thousands of one-sector writes and zeroes, the first half written back (clean and
 *       dirty keys share a data segment); a few writes, each followed by thousands of zeroes and
 *       trims (consecutive keys of a data segment lie writeback batches apart). Each
 *       with and without the data-CRC option. A {@link MediaMap} says where every record is and
 *       which writes each key carries; a {@link DiskModel} what every sector must read.</li>
 *   <li><b>Round</b>: a copy of a base, one {@link Mutation} aimed at one record of the round's
 *       {@link Region}: bit flips, zeroed spans, and forged records whose CRCs are valid
 *       (re-encoded through the format classes, the seal re-computed over a forged key, a forged
 *       cache or segment info written as the next copy, as a real update would be): wrong
 *       sequence, capacity, count, offset, length, segment, generation, link, tail.</li>
 *   <li><b>Checks</b>, in order, each bounded in time (a hang fails the round): {@link Checker#check}
 *       of the damaged image, plain and with data verification ({@code pmcache check} and
 *       {@code pmcache check --verify-data}); {@link Cache#open}; read the whole device; run gc
 *       (it passes what was written back before the stop), then writeback to the end, gc passing
 *       every kset as soon as it is written back (the order in which a too-early reclaim loses
 *       data); {@code flushAll}; read the whole device
 *       again; write, flush and read back new data; close.</li>
 *   <li><b>Verdict</b>. A sector is <em>lost</em> when its newest write was flushed (or FUA) and
 *       it reads something else, or when it reads a value no rule allows (neither its flushed
 *       value nor a later unflushed write). Each mutation has a <em>blast radius</em>: the
 *       sectors of the keys the damaged record carries (a kset: its keys; a key: its range; a
 *       data block: the keys whose data it holds; a segment info: the keys in that segment, or
 *       everything when the segment holds the log; superblock and cache info: everything). The
 *       round fails on
 *       <ul>
 *         <li>an exception other than an {@link IOException} from check, open, read, writeback,
 *             gc, drain or close ({@code ESCAPED}); no end within the bound ({@code HANG});</li>
 *         <li>a lost sector while the check is clean ({@code SILENT}) — the damage must be
 *             reported, {@code pmcache check} must exit 3; a mutation whose damage shows only
 *             through data CRCs counts as reported when {@code --verify-data} finds it;</li>
 *         <li>a lost sector outside the blast radius ({@code COLLATERAL}), reported or not: what
 *             the damage did not touch must be recovered;</li>
 *         <li>while the check is clean: an open refused ({@code REFUSED-BUT-CLEAN}); writeback
 *             that cannot get past the damage ({@code STUCK}); a drain that leaves the backing
 *             disk different from what reads return (the next reads after gc would change;
 *             {@code DRAIN}); and in any case new writes that do not read back ({@code BROKEN}).</li>
 *       </ul>
 *       Some forgeries are undetectable by design — a consistent image could say the same: a
 *       key with another logical offset or without its DIRTY flag, a zero key of another length
 *       (no CRC covers the intent), a dirty tail moved to a later kset boundary; damage to a key
 *       or the data of an unsealed kset looks exactly like a write cut short by the power. For
 *       those only the radius, the exceptions and the bound apply ({@link Mutation#mustReport}
 *       false); they are counted apart.</li>
 * </ol>
 * Every failure names the round, its seed, the base, the mutation (record, place, old and new
 * values) and the first lost sector (which write it held, which kset and slot carried it, what it
 * reads instead). The test of a region fails at its end with all of them; a summary per region
 * goes to stderr. CI runs {@code -Dpmcache.campaign.rounds} (default {@value #CI_ROUNDS}) rounds per
 * region; {@code -Dpmcache.campaign.round=N -Dpmcache.seed=S} repeats one round.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 6, unit = TimeUnit.HOURS) // each round has its own bound, which names the round
class CorruptMediaCampaignTest {
    private static final long MIB = 1L << 20;
    private static final int SECTOR = DiskModel.SECTOR;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (8 * MIB);
    private static final int SECTORS = DEVICE / SECTOR;
    private static final long FINGERPRINT = 7;
    static final int CI_ROUNDS = 30;
    private static final long ROUND_SECONDS = 120;

    @Test
    void superblock(Seed seed) throws Exception {
        campaign(seed, Region.SUPERBLOCK);
    }

    @Test
    void cacheInfo(Seed seed) throws Exception {
        campaign(seed, Region.CACHE_INFO);
    }

    @Test
    void segmentInfos(Seed seed) throws Exception {
        campaign(seed, Region.SEGMENT_INFO);
    }

    @Test
    void ksetHeaders(Seed seed) throws Exception {
        campaign(seed, Region.KSET_HEADER);
    }

    @Test
    void seals(Seed seed) throws Exception {
        campaign(seed, Region.SEAL);
    }

    @Test
    void keys(Seed seed) throws Exception {
        campaign(seed, Region.KEY);
    }

    @Test
    void dataBlocks(Seed seed) throws Exception {
        campaign(seed, Region.DATA);
    }

    // ------------------------------------------------------------------ bases

    /** How the base image was left. */
    enum Variant {
        /** Writes and flushes, clean stop: tails at the start, every kset sealed. */
        CLEAN,
        /** Writes and flushes, more writes (some FUA) not flushed, process crash: unsealed ksets. */
        UNSEALED,
        /** Both tails moved, the log left segment 0; a live log across a segment link, mostly written back; clean stop. */
        TAILS,
        /** Thousands of one-sector writes and zeroes, the first half written back: many ksets and keys per segment. */
        MANY_KEYS,
        /**
         * Writes, written back; then a few writes, each followed by thousands of one-sector zeroes
         * and trims: consecutive keys of one data segment lie batches apart in the log.
         */
        SPARSE
    }

    /** A base image: the medium, the backing disk, what every sector must read, and the map. */
    record Base(Variant variant, boolean dataCrc, byte[] image, byte[] disk, DiskModel model, MediaMap map) {
        String name() {
            return variant + (dataCrc ? " with data CRC" : "");
        }
    }

    private static final Map<String, Base> BASES = new ConcurrentHashMap<>();

    private static Base base(Variant v, boolean dataCrc) {
        return BASES.computeIfAbsent(v + "/" + dataCrc, k -> {
            try {
                return build(v, dataCrc);
            } catch (IOException ex) {
                throw new java.io.UncheckedIOException(ex);
            }
        });
    }

    private static Base build(Variant v, boolean dataCrc) throws IOException {
        long t0 = System.nanoTime();
        try {
            return buildBase(v, dataCrc);
        } finally {
            System.err.printf("corrupt-media campaign: base %s%s built in %d ms%n", v, dataCrc ? " with data CRC" : "",
                    (System.nanoTime() - t0) / 1_000_000);
        }
    }

    private static Base buildBase(Variant v, boolean dataCrc) throws IOException {
        SplittableRandom r = new SplittableRandom(1000 + v.ordinal() * 2L + (dataCrc ? 1 : 0));
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, FINGERPRINT);
        DiskModel model = new DiskModel(DEVICE);
        try (PowerCutMedium medium = PowerCutMedium.of(DeterministicFormat.image(SEGMENTS, disk, dataCrc))) {
            SteppedCache c = SteppedCache.open(medium, disk);
            String where = "building " + v;
            switch (v) {
                case CLEAN -> mixed(c, model, r, 110, 256 * 1024, false, where);
                case UNSEALED -> {
                    mixed(c, model, r, 90, 256 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    for (int i = 0; i < 25; i++) {
                        dataOp(c, model, r, 128 * 1024, r.nextInt(3) == 0, where);
                    }
                }
                case TAILS -> {
                    // ~25,000 keys: the log leaves segment 0, gc frees log segments, data churns.
                    for (int i = 0; i < 25_000; i++) {
                        if (c.freeSegments() < 7) {
                            c.cache.flush();
                            model.flush();
                            c.writebackSteps(-1, where);
                            c.gcSteps(-1, where);
                        }
                        if (i % 60 == 0) {
                            dataOp(c, model, r, (int) (1.5 * MIB), r.nextInt(8) == 0, where);
                        } else {
                            tinyOp(c, model, r);
                        }
                        if (i % 100 == 99) {
                            c.cache.flush();
                            model.flush();
                        }
                        if (i % 1000 == 500) {
                            c.writebackSteps(1 + r.nextInt(3), where);
                            c.gcSteps(r.nextInt(40), where);
                        }
                    }
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    c.gcSteps(-1, where);
                    for (int i = 0; i < 14_000; i++) { // ~1 MiB of ksets: the live log crosses a segment link
                        tinyOp(c, model, r);
                        if (i % 100 == 99) {
                            c.cache.flush();
                            model.flush();
                        }
                    }
                    c.writebackSteps(-1, where); // everything written back, not gc'd
                    // Then dirty keys, many in the data segment the clean keys before them fill.
                    mixed(c, model, r, 40, 64 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    mixed(c, model, r, 20, 64 * 1024, false, where);
                }
                case MANY_KEYS -> {
                    for (int i = 0; i < 3000; i++) {
                        if (i == 1500) { // the first half written back, not gc'd: clean and dirty keys share a segment
                            c.writebackSteps(-1, where);
                        }
                        tinyOp(c, model, r);
                        if (i % 200 == 199) {
                            c.cache.flush();
                            model.flush();
                        }
                    }
                }
                case SPARSE -> {
                    mixed(c, model, r, 60, 64 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    for (int w = 0; w < 3; w++) {
                        dataOp(c, model, r, 16 * 1024, false, where);
                        for (int i = 0; i < 2500; i++) {
                            long off = (long) r.nextInt(DEVICE / SECTOR) * SECTOR;
                            if (r.nextBoolean()) {
                                c.cache.writeZeroes(off, SECTOR, false);
                            } else {
                                c.cache.trim(off, SECTOR);
                            }
                            model.write(off, SECTOR, true, false);
                            if (i % 500 == 499) {
                                c.cache.flush();
                                model.flush();
                            }
                        }
                    }
                }
            }
            PowerCutMedium image;
            if (v == Variant.UNSEALED) {
                c.crash();
                image = medium.crash(); // kill -9: the mapped pages survive as they are
            } else {
                c.close();
                model.flush(); // a clean close seals (and persists) every kset
                image = medium.copy();
            }
            try (image) {
                MediaMap map = new MediaMap(image);
                if (v == Variant.UNSEALED && map.ksets.stream().allMatch(MediaMap.Kset::sealed)) {
                    throw new IllegalStateException("the UNSEALED base has no unsealed kset");
                }
                return new Base(v, dataCrc, image.segment().toArray(JAVA_BYTE), disk.toByteArray(), model, map);
            }
        }
    }

    /** {@code n} operations: writes (some FUA), zeroes, trims, flushes, and with {@code wbgc} writeback and gc steps. */
    private static void mixed(SteppedCache c, DiskModel model, SplittableRandom r, int n, int maxLen, boolean wbgc,
                              String where) throws IOException {
        for (int i = 0; i < n; i++) {
            double p = r.nextDouble();
            if (p < 0.15) {
                c.cache.flush();
                model.flush();
            } else if (wbgc && p < 0.22) {
                c.writebackSteps(1 + r.nextInt(3), where);
            } else if (wbgc && p < 0.27) {
                c.gcSteps(1 + r.nextInt(4), where);
            } else {
                if (c.freeSegments() < 7) {
                    if (!wbgc) {
                        return; // the base is full enough
                    }
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    c.gcSteps(-1, where);
                }
                dataOp(c, model, r, maxLen, r.nextInt(8) == 0, where);
            }
        }
    }

    private static void dataOp(SteppedCache c, DiskModel model, SplittableRandom r, int maxLen, boolean fua,
                               String where) throws IOException {
        int len = SECTOR * (r.nextInt(3) == 0 ? 1 + r.nextInt(8) : 1 + r.nextInt(maxLen / SECTOR));
        long off = r.nextInt(3) == 0 ? 4 * MIB - len / 2 - SECTOR * r.nextInt(64) : r.nextLong(DEVICE - len + 1);
        off = Math.clamp(off - off % SECTOR, 0, DEVICE - len);
        double p = r.nextDouble();
        if (p < 0.85) {
            write(c, model, off, len, fua);
        } else if (p < 0.93) {
            c.cache.writeZeroes(off, len, fua);
            model.write(off, len, true, fua);
        } else {
            c.cache.trim(off, len);
            model.write(off, len, true, false);
        }
    }

    /** One sector written (now and then FUA) or zeroed, in the first 2 MiB. */
    private static void tinyOp(SteppedCache c, DiskModel model, SplittableRandom r) throws IOException {
        long off = (long) r.nextInt(4096) * SECTOR;
        if (r.nextBoolean()) {
            write(c, model, off, SECTOR, r.nextInt(50) == 0);
        } else {
            c.cache.writeZeroes(off, SECTOR, false);
            model.write(off, SECTOR, true, false);
        }
    }

    private static void write(SteppedCache c, DiskModel model, long off, int len, boolean fua) throws IOException {
        c.cache.write(off, MemorySegment.ofArray(model.write(off, len, false, fua)), fua);
    }

    // ------------------------------------------------------------------ the campaign

    private static final Variant[] VARIANTS = Variant.values();

    /** What a round found; {@code failure} is null when it passed. */
    private record Outcome(String failure, String category, boolean refused, boolean reported, boolean lost,
                           boolean undetectableLoss) {
    }

    private void campaign(Seed seed, Region region) throws Exception {
        long t0 = System.nanoTime();
        int rounds = Integer.getInteger("pmcache.campaign.rounds", CI_ROUNDS);
        Integer only = Integer.getInteger("pmcache.campaign.round");
        SplittableRandom master = seed.random();
        List<String> failures = new ArrayList<>();
        Map<String, Integer> tally = new java.util.TreeMap<>();
        int hangs = 0;
        int ran = 0;
        ExecutorService runner = newRunner();
        try {
            for (int round = 0; round < rounds && hangs < 3; round++) {
                long roundSeed = master.nextLong();
                if (only != null && only != round) {
                    continue;
                }
                ran++;
                SplittableRandom r = new SplittableRandom(roundSeed);
                Base base = base(VARIANTS[r.nextInt(VARIANTS.length)], r.nextBoolean());
                String where = region + " round " + round + " (" + seed + ", round seed " + roundSeed + ", base "
                        + base.name() + ")";
                Future<Outcome> f = runner.submit(() -> round(region, base, r, where));
                Outcome o;
                try {
                    o = f.get(ROUND_SECONDS, TimeUnit.SECONDS);
                } catch (TimeoutException ex) {
                    hangs++;
                    failures.add("HANG " + where + ": no end within " + ROUND_SECONDS + " s");
                    tally.merge("HANG", 1, Integer::sum);
                    runner.shutdownNow();
                    runner = newRunner(); // the stuck thread is a daemon and is left behind
                    continue;
                } catch (ExecutionException ex) {
                    throw new AssertionError(where + ": the round itself failed", ex.getCause());
                }
                tally.merge(o.refused() ? "refused at open" : "opened", 1, Integer::sum);
                if (o.reported()) {
                    tally.merge("reported by check", 1, Integer::sum);
                }
                if (o.lost()) {
                    tally.merge("lost flushed data", 1, Integer::sum);
                }
                if (o.undetectableLoss()) {
                    tally.merge("lost data, undetectable by design", 1, Integer::sum);
                }
                if (o.failure() != null) {
                    tally.merge("FAILED " + o.category(), 1, Integer::sum);
                    failures.add(o.failure());
                    System.err.println("corrupt-media campaign: " + o.failure());
                }
            }
        } finally {
            runner.shutdownNow();
        }
        System.err.println("corrupt-media campaign, " + region + " (" + seed + "), " + ran + " rounds in "
                + (System.nanoTime() - t0) / 1_000_000 + " ms: " + tally);
        if (!failures.isEmpty()) {
            StringBuilder sb = new StringBuilder(region + ": " + failures.size() + " of " + ran
                    + " rounds failed " + tally + "; repeat one with -Dpmcache.seed=" + seed.value()
                    + " -Dpmcache.campaign.round=<round>:");
            failures.stream().limit(20).forEach(f -> sb.append("\n  ").append(f));
            if (failures.size() > 20) {
                sb.append("\n  ... ").append(failures.size() - 20).append(" more");
            }
            throw new AssertionError(sb.toString());
        }
    }

    private static ExecutorService newRunner() {
        return Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("campaign-round").factory());
    }

    /** One round: damage a copy of {@code base}, then check, open, read, write back, gc, drain, read, write. */
    private static Outcome round(Region region, Base base, SplittableRandom r, String where) throws IOException {
        try (PowerCutMedium medium = PowerCutMedium.of(base.image());
             MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, FINGERPRINT)) {
            disk.write(0, MemorySegment.ofArray(base.disk()), false);
            Mutation mu = MediaMutations.mutate(region, medium.segment(), base.map(), r);
            String head = where + ": " + mu.what();

            Checker.Report plain;
            Checker.Report verify;
            try {
                plain = Checker.check(medium, disk, false, null);
                verify = Checker.check(medium, disk, true, null);
            } catch (RuntimeException ex) {
                return escaped(head, "Checker.check", ex);
            }
            // A forged backing identity is reported apart from corruption (check exit 4), and refused at open.
            boolean wrongBacking = plain.wrongBacking() != null;
            boolean reported = wrongBacking || (mu.dataOnly() && !base.dataCrc() ? !verify.clean() : !plain.clean());
            String checkSays = wrongBacking ? "check reports a wrong backing device: " + plain.wrongBacking()
                    : reported ? "check reports " + firstError(mu.dataOnly() && !base.dataCrc() ? verify : plain)
                    : "check says clean" + (mu.dataOnly() && !base.dataCrc() ? " (also with --verify-data)" : "");

            SteppedCache c;
            try {
                c = SteppedCache.open(medium, disk);
            } catch (IOException ex) {
                if (!reported) {
                    return fail("REFUSED-BUT-CLEAN", head + ": open refuses (" + ex.getMessage()
                            + ") but " + checkSays, true, false, false, false);
                }
                return new Outcome(null, null, true, true, false, false);
            } catch (RuntimeException ex) {
                return escaped(head, "Cache.open", ex);
            }
            Loss first;
            Loss second;
            byte[] after;
            String stage = "read after open";
            try {
                byte[] seen = readAll(c.cache);
                first = loss(base, mu, seen);
                stage = "writeback and gc";
                // gc first (as the gc worker does at once when space is short): it passes what was
                // written back before the stop; then it passes each kset as soon as it is written back.
                c.gcSteps(-1, where);
                c.cache.flush(); // seals the ksets of the reads' fills: writeback passes only sealed ones
                for (int i = 0; i < 100_000; i++) {
                    Writeback.Step s = c.writeback.step();
                    c.gcSteps(-1, where);
                    if (s != Writeback.Step.PROGRESS) {
                        break;
                    }
                }
                // Stuck: not every kset reserved so far has been written back.
                boolean stuck = c.engine().info.current().dirtyTail().ksetSeq() < c.engine().keyLog.nextSeq();
                if (stuck && !reported && mu.mustReport()) {
                    c.crash();
                    return fail("STUCK", head + ": writeback cannot get past the damage (dirty tail "
                            + c.engine().info.current().dirtyTail() + ", key head " + c.engine().keyLog.head()
                            + ") and " + checkSays, false, false, false, false);
                }
                if (!stuck) { // a drain of a stuck log retries for half a minute, then fails: a report
                    stage = "flushAll";
                    c.cache.flushAll(left -> { });
                }
                stage = "read after writeback, gc and flushAll";
                after = readAll(c.cache);
                second = loss(base, mu, after);
                if (!stuck && !reported && mu.mustReport() && !Arrays.equals(after, disk.toByteArray())) {
                    int at = Arrays.mismatch(after, disk.toByteArray());
                    c.crash();
                    return fail("DRAIN", head + ": after flushAll the backing disk differs from what reads return, "
                            + "first at byte " + at + "; " + checkSays, false, false, true, false);
                }
                stage = "new writes";
                String broken = newWritesReadBack(c.cache, r);
                if (broken != null) {
                    c.crash();
                    return fail("BROKEN", head + ": " + broken + "; " + checkSays, false, reported, true, false);
                }
                stage = "close";
                c.close();
            } catch (IOException ex) {
                // An I/O error is a report to the client, not silence: the round ends here.
                c.crash();
                return new Outcome(null, null, false, true, false, false);
            } catch (RuntimeException | AssertionError ex) {
                c.crash();
                return escaped(head + " (" + checkSays + ")", stage, ex);
            }
            Loss worst = second.total() > first.total() ? second : first;
            String phase = worst == second && second.total() > first.total()
                    ? "after writeback, gc and flushAll (" + first.total() + " right after the open)" : "right after the open";
            boolean lost = worst.total() > 0;
            if (lost && !mu.everything() && worst.outside() > 0) {
                return fail("COLLATERAL", head + ": " + worst.outside() + " sectors OUTSIDE the damaged record's keys lost "
                        + phase + " (" + worst.inside() + " inside); first: " + worst.firstOutside() + "; "
                        + checkSays, false, reported, true, false);
            }
            if (lost && mu.mustReport() && !reported) {
                return fail("SILENT", head + ": " + worst.total() + " sectors lost " + phase + " and " + checkSays
                        + "; first: " + (worst.firstInside() != null ? worst.firstInside() : worst.firstOutside()),
                        false, false, true, false);
            }
            return new Outcome(null, null, false, reported, lost && mu.mustReport(), lost && !mu.mustReport());
        }
    }

    private static Outcome fail(String category, String message, boolean refused, boolean reported, boolean lost,
                                boolean undetectable) {
        return new Outcome(category + " " + message, category, refused, reported, lost, undetectable);
    }

    private static Outcome escaped(String head, String where, Throwable ex) {
        StringBuilder sb = new StringBuilder(head + ": " + where + " threw " + ex);
        for (StackTraceElement e : ex.getStackTrace()) {
            if (e.getClassName().startsWith("io.pmcache")) {
                sb.append(" at ").append(e);
                break;
            }
        }
        return fail("ESCAPED", sb.toString(), false, false, false, false);
    }

    private static String firstError(Checker.Report r) {
        return r.findings().stream().filter(f -> f.severity() == Checker.Severity.ERROR).findFirst()
                .map(Checker.Finding::message).orElse("?");
    }

    private static byte[] readAll(Cache c) throws IOException {
        byte[] b = new byte[DEVICE];
        for (int off = 0; off < DEVICE; off += (int) MIB) {
            c.read(off, MemorySegment.ofArray(b).asSlice(off, MIB));
        }
        return b;
    }

    /** Lost sectors, inside and outside the mutation's radius, with the first of each described. */
    private record Loss(int inside, int outside, String firstInside, String firstOutside) {
        int total() {
            return inside + outside;
        }
    }

    /**
     * A sector is lost when its newest write was flushed (or FUA) and it reads something else, or
     * when it reads what no power cut could leave (neither its flushed value nor a later unflushed write).
     */
    private static Loss loss(Base base, Mutation mu, byte[] got) {
        DiskModel model = base.model();
        int inside = 0;
        int outside = 0;
        String firstIn = null;
        String firstOut = null;
        for (int s = 0; s < SECTORS; s++) {
            int at = s * SECTOR;
            if (Arrays.equals(got, at, at + SECTOR, model.current, at, at + SECTOR)) {
                continue;
            }
            boolean flushedNewest = Arrays.equals(model.stable, at, at + SECTOR, model.current, at, at + SECTOR);
            if (!flushedNewest && model.checkAfterCut(s, got, at) == null) {
                continue; // an unflushed write may be lost, the sector holds an allowed older value
            }
            if (mu.explains(s)) {
                if (inside++ == 0) {
                    firstIn = describe(base, s, got, flushedNewest);
                }
            } else if (outside++ == 0) {
                firstOut = describe(base, s, got, flushedNewest);
            }
        }
        return new Loss(inside, outside, firstIn, firstOut);
    }

    private static String describe(Base base, int s, byte[] got, boolean flushed) {
        MediaMap.Key k = base.map().newestKeyFor(s);
        DiskModel model = base.model();
        long at = (long) s * SECTOR;
        int expected = 0;
        for (DiskModel.Write w : model.history) {
            if (w.offset() <= at && w.end() >= at + SECTOR) {
                expected = w.id();
            }
        }
        String reads = model.describe(s, got, s * SECTOR);
        return "sector " + s + " (byte " + at + ") should hold write #" + expected + (flushed ? " (flushed)" : "")
                + " from " + (k != null ? k : "the backing disk (no key in the log)") + " but "
                + reads.substring(0, reads.indexOf(';')).replace("matches", "reads");
    }

    /** After the damage the cache must still work: new writes read back. Null, or what is wrong. */
    private static String newWritesReadBack(Cache c, SplittableRandom r) throws IOException {
        for (int i = 0; i < 4; i++) {
            int len = SECTOR * (1 + r.nextInt(256));
            long off = r.nextLong((DEVICE - len) / SECTOR + 1) * SECTOR;
            byte[] data = new byte[len];
            r.nextBytes(data);
            c.write(off, MemorySegment.ofArray(data), r.nextBoolean());
            c.flush();
            byte[] got = new byte[len];
            c.read(off, MemorySegment.ofArray(got));
            int bad = Arrays.mismatch(got, data);
            if (bad >= 0) {
                return "a new write [" + off + ", +" + len + ") reads back wrong at byte " + (off + bad);
            }
        }
        return null;
    }
}
