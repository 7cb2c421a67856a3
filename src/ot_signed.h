/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_signed.h
 * @brief RFC 9701 signed introspection answers: what makes a verified JWS an answer we accept.
 *
 * The module asks with `Accept: application/token-introspection+jwt`; the issuer answers with a
 * JWS (verified elsewhere with the issuer's keys, ot_jose.h) whose header `typ` is
 * `token-introspection+jwt` (or `application/token-introspection+jwt`), whose `iss` is the issuer
 * identifier, whose `aud` (string or array) names the client id that asked, whose `iat` is fresh,
 * and whose `token_introspection` member is the RFC 7662 answer itself.
 */
#ifndef OT_SIGNED_H
#define OT_SIGNED_H

#include <apr_pools.h>
#include <apr_time.h>
#include "ot_jose.h"

/** The Accept header (and Content-Type) of a signed answer. */
#define OT_SIGNED_TYPE "application/token-introspection+jwt"

/** What a signed answer must say, and the window its iat must fall in. */
typedef struct {
    const char *issuer;         /**< `iss` must equal it */
    const char *client_id;      /**< `aud` must contain it */
    apr_time_t earliest;        /**< `iat` no earlier (the call's start less the clock skew) */
    apr_time_t latest;          /**< `iat` no later (now plus the clock skew) */
    const char *token_jti;      /**< the asked token's own `jti` (a JWT's, unverified), or NULL:
                                     an answer whose `token_introspection` has a `jti` must
                                     then carry this one (RFC 9701 binds an answer to no token:
                                     this keeps another token's answer from passing for a JWT's;
                                     for an opaque token nothing in the answer can tell) */
} ot_signed_rules_t;

/** 1 when a Content-Type value is application/token-introspection+jwt (parameters allowed). */
int ot_signed_content_type(const char *ct);

/**
 * Judge a verified JWS as a signed answer. APR_SUCCESS with *answer (compact JSON text of its
 * `token_introspection` object, from p) and *len; otherwise *why says what is wrong (never
 * quoting the answer).
 */
apr_status_t ot_signed_check(const char **answer, apr_size_t *len, const char **why,
                             const ot_jws_t *jws, const ot_signed_rules_t *rules, apr_pool_t *p);

/**
 * Verify body (a compact JWS, surrounding white space allowed) with the key set jwks and judge
 * it with ot_signed_check: what the fuzzer and the unit tests drive. *no_key as for
 * ot_jose_verify_jwks.
 */
apr_status_t ot_signed_unwrap(const char **answer, apr_size_t *len, const char **why,
                              int *no_key, const char *body, apr_size_t body_len,
                              const char *jwks, apr_size_t jwks_len,
                              const ot_signed_rules_t *rules, apr_pool_t *p);

/** body without leading and trailing white space: *start and *n. */
void ot_signed_trim(const char **start, apr_size_t *n, const char *body, apr_size_t len);

#endif
