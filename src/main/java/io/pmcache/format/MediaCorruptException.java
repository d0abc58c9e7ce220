package io.pmcache.format;

import java.io.IOException;

/**
 * The medium holds something that is not a valid pmcache record where one is required. The
 * message names the record, its position, what was expected and what was found.
 */
public class MediaCorruptException extends IOException {
    public MediaCorruptException(String message) {
        super(message);
    }
}
