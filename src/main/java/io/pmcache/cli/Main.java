package io.pmcache.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code pmcache} command. */
@Command(name = "pmcache", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "A persistent-memory write-back cache for block devices, served over NBD.",
        subcommands = {FormatCommand.class, ServeCommand.class, StatusCommand.class, CheckCommand.class,
            DetachCommand.class, SetCommand.class, CommandLine.HelpCommand.class})
public final class Main {

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (tests run it in-process). */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof java.io.IOException || ex instanceof IllegalArgumentException
                    || ex instanceof IllegalStateException) {
                cmd.getErr().println("pmcache: error: " + ex.getMessage());
                return 1;
            }
            throw ex;
        });
        return cl;
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
