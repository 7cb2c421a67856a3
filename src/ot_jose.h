/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose.h
 * @brief The issuer's signing keys (JWKS) and the verification of compact JWS (keys picked and
 *        imported with cjose, signatures checked with OpenSSL: ot_jose_evp.c).
 *
 * Used for what an issuer pushes to us: back-channel logout tokens and Keycloak admin actions.
 *
 * Verification is strict about algorithms: the token's `alg` must be one of RS256/384/512,
 * PS256/384/512, ES256/384/512 or EdDSA and must fit the key it is checked with (an RSA key of at
 * least 2048 bits for RS and PS, an EC key on the matching curve for ES, an Ed25519 OKP key for
 * EdDSA, verified with OpenSSL, and the key's own `alg`, when the JWKS gives one, equal to it;
 * never a key published with its private part).
 * `none` and every HMAC algorithm are refused: a JWKS is public, so an HMAC keyed with anything
 * in it proves nothing. A `crit` header is refused (no
 * extension is understood), and keys are never taken from the token itself (`jwk`, `jku`, `x5u`).
 *
 * ot_jose_keys_t is a per-process cache of key sets, one per JWKS URL, safe between threads.
 * A key set is fetched when first needed, again when a token names a `kid` it does not hold (or,
 * for a token without `kid`, when no key verifies it) and when it is older than an hour, but at
 * most once per min_refresh per URL (10 s in the module), so that a stream of forged `kid`s
 * cannot make us hammer the issuer. Fetching goes through a caller-given function, so the cache
 * works without httpd and the unit tests can give it fake keys and a fake clock.
 */
#ifndef OT_JOSE_H
#define OT_JOSE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

/** Largest JWKS document accepted. */
#define OT_JWKS_MAX (256 * 1024)
/** A key set older than this is fetched again when next used (kept if that fails, see below). */
#define OT_JWKS_MAX_AGE apr_time_from_sec(3600)
/** Keys kept while fetching them again fails are used until they are this old, then no more. */
#define OT_JWKS_MAX_STALE apr_time_from_sec(86400)

/** What became of one verification. */
typedef enum {
    OT_JOSE_OK = 0,
    OT_JOSE_INVALID,     /**< not a JWS we accept, or no key of the issuer's verifies it */
    OT_JOSE_NO_KEYS      /**< the issuer's keys could not be fetched */
} ot_jose_result_t;

/** A verified JWS: its protected header and its payload (a JSON object), owned by the pool. */
typedef struct {
    json_t *header;
    json_t *payload;     /**< NULL from ot_jose_verify_kid_text, which gives payload_text */
    const char *payload_text;   /**< ot_jose_verify_kid_text: the payload (NULL: see payload) */
    apr_size_t payload_len;
    const char *alg;
    const char *kid;     /**< NULL when the header has none */
    const char *typ;     /**< NULL when the header has none */
} ot_jws_t;

/**
 * What a compact JWS's protected header says, read once (ot_jose_header.c) for the local
 * candidate decision and the verification alike. The strings are NULL when absent or not strings.
 */
typedef struct {
    int object;          /**< 1: the header is a JSON object (as jansson reads it) */
    const char *alg;
    const char *kid;
    const char *typ;
    int bad_kid;         /**< kid is present and not a string */
    int bad_typ;         /**< typ is present and not a string */
    int crit;            /**< a `crit` member is present (refused: no extension is understood) */
} ot_jose_header_t;

/** Read the header from its base64url text b64[0..len) (the JWS's first part) into *h. */
void ot_jose_header_read(ot_jose_header_t *h, const char *b64, apr_size_t len, apr_pool_t *p);

/**
 * Fetch the JWKS at url into *body (from p, NUL-terminated). APR_SUCCESS only for a complete
 * 200 answer; otherwise *why says what went wrong, for the log.
 */
typedef apr_status_t ot_jose_fetch_fn(void *baton, const char *url, const char **body,
                                      apr_size_t *len, const char **why, apr_pool_t *p);

typedef struct ot_jose_keys_t ot_jose_keys_t;

/** Make an empty key cache that fetches a URL at most once per min_refresh; lives in p. */
apr_status_t ot_jose_keys_create(ot_jose_keys_t **pk, apr_interval_time_t min_refresh,
                                 apr_pool_t *p);

/**
 * Verify compact (len bytes) with the keys published at url, fetching them with fetch(baton, ...)
 * when needed, as the file comment says; now is the current time. On OT_JOSE_OK *jws is filled
 * from p. Otherwise *why (from p) says why, for the log; it never contains the token.
 */
ot_jose_result_t ot_jose_verify(ot_jws_t *jws, const char **why, ot_jose_keys_t *k,
                                const char *url, const char *compact, apr_size_t len,
                                ot_jose_fetch_fn *fetch, void *baton, apr_time_t now,
                                apr_pool_t *p);

