package io.pmcache.cache;

import java.util.ArrayList;
import java.util.List;

/**
 * A plain disk as the cache must appear to be, plus what a power cut may leave behind.
 *
 * <p>Every write gets an id; its content is a function of the id and the byte position (8-byte
 * words), so any word read back names the write it came from. {@code stable} is what must survive
 * a power cut (flushed, or written with FUA); {@code unflushed} lists the writes since the last
 * flush, any subset of which a power cut may keep, sector by sector. A FUA write makes its sectors
 * stable and rules out every older unflushed write there ({@code fuaId}).
 */
final class DiskModel {
    static final int SECTOR = 512;

    record Write(int id, long offset, int length, boolean zero) {
        long end() {
            return offset + length;
        }
    }

    final byte[] current;
    final byte[] stable;
    private final int[] fuaId;
    final List<Write> unflushed = new ArrayList<>();
    /** Every write ever made (diagnostics: which write does a wrong sector come from?). */
    final List<Write> history = new ArrayList<>();
    private final List<Integer> flushMarks = new ArrayList<>();
    private int nextId = 1;

    DiskModel(int size) {
        current = new byte[size];
        stable = new byte[size];
        fuaId = new int[size / SECTOR];
    }

    int size() {
        return current.length;
    }

    /** An independent copy (the same next write id): what the disk must be at this instant. */
    DiskModel copy() {
        DiskModel c = new DiskModel(current.length);
        System.arraycopy(current, 0, c.current, 0, current.length);
        System.arraycopy(stable, 0, c.stable, 0, stable.length);
        System.arraycopy(fuaId, 0, c.fuaId, 0, fuaId.length);
        c.unflushed.addAll(unflushed);
        c.history.addAll(history);
        c.flushMarks.addAll(flushMarks);
        c.nextId = nextId;
        return c;
    }

    /** Content of write {@code id} at byte {@code pos} (pos 8-aligned in this test: writes are sector-aligned). */
    static long word(int id, long pos) {
        long z = id * 0x9E3779B97F4A7C15L + pos;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    static void fill(byte[] dst, int dstOff, int id, long pos, int len, boolean zero) {
        for (int i = 0; i < len; i += 8) {
            long w = zero ? 0 : word(id, pos + i);
            for (int b = 0; b < 8; b++) {
                dst[dstOff + i + b] = (byte) (w >>> (8 * b));
            }
        }
    }

    /** The id the next {@link #write} gets (its content is {@link #fill} with this id). */
    int nextId() {
        return nextId;
    }

    /** Records a write; returns its content. */
    byte[] write(long offset, int length, boolean zero, boolean fua) {
        Write w = new Write(nextId++, offset, length, zero);
        byte[] data = new byte[length];
        fill(data, 0, w.id, offset, length, zero);
        System.arraycopy(data, 0, current, (int) offset, length);
        unflushed.add(w);
        history.add(w);
        if (fua) {
            System.arraycopy(data, 0, stable, (int) offset, length);
            for (long s = offset / SECTOR; s < (offset + length) / SECTOR; s++) {
                fuaId[(int) s] = w.id;
            }
        }
        return data;
    }

    /** The last write was acknowledged with FUA only now (it was recorded without): it is durable. */
    void lastWriteDurable() {
        Write w = history.getLast();
        System.arraycopy(current, (int) w.offset, stable, (int) w.offset, w.length);
        for (long s = w.offset / SECTOR; s < w.end() / SECTOR; s++) {
            fuaId[(int) s] = w.id;
        }
    }

    void flush() {
        flushMarks.add(nextId);
        for (Write w : unflushed) {
            System.arraycopy(current, (int) w.offset, stable, (int) w.offset, w.length);
        }
        // Writes later in the list overwrite earlier ones above only if copied in order: re-copy
        // from current, which already holds the newest values, so the order does not matter.
        unflushed.clear();
    }

    /**
     * Checks a sector read after a power cut; returns null when it holds the stable value or the
     * value of an unflushed write newer than any FUA write there, else a description of what is wrong.
     */
    String checkAfterCut(long sector, byte[] got, int gotOff) {
        int at = (int) (sector * SECTOR);
        if (java.util.Arrays.equals(got, gotOff, gotOff + SECTOR, stable, at, at + SECTOR)) {
            return null;
        }
        byte[] expect = new byte[SECTOR];
        for (int i = unflushed.size() - 1; i >= 0; i--) {
            Write w = unflushed.get(i);
            if (w.offset <= at && w.end() >= at + SECTOR && w.id > fuaId[(int) sector]) {
                fill(expect, 0, w.id, at, SECTOR, w.zero);
                if (java.util.Arrays.equals(got, gotOff, gotOff + SECTOR, expect, 0, SECTOR)) {
                    return null;
                }
            }
        }
        return "sector " + sector + " (byte " + at + ") holds neither its flushed value nor any unflushed write"
                + " newer than its last FUA write; " + explain(sector, got, gotOff);
    }

    String describe(long sector, byte[] got, int gotOff) {
        return explain(sector, got, gotOff);
    }

    /** Which write, if any, the bytes come from; and the sector's history. */
    private String explain(long sector, byte[] got, int gotOff) {
        int at = (int) (sector * SECTOR);
        byte[] expect = new byte[SECTOR];
        StringBuilder sb = new StringBuilder("writes covering it (id/zero/fua-marker): ");
        String match = "matches no write";
        for (Write w : history) {
            if (w.offset <= at && w.end() >= at + SECTOR) {
                sb.append(w.id).append(w.zero ? "z " : " ");
                fill(expect, 0, w.id, at, SECTOR, w.zero);
                if (java.util.Arrays.equals(got, gotOff, gotOff + SECTOR, expect, 0, SECTOR)) {
                    match = "matches write " + w.id;
                }
            }
        }
        boolean zeros = true;
        for (int i = 0; i < SECTOR; i++) {
            zeros &= got[gotOff + i] == 0;
        }
        return match + (zeros ? " (all zeros)" : "") + "; " + sb + "; fuaId " + fuaId[(int) sector]
                + "; flushes at ids " + flushMarks + "; unflushed ids "
                + unflushed.stream().map(Write::id).toList();
    }

    /**
     * Reads all of {@code device} after a power cut and checks every sector ({@link #checkAfterCut}),
     * then takes what was read as the new, durable disk.
     */
    void verifyAfterCut(io.pmcache.device.BlockDevice device, String where) throws java.io.IOException {
        int chunk = 4 << 20;
        for (int off = 0; off < size(); off += chunk) {
            int n = Math.min(chunk, size() - off);
            byte[] got = new byte[n];
            device.read(off, java.lang.foreign.MemorySegment.ofArray(got));
            for (int s = 0; s < n / SECTOR; s++) {
                long sector = off / SECTOR + s;
                String problem = checkAfterCut(sector, got, s * SECTOR);
                if (problem != null) {
                    throw new AssertionError(where + ": " + problem);
                }
                rebase(sector, got, s * SECTOR);
            }
        }
        unflushed.clear();
    }

    /** After a cut has been verified: what was read is now the disk, and it is durable. */
    void rebase(long sector, byte[] got, int gotOff) {
        int at = (int) (sector * SECTOR);
        System.arraycopy(got, gotOff, current, at, SECTOR);
        System.arraycopy(got, gotOff, stable, at, SECTOR);
    }
}
