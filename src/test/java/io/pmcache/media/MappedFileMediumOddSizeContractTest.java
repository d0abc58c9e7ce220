package io.pmcache.media;

/** The medium contract on a size that is neither a page nor a word multiple. */
class MappedFileMediumOddSizeContractTest extends MappedFileMediumContractTest {
    @Override
    protected long mediumSize() {
        return 3 * 4096 + 1001;
    }
}
