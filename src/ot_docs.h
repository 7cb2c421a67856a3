/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_docs.h
 * @brief Documents fetched from issuers (JWKS, metadata), shared by every server process.
 *
 * A GET of an issuer's keys or metadata is made once for the whole server: its answer (status
 * and body) is kept in the shared cache (ot_cache.h) under a key of its own, and each process's
 * own caches (ot_jose.h, ot_discovery.h) take it from there. The rules, for one URL and one set
 * of TLS trust settings (the scope):
 *
 * - a copy fetched less than OT_DOCS_INTERVAL ago is given out without a network call;
 * - otherwise one process claims the fetch (a marker in the cache, also kept there) and makes
 *   it; any other process that asks within OT_DOCS_INTERVAL of that claim gets the copy there is,
 *   if it is younger than OT_DOCS_MAX_STALE; without one it waits (polling, up to `wait` after
 *   the claim) for the claimant's copy, else gets an error: at most one fetch per URL every
 *   OT_DOCS_INTERVAL for all processes (the claim is checked and stored under the cache stripe's
 *   lock, ot_cache_claim);
 * - when the fetch fails, the copy there is is given out while it is younger than
 *   OT_DOCS_MAX_STALE.
 *
 * The cache may evict a copy or a claim like any entry; a process then fetches for itself. A
 * document too large for one cache record (16 KiB) is fetched by each process for itself.
 */
#ifndef OT_DOCS_H
#define OT_DOCS_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ot_cache.h"

/** One fetch per URL this often at most, for all processes. */
#define OT_DOCS_INTERVAL apr_time_from_sec(10)
/** A shared copy older than this is not given out. */
#define OT_DOCS_MAX_STALE apr_time_from_sec(86400)

/**
 * GET url: APR_SUCCESS with an HTTP answer (*status, and *body of *len bytes), or an error with
 * *why for anything else.
 */
typedef apr_status_t ot_docs_get_fn(void *baton, const char *url, int *status,
                                    const char **body, apr_size_t *len, const char **why,
                                    apr_pool_t *p);

/**
 * The answer to GET url, shared as the file comment says; scope names the TLS trust settings it
 * is fetched under (different settings, different copies); wait bounds how long after another
 * process's claim this one waits for its copy (the longest issuer timeout: its GET has ended by
 * then). s NULL: get is simply called. Only answers with status 200 or 404 are shared. *fetched: 1 when this call went to the network.
 */
apr_status_t ot_docs_fetch(ot_shm_t *s, const char *url, const char *scope, apr_time_t now,
                           apr_interval_time_t wait, ot_docs_get_fn *get, void *baton,
                           int *status, const char **body, apr_size_t *len, const char **why,
                           int *fetched, apr_pool_t *p);

#endif
