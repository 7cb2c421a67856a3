/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_revoke.h
 * @brief Revocations pushed by issuers, in the shared segment of ot_shm.h: `sub`/`sid`
 * tombstones, not-before policies, seen `jti`s, and the overflow marker. The push handlers and
 * the Redis subscriber write them; every cache lookup and every fresh answer consults them.
 */
#ifndef OT_REVOKE_H
#define OT_REVOKE_H

#include <apr_pools.h>
#include <apr_time.h>
#include "ot_entry.h"

/* The segment the revocation table lives in (ot_shm.h). */
typedef struct ot_shm_t ot_shm_t;

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

/* ---- for ot_shm.c and ot_cache.c ----------------------------------------------------------- */

/** Bytes of the revocation area. */
apr_size_t ot_revoke_area_size(void);

/** Initialise the revocation area of a new segment. */
apr_status_t ot_revoke_init(ot_shm_t *s);

/**
 * 1 when a sub or sid revocation of issuer iss (or the overflow marker) makes e unusable; the
 * part of ot_revoke_applies() that does not depend on the client, checked by ot_cache_put.
 */
int ot_revoke_tombstoned(ot_shm_t *s, const char *iss, const ot_cache_entry_t *e);

#endif
