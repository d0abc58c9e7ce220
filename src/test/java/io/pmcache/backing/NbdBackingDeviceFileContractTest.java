package io.pmcache.backing;

/** The contract against {@code nbdkit file} (a sparse file; its content survives the client's reopen). */
class NbdBackingDeviceFileContractTest extends NbdBackingDeviceContractTest {
    private int files;

    @Override
    protected String[] server(long size) {
        try {
            java.nio.file.Path f = dir.resolve("remote-" + (++files) + ".img");
            try (var raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
                raf.setLength(size);
            }
            return new String[] {"file", f.toString()};
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
