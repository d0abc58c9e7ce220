package io.pmcache.media;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(RandomSeed.class)
class PowerCutMediumTest {

    private static final ValueLayout.OfLong WORD = ValueLayout.JAVA_LONG;

    @Test
    void persistedDataAlwaysSurvivesACut(Seed seed) {
        SplittableRandom r = seed.random();
        try (PowerCutMedium m = PowerCutMedium.create(1 << 16)) {
            byte[] data = new byte[5000];
            r.nextBytes(data);
            MemorySegment.copy(data, 0, m.segment(), ValueLayout.JAVA_BYTE, 1234, data.length);
            m.persist(1234, data.length);
            for (int i = 0; i < 20; i++) {
                try (PowerCutMedium cut = m.cut(r.nextLong())) {
                    assertThat(cut.segment().asSlice(1234, data.length).toArray(ValueLayout.JAVA_BYTE))
                            .as("%s cut %d", seed, i).isEqualTo(data);
                }
            }
        }
    }

    @Test
    void persistWidensToWholeLines() {
        try (PowerCutMedium m = PowerCutMedium.create(4096)) {
            m.segment().fill((byte) 1);
            m.persist(70, 1);
            try (PowerCutMedium cut = m.cut(1)) {
                // Line [64, 128) is persisted as a whole; no other line was.
                assertThat(cut.persistedImage().asSlice(64, 64).toArray(ValueLayout.JAVA_BYTE)).containsOnly(1);
                assertThat(m.persistedImage().get(ValueLayout.JAVA_BYTE, 63)).isZero();
                assertThat(m.persistedImage().get(ValueLayout.JAVA_BYTE, 128)).isZero();
                assertThat(m.unpersistedWords()).isEqualTo(4096 / 8 - 8);
            }
        }
    }

    @Test
    void unpersistedWordsSometimesSurviveAndSometimesNot(Seed seed) {
        SplittableRandom r = seed.random();
        try (PowerCutMedium m = PowerCutMedium.create(1 << 12)) {
            m.segment().set(WORD, 512, -1L);
            assertThat(m.unpersistedWords()).isEqualTo(1);
            int survived = 0;
            int runs = 200;
            for (int i = 0; i < runs; i++) {
                try (PowerCutMedium cut = m.cut(r.nextLong())) {
                    long v = cut.segment().get(WORD, 512);
                    assertThat(v).as("%s", seed).isIn(0L, -1L);
                    survived += v == -1L ? 1 : 0;
                    assertThat(cut.unpersistedWords()).isZero();
                }
            }
            // Binomial(200, 1/2): outside [50, 150] has probability < 1e-12.
            assertThat(survived).as("%s", seed).isBetween(50, 150);
        }
    }

    @Test
    void aCutIsDeterministicForASeed(Seed seed) {
        try (PowerCutMedium m = PowerCutMedium.create(1 << 16)) {
            fillRandomWords(m, seed.random(), 500);
            try (PowerCutMedium a = m.cut(seed.value()); PowerCutMedium b = m.cut(seed.value())) {
                assertThat(a.segment().mismatch(b.segment())).as("%s", seed).isEqualTo(-1);
            }
        }
    }

    @Test
    void wordsAreNeverTorn(Seed seed) {
        SplittableRandom r = seed.random();
        int size = 1 << 16;
        try (PowerCutMedium m = PowerCutMedium.create(size)) {
            // Old generation: every word is 0x0101..., persisted. New generation: 0x0202..., not persisted.
            m.segment().fill((byte) 1);
            m.persist(0, size);
            m.segment().fill((byte) 2);
            assertThat(m.unpersistedWords()).isEqualTo(size / 8);
            for (int i = 0; i < 10; i++) {
                try (PowerCutMedium cut = m.cut(r.nextLong())) {
                    int newWords = 0;
                    for (long off = 0; off < size; off += 8) {
                        long v = cut.segment().get(WORD, off);
                        assertThat(v).as("%s word at %d", seed, off).isIn(0x0101010101010101L, 0x0202020202020202L);
                        newWords += v == 0x0202020202020202L ? 1 : 0;
                    }
                    assertThat(newWords).as("%s", seed).isStrictlyBetween(0, size / 8);
                }
            }
        }
    }

