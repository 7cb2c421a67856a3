/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jwt_verify.h
 * @brief Local validation of JWT access tokens (OfftokAccessTokens Local): which tokens are
 *        judged here, and the checks on their verified claims.
 *
 * The signature itself is checked by ot_jose.h with the issuer's JWKS. This file decides, before
 * any key is touched, whether a token is one this module judges at all (an RFC 9068 `at+jwt`, or
 * a Keycloak access token: header `typ` absent or `JWT` and claim `typ` Bearer or DPoP, signed
 * with an asymmetric algorithm), and afterwards judges its times and pushed revocations. Every
 * token it does not judge goes to the issuer, as every token did before.
 */
#ifndef OT_JWT_VERIFY_H
#define OT_JWT_VERIFY_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ot_answer.h"
#include "ot_jose.h"
#include "ot_revoke.h"

/** Why a locally judged token was refused, or went to the issuer after all (for counters). */
typedef enum {
    OT_LOCAL_FAIL_SIGNATURE = 0,  /**< a known key of the issuer does not verify it */
    OT_LOCAL_FAIL_EXPIRED,        /**< exp missing, not a date, or past */
    OT_LOCAL_FAIL_NOT_YET,        /**< nbf or iat after now + OfftokClockSkew */
    OT_LOCAL_FAIL_ISSUER,         /**< iss missing or not OfftokIssuer */
    OT_LOCAL_FAIL_AUDIENCE,       /**< aud not naming OfftokAudience, or other policy refusals */
    OT_LOCAL_FAIL_REVOKED,        /**< a pushed logout or not-before policy refuses it */
    OT_LOCAL_FAIL_NO_KEYS,        /**< the issuer's keys or metadata could not be had (503) */
    OT_LOCAL_FAIL_KINDS
} ot_local_fail_t;

/** Short names of ot_local_fail_t, in enum order, for the status page and Prometheus. */
extern const char *const ot_local_fail_names[OT_LOCAL_FAIL_KINDS];

/** The three outcomes of a local judgement. */
typedef enum {
    OT_LOCAL_ACCEPT = 0,   /**< judged here and acceptable */
    OT_LOCAL_REFUSE,       /**< judged here and refused */
    OT_LOCAL_ASK           /**< not judged here: introspect it */
} ot_local_verdict_t;

/**
 * 1 when token is a JWT access token judged here (the file comment's rule; the algorithm one of
 * RS256/384/512, PS256/384/512, ES256/384/512, EdDSA). 0 otherwise, with *why (static text, for
 * a debug line): opaque, another `typ`, `none`, HMAC or another algorithm, not JSON.
 * Nothing is verified here.
 */
int ot_local_candidate(const char *token, const char **why, apr_pool_t *p);

/** ot_local_candidate with token's header already read (ot_jose_header_read on its first part). */
int ot_local_candidate_h(const char *token, const ot_jose_header_t *h, const char **why,
                         apr_pool_t *p);

/**
 * ot_local_candidate_h as far as the header tells: 1 a candidate (at+jwt), 0 not (*why), -1 one
 * only if the payload's typ claim is Bearer or DPoP (Keycloak's access tokens; header typ JWT or
 * none). Nothing of the payload is read.
 */
int ot_local_candidate_hdr(const char *token, const ot_jose_header_t *h, const char **why);

/**
 * 1 when a (a verified payload's reading) has the typ claim of Keycloak's access tokens, a
 * string Bearer or DPoP: what ot_local_candidate_h's peek looks for, read from the answer.
 */
int ot_local_access_claim(const ot_answer_t *a);

/**
 * Judge a verified token's times at now (seconds): `exp` required and after now (no leeway);
 * `nbf` and `iat`, when present, not after now + skew. OT_LOCAL_ACCEPT, or OT_LOCAL_REFUSE with
 * *fail set.
 */
ot_local_verdict_t ot_local_times(const ot_answer_t *a, apr_int64_t now, apr_int64_t skew,
                                  ot_local_fail_t *fail);

/**
 * Pushed revocations as deny rules for a locally judged token of issuer iss, seen by a location
 * whose not-before policies are kept under client (OfftokClientID); azp is the token's (NULL when
 * absent). keep: how long pushed revocations are kept (µs).
 * - OT_LOCAL_ASK when the token has no `iat`, lives longer than keep (exp − iat), or predates the
 *   revocation table's overflow marker; or when only a logout by its `sub` matches a token that
 *   has a `sid` (that logout may have been for another session).
 * - OT_LOCAL_REFUSE when a logout of its `sid`, or one without `sid` of its `sub`
 *   (OT_REVOKE_ALL_SESSIONS; for a token without `sid`, any logout of its `sub`), was recorded at
 *   or after its `iat`, or a not-before policy is later than its `iat`.
 * - OT_LOCAL_ACCEPT otherwise.
 */
ot_local_verdict_t ot_local_revocation(ot_shm_t *s, const ot_answer_t *a, const char *iss,
                                       const char *client, apr_interval_time_t keep,
                                       apr_pool_t *p);

#endif