/**
 * ot_jose_verify, and *unknown_key set to 1 when it failed only because no key of the issuer's
 * (after fetching them again, as the rate limit allows) has the token's `kid` or fits its
 * algorithm: a caller may then ask the issuer instead of refusing the token. 0 when a key was
 * tried and the signature did not verify, or the token is not a JWS we accept.
 */
ot_jose_result_t ot_jose_verify_kid(ot_jws_t *jws, const char **why, int *unknown_key,
                                    ot_jose_keys_t *k, const char *url, const char *compact,
                                    apr_size_t len, ot_jose_fetch_fn *fetch, void *baton,
                                    apr_time_t now, apr_pool_t *p);

/**
 * ot_jose_verify_kid without parsing the payload: on OT_JOSE_OK jws->payload_text holds it
 * (NUL-terminated, payload_len bytes), jws->payload is NULL, and whether it is a JSON object is
 * the caller's to check. (EdDSA tokens give jws->payload parsed as before, payload_text NULL.)
 */
ot_jose_result_t ot_jose_verify_kid_text(ot_jws_t *jws, const char **why, int *unknown_key,
                                         ot_jose_keys_t *k, const char *url,
                                         const char *compact, apr_size_t len,
                                         ot_jose_fetch_fn *fetch, void *baton, apr_time_t now,
                                         apr_pool_t *p);

/**
 * ot_jose_verify_kid_text with compact's header already read (h, from ot_jose_header_read on
 * its first part; NULL: read here). jws->header is NULL: the header's JSON is not built.
 */
ot_jose_result_t ot_jose_verify_kid_text_h(ot_jws_t *jws, const char **why, int *unknown_key,
                                           ot_jose_keys_t *k, const char *url,
                                           const char *compact, apr_size_t len,
                                           const ot_jose_header_t *h, ot_jose_fetch_fn *fetch,
                                           void *baton, apr_time_t now, apr_pool_t *p);

/**
 * ot_jose_verify_kid_text_h with the keys this process holds alone, never fetching nor touching
 * the fetch schedule: the same verdict when *need_fetch is 0. *need_fetch 1 where the keyed
 * version would fetch (no keys held, keys older than OT_JWKS_MAX_AGE, no key held for the
 * token's kid and alg): no verdict then (OT_JOSE_NO_KEYS or OT_JOSE_INVALID, to be asked again
 * with a fetch function). For a first look that may be dropped without a trace.
 */
ot_jose_result_t ot_jose_verify_held(ot_jws_t *jws, const char **why, int *need_fetch,
                                     ot_jose_keys_t *k, const char *url, const char *compact,
                                     apr_size_t len, const ot_jose_header_t *h, apr_time_t now,
                                     apr_pool_t *p);

/**
 * *why of a verification that tried a key and none verified (compared by address). A held
 * verdict (ot_jose_verify_held, *need_fetch 0) of OT_JOSE_INVALID with this reason, for a token
 * with a kid, is what ot_jose_known_forgery says of it: a key of its kid fails it.
 */
extern const char ot_jose_sig_fails[];

/**
 * Verify compact against the key set jwks (the text of a JWKS document), without any cache or
 * fetching. *no_key is set to 1 when no key of the set could even be tried (unknown `kid`, or no
 * key fits the algorithm): the caller may then look for newer keys.
 */
ot_jose_result_t ot_jose_verify_jwks(ot_jws_t *jws, const char **why, int *no_key,
                                     const char *jwks, apr_size_t jwks_len,
                                     const char *compact, apr_size_t len, apr_pool_t *p);

/**
 * 1 when the keys already cached for url (never fetched for this) hold a key with compact's
 * `kid` for its asymmetric `alg` and that key does not verify it: the token is certainly not
 * the issuer's. 0 in every other case (no keys yet, unknown kid, no kid, HMAC, not a JWS).
 */
int ot_jose_known_forgery(ot_jose_keys_t *k, const char *url, const char *compact,
                          apr_size_t len, apr_pool_t *p);

/**
 * Check a JWKS document: APR_SUCCESS when it is a JSON object with a `keys` array holding at
 * least one key this code can verify with; otherwise *why says what is wrong.
 */
apr_status_t ot_jose_jwks_check(const char *jwks, apr_size_t len, const char **why,
                                apr_pool_t *p);

/* ---- EdDSA (ot_jose_okp.c: cjose 0.6 has no OKP keys; verified in ot_jose_evp.c) ---- */

/** 1 when key is an Ed25519 public JWK (kty OKP, crv Ed25519, a 32-byte x, no d). */
int ot_jose_okp_usable(const json_t *key, apr_pool_t *p);

#endif
