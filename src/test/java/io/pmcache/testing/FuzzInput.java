package io.pmcache.testing;

import java.util.Arrays;

/**
 * Reads a fuzzer's raw bytes as little-endian fields, front to back; past the end every field
 * reads as zero. Fuzz targets in this project take {@code byte[]} and lay their input out as fixed
 * fields (documented in each target) instead of using Jazzer's {@code FuzzedDataProvider}: a fixed
 * layout suits libFuzzer's byte mutations, and regression inputs can be written by hand or by a
 * program ({@link FuzzOutput}) without knowing how a data provider spends its bytes.
 */
public final class FuzzInput {
    private final byte[] data;
    private int pos;

    public FuzzInput(byte[] data) {
        this.data = data;
    }

    public boolean hasRemaining() {
        return pos < data.length;
    }

    public int remaining() {
        return Math.max(0, data.length - pos);
    }

    public int u8() {
        int v = pos < data.length ? data[pos] & 0xff : 0;
        pos++;
        return v;
    }

    public int u16() {
        return u8() | u8() << 8;
    }

    public int i32() {
        return u16() | u16() << 16;
    }

    public long u32() {
        return Integer.toUnsignedLong(i32());
    }

    public long i64() {
        return u32() | (long) i32() << 32;
    }

    /** The next {@code n} bytes, zero-padded past the end. */
    public byte[] bytes(int n) {
        byte[] b = new byte[n];
        int have = Math.max(0, Math.min(n, data.length - pos));
        if (have > 0) {
            System.arraycopy(data, pos, b, 0, have);
        }
        pos += n;
        return b;
    }

    /** Everything not read yet. */
    public byte[] rest() {
        return pos >= data.length ? new byte[0] : Arrays.copyOfRange(data, pos, data.length);
    }
}
