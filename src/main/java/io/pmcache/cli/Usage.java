package io.pmcache.cli;

import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;

/**
 * Usage errors found after parsing: what the command line alone shows to be wrong (a value out
 * of range, a missing or conflicting option). Thrown from a command's {@code call()}, picocli
 * prints the message and the usage and exits 2, like its own parse errors. The rules themselves
 * stay with their owners ({@code CacheOptions}, {@code FormatOptions}, ...): {@link #check} turns
 * their {@link IllegalArgumentException} into a usage error.
 */
final class Usage {
    private Usage() {
    }

    static ParameterException error(CommandSpec spec, String message) {
        return new ParameterException(spec.commandLine(), message);
    }

    /** Runs {@code rule}; its IllegalArgumentException becomes a usage error naming {@code option}. */
    static void check(CommandSpec spec, String option, Runnable rule) {
        try {
            rule.run();
        } catch (IllegalArgumentException e) {
            throw error(spec, "invalid value for " + option + ": " + e.getMessage());
        }
    }
}
