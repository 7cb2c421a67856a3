/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_cache.c
 * @brief The per-process cache of the issuer's key sets (ot_jose.h), one per JWKS URL.
 *
 * The cache keeps each JWKS as the text it was fetched as; a verification copies the text under
 * the lock and verifies with this thread's parsed copy of it (ot_jose_parsed.c), so no cjose or
 * OpenSSL object is ever shared between threads. Fetches are serialised by a second lock, held
 * across the network call (never the first): a thread that waited on it finds the keys another
 * thread just fetched. Taking a token apart and verifying it is ot_jose.c's.
 */
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/rand.h>

#include "ot_jose.h"
#include "ot_jose_int.h"

/** One URL's key set in the cache. */
typedef struct {
    apr_pool_t *pool;     /**< holds jwks; replaced at every successful fetch */
    const char *jwks;
    apr_size_t len;
    apr_uint64_t gen;     /**< a new one at every successful fetch (k->last_gen) */
    apr_time_t fetched;
    apr_time_t last_try;  /**< last fetch attempt, successful or not; 0: never */
} keyset_t;

struct ot_jose_keys_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *lock;       /**< guards sets and every keyset_t */
    apr_thread_mutex_t *fetching;   /**< one fetch at a time in this process */
    apr_hash_t *sets;               /**< URL -> keyset_t */
    apr_interval_time_t min_refresh;
    apr_uint64_t last_gen;          /**< the last generation given; random at the start */
};

/** A snapshot of one keyset_t, copied out under the lock. */
typedef struct {
    const char *jwks;     /**< NULL: no keys yet; a copy, or "" when ps holds them */
    apr_size_t len;
    apr_uint64_t gen;
    apr_time_t fetched;
    ot_jose_parsed_t *ps; /**< this thread's parsed copy, found under the lock, or NULL */
} snap_t;

/* ---- the cache ----------------------------------------------------------------------------- */

apr_status_t ot_jose_keys_create(ot_jose_keys_t **pk, apr_interval_time_t min_refresh,
                                 apr_pool_t *p)
{
    ot_jose_keys_t *k = apr_pcalloc(p, sizeof(*k));
    apr_status_t rv;

    k->pool = p;
    k->sets = apr_hash_make(p);
    k->min_refresh = min_refresh;
    /* Generations start at a random number: a cache made anew where an old one was (same
     * address, same URL) never names a key set as one the old cache gave a thread. */
    if (RAND_bytes((unsigned char *)&k->last_gen, sizeof(k->last_gen)) != 1) {
        *pk = NULL;
        return APR_EGENERAL;
    }
    rv = apr_thread_mutex_create(&k->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&k->fetching, APR_THREAD_MUTEX_DEFAULT, p);
    }
    *pk = rv == APR_SUCCESS ? k : NULL;
    return rv;
}

/** The keyset of url, made empty when new. Call with k->lock held. */
static keyset_t *keyset(ot_jose_keys_t *k, const char *url)
{
    keyset_t *ks = apr_hash_get(k->sets, url, APR_HASH_KEY_STRING);

    if (ks == NULL) {
        ks = apr_pcalloc(k->pool, sizeof(*ks));
        apr_hash_set(k->sets, apr_pstrdup(k->pool, url), APR_HASH_KEY_STRING, ks);
    }
    return ks;
}

/**
 * The keys of url as they are now. The text is copied only when this thread has no parsed copy
 * of this generation yet (ot_jose_parsed_held): a verification neither copies nor compares it.
 */
static void snapshot(snap_t *s, ot_jose_keys_t *k, const char *url, apr_pool_t *p)
{
    keyset_t *ks;

    apr_thread_mutex_lock(k->lock);
    ks = keyset(k, url);
    s->ps = ks->jwks ? ot_jose_parsed_held(k, url, ks->gen, ks->len) : NULL;
    s->jwks = ks->jwks == NULL ? NULL : s->ps ? "" : apr_pstrmemdup(p, ks->jwks, ks->len);
    s->len = ks->len;
    s->gen = ks->gen;
    s->fetched = ks->fetched;
    apr_thread_mutex_unlock(k->lock);
}

/** Decide under the lock whether this thread fetches: 1 yes, else why not in *rv. */
static int may_fetch(apr_status_t *rv, ot_jose_keys_t *k, const char *url, const snap_t *s,
                     apr_time_t now)
{
    keyset_t *ks;
    int go = 0;

    apr_thread_mutex_lock(k->lock);
    ks = keyset(k, url);
    if (ks->gen != s->gen) {
        *rv = APR_SUCCESS;          /* another thread fetched since the snapshot */
    }
    else if (ks->last_try != 0 && now >= ks->last_try && now - ks->last_try < k->min_refresh) {
        *rv = APR_EAGAIN;
    }
    else {
        ks->last_try = now;
        go = 1;
    }
    apr_thread_mutex_unlock(k->lock);
    return go;
}

