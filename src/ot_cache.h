/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_cache.h
 * @brief The shared-memory cache of introspection answers, and the revocations pushed by issuers.
 *
 * One anonymous shared segment (ot_shm_t) holds a header (magic, layout version, size), the
 * server-wide counters (ot_stats_t), the answer cache and the revocation table. The segment is
 * made once in the httpd parent and survives graceful restarts: the glue keeps it in a pool
 * with no parent, remembered in ap_retained_data, and reuses it while ot_shm_reusable() says
 * its layout and size match the new configuration. Every lock lives inside the segment.
 *
 * The token is never stored: entries are found by a 32-byte key, the SHA-256 digest the caller
 * computes over introspection URL, client id, hint and token.
 */
#ifndef OT_CACHE_H
#define OT_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>

#define OT_KEY_LEN 32

struct ot_stats_t;
typedef struct ot_shm_t ot_shm_t;

/** What is kept of one answer. Strings are NUL-terminated; NULL when absent. */
typedef struct {
    apr_time_t fetched;     /**< when the issuer call that produced the answer started */
    apr_time_t drop_after;  /**< no location accepts it after this (min of exp and fetched+max TTL) */
    apr_time_t exp;         /**< the token's exp; 0 when it has none */
    apr_time_t iat;         /**< the answer's iat; 0 when it has none */
    int active;             /**< 1: positive answer, 0: inactive (negative cache) */
    int offline;            /**< 1: an offline token */
    const char *iss;
    const char *sub;
    const char *sid;
    const char *azp;        /**< the client the token was issued to: azp, else client_id */
    const char *claims;     /**< positive answers: ot_answer_digest() (binary, holds NULs) */
    apr_size_t claims_len;
} ot_cache_entry_t;

/** Counters of the cache itself, as read by the status handler. */
typedef struct {
    apr_uint64_t entries, capacity, hits, misses, evictions, too_big;
} ot_cache_info_t;

/**
 * Make a new segment able to hold about cache_bytes of answers, from anonymous shared memory
 * allocated with p (give a pool with no parent to let it outlive a configuration generation).
 */
apr_status_t ot_shm_create(ot_shm_t **ps, apr_size_t cache_bytes, apr_pool_t *p);

/** 1 when s was made by this code's layout version for the same cache_bytes. */
int ot_shm_reusable(const ot_shm_t *s, apr_size_t cache_bytes);

/** The server-wide counters that live in the segment. */
struct ot_stats_t *ot_shm_stats(ot_shm_t *s);

/** The issuer-call budgets in the segment, for ot_rate.h's functions. */
void *ot_shm_rate(ot_shm_t *s);

/** Bytes one entry of claims_len bytes of claims takes in the segment (documented sizing). */
apr_size_t ot_cache_entry_footprint(apr_size_t claims_len);

/**
 * Look key up. APR_SUCCESS and a copy (strings from p) in *e when found and not past
 * drop_after at now; APR_NOTFOUND otherwise. The caller applies its own TTL to e->fetched.
 * Never sees a half-written entry. Counts a hit or a miss.
 */
apr_status_t ot_cache_get(ot_shm_t *s, const unsigned char *key, apr_time_t now,
                          ot_cache_entry_t *e, apr_pool_t *p);

/**
 * Store e under key, replacing what was there unless that was fetched later (newer wins: an
 * inactive answer stays the tombstone of every older positive one). When the segment is full
 * the expired entries go first, then the least recently used. APR_ENOSPC when e can never fit
 * (too large): the caller goes on without caching. A positive entry whose fetched time is older
 * than a matching revocation (see below) is not stored (APR_EINCOMPLETE).
 */
apr_status_t ot_cache_put(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                          apr_time_t now);

/**
 * Store e under key unless a live entry fetched at or after `since` is there (then APR_EEXIST
 * and its fetched time in *held): one check and store under the stripe's lock, so of several
 * processes claiming the same key at once exactly one succeeds (ot_docs.c's fetch claims).
 */
apr_status_t ot_cache_claim(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                            apr_time_t now, apr_time_t since, apr_time_t *held, apr_pool_t *p);

/** Forget key (e.g. after the issuer said it is no longer active). */
void ot_cache_remove(ot_shm_t *s, const unsigned char *key);

/** Fill *info. */
void ot_cache_info(ot_shm_t *s, ot_cache_info_t *info);

/**
 * Encode e compactly for another tier (Redis): a versioned, length-prefixed binary form, in a
 * buffer from p. APR_ENOSPC when a string is too long for the format (iss, sub or sid over
 * 65535 bytes), APR_EINVAL for a negative time.
 */
