package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/** One WARN per interval however often the work fails, each answered by at most one recovery line. */
class RecurringFailureLogTest {
    private static final long SECOND = 1_000_000_000L;

    @Test
    void oneWarnPerIntervalWithTheCountOfTheOthersAndOneRecoveryPerWarn() {
        Logger logger = (Logger) LoggerFactory.getLogger("RecurringFailureLogTest");
        logger.setLevel(Level.DEBUG);
        ListAppender<ILoggingEvent> events = new ListAppender<>();
        events.start();
        logger.addAppender(events);
        AtomicLong now = new AtomicLong(1000 * SECOND);
        RecurringFailureLog failures = new RecurringFailureLog(logger, now::get);
        IOException eio = new IOException("EIO");

        failures.failed("writeback of 3 keys", eio); // first: WARN
        for (int i = 0; i < 99; i++) {               // 99 more within 10 s, alternating with successes
            now.addAndGet(SECOND / 10);
            failures.succeeded("writeback");
            failures.failed("writeback of 3 keys", eio);
        }
        now.addAndGet(RecurringFailureLog.INTERVAL_MILLIS * 1_000_000);
        failures.failed("writeback of 4 keys", eio); // an interval later: a WARN that counts the 99
        failures.succeeded("writeback");
        failures.succeeded("writeback");             // nothing to recover from

        List<ILoggingEvent> warns = events.list.stream().filter(e -> e.getLevel() == Level.WARN).toList();
        List<ILoggingEvent> infos = events.list.stream().filter(e -> e.getLevel() == Level.INFO).toList();
        assertThat(warns).hasSize(2);
        assertThat(warns.get(0).getFormattedMessage()).isEqualTo(
                "writeback of 3 keys failed, will retry: java.io.IOException: EIO");
        assertThat(warns.get(1).getFormattedMessage()).startsWith("writeback of 4 keys failed")
                .contains("(99 more failures not logged in the last 39 s)");
        assertThat(infos).extracting(ILoggingEvent::getFormattedMessage).containsExactly(
                "writeback works again after 1 failures", "writeback works again after 2 failures");
        assertThat(events.list.stream().filter(e -> e.getLevel() == Level.DEBUG)).hasSize(99);
        logger.detachAppender(events);
    }
}
