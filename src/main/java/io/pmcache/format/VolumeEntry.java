package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One volume in the {@link VolumeTable}: its name, its region of the medium, the identity of the
 * cache formatted there, and the backing device it was created for.
 *
 * <pre>
 * offset size  field
 *   0     8    region offset (a multiple of 2 MiB, at least {@link VolumeLayout#DATA_START})
 *   8     8    region size (a multiple of 2 MiB)
 *  16     8    volume id: the cache id in the region's superblock
 *  24     8    created, ms since the epoch
 *  32     4    flags (0)
 *  36     2    name length (1..64)
 *  38     2    backing length (1..384)
 *  40    64    name, UTF-8, zero padded
 * 104   384    backing device: a path or an NBD URI, UTF-8, zero padded
 * 488    24    reserved (0)
 * </pre>
 *
 * A name is 1..64 characters of {@code [A-Za-z0-9._-]}, not starting with '.' or '-' (it becomes
 * an NBD export name and a metrics label).
 */
public record VolumeEntry(String name, long offset, long size, long volumeId, long createdMillis, String backing) {
    public static final int SIZE = 512;
    public static final int MAX_NAME = 64;
    public static final int MAX_BACKING = 384;
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,63}");
    private static final int OFF_OFFSET = 0;
    private static final int OFF_SIZE = 8;
    private static final int OFF_ID = 16;
    private static final int OFF_CREATED = 24;
    private static final int OFF_FLAGS = 32;
    private static final int OFF_NAME_LEN = 36;
    private static final int OFF_BACKING_LEN = 38;
    private static final int OFF_NAME = 40;
    private static final int OFF_BACKING = 104;

    public VolumeEntry {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(backing, "backing");
    }

    public long end() {
        return offset + size;
    }

    /** Null when {@code name} may name a volume, else why not. */
    public static String nameProblem(String name) {
        if (!NAME.matcher(name).matches()) {
            return "volume name '" + name + "' must be 1.." + MAX_NAME
                    + " characters of A-Z a-z 0-9 . _ - and not start with '.' or '-'";
        }
        return null;
    }

    /** Null when {@code backing} fits an entry, else why not. */
    public static String backingProblem(String backing) {
        int n = backing.getBytes(StandardCharsets.UTF_8).length;
        if (n < 1 || n > MAX_BACKING) {
            return "backing '" + backing + "' is " + n + " bytes in UTF-8; a volume records 1.." + MAX_BACKING;
        }
        return null;
    }

    void encode(MemorySegment s) {
        s.fill((byte) 0);
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        byte[] b = backing.getBytes(StandardCharsets.UTF_8);
        s.set(JAVA_LONG_UNALIGNED, OFF_OFFSET, offset);
        s.set(JAVA_LONG_UNALIGNED, OFF_SIZE, size);
        s.set(JAVA_LONG_UNALIGNED, OFF_ID, volumeId);
        s.set(JAVA_LONG_UNALIGNED, OFF_CREATED, createdMillis);
        s.set(JAVA_SHORT_UNALIGNED, OFF_NAME_LEN, (short) n.length);
        s.set(JAVA_SHORT_UNALIGNED, OFF_BACKING_LEN, (short) b.length);
        MemorySegment.copy(MemorySegment.ofArray(n), 0, s, OFF_NAME, n.length);
        MemorySegment.copy(MemorySegment.ofArray(b), 0, s, OFF_BACKING, b.length);
    }

    /** Decodes entry {@code i}; a failed check throws, naming the entry and the field. */
    static VolumeEntry decode(MemorySegment s, int i, long mediumSize, String where) throws MediaCorruptException {
        String at = where + ": volume entry " + i;
        long offset = s.get(JAVA_LONG_UNALIGNED, OFF_OFFSET);
        long size = s.get(JAVA_LONG_UNALIGNED, OFF_SIZE);
        int flags = s.get(JAVA_INT_UNALIGNED, OFF_FLAGS);
        int nameLen = Short.toUnsignedInt(s.get(JAVA_SHORT_UNALIGNED, OFF_NAME_LEN));
        int backingLen = Short.toUnsignedInt(s.get(JAVA_SHORT_UNALIGNED, OFF_BACKING_LEN));
        if (flags != 0) {
            throw new MediaCorruptException(at + ": unknown flags " + Superblock.hex(flags));
        }
        if (offset < VolumeLayout.DATA_START || offset % VolumeLayout.REGION_ALIGN != 0 || size <= 0
                || size % VolumeLayout.REGION_ALIGN != 0 || offset > mediumSize - size) {
            throw new MediaCorruptException(at + ": region [" + offset + ", +" + size + ") is not 2 MiB aligned "
                    + "inside [" + VolumeLayout.DATA_START + ", " + mediumSize + ")");
        }
        if (nameLen < 1 || nameLen > MAX_NAME || backingLen < 1 || backingLen > MAX_BACKING) {
            throw new MediaCorruptException(at + ": name length " + nameLen + " or backing length " + backingLen
                    + " out of range (1.." + MAX_NAME + ", 1.." + MAX_BACKING + ")");
        }
        String name = utf8(s, OFF_NAME, nameLen, at + ": name");
        String backing = utf8(s, OFF_BACKING, backingLen, at + ": backing");
        if (nameProblem(name) != null) {
            throw new MediaCorruptException(at + ": " + nameProblem(name));
        }
        return new VolumeEntry(name, offset, size, s.get(JAVA_LONG_UNALIGNED, OFF_ID),
                s.get(JAVA_LONG_UNALIGNED, OFF_CREATED), backing);
    }

    private static String utf8(MemorySegment s, int off, int len, String what) throws MediaCorruptException {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(s.asSlice(off, len).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new MediaCorruptException(what + " is not valid UTF-8");
        }
    }
}
