package io.pmcache.cli;

import io.pmcache.volume.Volume;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The one rule for removing a volume, offline and through the admin endpoint alike. */
final class VolumeRemoval {
    private static final Logger log = LoggerFactory.getLogger(VolumeRemoval.class);

    private VolumeRemoval() {
    }

    /**
     * Null when {@code v} may be removed, else why not. {@code dirty}: bytes not yet written back
     * (an upper bound is fine), or -1 when unknown (an unreadable cache). With {@code force} nothing
     * is refused, and what is lost is logged as a warning.
     */
    static String refusal(Volume v, long dirty, boolean force) {
        if (dirty == 0) {
            return null;
        }
        String what = dirty < 0 ? "an unreadable cache (its dirty data cannot be counted)"
                : "up to " + SizeConverter.human(dirty) + " not yet written back to " + v.backing();
        if (force) {
            log.warn("--force: removing volume {} with {}: that data is lost", v.name(), what);
            return null;
        }
        return "volume " + v.name() + " holds " + what + "; refusing to remove it (run `pmcache detach --volume "
                + v.name() + "` first to write it back, or --force to discard it)";
    }
}