static void store(ot_jose_keys_t *k, const char *url, const char *body, apr_size_t len,
                  apr_time_t now)
{
    keyset_t *ks;
    apr_pool_t *pool;

    apr_thread_mutex_lock(k->lock);
    ks = keyset(k, url);
    apr_pool_create(&pool, k->pool);
    if (ks->pool) {
        apr_pool_destroy(ks->pool);
    }
    ks->pool = pool;
    ks->jwks = apr_pstrmemdup(pool, body, len);
    ks->len = len;
    /* never 0 (a snapshot of no keys has generation 0), never one given before */
    ks->gen = ++k->last_gen != 0 ? k->last_gen : ++k->last_gen;
    ks->fetched = now;
    apr_thread_mutex_unlock(k->lock);
}

/**
 * Fetch url's keys unless another thread just did or the rate limit forbids it. APR_SUCCESS:
 * newer keys are in the cache; APR_EAGAIN: not fetched (rate limit); else the fetch failed.
 */
static apr_status_t refresh(ot_jose_keys_t *k, const char *url, const snap_t *s,
                            ot_jose_fetch_fn *fetch, void *baton, apr_time_t now,
                            const char **why, apr_pool_t *p)
{
    const char *body = NULL;
    apr_size_t len = 0;
    apr_status_t rv = APR_SUCCESS;

    apr_thread_mutex_lock(k->fetching);
    if (may_fetch(&rv, k, url, s, now)) {
        rv = fetch(baton, url, &body, &len, why, p);
        if (rv == APR_SUCCESS && ot_jose_jwks_check(body, len, why, p) != APR_SUCCESS) {
            *why = apr_pstrcat(p, "the JWKS is not usable: ", *why, NULL);
            rv = APR_EINVAL;
        }
        if (rv == APR_SUCCESS) {
            store(k, url, body, len, now);
        }
    }
    else if (rv == APR_EAGAIN) {
        *why = "the last attempt was too recent to try again";
    }
    apr_thread_mutex_unlock(k->fetching);
    return rv;
}

/** This thread's parsed copy of the keys in snapshot s (NULL: verify_in parses them). */
static ot_jose_parsed_t *parsed(ot_jose_keys_t *k, const char *url, const snap_t *s)
{
    if (s->ps != NULL) {
        return s->ps;
    }
    return s->jwks ? ot_jose_parsed(k, url, s->gen, s->jwks, s->len) : NULL;
}

ot_jose_result_t ot_jose_verify(ot_jws_t *jws, const char **why, ot_jose_keys_t *k,
                                const char *url, const char *compact, apr_size_t len,
                                ot_jose_fetch_fn *fetch, void *baton, apr_time_t now,
                                apr_pool_t *p)
{
    int unknown;

    return ot_jose_verify_kid(jws, why, &unknown, k, url, compact, len, fetch, baton, now, p);
}

/**
 * ot_jose_verify_kid; text: the payload as text (ot_jose_verify_kid_text). fetch NULL: with the
 * keys held only (ot_jose_verify_held), *unknown_key then 1 where a fetch would be needed.
 */
