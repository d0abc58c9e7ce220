package io.pmcache.cli;

import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/**
 * The one-line text of a failure. The JDK's file exceptions often carry only the path (an
 * {@link AccessDeniedException}'s message is just {@code /path/ro.img}); here every one also says
 * why.
 */
final class Errors {
    private Errors() {
    }

    static String describe(Throwable ex) {
        if (ex instanceof FileSystemException f && f.getReason() == null) {
            return f.getMessage() + ": " + reason(f);
        }
        String m = ex.getMessage();
        return m != null && !m.isBlank() ? m : ex.toString();
    }

    private static String reason(FileSystemException f) {
        return switch (f) {
            case AccessDeniedException a -> "permission denied";
            case NoSuchFileException n -> "no such file or directory";
            case FileAlreadyExistsException e -> "already exists";
            case NotDirectoryException d -> "not a directory";
            case DirectoryNotEmptyException d -> "directory not empty";
            default -> f.getClass().getSimpleName();
        };
    }
}
