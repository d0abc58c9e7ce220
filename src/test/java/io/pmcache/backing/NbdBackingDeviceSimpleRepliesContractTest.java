package io.pmcache.backing;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The contract against a server that refuses structured replies ({@code nbdkit --no-sr}): simple replies only. */
class NbdBackingDeviceSimpleRepliesContractTest extends NbdBackingDeviceContractTest {
    @Override
    protected String[] server(long size) {
        return new String[] {"--no-sr", "memory", String.valueOf(size)};
    }

    @Test
    void theClientRunsWithSimpleReplies() throws Exception {
        NbdBackingDevice d = (NbdBackingDevice) open(deviceSize());
        assertThat(d.info().structuredReplies()).isFalse();
    }
}
