package io.pmcache.cli;

import sun.misc.Signal;

/**
 * Turns SIGTERM and SIGINT into a clean stop (and so exit status 0) instead of the JVM's default
 * exit 143/130 through shutdown hooks.
 */
final class StopSignals {
    private StopSignals() {
    }

    static void onTermOrInt(Runnable stop) {
        for (String name : new String[] {"TERM", "INT"}) {
            Signal.handle(new Signal(name), s -> stop.run());
        }
    }
}
