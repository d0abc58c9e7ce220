package io.pmcache.device;

import java.io.IOException;

/**
 * The device is stopping or closed: the request was not carried out and will not be. Servers
 * answer it as "shutting down" (NBD: {@code ESHUTDOWN}); the client may retry elsewhere or later.
 * Whatever was acknowledged before stays safe.
 */
public class DeviceClosedException extends IOException {
    public DeviceClosedException(String message) {
        super(message);
    }
}
