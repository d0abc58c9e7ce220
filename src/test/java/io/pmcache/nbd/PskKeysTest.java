package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/** nbdkit's {@code --tls-psk} file: what is accepted, and bad input refused with the file and line named. */
class PskKeysTest {
    private static final String KEY = "f71c86d72e6d307f0b52c65523b58dbd9c97ac09b5d6e980058e27445f95deb8";
    private static final Path FILE = Path.of("/etc/pmcache/keys.psk");

    @TempDir
    Path dir;

    private static PskKeys parse(String text) throws IOException {
        return PskKeys.parse(FILE, text.lines().toList());
    }

    private static void refused(String text, String message) {
        assertThatThrownBy(() -> parse(text)).isInstanceOf(IOException.class).hasMessage(message);
    }

    @Test
    void psktoolsFormatWithSeveralUsers() throws Exception {
        PskKeys keys = parse("alice:" + KEY + "\nbob:" + KEY.toUpperCase() + "\n");
        assertThat(keys.users()).containsExactlyInAnyOrder("alice", "bob");
        assertThat(keys.key("alice")).isEqualTo(HexFormat.of().parseHex(KEY));
        assertThat(keys.key("bob")).isEqualTo(HexFormat.of().parseHex(KEY));
        assertThat(keys.key("carol")).isNull();
        assertThat(keys.key("alice:")).isNull();
    }

    @Test
    void blankLinesCommentsCrlfAndTrailingBlanksAreIgnored() throws Exception {
        PskKeys keys = parse("# made by psktool\r\n\r\nalice:" + KEY + " \r\n\n");
        assertThat(keys.users()).containsExactly("alice");
        assertThat(keys.key("alice")).hasSize(32);
    }

    @Test
    void theUserNameIsEverythingBeforeTheFirstColon() throws Exception {
        assertThat(parse("first last@example.com:" + KEY).users()).containsExactly("first last@example.com");
    }

    @Test
    void badLinesAreNamedByFileAndLine() {
        refused("alice:" + KEY + "\nbob " + KEY, FILE + ":2: no ':' (expected username:hexkey)");
        refused(":" + KEY, FILE + ":1: empty user name before ':'");
        refused("alice:", FILE + ":1: empty key after ':'");
        refused("alice:" + KEY.substring(0, 10) + "zz" + KEY.substring(12),
                FILE + ":1: column 17: 'z' is not a hex digit (the key is hex, as psktool writes it)");
        refused("alice:" + KEY + "0", FILE + ":1: odd number of hex digits in the key (65)");
        refused("alice:0123456789abcdef", FILE + ":1: key of 8 bytes; at least 16 are needed "
                + "(psktool -u USER -p FILE makes 32)");
        refused("alice:" + KEY + "\n\nalice:" + KEY, FILE + ":3: user 'alice' again (first on line 1)");
        refused("alice:0x" + KEY, FILE + ":1: column 8: 'x' is not a hex digit (the key is hex, as psktool writes it)");
    }

    @Test
    void aFileWithoutKeysIsRefused() {
        refused("", FILE + ": no keys (expected username:hexkey lines, as psktool writes)");
        refused("# nobody yet\n\n", FILE + ": no keys (expected username:hexkey lines, as psktool writes)");
    }

    @Test
    void controlCharactersInANameAreEscapedInTheError() {
        refused("al\u001bice:" + KEY + "\nal\u001bice:" + KEY, FILE + ":2: user 'al\\u001bice' again (first on line 1)");
    }

    // --- the file itself ---

    private Path file(String name, String text, String mode) throws IOException {
        Path f = Files.writeString(dir.resolve(name), text);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
        return f;
    }