apr_status_t ot_cache_entry_encode(const ot_cache_entry_t *e, char **buf, apr_size_t *len,
                                   apr_pool_t *p);

/**
 * Decode what ot_cache_entry_encode made; strings are copied into p. Any malformed, truncated
 * or trailing input is APR_EINVAL and leaves *e unchanged; the input may come from anyone who
 * can write to the other tier, so authenticate it first.
 */
apr_status_t ot_cache_entry_decode(ot_cache_entry_t *e, const char *buf, apr_size_t len,
                                   apr_pool_t *p);

/* ---- revocations pushed by issuers --------------------------------------------------------- */

typedef enum { OT_REVOKE_SUB = 1, OT_REVOKE_SID = 2 } ot_revoke_kind_t;

/**
 * A logout without `sid` (every session of a `sub`) is also recorded as an OT_REVOKE_SID
 * tombstone of this value, so that tokens judged locally can tell it from the `sub` tombstone a
 * logout of one session records beside its `sid` (ot_jwt_verify.h). No issuer's sid looks so.
 */
#define OT_REVOKE_ALL_SESSIONS "offtok:all-sessions-of:"

/**
 * Record that every answer of issuer iss for that sub (or sid) fetched before `at` is unusable,
 * until `until` (the longest TTL plus the timeout after `at`). Applies at once in every process.
 */
apr_status_t ot_revoke_add(ot_shm_t *s, ot_revoke_kind_t kind, const char *iss,
                           const char *value, apr_time_t at, apr_time_t until);

/**
 * Make every positive answer fetched before t unusable, whatever its issuer or subject (a node
 * that may have missed revocations addressed to single answers, e.g. Redis key tombstones).
 * Raises the marker only: an earlier t changes nothing.
 */
apr_status_t ot_revoke_stale_before(ot_shm_t *s, apr_time_t t);

/**
 * Set the not-before policy of (iss, client): not_before in seconds since the epoch (0 clears
 * it), recorded at `at`, ordered by `order` (the action's expiration, in seconds). It replaces
 * the pair's previous policy only when newer: a greater order, or the same order and a greater
 * not_before. APR_EEXIST when the policy in force is as new or newer (nothing changed);
 * APR_ENOSPC when the table is full (every cached answer then goes back to the issuer).
 */
apr_status_t ot_revoke_set_not_before(ot_shm_t *s, const char *iss, const char *client,
                                      apr_int64_t not_before, apr_int64_t order, apr_time_t at);

/**
 * 1 when entry e (answer of issuer iss, at a location whose OfftokClientID is client) must not
 * be used: a matching sub or sid revocation recorded after e->fetched, or a not-before policy
 * that e->iat predates (or, when e has no iat, a policy set after e->fetched). The policies
 * looked at are client's (it covers every answer) and e->azp's (the tokens issued to it).
 */
int ot_revoke_applies(ot_shm_t *s, const char *iss, const char *client,
                      const ot_cache_entry_t *e);

/** Applies what a push revokes; anything but APR_SUCCESS is a failure. */
typedef apr_status_t (*ot_revoke_apply_fn)(void *baton);

/**
 * Apply a push once: APR_EEXIST when its jti (or action id) is still remembered from an earlier
 * copy (a replay: apply is not called); otherwise apply, and only when it succeeded remember the
 * jti until `until`. A push whose applying failed is not remembered, so the issuer's retry is
 * applied rather than refused as a replay; two copies arriving at once may both be applied,
 * which only revokes twice. Returns what apply returned, or APR_EEXIST.
 */
apr_status_t ot_revoke_once(ot_shm_t *s, const char *iss, const char *jti, apr_time_t until,
                            apr_time_t now, ot_revoke_apply_fn apply, void *baton);

/**
 * The marker ot_revoke_stale_before raises (and a full tombstone table): every answer fetched
 * before it counts as revoked (0: none). Tokens judged without the issuer go to the issuer
 * instead when they were issued before it (ot_jwt_verify.h).
 */
apr_time_t ot_revoke_stale_marker(ot_shm_t *s);

/**
 * Remember a jti (of a logout token or admin action) until `until`. APR_EEXIST when it was
 * already seen (a replay), in any process.
 */
apr_status_t ot_revoke_seen_jti(ot_shm_t *s, const char *iss, const char *jti, apr_time_t until,
                                apr_time_t now);

#endif
