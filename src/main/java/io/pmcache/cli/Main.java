package io.pmcache.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code pmcache} command.
 *
 * <p>Exit status (docs/cli.md): 0 success; {@value #EXIT_FAILED} the command could not do its
 * job (one line {@code pmcache: error: ...} naming the file and the reason); 2 bad usage (what
 * the command line alone shows to be wrong: syntax, missing or conflicting options, values out of
 * range; picocli's own code); {@value CheckCommand#EXIT_CORRUPT} and
 * {@value CheckCommand#EXIT_WRONG_BACKING} from {@code check} only.
 */
@Command(name = "pmcache", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "A persistent-memory write-back cache for block devices, served over NBD.",
        subcommands = {FormatCommand.class, ServeCommand.class, StatusCommand.class, CheckCommand.class,
            DetachCommand.class, SetCommand.class, VolumeCommand.class, InvalidateCommand.class,
            CommandLine.HelpCommand.class})
public final class Main {
    static final int EXIT_FAILED = 1;

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (tests run it in-process). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        versionEverywhere(cl);
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof java.io.IOException || ex instanceof IllegalArgumentException
                    || ex instanceof IllegalStateException) {
                cmd.getErr().println("pmcache: error: " + Errors.describe(ex));
                return EXIT_FAILED;
            }
            throw ex;
        });
        return cl;
    }

    /** Every subcommand's {@code -V} prints the version (picocli gives subcommands no provider). */
    private static void versionEverywhere(CommandLine cl) {
        for (CommandLine sub : cl.getSubcommands().values()) {
            if (sub.getCommandSpec().versionProvider() == null) {
                sub.getCommandSpec().versionProvider(new Version());
            }
            versionEverywhere(sub);
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"pmcache " + (v != null ? v : "(development build)"),
                    "Java " + Runtime.version()};
        }
    }
}
