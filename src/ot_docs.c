/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_docs.c
 * @brief Issuer documents shared through the cache: the copy, the claim, the stale rule.
 *
 * A copy is a cache entry whose claims are "<status>\n<body>" and whose `fetched` is when its GET
 * started; a claim is an entry without claims whose `fetched` is when a process started a GET.
 * Both are found by a key over a prefix no introspection URL can have, the URL and the scope.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "ot_docs.h"
#include "ot_util.h"

#define PREFIX_COPY "offtok-doc\n"
/** Larger documents are not shared (a cache record holds 16 KiB at most, with its header). */
#define RECORD_MAX (15 * 1024)
/** How often a process waiting for another's fetch looks for its copy. */
#define WAIT_STEP apr_time_from_msec(10)
#define PREFIX_CLAIM "offtok-doc-claim\n"

static void key_of(unsigned char key[OT_KEY_LEN], const char *prefix, const char *url,
                   const char *scope)
{
    ot_key_part_t parts[OT_KEY_PARTS] = {
        { { prefix, url } }, { { "" } }, { { NULL } }, { { scope } }, { { "" } }
    };

    ot_cache_key_parts(key, parts);
}

/** The shared copy of url: 1 with its answer and when it was fetched. */
static int copy_get(ot_shm_t *s, const char *url, const char *scope, apr_time_t now,
                    int *status, const char **body, apr_size_t *len, apr_time_t *at,
                    apr_pool_t *p)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    const char *nl;
    char *end;
    long st;

    key_of(key, PREFIX_COPY, url, scope);
    if (ot_cache_get(s, key, now, &e, p) != APR_SUCCESS || e.claims == NULL
        || (nl = memchr(e.claims, '\n', e.claims_len)) == NULL || nl - e.claims != 3) {
        return 0;
    }
    st = strtol(e.claims, &end, 10);
    if (end != nl || (st != 200 && st != 404)) {
        return 0;
    }
    *status = (int)st;
    *len = e.claims_len - 4;
    *body = apr_pstrmemdup(p, nl + 1, *len);
    *at = e.fetched;
    return 1;
}

static void copy_put(ot_shm_t *s, const char *url, const char *scope, apr_time_t at,
                     int status, const char *body, apr_size_t len, apr_pool_t *p)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    char *buf;

    if ((status != 200 && status != 404) || len > RECORD_MAX) {
        return;
    }
    buf = apr_palloc(p, len + 4);
    memcpy(buf, status == 200 ? "200\n" : "404\n", 4);
    memcpy(buf + 4, body, len);
    memset(&e, 0, sizeof(e));
    e.fetched = at;
    e.drop_after = at + OT_DOCS_MAX_STALE;
    e.active = 1;
    e.claims = buf;
    e.claims_len = len + 4;
    key_of(key, PREFIX_COPY, url, scope);
    ot_cache_put(s, key, &e, at);
}

/**
 * 1 when this process may GET url now (no claim in the last interval); records its claim.
 * Otherwise *claimed is when the other process claimed it.
 */
static int claim(ot_shm_t *s, const char *url, const char *scope, apr_time_t now,
                 apr_time_t *claimed, apr_pool_t *p)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;

    key_of(key, PREFIX_CLAIM, url, scope);
    memset(&e, 0, sizeof(e));
    e.fetched = now;
    e.drop_after = now + OT_DOCS_INTERVAL;
    e.active = 1;
    e.claims = "";
    e.claims_len = 0;
    /* Exactly one of several processes claiming at once gets it; a broken lock: fetch anyway. */
    return ot_cache_claim(s, key, &e, now, now - OT_DOCS_INTERVAL + 1, claimed, p)
        != APR_EEXIST;
}

/**
 * No copy, and another process claimed the fetch at `claimed`: wait for its copy, until `wait`
 * after its claim (its GET has ended by then). 1 with the copy.
 */
static int wait_for_copy(ot_shm_t *s, const char *url, const char *scope, apr_time_t claimed,
                         apr_interval_time_t wait, int *status, const char **body,
                         apr_size_t *len, apr_time_t *at, apr_pool_t *p)
{
    apr_time_t now;

    for (now = apr_time_now(); now < claimed + wait; now = apr_time_now()) {
        apr_sleep(WAIT_STEP);
        if (copy_get(s, url, scope, apr_time_now(), status, body, len, at, p)
            && *at >= claimed) {
            return 1;
        }
    }
    return 0;
}

apr_status_t ot_docs_fetch(ot_shm_t *s, const char *url, const char *scope, apr_time_t now,
                           apr_interval_time_t wait, ot_docs_get_fn *get, void *baton,
                           int *status, const char **body, apr_size_t *len, const char **why,
                           int *fetched, apr_pool_t *p)
{
    int have = 0, st = 0;
    const char *b = NULL;
    apr_size_t n = 0;
    apr_time_t at = 0, claimed = 0;
    apr_status_t rv;

    *fetched = 0;
    if (s == NULL) {
        *fetched = 1;
        return get(baton, url, status, body, len, why, p);
    }
    have = copy_get(s, url, scope, now, &st, &b, &n, &at, p) && now >= at
        && now - at < OT_DOCS_MAX_STALE;
    if (have && now - at < OT_DOCS_INTERVAL) {
        rv = APR_SUCCESS;                       /* fetched by some process just now */
    }
    else if (!claim(s, url, scope, now, &claimed, p)) {
        /* Another process is fetching it, or tried less than 10 s ago. */
        have = have || wait_for_copy(s, url, scope, claimed, wait, &st, &b, &n, &at, p);
        rv = have ? APR_SUCCESS : APR_EAGAIN;
        *why = "another server process tried to fetch it less than 10 s ago, and failed";
    }
    else {
        *fetched = 1;
        rv = get(baton, url, status, body, len, why, p);
        if (rv == APR_SUCCESS) {
            copy_put(s, url, scope, now, *status, *body, *len, p);
            return APR_SUCCESS;
        }
        rv = have ? APR_SUCCESS : rv;           /* the copy there is, while not too old */
    }
    if (rv == APR_SUCCESS) {
        *status = st;
        *body = b;
        *len = n;
    }
    return rv;
}