static ot_jose_result_t verify_kid(ot_jws_t *jws, const char **why, int *unknown_key,
                                   ot_jose_keys_t *k, const char *url, const char *compact,
                                   apr_size_t len, ot_jose_fetch_fn *fetch, void *baton,
                                   apr_time_t now, int text, const ot_jose_header_t *h,
                                   apr_pool_t *p)
{
    const char *fwhy = "";
    ot_jose_result_t res;
    apr_status_t rv = APR_EAGAIN;
    ot_jose_in_t in;
    snap_t s;
    int no_key = 0;

    *unknown_key = 0;
    if (ot_jose_parse_compact(&in, why, compact, len, h, p) != APR_SUCCESS) {
        return OT_JOSE_INVALID;     /* garbage never costs a fetch */
    }
    in.text = text;
    snapshot(&s, k, url, p);
    if (fetch == NULL && (s.jwks == NULL || now - s.fetched >= OT_JWKS_MAX_AGE)) {
        *unknown_key = 1;           /* the keys held are none or too old to use unasked */
        *why = "no keys held fresh enough";
        return OT_JOSE_NO_KEYS;
    }
    if (s.jwks == NULL || now - s.fetched >= OT_JWKS_MAX_AGE) {
        rv = refresh(k, url, &s, fetch, baton, now, &fwhy, p);
        if (rv == APR_SUCCESS) {
            snapshot(&s, k, url, p);
        }
        else if (s.jwks == NULL || now - s.fetched >= OT_JWKS_MAX_STALE) {
            *why = apr_pstrcat(p, "the issuer's keys could not be fetched: ", fwhy,
                               s.jwks ? " (and the keys fetched before are too old)" : "",
                               NULL);
            return OT_JOSE_NO_KEYS;
        }
    }
    res = ot_jose_verify_in(jws, why, &no_key, s.jwks, s.len, parsed(k, url, &s), &in, p);
    if (res == OT_JOSE_OK || !no_key || rv == APR_SUCCESS) {
        *unknown_key = res != OT_JOSE_OK && no_key;
        return res;                 /* keys fetched just now are as new as they get */
    }
    if (fetch == NULL) {
        *unknown_key = 1;           /* no key for it held: a fetch would be next */
        return OT_JOSE_INVALID;
    }
    if (rv == APR_EAGAIN) {
        rv = refresh(k, url, &s, fetch, baton, now, &fwhy, p);
    }
    if (rv == APR_EAGAIN) {
        *unknown_key = 1;
        return OT_JOSE_INVALID;
    }
    if (rv != APR_SUCCESS) {
        *unknown_key = 1;
        *why = apr_pstrcat(p, *why, "; the issuer's keys could not be fetched again: ", fwhy,
                           NULL);
        return OT_JOSE_NO_KEYS;
    }
    snapshot(&s, k, url, p);
    res = ot_jose_verify_in(jws, why, &no_key, s.jwks, s.len, parsed(k, url, &s), &in, p);
    *unknown_key = res != OT_JOSE_OK && no_key;
    return res;
}

ot_jose_result_t ot_jose_verify_kid(ot_jws_t *jws, const char **why, int *unknown_key,
                                    ot_jose_keys_t *k, const char *url, const char *compact,
                                    apr_size_t len, ot_jose_fetch_fn *fetch, void *baton,
                                    apr_time_t now, apr_pool_t *p)
{
    return verify_kid(jws, why, unknown_key, k, url, compact, len, fetch, baton, now, 0, NULL, p);
}

ot_jose_result_t ot_jose_verify_kid_text(ot_jws_t *jws, const char **why, int *unknown_key,
                                         ot_jose_keys_t *k, const char *url,
                                         const char *compact, apr_size_t len,
                                         ot_jose_fetch_fn *fetch, void *baton, apr_time_t now,
                                         apr_pool_t *p)
{
    return verify_kid(jws, why, unknown_key, k, url, compact, len, fetch, baton, now, 1, NULL, p);
}

ot_jose_result_t ot_jose_verify_kid_text_h(ot_jws_t *jws, const char **why, int *unknown_key,
                                           ot_jose_keys_t *k, const char *url,
                                           const char *compact, apr_size_t len,
                                           const ot_jose_header_t *h, ot_jose_fetch_fn *fetch,
                                           void *baton, apr_time_t now, apr_pool_t *p)
{
    return verify_kid(jws, why, unknown_key, k, url, compact, len, fetch, baton, now, 1, h, p);
}

ot_jose_result_t ot_jose_verify_held(ot_jws_t *jws, const char **why, int *need_fetch,
                                     ot_jose_keys_t *k, const char *url, const char *compact,
                                     apr_size_t len, const ot_jose_header_t *h, apr_time_t now,
                                     apr_pool_t *p)
{
    return verify_kid(jws, why, need_fetch, k, url, compact, len, NULL, NULL, now, 1, h, p);
}

int ot_jose_known_forgery(ot_jose_keys_t *k, const char *url, const char *compact,
                          apr_size_t len, apr_pool_t *p)
{
    const char *why = NULL;
    ot_jws_t jws;
    ot_jose_in_t in;
    snap_t s;
    int no_key = 0;

    /* HMAC, none, crit, no kid: not for the issuer's public keys to judge. */
    if (k == NULL || url == NULL
        || ot_jose_parse_compact(&in, &why, compact, len, NULL, p) != APR_SUCCESS
        || in.kid == NULL) {
        return 0;
    }
    snapshot(&s, k, url, p);
    if (s.jwks == NULL) {
        return 0;
    }
    return ot_jose_verify_in(&jws, &why, &no_key, s.jwks, s.len, parsed(k, url, &s), &in, p)
        == OT_JOSE_INVALID
        && !no_key && why != ot_jose_not_an_object;
}
