package io.pmcache.nbd;

/**
 * Whether a server speaks TLS, as nbdkit's {@code --tls}: {@link #OFF} (the spec's NOTLS mode:
 * {@code NBD_OPT_STARTTLS} is answered {@code NBD_REP_ERR_UNSUP}), {@link #ON} (TLS at the client's
 * choice: SELECTIVETLS with no TLS-only export) or {@link #REQUIRE} (FORCEDTLS: every option but
 * STARTTLS and ABORT is answered {@code NBD_REP_ERR_TLS_REQD} until TLS is up).
 */
public enum TlsMode {
    OFF, ON, REQUIRE
}
