/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_discovery.h
 * @brief Issuer metadata (OpenID Connect Discovery 1.0, RFC 8414): where to introspect and
 *        where the keys are, learnt from OfftokIssuer alone.
 *
 * The metadata is read from `<issuer without a trailing />/.well-known/openid-configuration`;
 * when that answers 404, and only then, from RFC 8414's
 * `<scheme>://<host[:port]>/.well-known/oauth-authorization-server<issuer path>`. The document's
 * `issuer` must equal the configured issuer exactly (OIDC Discovery §4.3, RFC 8414 §3.3), or it
 * is refused: metadata served for another issuer would point us at its keys.
 *
 * ot_disc_t is a per-process cache of metadata, one per issuer and TLS trust scope, safe between
 * threads, fed by a caller-given fetch function (as ot_jose.h's key cache is). A copy is used for
 * OT_META_MAX_AGE; after that the next use fetches again, at most once per min_refresh; while
 * refreshing fails, the old copy is used until it is OT_META_MAX_STALE old, and then no longer.
 */
#ifndef OT_DISCOVERY_H
#define OT_DISCOVERY_H

#include <apr_pools.h>
#include <apr_time.h>

/** Largest metadata document accepted. */
#define OT_META_MAX (64 * 1024)
/** A copy older than this is fetched again when next used. */
#define OT_META_MAX_AGE apr_time_from_sec(3600)
/** A copy older than this is not used, however the refresh failed. */
#define OT_META_MAX_STALE apr_time_from_sec(86400)

/** What this module takes from an issuer's metadata (strings from the caller's pool). */
typedef struct {
    const char *issuer;
    const char *introspection_endpoint;   /**< NULL when the document has none */
    const char *jwks_uri;                 /**< NULL when the document has none */
} ot_metadata_t;

/**
 * The URL of the issuer's metadata: rfc8414 0 for OpenID Connect Discovery's, 1 for RFC 8414's.
 * NULL when issuer is not an http(s) URL without query or fragment.
 */
const char *ot_metadata_url(const char *issuer, int rfc8414, apr_pool_t *p);

/**
 * Parse a metadata document and check it against the configured issuer. APR_SUCCESS with *m
 * filled (from p); otherwise *why says what is wrong (never quoting more than a short, printable
 * part of the document). An endpoint that is present must be an http(s) URL, and https when the
 * issuer is (the metadata cannot downgrade where tokens, credentials and the key fetch go).
 */
apr_status_t ot_metadata_parse(ot_metadata_t *m, const char **why, const char *body,
                               apr_size_t len, const char *issuer, apr_pool_t *p);

/**
 * GET url: APR_SUCCESS with the HTTP status in *status and, for a 200, the body; anything but
 * an HTTP answer is an error with *why. Never follows redirects.
 */
typedef apr_status_t ot_disc_fetch_fn(void *baton, const char *url, int *status,
                                      const char **body, apr_size_t *len, const char **why,
                                      apr_pool_t *p);

typedef struct ot_disc_t ot_disc_t;

/** Make an empty metadata cache that fetches an issuer at most once per min_refresh. */
apr_status_t ot_disc_create(ot_disc_t **pd, apr_interval_time_t min_refresh, apr_pool_t *p);

/**
 * The metadata of issuer, from the cache or fetched (as the file comment says). APR_SUCCESS with
 * *m (copied into p); otherwise *why (from p) says why it cannot be had. *fetched is set to 1
 * when this call fetched (successfully or not), for the caller's counters.
 */
apr_status_t ot_disc_get(ot_metadata_t *m, const char **why, int *fetched, ot_disc_t *d,
                         const char *issuer, ot_disc_fetch_fn *fetch, void *baton,
                         apr_time_t now, apr_pool_t *p);

/**
 * ot_disc_get for a location whose TLS trust settings are named by scope (NULL or "": the
 * default): copies fetched under one scope never serve another, so metadata fetched without
 * verifying the issuer's certificate (OfftokSSLVerify Off, another OfftokCAFile) never tells a
 * location that verifies where to introspect or where the keys are.
 */
apr_status_t ot_disc_get_scoped(ot_metadata_t *m, const char **why, int *fetched, ot_disc_t *d,
                                const char *issuer, const char *scope, ot_disc_fetch_fn *fetch,
                                void *baton, apr_time_t now, apr_pool_t *p);

/**
 * Fetch issuer's metadata once, without a cache: the OIDC URL, then on a 404 the RFC 8414 one.
 * Used by ot_disc_get; exposed for tests.
 */
apr_status_t ot_disc_fetch(ot_metadata_t *m, const char **why, const char *issuer,
                           ot_disc_fetch_fn *fetch, void *baton, apr_pool_t *p);

#endif
