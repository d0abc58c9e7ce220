package io.pmcache.cache;

import java.io.IOException;

/** The cache was formatted for another backing device (size or identity differ). */
public class WrongBackingDeviceException extends IOException {
    public WrongBackingDeviceException(String message) {
        super(message);
    }
}
