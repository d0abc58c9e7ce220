package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.cache.CacheOptions;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code pmcache set KNOB VALUE --admin HOST:PORT}: changes a run-time knob of a running server. */
@Command(name = "set", mixinStandardHelpOptions = true,
        description = "Change a run-time knob of a running server through its admin endpoint.",
        subcommands = {SetCommand.GcPercent.class, SetCommand.WritebackTarget.class, SetCommand.WritebackMinRate.class,
            SetCommand.WritebackMaxRate.class, SetCommand.WritebackIdleDelay.class, SetCommand.WritebackFullSpeed.class,
            SetCacheMode.class, SetCacheMode.SequentialCutoff.class})
public final class SetCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "name a knob: gc-percent, "
                + "writeback-target, writeback-min-rate, writeback-max-rate, writeback-idle-delay, writeback-full-speed, "
                + "cache-mode, sequential-cutoff");
    }

    @Command(name = "gc-percent", mixinStandardHelpOptions = true,
            description = {"Start garbage collection when more than N%% of the segments are used (0..90). "
                    + "Persisted in the cache; takes effect at once."})
    static final class GcPercent implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Parameters(paramLabel = "N", description = "New gc_percent, 0..90.")
        int value;

        @Mixin
        KnobTarget target;

        @Override
        public Integer call() throws Exception {
            Usage.check(spec, "N", () -> CacheOptions.checkGcPercent(value));
            AdminClient.of(spec, target.admin).postOrThrow(target.path("/gc-percent"), Integer.toString(value),
                    "gc_percent " + value);
            spec.commandLine().getOut().println("gc_percent is now " + value);
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    /**
     * A writeback pacing knob: posts {@code {"KNOB": VALUE}} to {@code /writeback}; the server
     * validates it against the other knobs in force and prints them all.
     */
    abstract static class WritebackKnob implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        KnobTarget target;

        abstract String knob();

        abstract Object value();

        @Override
        public Integer call() throws Exception {
            AdminClient.Response r = AdminClient.of(spec, target.admin).postOrThrow(target.path("/writeback"),
                    Json.write(Map.of(knob(), value())), knob() + " " + value());
            spec.commandLine().getOut().print("writeback pacing is now " + r.body());
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    @Command(name = "writeback-target", mixinStandardHelpOptions = true,
            description = {"Keep about P%% of the cache dirty: writeback is paced by a controller on the dirty data "
                    + "above this target (0..90; default 10). Not persisted."})
    static final class WritebackTarget extends WritebackKnob {
        @Parameters(paramLabel = "P", description = "Dirty target, percent of the cache, 0..90.")
        int value;

        String knob() {
            return io.pmcache.admin.WritebackKnobs.TARGET;
        }

        Object value() {
            return value;
        }
    }

    @Command(name = "writeback-min-rate", mixinStandardHelpOptions = true,
            description = {"The paced writeback rate never goes below SIZE per second (e.g. 4K, 1M; default 4K). "
                    + "Not persisted."})
    static final class WritebackMinRate extends WritebackKnob {
        @Parameters(paramLabel = "SIZE", converter = SizeConverter.class, description = "Bytes per second.")
        long value;

        String knob() {
            return io.pmcache.admin.WritebackKnobs.MIN_RATE;
        }

        Object value() {
            return value;
        }
    }

    @Command(name = "writeback-max-rate", mixinStandardHelpOptions = true,
            description = {"The paced writeback rate never goes above SIZE per second; 0: no limit (the default). "
                    + "Full speed (pressure, idle, drain) ignores it. Not persisted."})
    static final class WritebackMaxRate extends WritebackKnob {
        @Parameters(paramLabel = "SIZE", converter = SizeConverter.class, description = "Bytes per second, 0: no limit.")
        long value;

        String knob() {
            return io.pmcache.admin.WritebackKnobs.MAX_RATE;
        }

        Object value() {
            return value;
        }
    }

    @Command(name = "writeback-idle-delay", mixinStandardHelpOptions = true,
            description = {"After MS milliseconds without foreground I/O, write back at full speed (default 2000). "
                    + "Not persisted."})
    static final class WritebackIdleDelay extends WritebackKnob {
        @Parameters(paramLabel = "MS", description = "Milliseconds, 0..86400000.")
        long value;

        String knob() {
            return io.pmcache.admin.WritebackKnobs.IDLE_DELAY;
        }

        Object value() {
            return value;
        }
    }

    @Command(name = "writeback-full-speed", mixinStandardHelpOptions = true,
            description = {"on: write back at full speed, whatever the dirty data, until set off again. "
                    + "Not persisted."})
    static final class WritebackFullSpeed extends WritebackKnob {
        @Parameters(paramLabel = "on|off", description = "on or off.")
        String value;

        String knob() {
            return io.pmcache.admin.WritebackKnobs.FULL_SPEED;
        }

        Object value() {
            return switch (value.toLowerCase(java.util.Locale.ROOT)) {
                case "on", "true", "yes" -> true;
                case "off", "false", "no" -> false;
                default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "writeback-full-speed wants on or off, got '" + value + "'");
            };
        }
    }
}
