package io.pmcache.os;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A file is locked by another pmcache process (or another opener in this process) in a way that
 * conflicts with the use asked for; see {@link FileUseLock}. The message is one line that names
 * the file and says what to do.
 */
public final class FileInUseException extends IOException {

    public FileInUseException(String message) {
        super(message);
    }

    static FileInUseException of(Path file, FileUseLock.Mode wanted, String what) {
        return new FileInUseException(wanted == FileUseLock.Mode.EXCLUSIVE
                ? what + " " + file + " is in use by another pmcache process (a serve, detach, format, check or "
                        + "status --cache holds it); stop that process first"
                : what + " " + file + " is in use by another pmcache process that may be writing to it (a serve, "
                        + "detach or format holds it); stop that process first, or ask a running server with "
                        + "`pmcache status --admin`");
    }
}
