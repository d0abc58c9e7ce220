package io.pmcache.testing;

import java.io.ByteArrayOutputStream;

/** Writes the little-endian fields {@link FuzzInput} reads: for building regression inputs. */
public final class FuzzOutput {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    public FuzzOutput u8(int v) {
        out.write(v);
        return this;
    }

    public FuzzOutput u16(int v) {
        return u8(v).u8(v >>> 8);
    }

    public FuzzOutput i32(int v) {
        return u16(v).u16(v >>> 16);
    }

    public FuzzOutput i64(long v) {
        return i32((int) v).i32((int) (v >>> 32));
    }

    public FuzzOutput bytes(byte[] b) {
        out.writeBytes(b);
        return this;
    }

    public byte[] toByteArray() {
        return out.toByteArray();
    }
}
