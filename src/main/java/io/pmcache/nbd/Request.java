package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import java.nio.ByteBuffer;

/**
 * One transmission-phase request header, decoded. {@code length} is the unsigned 32-bit field.
 *
 * @see NbdConstants the wire layout
 */
record Request(int flags, int type, long handle, long offset, long length) {

    /** Decodes the 28 bytes at {@code header}'s position; a bad magic breaks the connection. */
    static Request decode(ByteBuffer header) throws ProtocolException {
        int magic = header.getInt();
        if (magic != NBD_REQUEST_MAGIC) {
            throw new ProtocolException("bad request magic 0x" + Integer.toHexString(magic));
        }
        int flags = Short.toUnsignedInt(header.getShort());
        int type = Short.toUnsignedInt(header.getShort());
        long handle = header.getLong();
        long offset = header.getLong();
        long length = Integer.toUnsignedLong(header.getInt());
        return new Request(flags, type, handle, offset, length);
    }

    boolean fua() {
        return (flags & NBD_CMD_FLAG_FUA) != 0;
    }

    boolean hasPayload() {
        return type == NBD_CMD_WRITE;
    }

    @Override
    public String toString() {
        return commandName(type) + " flags=0x" + Integer.toHexString(flags) + " offset=" + offset
                + " length=" + length;
    }
}
