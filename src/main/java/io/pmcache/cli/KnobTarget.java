package io.pmcache.cli;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine.Option;

/** Where {@code pmcache set KNOB} sends its change: the running server, and which of its volumes. */
final class KnobTarget {
    @Option(names = "--admin", paramLabel = "HOST:PORT", required = true, description = AdminClient.OPTION_HELP)
    String admin;

    @Option(names = "--volume", paramLabel = "NAME",
            description = "The volume whose knob to set (a server of volumes; default: the only one served).")
    String volume;

    /** {@code path}, with {@code ?volume=NAME} when a volume is named. */
    String path(String path) {
        return path(path, volume);
    }

    /** {@code path}, with {@code ?volume=NAME} when {@code volume} is not null. */
    static String path(String path, String volume) {
        return volume == null ? path : path + "?volume=" + URLEncoder.encode(volume, StandardCharsets.UTF_8);
    }
}
