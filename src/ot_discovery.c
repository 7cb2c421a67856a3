/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_discovery.c
 * @brief Issuer metadata: the two well-known URLs, the document's checks, the per-process cache.
 *
 * The cache keeps, per issuer, the three strings taken from the document (in a pool of their
 * own, replaced at every successful fetch). Fetches are serialised by a second lock held across
 * the network call, never the first: a thread that waited on it finds what another just fetched.
 */
#include <string.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>

#include "ot_discovery.h"
#include "ot_json.h"

/** s without one trailing '/', copied when it had one. */
static const char *no_trailing_slash(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s);

    return n > 0 && s[n - 1] == '/' ? apr_pstrmemdup(p, s, n - 1) : s;
}

/** 1 when s is an absolute http(s) URL with a host and no query or fragment. */
static int http_url(const char *s, apr_uri_t *u, apr_pool_t *p)
{
    return s != NULL && apr_uri_parse(p, s, u) == APR_SUCCESS && u->scheme && u->hostname
        && *u->hostname && (strcasecmp(u->scheme, "https") == 0
                            || strcasecmp(u->scheme, "http") == 0)
        && u->query == NULL && u->fragment == NULL && u->user == NULL && u->password == NULL;
}

const char *ot_metadata_url(const char *issuer, int rfc8414, apr_pool_t *p)
{
    apr_uri_t u;
    const char *base = strchr(issuer ? issuer : "", '?') ? NULL : issuer;
    const char *path, *slashes;

    if (base == NULL || strchr(base, '#') || !http_url(base, &u, p)) {
        return NULL;
    }
    base = no_trailing_slash(base, p);
    if (!rfc8414) {
        return apr_pstrcat(p, base, "/.well-known/openid-configuration", NULL);
    }
    /* scheme://authority, then the well-known name, then the issuer's path. */
    slashes = strstr(base, "://");
    path = strchr(slashes + 3, '/');
    return apr_pstrcat(p, path ? apr_pstrmemdup(p, base, (apr_size_t)(path - base)) : base,
                       "/.well-known/oauth-authorization-server", path ? path : "", NULL);
}

/**
 * The member name of doc as an http(s) URL (https when tls): APR_SUCCESS with *out (NULL when
 * absent).
 */
static apr_status_t endpoint(const char **out, const char **why, const json_t *doc,
                             const char *name, int tls, apr_pool_t *p)
{
    const json_t *v = json_object_get(doc, name);
    apr_uri_t u;

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return APR_SUCCESS;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)
        || !http_url(json_string_value(v), &u, p)) {
        *why = apr_pstrcat(p, "its ", name, " is not an http(s) URL", NULL);
        return APR_EINVAL;
    }
    /* An https issuer's metadata never sends tokens, credentials or the key fetch over http. */
    if (tls && strcasecmp(u.scheme, "https") != 0) {
        *why = apr_pstrcat(p, "its ", name, " is not https while the issuer is", NULL);
        return APR_EINVAL;
    }
    *out = apr_pstrdup(p, json_string_value(v));
    return APR_SUCCESS;
}

