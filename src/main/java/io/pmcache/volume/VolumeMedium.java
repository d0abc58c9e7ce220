package io.pmcache.volume;

import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.FormatOptions;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.MediumHeader;
import io.pmcache.format.Superblock;
import io.pmcache.format.VolumeEntry;
import io.pmcache.format.VolumeLayout;
import io.pmcache.format.VolumeTable;
import io.pmcache.media.Medium;
import io.pmcache.media.MediumRegion;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The volumes of one medium: lists them, creates and removes them, and gives each volume's cache
 * its region as a {@link Medium} ({@link MediumRegion}). The caller owns (maps, locks, closes) the
 * medium; the engine opens each volume's region like a medium of its own and knows nothing of
 * volumes.
 *
 * <p>Two kinds of media open here: a <em>volume medium</em> ({@link MediumHeader} and
 * {@link VolumeTable}; made by {@link #format}), and a <em>single-cache medium</em> (a
 * {@link Superblock} at offset 0, as every pmcache before this format version wrote), read as it
 * is: one implicit volume named {@value #IMPLICIT_NAME} spanning the whole medium, to which no
 * volume can be added. {@code format --backing} writes a volume medium holding one volume named
 * {@value #DEFAULT_NAME} ({@link #formatWithVolume}).
 *
 * <p>Crash safety: {@link #create} formats the new volume's region (superblock last) and only then
 * writes and persists the table slot that lists it; {@link #remove} writes the table without it
 * first and invalidates the region's superblock after. A crash at any point leaves either the old
 * table (a region formatted but unlisted is free space) or the new one, never a half volume. The
 * methods are synchronized: one change at a time per medium.
 */
public final class VolumeMedium {
    private static final Logger log = LoggerFactory.getLogger(VolumeMedium.class);
    /** The name of the one volume of a single-cache medium. */
    public static final String IMPLICIT_NAME = "default";
    /** The name of the volume {@code format --backing} creates (the same as a single-cache medium's). */
    public static final String DEFAULT_NAME = IMPLICIT_NAME;

    private final Medium medium;
    /** Null for a single-cache medium. */
    private final MediumHeader header;
    private VolumeTable table;

    private VolumeMedium(Medium medium, MediumHeader header, VolumeTable table) {
        this.medium = medium;
        this.header = header;
        this.table = table;
    }

    /** True when the medium starts with a volume-medium or a single-cache magic (it may still be corrupt). */
    public static boolean looksFormatted(Medium medium) {
        return MediumHeader.hasMagic(medium.segment()) || Cache.looksFormatted(medium);
    }

    /** True when the medium starts with the volume-medium magic. */
    public static boolean isVolumeMedium(Medium medium) {
        return MediumHeader.hasMagic(medium.segment());
    }

    /** Formats {@code medium} as an empty volume medium. Overwrites whatever was there. */
    public static void format(Medium medium) throws IOException {
        checkFits(medium, VolumeLayout.REGION_ALIGN);
        write(medium, null);
        log.info("formatted {} as a volume medium: {} MiB for volumes, no volume yet", medium.describe(),
                space(medium) >> 20);
    }

    /**
     * Formats {@code medium} as a volume medium holding one volume, {@code name}, for
     * {@code backing} (recorded as {@code backingSpec}): {@code size} bytes (rounded up to 2 MiB)
     * from the start of the data area, or, with {@code size} {@code <= 0}, all of it. What
     * {@code format --backing} and an auto-formatting {@code serve --backing} write. The medium
     * header is the last thing persisted: a crash before it leaves no pmcache medium (as a crash
     * inside a single-cache format did), never a medium without its volume.
     */
    public static Volume formatWithVolume(Medium medium, String name, BackingDevice backing, String backingSpec,
                                          long size, FormatOptions format) throws IOException {
        String problem = VolumeEntry.nameProblem(name);
        if (problem == null) {
            problem = VolumeEntry.backingProblem(backingSpec);
        }
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        long want = size > 0 ? VolumeLayout.alignUp(size) : space(medium);
        long smallest = VolumeLayout.alignUp(Cache.smallestMedium());
        if (want < smallest) {
            // The volume's region is what Cache.format sees; the operator sizes the whole medium.
            throw new IOException(medium.describe() + ": " + want + " bytes left for the volume, which needs at least "
                    + smallest + ": the smallest cache is " + (VolumeLayout.DATA_START + smallest) + " bytes ("
                    + VolumeLayout.DATA_START + " of them for the volume table)");
        }
        checkFits(medium, Math.max(want, VolumeLayout.REGION_ALIGN));
        MediumRegion region = new MediumRegion(medium, VolumeLayout.DATA_START, want, name);
        VolumeEntry[] entry = {null};
        write(medium, () -> {
            Cache.format(region, backing, format); // its superblock is the last thing it persists
            entry[0] = new VolumeEntry(name, VolumeLayout.DATA_START, want, Cache.superblock(region).cacheId(),
                    System.currentTimeMillis(), backingSpec);
            return entry[0];
        });
        log.info("formatted {} as a volume medium with volume '{}' ({} MiB of {} MiB) for {}", medium.describe(),
                name, want >> 20, space(medium) >> 20, backingSpec);
        return new Volume(name, region, entry[0]);
    }

    /** Bytes a volume medium of this size offers its volumes. */
    private static long space(Medium medium) {
        return Math.max(0, VolumeLayout.alignDown(medium.size()) - VolumeLayout.DATA_START);
    }

    private static void checkFits(Medium medium, long volumeBytes) throws IOException {
        if (space(medium) < volumeBytes) {
            throw new IOException(medium.describe() + ": " + medium.size() + " bytes is too small: a volume medium "
                    + "needs at least " + (VolumeLayout.DATA_START + volumeBytes) + " bytes for "
                    + (volumeBytes >> 20) + " MiB of volume" + " (the table takes the first "
                    + (VolumeLayout.DATA_START >> 20) + " MiB), and offers " + (space(medium) >> 20) + " MiB");
        }
    }

    /** Makes the volume to list at format time (formatting its region); runs before the header is written. */
    @FunctionalInterface
    private interface FirstVolume {
        VolumeEntry make() throws IOException;
    }

    /** Zeroes the table area, makes {@code first} (when given), writes the table, and the header last. */
    private static void write(Medium medium, FirstVolume first) throws IOException {
        MemorySegment m = medium.segment();
        m.asSlice(0, VolumeLayout.DATA_START).fill((byte) 0);
        medium.persist(0, VolumeLayout.DATA_START);
        long id = new SecureRandom().nextLong();
        List<VolumeEntry> volumes = first == null ? List.of() : List.of(first.make());
        // The same table in both slots (sequences 0 and 1): one damaged slot then strands nothing.
        new VolumeTable(0, volumes).encode(m, id);
        new VolumeTable(1, volumes).encode(m, id);
        medium.persist(VolumeLayout.TABLE_SLOT0, 2L * VolumeLayout.TABLE_SLOT_SIZE);
        new MediumHeader(MediumHeader.VERSION, 0, id, medium.size(), System.currentTimeMillis()).encode(m);
        medium.persist(0, MediumHeader.SIZE);
    }

    /** Reads the medium's volumes (validating header and table); a single-cache medium has one. */
    public static VolumeMedium open(Medium medium) throws IOException {
        return open(medium, why -> log.error("{} (the other slot is used; the next volume change rewrites this one)",
                why));
    }

    /** {@link #open(Medium)}, telling {@code damagedSlot} why a table slot is invalid when the other one is used. */
    public static VolumeMedium open(Medium medium, java.util.function.Consumer<String> damagedSlot) throws IOException {
        MemorySegment m = medium.segment();
        if (MediumHeader.hasMagic(m)) {
            MediumHeader h = MediumHeader.decode(m, medium.describe());
            VolumeTable t = VolumeTable.read(m, h.mediumId(), h.mediumSize(), medium.describe(), damagedSlot);
            return new VolumeMedium(medium, h, t);
        }
        if (Cache.looksFormatted(medium)) {
            Cache.superblock(medium); // a corrupt superblock is named here, as the open would
            return new VolumeMedium(medium, null, null);
        }
        throw new MediaCorruptException(medium.describe() + ": not a pmcache cache medium (neither a volume medium "
                + "header nor a cache superblock at offset 0)");
    }

    public Medium medium() {
        return medium;
    }

    /** True for a single-cache medium (one implicit volume, none can be added). */
    public boolean singleCache() {
        return header == null;
    }

    /** The volumes, in table order (the order they were created). */
    public synchronized List<Volume> volumes() {
        if (header == null) {
            return List.of(new Volume(IMPLICIT_NAME, medium, null));
        }
        List<Volume> out = new ArrayList<>();
        for (VolumeEntry e : table.volumes()) {
            out.add(volume(e));
        }
        return out;
    }

    private Volume volume(VolumeEntry e) {
        return new Volume(e.name(), new MediumRegion(medium, e.offset(), e.size(), e.name()), e);
    }

    /**
     * The volume named {@code name}; with {@code name} null, the only volume. Errors name the
     * medium and list the volumes there are.
     */
    public synchronized Volume volume(String name) {
        List<Volume> all = volumes();
        if (name == null) {
            if (all.size() == 1) {
                return all.getFirst();
            }
            throw new IllegalArgumentException(medium.describe() + " holds " + (all.isEmpty() ? "no volume"
                    : all.size() + " volumes (" + names(all) + "); give --volume NAME"));
        }
        for (Volume v : all) {
            if (v.name().equals(name)) {
                return v;
            }
        }
        throw new IllegalArgumentException(medium.describe() + " has no volume named '" + name + "'"
                + (all.isEmpty() ? " (it has none)" : " (it has: " + names(all) + ")"));
    }

    /**
     * The volume {@code serve --backing} serves: the only volume (whether it is {@code backingSpec}'s
     * cache is the cache's own backing check, at open), else the one whose recorded backing is
     * {@code backingSpec}. Errors name the medium and the volumes with their backing devices.
     */
    public synchronized Volume volumeFor(String backingSpec) {
        List<Volume> all = volumes();
        if (all.size() == 1) {
            return all.getFirst();
        }
        if (all.isEmpty()) {
            throw new IllegalArgumentException(medium.describe() + " holds no volume: add one with `pmcache volume "
                    + "create`, or format it with --backing");
        }
        for (Volume v : all) {
            if (backingSpec.equals(v.backing())) {
                return v;
            }
        }
        throw new IllegalArgumentException(medium.describe() + " holds " + all.size() + " volumes, none for "
                + backingSpec + " (" + String.join(", ", all.stream().map(v -> v.name() + " for " + v.backing())
                .toList()) + "): serve them all without --backing (each is an export named after it)");
    }

    private static String names(List<Volume> all) {
        return String.join(", ", all.stream().map(Volume::name).toList());
    }

    /**
     * The superblock of a volume's cache, checked against its table entry: a region holding another
     * cache than the table names (damage, or a table that went back to an older copy) is refused.
     */
    public static Superblock checkIdentity(Volume v) throws MediaCorruptException {
        Superblock sb = Cache.superblock(v.medium());
        if (v.entry() != null && sb.cacheId() != v.entry().volumeId()) {
            throw new MediaCorruptException(v.medium().describe() + ": the region holds cache id "
                    + Long.toHexString(sb.cacheId()) + " but the volume table names "
                    + Long.toHexString(v.entry().volumeId()) + "; refusing to open another volume's cache");
        }
        return sb;
    }

    /** Bytes of the largest free region (what {@code --size} may be at most). */
    public synchronized long largestFree() {
        if (header == null) {
            return 0;
        }
        long best = 0;
        long at = VolumeLayout.DATA_START;
        for (VolumeEntry e : byOffset()) {
            best = Math.max(best, e.offset() - at);
            at = e.end();
        }
        return Math.max(best, end() - at);
    }

    /** Bytes not taken by any volume. */
    public synchronized long freeBytes() {
        if (header == null) {
            return 0;
        }
        long used = table.volumes().stream().mapToLong(VolumeEntry::size).sum();
        return end() - VolumeLayout.DATA_START - used;
    }

    private long end() {
        return VolumeLayout.alignDown(header.mediumSize());
    }

    private List<VolumeEntry> byOffset() {
        List<VolumeEntry> l = new ArrayList<>(table.volumes());
        l.sort(Comparator.comparingLong(VolumeEntry::offset));
        return l;
    }

    /**
     * Creates volume {@code name} of {@code size} bytes (rounded up to 2 MiB) for {@code backing}
     * (recorded as {@code backingSpec}, how it is opened again): formats a free region as an empty
     * cache, then lists it in the table. Returns the new volume.
     */
    public synchronized Volume create(String name, BackingDevice backing, String backingSpec, long size,
                                      FormatOptions format) throws IOException {
        if (header == null) {
            throw new IOException(medium.describe() + " is a single-cache medium (formatted by a pmcache before "
                    + "volumes): it holds one implicit volume and no other. To host several, detach it "
                    + "and format the medium without --backing");
        }
        String problem = VolumeEntry.nameProblem(name);
        if (problem == null) {
            problem = VolumeEntry.backingProblem(backingSpec);
        }
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        if (table.find(name).isPresent()) {
            throw new IllegalArgumentException(medium.describe() + " already has a volume named '" + name + "'");
        }
        if (table.volumes().size() >= VolumeTable.MAX_VOLUMES) {
            throw new IOException(medium.describe() + " holds " + VolumeTable.MAX_VOLUMES + " volumes, the most a "
                    + "volume table lists");
        }
        if (size <= 0) {
            throw new IllegalArgumentException("volume size must be more than 0, got " + size);
        }
        long want = VolumeLayout.alignUp(size);
        long offset = firstFit(want);
        if (offset < 0) {
            throw new IOException(medium.describe() + ": no free region of " + (want >> 20) + " MiB for volume '" + name
                    + "' (largest free region: " + (largestFree() >> 20) + " MiB, free in all: " + (freeBytes() >> 20)
                    + " MiB)");
        }
        MediumRegion region = new MediumRegion(medium, offset, want, name);
        Cache.format(region, backing, format); // its superblock is the last thing it persists
        long id = Cache.superblock(region).cacheId();
        List<VolumeEntry> next = new ArrayList<>(table.volumes());
        VolumeEntry entry = new VolumeEntry(name, offset, want, id, System.currentTimeMillis(), backingSpec);
        next.add(entry);
        writeTable(next); // the volume exists from here on
        log.info("created volume '{}' on {}: [{}, +{} MiB) for {}", name, medium.describe(), offset, want >> 20,
                backingSpec);
        return volume(entry);
    }

    /**
     * Removes volume {@code name} from the table and invalidates its cache's superblock. Whatever
     * is dirty in it is lost: the caller decides whether that is allowed (see {@code VolumeRemoval}).
     */
    public synchronized void remove(String name) throws IOException {
        if (header == null) {
            throw new IOException(medium.describe() + " is a single-cache medium: its one volume cannot be removed "
                    + "(detach it, then reformat the medium)");
        }
        VolumeEntry e = table.find(name).orElseThrow(() -> new IllegalArgumentException(medium.describe()
                + " has no volume named '" + name + "'"));
        List<VolumeEntry> next = new ArrayList<>(table.volumes());
        next.remove(e);
        writeTable(next);
        // After the table: a crash before this leaves a stale superblock in free space, which nothing reads.
        medium.segment().asSlice(e.offset(), Superblock.SIZE).fill((byte) 0);
        medium.persist(e.offset(), Superblock.SIZE);
        log.info("removed volume '{}' from {} ({} MiB freed)", name, medium.describe(), e.size() >> 20);
    }

    private long firstFit(long want) {
        long at = VolumeLayout.DATA_START;
        for (VolumeEntry e : byOffset()) {
            if (e.offset() - at >= want) {
                return at;
            }
            at = e.end();
        }
        return end() - at >= want ? at : -1;
    }

    private void writeTable(List<VolumeEntry> volumes) {
        VolumeTable next = table.next(volumes);
        next.encode(medium.segment(), header.mediumId());
        medium.persist(next.slotOffset(), VolumeLayout.TABLE_SLOT_SIZE);
        table = next;
    }
}
