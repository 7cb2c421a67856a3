/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_evp.c
 * @brief A compact JWS's signature checked with OpenSSL alone, on a key made once per thread and
 *        JWKS version (ot_jose_parsed.c): cjose is off the path of every verification that has
 *        such a key. cjose still picks the keys (ot_jose.c imports each once) and is the oracle
 *        this path is held to in tests/unit/test_jose.c and the jose and local fuzz targets.
 *
 * The signature is over the first two parts as sent (RFC 7515 §5.2). RS is PKCS #1 v1.5, PS is
 * PSS with MGF1 and a salt as long as the hash (RFC 7518 §3.5), ES is r||s of exactly twice the
 * curve's size (RFC 7518 §3.4; any other length is refused), EdDSA is Ed25519 (RFC 8037).
 */
#include <string.h>

#include "ot_dpop_key.h"
#include "ot_jose_parsed.h"
#include "ot_util.h"

int ot_jose_evp_verify(EVP_PKEY *key, const char *alg, const char *compact, apr_size_t len,
                       const char **text, apr_size_t *text_len, apr_pool_t *p)
{
    const char *dot1 = memchr(compact, '.', len), *dot2;
    char *sig, *plain;
    apr_size_t sig_len, plain_len, tbs_len;
    int ok;

    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (apr_size_t)(dot1 + 1 - compact)) : NULL;
    if (key == NULL || dot2 == NULL
        || ot_b64url_decode(&sig, &sig_len, dot2 + 1, len - (apr_size_t)(dot2 + 1 - compact), p)
           != APR_SUCCESS) {
        return 0;
    }
    tbs_len = (apr_size_t)(dot2 - compact);
    if (strcmp(alg, "EdDSA") == 0) {
        ok = ot_jose_okp_sig_ok(key, compact, tbs_len, (const unsigned char *)sig, sig_len);
    }
    else {
        ok = ot_dpop_sig_ok(key, alg, compact, tbs_len, (const unsigned char *)sig, sig_len);
    }
    if (!ok || ot_b64url_decode(&plain, &plain_len, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), p)
               != APR_SUCCESS) {
        return 0;
    }
    *text = plain;
    *text_len = plain_len;
    return 1;
}
