package io.pmcache.cache;

import io.pmcache.device.PayloadSource;
import io.pmcache.format.KeyRecord;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.lang.foreign.MemorySegment;

/**
 * Writes, trims and zeroes.
 *
 * <p>A write is cut at 4 MiB range boundaries and at segment ends (there, at the last sector of the
 * device before the end), so every piece but the last ends on a 512-byte sector: a piece that is
 * lost (a payload that stops coming, a crash between two pieces) leaves each sector old or new,
 * never part of each. Each piece: allocate space on a data head (waiting while the cache is full)
 * → copy the data once into the medium, its CRC taken
 * chunk by chunk as it is copied ({@link DataCopy}); or, for {@link #writeFrom}, read it from its
 * source straight into the medium and take its CRC there → under the range's lock, insert the
 * extent into the index and append its key to the range's kset stream → with FUA, persist the data
 * and the key. When the call returns, data and key are in the mapped medium, so a process crash
 * loses nothing.
 */
final class WritePath {
    private final Engine e;

    WritePath(Engine e) {
        this.e = e;
    }

    void write(long offset, MemorySegment src, boolean fua) throws java.io.IOException {
        writeData(offset, src, fua);
        e.stats.writes.increment();
        e.stats.writeBytes.add(src.byteSize());
    }

    /** {@link #write} without counting it (a piece of a request counted elsewhere). */
    void writeData(long offset, MemorySegment src, boolean fua) throws java.io.IOException {
        writePieces(offset, src.byteSize(), src, null, fua);
    }

    /**
     * As {@link #write}, the data read from {@code data} straight into the medium (no buffer in
     * between) while there is room without waiting; once there is not, the rest is taken whole
     * ({@link PayloadSource#rest}) and written as {@link #write} writes, waiting for room.
     */
    void writeFrom(long offset, int length, PayloadSource data, boolean fua) throws java.io.IOException {
        writePieces(offset, length, null, data, fua);
        e.stats.writes.increment();
        e.stats.writeBytes.add(length);
    }

    /** The write of {@code len} bytes at {@code offset}, from {@code src} or else from {@code data}. */
    private void writePieces(long offset, long len, MemorySegment src, PayloadSource data, boolean fua)
            throws java.io.IOException {
        long done = 0;
        while (done < len) {
            long pos = offset + done;
            int want = (int) Math.min(len - done, RangeIndex.roomInRange(pos));
            long place = data == null ? e.head().allocate(want) : e.head().tryAllocate(want);
            if (place < 0) {
                writePieces(pos, len - done, data.rest(), null, fua);
                return;
            }
            int seg = DataHead.segmentOf(place);
            int segOff = DataHead.offsetOf(place);
            int n = (int) Math.min(want, e.segments.segmentSize() - segOff);
            if (n < want) { // cut by the segment's end: end the piece on a sector (DataHead: n >= SECTOR)
                n -= (int) ((pos + n) % DataHead.SECTOR);
            }
            long slot;
            try {
                long at = e.address(seg, segOff);
                int crc;
                if (data == null) {
                    crc = DataCopy.copy(src, done, e.medium.segment(), at, n);
                } else {
                    data.readInto(e.medium.segment().asSlice(at, n)); // a failure here leaves no key
                    crc = DataCopy.crc(e.medium.segment(), at, n);
                }
                // the allocation's reference keeps the generation from changing (see DataHead.allocate)
                slot = insertAndAppendData(pos, n, seg, segOff, e.segments.generation(seg), crc);
            } finally {
                e.segments.unref(seg); // the allocation's reference; the key holds its own
            }
            if (fua) {
                e.keyLog.persistKey(slot, seg, segOff, n);
            }
            done += n;
        }
    }

    /** Makes {@code [offset, offset+length)} read as zeros, without storing data. */
    void zero(long offset, long length, boolean fua) throws java.io.InterruptedIOException {
        long done = 0;
        while (done < length) {
            long pos = offset + done;
            int n = (int) Math.min(length - done, RangeIndex.roomInRange(pos));
            KeyRecord key = new KeyRecord(pos, n, KeyRecord.FLAG_DIRTY | KeyRecord.FLAG_ZERO, 0, 0, 0, 0);
            long slot = insertAndAppend(key);
            if (fua) {
                e.keyLog.persistKey(slot, key);
            }
            done += n;
        }
    }

    /**
     * {@link #insertAndAppend} for a dirty data key given by its fields: the write path builds no
     * {@link KeyRecord} per write. A direct write in flight over its bytes is waited for first (see
     * {@link DirectPath}): its data must reach the backing device before this key's does.
     */
    private long insertAndAppendData(long offset, int length, int segment, int segmentOffset, long generation, int crc)
            throws java.io.InterruptedIOException {
        ExtentMap map = e.index.rangeFor(offset);
        while (true) {
            java.util.concurrent.CountDownLatch direct;
            map.lock().lock();
            try {
                direct = e.direct.overlapping(map, offset, offset + length);
                if (direct == null) {
                    // first: if it fails, the index never names the key
                    long slot = e.keyLog.append(offset, length, KeyRecord.FLAG_DIRTY, segment, segmentOffset,
                            generation, crc);
                    map.noteDirtyKset(e.keyLog.nextSeq()); // the key's kset is below the head
                    map.insertData(offset, length, segment, segmentOffset, generation, true);
                    return slot;
                }
            } finally {
                map.lock().unlock();
            }
            e.direct.await(direct, e.failure);
        }
    }

    /**
     * Under the range's lock: appends the (dirty) key to the log, then puts its extent into the
     * index. A direct write in flight over the key's bytes is waited for first (see
     * {@link DirectPath}): its data must reach the backing device before this key's does.
     */
    private long insertAndAppend(KeyRecord key) throws java.io.InterruptedIOException {
        ExtentMap map = e.index.rangeFor(key.offset());
        while (true) {
            java.util.concurrent.CountDownLatch direct;
            map.lock().lock();
            try {
                direct = e.direct.overlapping(map, key.offset(), key.end());
                if (direct == null) {
                    return appendAndInsert(map, key);
                }
            } finally {
                map.lock().unlock();
            }
            e.direct.await(direct, e.failure);
        }
    }

    /** Caller holds the range's lock. */
    private long appendAndInsert(ExtentMap map, KeyRecord key) {
        long slot = e.keyLog.append(key); // first: if it fails, the index never names the key
        map.noteDirtyKset(e.keyLog.nextSeq()); // the key's kset is below the head
        if (key.zero()) {
            map.insertZero(key.offset(), key.length(), true);
        } else {
            map.insertData(key.offset(), key.length(), key.segment(), key.segmentOffset(), key.generation(), true);
        }
        return slot;
    }
}
