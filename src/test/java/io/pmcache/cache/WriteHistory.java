package io.pmcache.cache;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Every write ever made to a device, sector-aligned, with content that names the write
 * ({@link DiskModel#word}): what the device must hold now, and whether a sector's content is at
 * least something that was once written there (or the zeros it started with).
 */
final class WriteHistory {
    static final int SECTOR = DiskModel.SECTOR;

    record W(int id, long offset, int length) {
        long end() {
            return offset + length;
        }
    }

    final byte[] current;
    final List<W> all = new ArrayList<>();
    private int nextId = 1;

    WriteHistory(int size) {
        current = new byte[size];
    }

    int size() {
        return current.length;
    }

    /** Records a write of {@code length} bytes at {@code offset} (both sector multiples); returns its content. */
    byte[] write(long offset, int length) {
        if (offset % SECTOR != 0 || length % SECTOR != 0) {
            throw new IllegalArgumentException("writes must be whole sectors");
        }
        W w;
        synchronized (this) {
            w = new W(nextId++, offset, length);
            all.add(w);
        }
        byte[] data = new byte[length];
        DiskModel.fill(data, 0, w.id, offset, length, false);
        System.arraycopy(data, 0, current, (int) offset, length);
        return data;
    }

    /** Content of write {@code id} for the sector at byte {@code at}. */
    static byte[] content(int id, long at) {
        byte[] b = new byte[SECTOR];
        DiskModel.fill(b, 0, id, at, SECTOR, false);
        return b;
    }

    /** True when the sector at {@code at} reads the zeros it started with or the content of some write to it. */
    synchronized boolean onceWritten(long at, byte[] got, int gotOff) {
        if (Arrays.equals(got, gotOff, gotOff + SECTOR, new byte[SECTOR], 0, SECTOR)) {
            return true;
        }
        for (W w : all) {
            if (w.offset <= at && w.end() >= at + SECTOR
                    && Arrays.equals(got, gotOff, gotOff + SECTOR, content(w.id, at), 0, SECTOR)) {
                return true;
            }
        }
        return false;
    }

    /** Names what a sector holds, for failure messages: "write #id", "zeros", or "nothing written here". */
    synchronized String describe(long at, byte[] got, int gotOff) {
        if (Arrays.equals(got, gotOff, gotOff + SECTOR, new byte[SECTOR], 0, SECTOR)) {
            return "zeros";
        }
        for (W w : all) {
            if (w.offset <= at && w.end() >= at + SECTOR
                    && Arrays.equals(got, gotOff, gotOff + SECTOR, content(w.id, at), 0, SECTOR)) {
                return "write #" + w.id + " of " + (nextId - 1);
            }
        }
        return "nothing written here";
    }
}
