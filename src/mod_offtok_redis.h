/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file mod_offtok_redis.h
 * @brief Pushed revocations and the Redis tier (mod_offtok_redis.c), as the rest of the glue
 *        sees them. mod_offtok_redis.c is built only with hiredis; without it, the functions
 *        below are local-only stand-ins.
 */
#ifndef MOD_OFFTOK_REDIS_H
#define MOD_OFFTOK_REDIS_H

#include "mod_offtok.h"

/** What offtok_redis_once found. */
typedef enum {
    OFFTOK_ONCE_FIRST,               /**< recorded: no node used it before */
    OFFTOK_ONCE_SEEN,                /**< some node used it before: a replay */
    OFFTOK_ONCE_UNAVAILABLE          /**< no Redis, or it could not be asked */
} offtok_once_t;

#ifdef HAVE_HIREDIS
/**
 * Apply a valid pushed revocation of a sub or sid in every process of this node (ot_revoke_add)
 * and, with OfftokRedis, publish it to the other nodes; while Redis is unreachable it is queued
 * and published once Redis is back. Returns what ot_revoke_add returned.
 */
apr_status_t offtok_revoke(request_rec *r, ot_revoke_kind_t kind, const char *iss,
                           const char *value, apr_time_t at, apr_time_t until);

/**
 * The same for a not-before policy (ot_revoke_set_not_before), ordered by `order` (the Keycloak
 * action's expiration): an older one than the policy in force changes nothing, here or on the
 * other nodes, and returns APR_SUCCESS.
 */
apr_status_t offtok_not_before(request_rec *r, const char *iss, const char *client,
                               apr_int64_t not_before, apr_int64_t order, apr_time_t at);

/**
 * After a local miss: an answer another node stored in Redis. APR_SUCCESS and *e when one is
 * there and authentic; anything else is a miss (Redis unreachable, nothing there, a value that
 * fails its MAC).
 */
apr_status_t offtok_redis_get(request_rec *r, const unsigned char *key, apr_time_t now,
                              ot_cache_entry_t *e);

/** Store a fresh answer in Redis too (when OfftokRedis is set; failures are only counted). */
void offtok_redis_put(request_rec *r, const unsigned char *key, const ot_cache_entry_t *e);

/**
 * 0 when a positive answer fetched at `fetched` must not be reused: this process's subscription
 * to revocations is down (or not caught up yet) and the answer predates the loss.
 */
int offtok_redis_trusts(apr_time_t fetched);

/**
 * 1 when this process holds every revocation pushed to any node (no OfftokRedis, or its
 * subscription is up and caught up); 0 while it may have missed some. Locally judged tokens
 * take pushed revocations as deny rules: while this is 0 they are introspected instead.
 */
int offtok_redis_caught_up(void);

/**
 * Record that `id` (of `table`: "push" for logout jtis and action ids, later "dpop") from issuer
 * `iss` is used, until `until`, across all nodes (SET NX in Redis). OFFTOK_ONCE_FIRST: no node
 * saw it before; OFFTOK_ONCE_SEEN: one did (a replay); OFFTOK_ONCE_UNAVAILABLE: no OfftokRedis,
 * or Redis could not be asked — the caller decides (accept a logout, refuse a proof).
 */
offtok_once_t offtok_redis_once(request_rec *r, const char *table, const char *iss,
                                const char *id, apr_time_t until);

/** Undo offtok_redis_once's record of id (what it guarded failed here; a retry must pass). */
void offtok_redis_once_forget(request_rec *r, const char *table, const char *iss,
                              const char *id);

#else
/* Built without hiredis: the directives are refused, nothing is shared. */
static APR_INLINE apr_status_t offtok_revoke(request_rec *r, ot_revoke_kind_t kind,
                                             const char *iss, const char *value, apr_time_t at,
                                             apr_time_t until)
{
    return ot_revoke_add(offtok_proc()->shm, kind, iss, value, at, until);
}

static APR_INLINE apr_status_t offtok_not_before(request_rec *r, const char *iss,
                                                 const char *client, apr_int64_t not_before,
                                                 apr_int64_t order, apr_time_t at)
{
    apr_status_t rv = ot_revoke_set_not_before(offtok_proc()->shm, iss, client, not_before,
                                               order, at);

    return rv == APR_EEXIST ? APR_SUCCESS : rv;
}

static APR_INLINE apr_status_t offtok_redis_get(request_rec *r, const unsigned char *key,
                                                apr_time_t now, ot_cache_entry_t *e)
{
    return APR_NOTFOUND;
}

static APR_INLINE void offtok_redis_put(request_rec *r, const unsigned char *key,
                                        const ot_cache_entry_t *e)
{
}

static APR_INLINE int offtok_redis_trusts(apr_time_t fetched)
{
    return 1;
}

static APR_INLINE int offtok_redis_caught_up(void)
{
    return 1;
}

static APR_INLINE offtok_once_t offtok_redis_once(request_rec *r, const char *table,
                                                  const char *iss, const char *id,
                                                  apr_time_t until)
{
    return OFFTOK_ONCE_UNAVAILABLE;
}

static APR_INLINE void offtok_redis_once_forget(request_rec *r, const char *table,
                                                const char *iss, const char *id)
{
}

#endif

#endif
