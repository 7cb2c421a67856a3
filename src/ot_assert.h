/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_assert.h
 * @brief Client assertions (RFC 7523 §2.2, OpenID Connect Core §9): the JWT by which the module
 *        proves itself to the issuer under private_key_jwt and client_secret_jwt.
 *
 * One assertion is made for every issuer call and never kept: issuers refuse a reused `jti`.
 * Claims: `iss` = `sub` = the client id, `aud` (one string), a random `jti` (128 bits from
 * OpenSSL's CSPRNG), `iat` and `exp` = `iat` + lifetime. Signed with OpenSSL's EVP interface:
 * RSA keys sign RS256, EC keys ES256/ES384/ES512 by curve (P-256, P-384, P-521; the signature as
 * raw R||S, RFC 7518 §3.4), Ed25519 keys EdDSA, and a client secret HS256.
 */
#ifndef OT_ASSERT_H
#define OT_ASSERT_H

#include <apr_pools.h>
#include <apr_time.h>

struct evp_pkey_st;

/** The client_assertion_type sent with every assertion. */
#define OT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/** Seconds an assertion is valid (its `exp` - `iat`). */
#define OT_ASSERTION_LIFETIME 60

/** What an assertion says. */
typedef struct {
    const char *client_id;      /**< `iss` and `sub` */
    const char *aud;            /**< the issuer identifier or OfftokClientAssertionAudience */
    apr_time_t now;             /**< `iat` */
    int lifetime;               /**< seconds until `exp` */
} ot_assert_claims_t;

/**
 * Read a PEM private key (RSA of at least 2048 bits, EC on P-256/P-384/P-521, or Ed25519).
 * Returns the key (the caller frees it with EVP_PKEY_free) or NULL with *err set to a message
 * that never quotes the key.
 */
struct evp_pkey_st *ot_assert_key_read(const char *pem, apr_size_t len, const char **err);

/** ot_assert_key_read, with the key freed when p is cleared. */
struct evp_pkey_st *ot_assert_key_parse(const char *pem, apr_size_t len, const char **err,
                                        apr_pool_t *p);

/** The JWS algorithm this key signs with (RS256, ES256, ES384, ES512, EdDSA); NULL if none. */
const char *ot_assert_key_alg(struct evp_pkey_st *key);

/**
 * Make and sign one assertion: with key (and its kid in the header, when not NULL) for
 * private_key_jwt, or, when key is NULL, with HS256 keyed by secret for client_secret_jwt.
 * Returns the compact JWT from p, or NULL with *err set (never quoting a secret).
 */
const char *ot_assertion_make(const ot_assert_claims_t *cl, struct evp_pkey_st *key,
                              const char *kid, const char *secret, const char **err,
                              apr_pool_t *p);

/**
 * Sign header and payload (JSON texts) as a compact JWS: with key in its algorithm
 * (ot_assert_key_alg), or, when key is NULL, HS256 with secret. The header must name that alg.
 * NULL on failure.
 */
const char *ot_jws_sign(const char *header, const char *payload, struct evp_pkey_st *key,
                        const char *secret, apr_pool_t *p);

/** base64url without padding (RFC 7515 §2). */
const char *ot_b64url_encode(const unsigned char *in, apr_size_t len, apr_pool_t *p);

#endif
