package io.pmcache.nbd;

import java.io.IOException;

/**
 * The peer broke a mandatory rule of the protocol (bad magic, malformed handshake, unknown client
 * flags). The only safe answer is to close that connection; the message says what was wrong.
 */
final class ProtocolException extends IOException {
    ProtocolException(String message) {
        super(message);
    }
}
