package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class RequestValidatorTest {
    private static final long SIZE = 1 << 20;

    private static RequestValidator validator(boolean readOnly, boolean baseAllocation) {
        Export export = new Export("e", "", new MemoryBlockDevice(SIZE), readOnly);
        return new RequestValidator(new Session(export, true, baseAllocation));
    }

    private static Request req(int flags, int type, long offset, long length) {
        return new Request(flags, type, 1, offset, length);
    }

    @Test
    void validRequestsPass() {
        RequestValidator v = validator(false, true);
        assertThat(v.validate(req(0, NBD_CMD_READ, 0, SIZE))).isNull();
        assertThat(v.validate(req(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, SIZE - 1, 1))).isNull();
        assertThat(v.validate(req(0, NBD_CMD_FLUSH, 0, 0))).isNull();
        assertThat(v.validate(req(NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES, 0, SIZE))).isNull();
        assertThat(v.validate(req(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 512, 512))).isNull();
        assertThat(v.validate(req(0, NBD_CMD_CACHE, 0, SIZE))).isNull();
        assertThat(v.validate(req(0, NBD_CMD_TRIM, 3, 7))).as("unaligned is fine").isNull();
    }

    @Test
    void eachRuleHasItsErrorValue() {
        RequestValidator v = validator(false, false);
        assertThat(v.validate(req(0, 99, 0, 1))).isEqualTo(Rejection.UNKNOWN_COMMAND);
        assertThat(v.validate(req(1 << 15, NBD_CMD_WRITE, 0, 1))).isEqualTo(Rejection.UNSUPPORTED_FLAGS);
        assertThat(v.validate(req(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_READ, 0, 1))).isEqualTo(Rejection.UNSUPPORTED_FLAGS);
        assertThat(v.validate(req(0, NBD_CMD_READ, SIZE, 1))).isEqualTo(Rejection.BEYOND_END);
        assertThat(v.validate(req(0, NBD_CMD_READ, Long.MIN_VALUE, 1))).isEqualTo(Rejection.BEYOND_END);
        assertThat(v.validate(req(0, NBD_CMD_WRITE, SIZE - 1, 2))).isEqualTo(Rejection.NO_SPACE);
        assertThat(v.validate(req(0, NBD_CMD_WRITE_ZEROES, SIZE, 1))).isEqualTo(Rejection.NO_SPACE);
        assertThat(v.validate(req(0, NBD_CMD_TRIM, -1, 2))).as("ENOSPC is for writes only").isEqualTo(Rejection.BEYOND_END);
        assertThat(v.validate(req(0, NBD_CMD_TRIM, SIZE - 1, 2))).isEqualTo(Rejection.BEYOND_END);
        assertThat(v.validate(req(0, NBD_CMD_WRITE, 0, 0))).isEqualTo(Rejection.ZERO_LENGTH);
        assertThat(v.validate(req(0, NBD_CMD_READ, 0, MAX_PAYLOAD_SIZE + 1L))).isEqualTo(Rejection.TOO_LARGE);
        assertThat(v.validate(req(0, NBD_CMD_FLUSH, 1, 0))).isEqualTo(Rejection.FLUSH_RANGE);
        assertThat(v.validate(req(0, NBD_CMD_BLOCK_STATUS, 0, 512))).isEqualTo(Rejection.NO_META_CONTEXT);
        assertThat(v.validate(req(NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 0, 512))).isEqualTo(Rejection.FAST_ZERO);
        assertThat(Rejection.NO_SPACE.error).isEqualTo(NBD_ENOSPC);
        assertThat(Rejection.FAST_ZERO.error).isEqualTo(NBD_ENOTSUP);
    }

    @Test
    void readOnlyRefusesEveryWritingCommand() {
        RequestValidator v = validator(true, false);
        for (int type : new int[] {NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES}) {
            assertThat(v.validate(req(0, type, 0, 512))).isEqualTo(Rejection.READ_ONLY);
        }
        assertThat(Rejection.READ_ONLY.error).isEqualTo(NBD_EPERM);
        assertThat(v.validate(req(0, NBD_CMD_READ, 0, 512))).isNull();
        assertThat(v.validate(req(0, NBD_CMD_FLUSH, 0, 0))).isNull();
    }
}