apr_status_t ot_metadata_parse(ot_metadata_t *m, const char **why, const char *body,
                               apr_size_t len, const char *issuer, apr_pool_t *p)
{
    const char *perr = NULL;
    json_t *doc = ot_json_parse(body, len, &perr, p);
    const json_t *iss;
    int tls;

    memset(m, 0, sizeof(*m));
    if (doc == NULL || !json_is_object(doc)) {
        *why = apr_pstrcat(p, "it is not a JSON object", perr ? ": " : "", perr ? perr : "",
                           NULL);
        return APR_EINVAL;
    }
    iss = json_object_get(doc, "issuer");
    if (!json_is_string(iss)) {
        *why = "it has no issuer string";
        return APR_EINVAL;
    }
    if (issuer == NULL || json_string_length(iss) != strlen(issuer)
        || memcmp(json_string_value(iss), issuer, strlen(issuer)) != 0) {
        *why = "its issuer is not OfftokIssuer exactly";
        return APR_EINVAL;
    }
    m->issuer = apr_pstrdup(p, issuer);
    tls = strncasecmp(issuer, "https:", 6) == 0;
    if (endpoint(&m->introspection_endpoint, why, doc, "introspection_endpoint", tls, p)
        != APR_SUCCESS || endpoint(&m->jwks_uri, why, doc, "jwks_uri", tls, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t ot_disc_fetch(ot_metadata_t *m, const char **why, const char *issuer,
                           ot_disc_fetch_fn *fetch, void *baton, apr_pool_t *p)
{
    const char *url = ot_metadata_url(issuer, 0, p), *body = NULL, *perr = "";
    apr_size_t len = 0;
    int status = 0, round;
    apr_status_t rv;

    if (url == NULL) {
        *why = "OfftokIssuer is not an http(s) URL, so it has no metadata";
        return APR_EINVAL;
    }
    for (round = 0; round < 2; round++) {
        rv = fetch(baton, url, &status, &body, &len, why, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (status != 404 || round == 1) {
            break;
        }
        url = ot_metadata_url(issuer, 1, p);     /* RFC 8414 §3.1, on a 404 only */
    }
    if (status != 200) {
        *why = apr_psprintf(p, "GET %s: HTTP status %d", url, status);
        return APR_EGENERAL;
    }
    if (ot_metadata_parse(m, &perr, body, len, issuer, p) != APR_SUCCESS) {
        *why = apr_pstrcat(p, "the metadata at ", url, " is refused: ", perr, NULL);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

/* ---- the cache ----------------------------------------------------------------------------- */

/** One issuer's metadata in the cache. */
typedef struct {
    apr_pool_t *pool;       /**< holds meta's strings; replaced at every successful fetch */
    ot_metadata_t meta;
    int have;
    apr_uint64_t gen;
    apr_time_t fetched;
    apr_time_t last_try;    /**< 0: never tried */
    const char *last_why;   /**< why the last fetch failed (in pool of the set), or NULL */
} entry_t;

struct ot_disc_t {
    apr_pool_t *pool;
    apr_thread_mutex_t *lock;       /**< guards issuers and every entry_t */
    apr_thread_mutex_t *fetching;   /**< one fetch at a time in this process */
    apr_hash_t *issuers;
    apr_interval_time_t min_refresh;
};

apr_status_t ot_disc_create(ot_disc_t **pd, apr_interval_time_t min_refresh, apr_pool_t *p)
{
    ot_disc_t *d = apr_pcalloc(p, sizeof(*d));
    apr_status_t rv;

    d->pool = p;
    d->issuers = apr_hash_make(p);
    d->min_refresh = min_refresh;
    rv = apr_thread_mutex_create(&d->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&d->fetching, APR_THREAD_MUTEX_DEFAULT, p);
    }
    *pd = rv == APR_SUCCESS ? d : NULL;
    return rv;
}

/** The entry of issuer, made empty when new. Call with d->lock held. */
static entry_t *entry(ot_disc_t *d, const char *issuer)
{
    entry_t *e = apr_hash_get(d->issuers, issuer, APR_HASH_KEY_STRING);

    if (e == NULL) {
        e = apr_pcalloc(d->pool, sizeof(*e));
        apr_hash_set(d->issuers, apr_pstrdup(d->pool, issuer), APR_HASH_KEY_STRING, e);
    }
    return e;
}

/** Copy issuer's entry out under the lock: 1 when there is a copy at all. */
static int snapshot(ot_metadata_t *m, apr_uint64_t *gen, apr_time_t *fetched, ot_disc_t *d,
                    const char *issuer, apr_pool_t *p)
{
    entry_t *e;
    int have;

    apr_thread_mutex_lock(d->lock);
    e = entry(d, issuer);
    have = e->have;
    if (have) {
        m->issuer = apr_pstrdup(p, e->meta.issuer);
        m->introspection_endpoint = apr_pstrdup(p, e->meta.introspection_endpoint);
        m->jwks_uri = apr_pstrdup(p, e->meta.jwks_uri);
    }
    *gen = e->gen;
    *fetched = e->fetched;
    apr_thread_mutex_unlock(d->lock);
    return have;
}

/** Under the lock: 1 when this thread fetches now (rate limit, nobody fetched meanwhile). */
static int may_fetch(ot_disc_t *d, const char *issuer, apr_uint64_t gen, apr_time_t now)
{
    entry_t *e;
    int go = 0;

    apr_thread_mutex_lock(d->lock);
    e = entry(d, issuer);
    if (e->gen == gen && (e->last_try == 0 || now < e->last_try
                          || now - e->last_try >= d->min_refresh)) {
        e->last_try = now;
        go = 1;
    }
    apr_thread_mutex_unlock(d->lock);
    return go;
}

static void store(ot_disc_t *d, const char *issuer, const ot_metadata_t *m, apr_time_t now)
{
    entry_t *e;
    apr_pool_t *pool;

    apr_thread_mutex_lock(d->lock);
    e = entry(d, issuer);
    apr_pool_create(&pool, d->pool);
    if (e->pool) {
        apr_pool_destroy(e->pool);
    }
    e->pool = pool;
    e->meta.issuer = apr_pstrdup(pool, m->issuer);
    e->meta.introspection_endpoint = apr_pstrdup(pool, m->introspection_endpoint);
    e->meta.jwks_uri = apr_pstrdup(pool, m->jwks_uri);
    e->have = 1;
    e->gen++;
    e->fetched = now;
    apr_thread_mutex_unlock(d->lock);
}

apr_status_t ot_disc_get(ot_metadata_t *m, const char **why, int *fetched, ot_disc_t *d,
                         const char *issuer, ot_disc_fetch_fn *fetch, void *baton,
                         apr_time_t now, apr_pool_t *p)
{
    return ot_disc_get_scoped(m, why, fetched, d, issuer, NULL, fetch, baton, now, p);
}

apr_status_t ot_disc_get_scoped(ot_metadata_t *m, const char **why, int *fetched, ot_disc_t *d,
                                const char *issuer, const char *scope, ot_disc_fetch_fn *fetch,
                                void *baton, apr_time_t now, apr_pool_t *p)
{
    /* The cache's key: the issuer and the trust settings its copy was fetched under. */
    const char *key = apr_pstrcat(p, issuer, "\n", scope ? scope : "", NULL);
    ot_metadata_t fresh;
    apr_uint64_t gen;
    apr_time_t at;
    apr_status_t rv = APR_EAGAIN;
    int have = snapshot(m, &gen, &at, d, key, p);

    *fetched = 0;
    if (have && now >= at && now - at < OT_META_MAX_AGE) {
        return APR_SUCCESS;
    }
    *why = "the last attempt to fetch it failed and was too recent to try again";
    apr_thread_mutex_lock(d->fetching);
    if (may_fetch(d, key, gen, now)) {
        *fetched = 1;
        rv = ot_disc_fetch(&fresh, why, issuer, fetch, baton, p);
        if (rv == APR_SUCCESS) {
            store(d, key, &fresh, now);
        }
    }
    apr_thread_mutex_unlock(d->fetching);
    if (!snapshot(m, &gen, &at, d, key, p)) {
        return rv == APR_SUCCESS || rv == APR_EAGAIN ? APR_EGENERAL : rv;
    }
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    /* A copy exists: another thread's fresh one, or a stale one kept while refreshing fails. */
    if (now >= at && now - at < OT_META_MAX_STALE) {
        return APR_SUCCESS;
    }
    *why = apr_pstrcat(p, *why, "; the copy fetched before is too old to use", NULL);
    return APR_EGENERAL;
}
