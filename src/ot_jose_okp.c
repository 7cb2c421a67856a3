/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_okp.c
 * @brief EdDSA with Ed25519 keys (RFC 8037), verified with OpenSSL: cjose 0.6 has no OKP keys.
 *
 * ot_jose.c picks the key (by `kid`, `use`, `key_ops`, `alg`) as for every algorithm; this file
 * only checks that a JWK is an Ed25519 public key and verifies one compact JWS with it. The
 * signature is over the first two parts as sent (RFC 7515 §5.2), 64 bytes (RFC 8032 §5.1.6).
 */
#include <string.h>
#include <openssl/evp.h>

#include "ot_jose.h"
#include "ot_jose_int.h"
#include "ot_json.h"
#include "ot_util.h"

#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64

/** The raw public key of an Ed25519 JWK into out; 0 when it is not one. */
static int raw_key(unsigned char out[ED25519_KEY_LEN], const json_t *key, apr_pool_t *p)
{
    const char *kty = ot_json_string(key, "kty"), *crv = ot_json_string(key, "crv");
    const char *x = ot_json_string(key, "x");
    char *raw;
    apr_size_t len;

    if (!kty || strcmp(kty, "OKP") != 0 || !crv || strcmp(crv, "Ed25519") != 0 || !x
        || json_object_get(key, "d") != NULL
        || ot_b64url_decode(&raw, &len, x, strlen(x), p) != APR_SUCCESS
        || len != ED25519_KEY_LEN) {
        return 0;
    }
    memcpy(out, raw, ED25519_KEY_LEN);
    return 1;
}

int ot_jose_okp_usable(const json_t *key, apr_pool_t *p)
{
    unsigned char raw[ED25519_KEY_LEN];

    return raw_key(raw, key, p);
}

EVP_PKEY *ot_jose_okp_pkey(const json_t *key, apr_pool_t *p)
{
    unsigned char raw[ED25519_KEY_LEN];

    return raw_key(raw, key, p)
        ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, ED25519_KEY_LEN) : NULL;
}

int ot_jose_okp_sig_ok(EVP_PKEY *key, const char *tbs, apr_size_t tbs_len,
                       const unsigned char *sig, apr_size_t sig_len)
{
    EVP_MD_CTX *ctx;
    int ok;

    if (sig_len != ED25519_SIG_LEN || EVP_PKEY_base_id(key) != EVP_PKEY_ED25519
        || (ctx = EVP_MD_CTX_new()) == NULL) {
        return 0;
    }
    ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1
        && EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, (const unsigned char *)tbs, tbs_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