    @Test
    void aCutOfAnOddSizedMediumHandlesTheTrailingPartialWord() {
        try (PowerCutMedium m = PowerCutMedium.create(4096 + 3)) {
            m.segment().asSlice(4096, 3).fill((byte) 9);
            assertThat(m.unpersistedWords()).isEqualTo(1);
            boolean sawOld = false;
            boolean sawNew = false;
            for (long s = 0; s < 64 && !(sawOld && sawNew); s++) {
                try (PowerCutMedium cut = m.cut(s)) {
                    byte[] tail = cut.segment().asSlice(4096, 3).toArray(ValueLayout.JAVA_BYTE);
                    assertThat(tail).satisfiesAnyOf(t -> assertThat(t).containsOnly(0), t -> assertThat(t).containsOnly(9));
                    sawOld |= tail[0] == 0;
                    sawNew |= tail[0] == 9;
                }
            }
            assertThat(sawOld && sawNew).isTrue();
        }
    }

    @Test
    void crashKeepsEverythingLive(Seed seed) {
        try (PowerCutMedium m = PowerCutMedium.create(1 << 16)) {
            fillRandomWords(m, seed.random(), 1000);
            try (PowerCutMedium crashed = m.crash()) {
                assertThat(crashed.segment().mismatch(m.segment())).as("%s", seed).isEqualTo(-1);
                assertThat(crashed.unpersistedWords()).isZero();
            }
        }
    }

    @Test
    void copyKeepsBothImages(Seed seed) {
        try (PowerCutMedium m = PowerCutMedium.create(1 << 14)) {
            fillRandomWords(m, seed.random(), 300);
            m.persist(0, 4096);
            try (PowerCutMedium c = m.copy()) {
                assertThat(c.segment().mismatch(m.segment())).isEqualTo(-1);
                assertThat(c.persistedImage().mismatch(m.persistedImage())).isEqualTo(-1);
                assertThat(c.unpersistedWords()).isEqualTo(m.unpersistedWords());
            }
        }
    }

    @Test
    void ofImageIsFullyPersisted() {
        byte[] image = new byte[1000];
        image[999] = 42;
        try (PowerCutMedium m = PowerCutMedium.of(image); PowerCutMedium cut = m.cut(7)) {
            assertThat(m.unpersistedWords()).isZero();
            assertThat(cut.segment().get(ValueLayout.JAVA_BYTE, 999)).isEqualTo((byte) 42);
        }
    }

    @Test
    @org.junit.jupiter.api.Timeout(120) // a hang guard, not a speed check (speed lives in benchmarks)
    void cutOfALargeMediumKeepsPersistedWordsAndNothingForeign() {
        long size = 128L << 20;
        try (PowerCutMedium m = PowerCutMedium.create(size)) {
            for (long off = 0; off < size; off += 1 << 20) {
                m.segment().set(WORD, off, off + 1);
                if ((off >> 20) % 2 == 0) {
                    m.persist(off, 8);
                }
            }
            try (PowerCutMedium cut = m.cut(3)) {
                assertThat(cut.size()).isEqualTo(size);
                for (long off = 0; off < size; off += 1 << 20) {
                    long v = cut.segment().get(WORD, off);
                    if ((off >> 20) % 2 == 0) {
                        assertThat(v).as("persisted word at %d", off).isEqualTo(off + 1);
                    } else {
                        assertThat(v).as("unpersisted word at %d: old or new", off).isIn(0L, off + 1);
                    }
                }
            }
        }
    }

    @Test
    void anObserverSeesEachNonEmptyPersistInOrderBeforeItTakesEffect() {
        try (PowerCutMedium m = PowerCutMedium.create(4096)) {
            java.util.List<String> seen = new java.util.ArrayList<>();
            m.observePersists((medium, index, offset, length) -> {
                // The persisted image does not hold this persist yet: a cut here loses the store.
                try (PowerCutMedium before = medium.cut(index)) {
                    seen.add(index + ":" + offset + "+" + length + "=" + before.persistedImage().get(WORD, offset));
                }
            });
            m.segment().set(WORD, 128, 7L);
            m.persist(128, 8);
            m.persist(0, 0); // empty: not seen, not counted
            m.segment().set(WORD, 256, 9L);
            m.persist(256, 8);
            assertThat(seen).containsExactly("0:128+8=0", "1:256+8=0");
            assertThat(m.persists()).isEqualTo(2);
            m.observePersists(null);
            m.persist(128, 8);
            assertThat(seen).hasSize(2);
            assertThat(m.persists()).isEqualTo(3);
        }
    }

    private static void fillRandomWords(PowerCutMedium m, SplittableRandom r, int count) {
        for (int i = 0; i < count; i++) {
            m.segment().set(WORD, r.nextLong(m.size() / 8) * 8, r.nextLong());
        }
    }
}
