package io.pmcache.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * nbdkit's {@code --tls-psk} file as the server uses it: read and checked at start ({@link #open}),
 * so a bad file stops the server with the file and line named; then looked at again before every
 * TLS handshake ({@link #keys}) and re-read when its modification time, size or inode changed. That
 * is what nbdkit does (GnuTLS opens the file for every handshake): users are added or revoked by
 * editing the file, without a restart. A file that has become unreadable or invalid fails every PSK
 * handshake until it is fixed (the error is logged once per change): a half-edited file must not
 * keep a revoked key alive.
 *
 * <p>A file that group or others may read gets a warning: whoever reads it can connect as its users.
 */
public final class PskKeyFile {
    private static final Logger log = LoggerFactory.getLogger(PskKeyFile.class);
    /** Bigger is surely not a key file (say, a disk image given by mistake). */
    static final long MAX_BYTES = 1 << 20;

    private final Path file;
    /** Guarded by this: the last version looked at, and what it gave. */
    private Object version;
    private PskKeys keys;
    private IOException error;

    private PskKeyFile(Path file) {
        this.file = file;
    }

    /** Reads and checks {@code file}; IOException naming the file (and line) if it is unusable. */
    public static PskKeyFile open(Path file) throws IOException {
        PskKeyFile f = new PskKeyFile(Objects.requireNonNull(file, "file"));
        f.keys();
        return f;
    }

    public Path path() {
        return file;
    }

    /** The current keys, re-read if the file changed; IOException if it is now unusable. */
    synchronized PskKeys keys() throws IOException {
        Object now;
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
            now = List.of(a.lastModifiedTime(), a.size(), String.valueOf(a.fileKey()));
        } catch (IOException e) {
            now = e.getClass();
        }
        if (!now.equals(version)) {
            boolean running = version != null;
            version = now;
            try {
                keys = read(file);
                error = null;
                if (running) {
                    log.info("{}: re-read, {}", file, keys);
                }
            } catch (IOException e) {
                keys = null;
                error = e;
                if (running) { // at start the caller reports it
                    log.warn("{}; TLS-PSK clients are refused until it is fixed", e.getMessage());
                }
            }
        }
        if (error != null) {
            throw error;
        }
        return keys;
    }

    private static PskKeys read(Path file) throws IOException {
        byte[] bytes;
        try {
            if (Files.isDirectory(file)) {
                throw new IOException(file + ": is a directory, not a PSK file (username:hexkey lines)");
            }
            long size = Files.size(file);
            if (size > MAX_BYTES) {
                throw new IOException(file + ": " + size + " bytes, too big for a PSK file (username:hexkey lines)");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new IOException(file + ": the PSK file does not exist (make one with: psktool -u USER -p "
                    + file + ")", e);
        } catch (AccessDeniedException e) {
            throw new IOException(file + ": cannot read the PSK file: permission denied", e);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IOException(file + ": not UTF-8 text (expected username:hexkey lines)", e);
        }
        PskKeys keys = PskKeys.parse(file, text.lines().toList());
        warnIfOthersCanRead(file);
        return keys;
    }

    private static void warnIfOthersCanRead(Path file) throws IOException {
        PosixFileAttributeView view = Files.getFileAttributeView(file, PosixFileAttributeView.class);
        if (view == null) {
            return;
        }
        Set<PosixFilePermission> p = view.readAttributes().permissions();
        if (p.contains(PosixFilePermission.GROUP_READ) || p.contains(PosixFilePermission.OTHERS_READ)) {
            log.warn("{}: readable by {} ({}): anyone who can read it can connect as its users; chmod 600 {}",
                    file, p.contains(PosixFilePermission.OTHERS_READ) ? "every user" : "its group",
                    PosixFilePermissions.toString(p), file);
        }
    }

    @Override
    public String toString() {
        return file.toString();
    }
}
