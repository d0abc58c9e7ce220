package io.pmcache.nbd;

/**
 * What the handshake negotiated for one connection: the export, whether structured replies are on,
 * and whether the client selected the {@code base:allocation} metadata context.
 */
record Session(Export export, boolean structuredReplies, boolean baseAllocation) {
}
