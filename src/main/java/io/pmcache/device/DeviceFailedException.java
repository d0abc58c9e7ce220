package io.pmcache.device;

import java.io.IOException;

/**
 * The device is in a failed state after an error it could not prove it recovered from (for
 * example a failed persist of the cache medium): every write and flush fails with this until an
 * operator acts, so that no flush can report success for data that may not be durable. Servers
 * answer it as an I/O error (NBD: {@code EIO}).
 */
public class DeviceFailedException extends IOException {
    public DeviceFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
