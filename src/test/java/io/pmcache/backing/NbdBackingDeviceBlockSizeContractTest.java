package io.pmcache.backing;

/**
 * The contract against a server that enforces a 4 KiB minimum block size and a 64 KiB maximum
 * (nbdkit's blocksize-policy filter answers misaligned requests with EINVAL), so every unaligned
 * read and write goes through the client's read-modify-write, and large ones are cut into pieces.
 * No write-zeroes and no multi-conn either: zeroing falls back to writes, one connection.
 */
class NbdBackingDeviceBlockSizeContractTest extends NbdBackingDeviceContractTest {
    @Override
    protected String[] server(long size) {
        return new String[] {"--filter=blocksize-policy", "--filter=nozero", "--filter=multi-conn", "memory",
            String.valueOf(size), "blocksize-minimum=4096", "blocksize-preferred=4096",
            "blocksize-maximum=65536", "blocksize-error-policy=error", "multi-conn-mode=disable"};
    }
}
