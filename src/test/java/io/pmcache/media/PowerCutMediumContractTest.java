package io.pmcache.media;

class PowerCutMediumContractTest extends MediumContractTest {
    @Override
    protected Medium newMedium(long size) {
        return PowerCutMedium.create(size);
    }
}
