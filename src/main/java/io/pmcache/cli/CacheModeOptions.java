package io.pmcache.cli;

import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheMode;
import java.io.IOException;
import org.slf4j.Logger;

/** {@code serve --cache-mode} and {@code --sequential-cutoff} applied to an opened cache, before serving. */
final class CacheModeOptions {
    private CacheModeOptions() {
    }

    /** {@code mode} null: keep the stored mode. Leaving writeback drains first, with progress. */
    static void apply(Cache c, CacheMode mode, long cutoff, Logger log) throws IOException {
        c.setSequentialCutoff(cutoff);
        if (mode != null && mode != c.cacheMode()) {
            long dirty = c.status().dirtyBytes();
            if (mode != CacheMode.WRITEBACK && dirty > 0) {
                log.info("cache mode {} -> {}: writing back {} dirty first", c.cacheMode().label(), mode.label(),
                        SizeConverter.human(dirty));
            }
            try (ProgressBar bar = new ProgressBar("writing back", log, SizeConverter::human)) {
                long[] total = {dirty};
                c.setCacheMode(mode, left -> {
                    total[0] = Math.max(total[0], left);
                    bar.update(total[0] - left, total[0]);
                });
            }
        }
        log.info("cache mode {}, sequential cutoff {}", c.cacheMode().label(),
                c.sequentialCutoff() == 0 ? "off" : SizeConverter.human(c.sequentialCutoff()));
    }
}
