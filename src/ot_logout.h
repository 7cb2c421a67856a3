/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_logout.h
 * @brief What an issuer pushes, judged after its signature was verified: OpenID Connect
 *        back-channel logout tokens and Keycloak's admin actions.
 *
 * Pure functions on decoded JSON (no httpd, no shared memory, no clock of their own), so that
 * they can be unit tested and fuzzed. The caller verifies the signature first (ot_jose.h),
 * then calls these, and only when they accept does it change anything.
 */
#ifndef OT_LOGOUT_H
#define OT_LOGOUT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/** The event a logout token must carry. */
#define OT_LOGOUT_EVENT "http://schemas.openid.net/event/backchannel-logout"
/** Longest sub, sid, jti or session id accepted. */
#define OT_PUSH_VALUE_MAX 1024
/** Most Keycloak session ids accepted in one k_logout. */
#define OT_PUSH_SIDS_MAX 1000

/** What the receiving location expects. */
typedef struct {
    const char *issuer;     /**< OfftokIssuer: a logout token's iss */
    const char *client_id;  /**< OfftokClientID: an action's resource; a logout token's aud
                                 where audiences is NULL */
    apr_int64_t now;        /**< seconds since the epoch */
    apr_int64_t skew;       /**< seconds of clock difference allowed on iat */
    const apr_array_header_t *audiences; /**< OfftokLogoutAudience (const char *): a logout
                                 token's aud must name one; also accepted as an action's
                                 resource. NULL when unset */
} ot_push_expect_t;

/** A logout token that checked out. */
typedef struct {
    const char *sub;        /**< NULL when absent */
    const char *sid;        /**< NULL when absent */
    const char *jti;
    apr_int64_t iat;
    apr_int64_t exp;        /**< 0 when absent */
} ot_logout_t;

/**
 * Check a logout token's header (typ) and claims as OpenID Connect Back-Channel Logout 1.0 §2.6
 * asks: iss, aud containing client_id, iat within ±skew of now, exp (if present) after now,
 * events with the back-channel-logout member (a JSON object), sub and/or sid, no nonce, a jti.
 * NULL when valid (and *out filled), else a reason for the log (from p).
 */
const char *ot_logout_check(ot_logout_t *out, const json_t *header, const json_t *payload,
                            const ot_push_expect_t *x, apr_pool_t *p);

/** Seconds since the epoch until which a valid logout token's jti must be remembered. */
apr_int64_t ot_logout_replay_until(const ot_logout_t *lt, const ot_push_expect_t *x);

/** Keycloak's admin actions, by the last segment of the path they are POSTed to. */
typedef enum {
    OT_ADMIN_PUSH_NOT_BEFORE = 0,   /**< k_push_not_before, action PUSH_NOT_BEFORE */
    OT_ADMIN_LOGOUT,                /**< k_logout, action LOGOUT */
    OT_ADMIN_TEST_AVAILABLE         /**< k_test_available, action TEST_AVAILABILITY */
} ot_admin_kind_t;

/** An admin action that checked out. */
typedef struct {
    ot_admin_kind_t kind;
    const char *id;                 /**< the action's id, remembered against replays */
    apr_int64_t expiration;
    apr_int64_t not_before;         /**< 0: none (k_logout) or clear (k_push_not_before) */
    apr_array_header_t *sids;       /**< const char *: keycloakSessionIds (k_logout) */
    const char *resource;           /**< the client the action is for */
} ot_admin_t;

/** The kind named by a path segment ("k_logout", ...); -1 when none. */
int ot_admin_kind(const char *segment);

/**
 * Check a Keycloak admin action's payload for the kind its path named: action matching it,
 * resource equal to client_id, expiration not before now, an id, and the kind's own members
 * (notBefore a whole number ≥ 0; keycloakSessionIds an array of strings or null).
 * NULL when valid (and *out filled from p), else a reason for the log.
 */
const char *ot_admin_check(ot_admin_t *out, const json_t *payload, ot_admin_kind_t kind,
                           const ot_push_expect_t *x, apr_pool_t *p);

#endif
