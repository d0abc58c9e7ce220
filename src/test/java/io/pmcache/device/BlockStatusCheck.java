package io.pmcache.device;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.List;

/**
 * Checks a {@link BlockDevice#blockStatus} answer against what the device must read as (a byte
 * model): well formed (consecutive from the offset, no empty extent, within the range, at most
 * {@code maxExtents}), and ZERO or HOLE only where every byte of the model is zero.
 */
public final class BlockStatusCheck {
    private BlockStatusCheck() {
    }

    /** Queries {@code d} and checks the answer; returns it. */
    public static List<BlockStatus> check(BlockDevice d, long offset, long length, int maxExtents, byte[] model,
                                          Object context) throws IOException {
        List<BlockStatus> got = d.blockStatus(offset, length, maxExtents);
        String what = context + ": block status of [" + offset + ", +" + length + ") max " + maxExtents + " = " + got;
        assertThat(got).as(what).isNotEmpty().hasSizeLessThanOrEqualTo(maxExtents);
        long cursor = offset;
        for (BlockStatus s : got) {
            assertThat(s.offset()).as("%s: extent start", what).isEqualTo(cursor);
            assertThat(s.length()).as("%s: extent length", what).isPositive();
            cursor = s.end();
            assertThat(cursor).as("%s: extent end", what).isLessThanOrEqualTo(offset + length);
            if (s.kind() != BlockStatus.Kind.DATA) {
                long bad = firstNonZero(model, s.offset(), s.end());
                if (bad >= 0) {
                    throw new AssertionError(what + ": " + s + " is reported " + s.kind()
                            + " but byte " + bad + " reads as " + model[(int) bad]);
                }
            }
        }
        return got;
    }

    private static final byte[] ZEROS = new byte[1 << 20];

    /** The first byte in {@code [from, to)} of {@code model} that is not zero, or -1. */
    static long firstNonZero(byte[] model, long from, long to) {
        for (long at = from; at < to; at += ZEROS.length) {
            int n = (int) Math.min(ZEROS.length, to - at);
            int m = java.util.Arrays.mismatch(model, (int) at, (int) at + n, ZEROS, 0, n);
            if (m >= 0) {
                return at + m;
            }
        }
        return -1;
    }

    /** Bytes of {@code answer} reported as {@code kind}. */
    public static long bytes(List<BlockStatus> answer, BlockStatus.Kind kind) {
        return answer.stream().filter(s -> s.kind() == kind).mapToLong(BlockStatus::length).sum();
    }
}
