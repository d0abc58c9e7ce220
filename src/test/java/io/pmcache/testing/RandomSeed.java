package io.pmcache.testing;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

import org.opentest4j.TestAbortedException;

import java.util.SplittableRandom;

/**
 * JUnit extension that hands a test a {@link Seed} parameter and, when the test fails, names the
 * seed (on stderr and as a suppressed exception) so the run can be repeated with
 * {@code -Dpmcache.seed=<seed>}.
 */
public final class RandomSeed implements ParameterResolver, TestExecutionExceptionHandler {

    /** A test's seed. {@link #random()} gives a fresh generator from it. */
    public record Seed(long value) {
        public SplittableRandom random() {
            return new SplittableRandom(value);
        }

        @Override
        public String toString() {
            return "seed=" + value;
        }
    }

    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(RandomSeed.class);

    @Override
    public boolean supportsParameter(ParameterContext p, ExtensionContext e) {
        return p.getParameter().getType() == Seed.class;
    }

    @Override
    public Object resolveParameter(ParameterContext p, ExtensionContext e) {
        Long fixed = Long.getLong("pmcache.seed");
        Seed seed = new Seed(fixed != null ? fixed : new SplittableRandom().nextLong());
        e.getStore(NS).put("seed", seed);
        return seed;
    }

    @Override
    public void handleTestExecutionException(ExtensionContext e, Throwable t) throws Throwable {
        Seed seed = e.getStore(NS).get("seed", Seed.class);
        if (seed != null && !(t instanceof TestAbortedException)) {
            String msg = e.getDisplayName() + " failed with " + seed + "; repeat with -Dpmcache.seed=" + seed.value();
            System.err.println(msg);
            t.addSuppressed(new Throwable(msg, null, false, false) { });
        }
        throw t;
    }
}
