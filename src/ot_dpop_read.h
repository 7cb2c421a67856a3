/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_dpop_read.h
 * @brief The members of a DPoP proof's header and payload that RFC 9449 §4.3 checks, read
 *        from their JSON (decoded from base64url) by ot_jscan, or by jansson when the scanner
 *        cannot vouch for the text (OT_JS_UNSURE).
 *
 * Core code (APR, jansson). Both readers fill the same structures and say the same thing of
 * every input (tests/unit/test_dpop_read.c, tests/fuzz/fuzz_dpop.c): a member is a string only
 * when its value is one (a number, object or null is NULL here), `crit` counts when present
 * with any value, a jwk member of a private or symmetric key counts with any value.
 */
#ifndef OT_DPOP_READ_H
#define OT_DPOP_READ_H

#include <apr_pools.h>
#include <jansson.h>

/** The members of a proof's jwk that the checks use; NULL when absent or not a string. */
typedef struct {
    const char *kty, *crv, *e, *n, *x, *y;
    /** The first of d, p, q, dp, dq, qi, oth, k (in that order) present with any value. */
    const char *private_member;
} ot_dpop_jwk_t;

/** A proof's header. */
typedef struct {
    const char *typ, *alg;
    int crit;                     /**< crit is present (any value) */
    int jwk;                      /**< jwk is present and an object (then `key` is filled) */
    ot_dpop_jwk_t key;
} ot_dpop_head_t;

/** A proof's payload. */
typedef struct {
    const char *htm, *htu, *ath, *jti, *nonce;
    int iat_ok;                   /**< iat is an integer, or a real in (0, 1e11) */
    apr_int64_t iat;              /**< in whole seconds (a real is truncated) */
} ot_dpop_claims_t;

/** Which reader answered (tests and the fuzz target compare them). */
typedef enum { OT_DPOP_READ_ANY = 0, OT_DPOP_READ_SCAN, OT_DPOP_READ_JANSSON } ot_dpop_reader_t;

/**
 * Read the header's JSON text json[0..len) (not NUL-terminated). 1 when it is a JSON object
 * (jansson's ot_json_parse would take it), else 0. READ_ANY: ot_jscan, jansson on UNSURE;
 * READ_SCAN: ot_jscan only, -1 when it is unsure; READ_JANSSON: jansson only.
 */
int ot_dpop_read_head(ot_dpop_head_t *h, const char *json, apr_size_t len,
                      ot_dpop_reader_t how, apr_pool_t *p);

/** The same for the payload. */
int ot_dpop_read_claims(ot_dpop_claims_t *c, const char *json, apr_size_t len,
                        ot_dpop_reader_t how, apr_pool_t *p);

/** 1 when a and b hold the same members (tests and the fuzz target compare the readers). */
int ot_dpop_head_eq(const ot_dpop_head_t *a, const ot_dpop_head_t *b);

/** The same for payloads. */
int ot_dpop_claims_eq(const ot_dpop_claims_t *a, const ot_dpop_claims_t *b);

/**
 * The reader that ot_dpop_verify uses (it asks for READ_ANY): tests and the fuzz target set
 * READ_JANSSON to judge proofs the old way. Process-wide; not for the server.
 */
void ot_dpop_read_use(ot_dpop_reader_t how);

/** The members of a parsed JWK object (for ot_dpop_jwk_thumbprint). */
void ot_dpop_jwk_from_json(ot_dpop_jwk_t *k, const json_t *jwk);

#endif