    @Test
    void missingDirectoryBinaryOrHugeFilesAreRefusedByName() throws Exception {
        Path missing = dir.resolve("nope.psk");
        assertThatThrownBy(() -> PskKeyFile.open(missing)).hasMessage(missing
                + ": the PSK file does not exist (make one with: psktool -u USER -p " + missing + ")");
        assertThatThrownBy(() -> PskKeyFile.open(dir))
                .hasMessage(dir + ": is a directory, not a PSK file (username:hexkey lines)");
        Path binary = Files.write(dir.resolve("bin.psk"), new byte[] {'a', ':', (byte) 0xff, (byte) 0xfe});
        assertThatThrownBy(() -> PskKeyFile.open(binary))
                .hasMessage(binary + ": not UTF-8 text (expected username:hexkey lines)");
        Path huge = dir.resolve("disk.img");
        try (var ch = java.nio.channels.FileChannel.open(huge, java.nio.file.StandardOpenOption.CREATE_NEW,
                java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(new byte[1]), PskKeyFile.MAX_BYTES);
        }
        assertThatThrownBy(() -> PskKeyFile.open(huge))
                .hasMessage(huge + ": " + (PskKeyFile.MAX_BYTES + 1) + " bytes, too big for a PSK file (username:hexkey lines)");
        Path bad = file("bad.psk", "alice:" + KEY + "\nbob\n", "rw-------");
        assertThatThrownBy(() -> PskKeyFile.open(bad)).hasMessage(bad + ":2: no ':' (expected username:hexkey)");
    }

    @Test
    void anUnreadableFileIsRefusedByName() throws Exception {
        assumeFalse("root".equals(System.getProperty("user.name")), "root reads any file");
        Path locked = file("locked.psk", "alice:" + KEY + "\n", "-w-------");
        assertThatThrownBy(() -> PskKeyFile.open(locked))
                .hasMessage(locked + ": cannot read the PSK file: permission denied");
    }

    @Test
    void aFileOthersCanReadIsUsedWithAWarning() throws Exception {
        Logger log = (Logger) LoggerFactory.getLogger(PskKeyFile.class);
        ListAppender<ILoggingEvent> events = new ListAppender<>();
        events.start();
        log.addAppender(events);
        try {
            PskKeyFile.open(file("private.psk", "alice:" + KEY + "\n", "rw-------"));
            assertThat(events.list).isEmpty();
            Path group = file("group.psk", "alice:" + KEY + "\n", "rw-r-----");
            assertThat(PskKeyFile.open(group).keys().users()).containsExactly("alice");
            Path world = file("world.psk", "alice:" + KEY + "\n", "rw-r--r--");
            PskKeyFile.open(world);
            List<String> warnings = events.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
            assertThat(warnings).containsExactly(
                    group + ": readable by its group (rw-r-----): anyone who can read it can connect as its users; "
                            + "chmod 600 " + group,
                    world + ": readable by every user (rw-r--r--): anyone who can read it can connect as its users; "
                            + "chmod 600 " + world);
        } finally {
            log.detachAppender(events);
        }
    }

    @Test
    void anEditedFileIsReadAgainAndABrokenOneRefusesEveryone() throws Exception {
        Path f = file("keys.psk", "alice:" + KEY + "\n", "rw-------");
        PskKeyFile keys = PskKeyFile.open(f);
        assertThat(keys.keys().users()).containsExactly("alice");
        Files.writeString(f, "alice:" + KEY + "\nbob:" + KEY + "\n");
        assertThat(keys.keys().users()).containsExactlyInAnyOrder("alice", "bob");
        Files.writeString(f, "bob:" + KEY + "\nalice=" + KEY + "\n");
        assertThatThrownBy(keys::keys).hasMessage(f + ":2: no ':' (expected username:hexkey)");
        assertThatThrownBy(keys::keys).hasMessage(f + ":2: no ':' (expected username:hexkey)");
        Files.delete(f);
        assertThatThrownBy(keys::keys).hasMessageContaining("the PSK file does not exist");
        Files.writeString(f, "carol:" + KEY + "\n");
        assertThat(keys.keys().users()).containsExactly("carol");
    }
}
