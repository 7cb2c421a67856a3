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
#include <stdlib.h>
#include <string.h>
#include <openssl/rsa.h>

#include "ot_dpop_key.h"
#include "ot_jose_int.h"
#include "ot_util.h"

EVP_MD_CTX *ot_jose_evp_ctx(EVP_PKEY *key, const char *alg)
{
    int ed = strcmp(alg, "EdDSA") == 0;
    int want = ed ? EVP_PKEY_ED25519 : alg[0] == 'E' ? EVP_PKEY_EC : EVP_PKEY_RSA;
    /* ES's curve is the algorithm's (RFC 7518 §3.4): the key's own check, not only the caller's */
    int bits = ed || alg[0] != 'E' ? 0 : alg[2] == '2' ? 256 : alg[2] == '3' ? 384 : 521;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    if (ctx == NULL || EVP_PKEY_base_id(key) != want || (bits && EVP_PKEY_bits(key) != bits)
        || EVP_DigestVerifyInit(ctx, &pctx, ed ? NULL : ot_dpop_md(atoi(alg + 2)), NULL, key)
           != 1
        || (alg[0] == 'P'
            && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/**
 * ctx made ready as tmpl is: a copy, marked to be used once (OpenSSL then need not copy it again
 * to finish). EdDSA is made afresh on tmpl's key: OpenSSL 3.0 cannot copy an Ed25519 context.
 */
static int fresh_or_copy(EVP_MD_CTX *ctx, const EVP_MD_CTX *tmpl, const char *alg)
{
    EVP_PKEY *key;

    if (alg[0] == 'E' && alg[1] == 'd') {
        key = EVP_PKEY_CTX_get0_pkey(EVP_MD_CTX_get_pkey_ctx(tmpl));
        return key != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1;
    }
    if (EVP_MD_CTX_copy_ex(ctx, tmpl) != 1) {
        return 0;
    }
    EVP_MD_CTX_set_flags(ctx, EVP_MD_CTX_FLAG_FINALISE);
    return 1;
}

EVP_PKEY_CTX *ot_jose_evp_pctx(EVP_PKEY *key, const char *alg)
{
    int want = alg[0] == 'E' ? EVP_PKEY_EC : EVP_PKEY_RSA;
    int bits = alg[0] != 'E' ? 0 : alg[2] == '2' ? 256 : alg[2] == '3' ? 384 : 521;
    EVP_PKEY_CTX *pctx;

    if ((alg[0] == 'E' && alg[1] == 'd') || EVP_PKEY_base_id(key) != want
        || (bits && EVP_PKEY_bits(key) != bits)) {
        return NULL;                /* EdDSA signs the message itself: DigestVerify only */
    }
    pctx = EVP_PKEY_CTX_new(key, NULL);
    if (pctx == NULL || EVP_PKEY_verify_init(pctx) != 1
        || EVP_PKEY_CTX_set_signature_md(pctx, ot_dpop_md(atoi(alg + 2))) <= 0
        || (alg[0] == 'P'
            && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))) {
        EVP_PKEY_CTX_free(pctx);
        return NULL;
    }
    return pctx;
}

/**
 * tbs hashed with md into dg, on this thread's kept context (EVP_Digest makes and frees one per
 * call); 1 when done.
 */
static int digest(const char *tbs, apr_size_t tbs_len, const EVP_MD *md, unsigned char *dg,
                  unsigned int *dglen)
{
    EVP_MD_CTX *ctx = ot_thread_md_ctx();

    if (ctx == NULL) {
        return EVP_Digest(tbs, tbs_len, dg, dglen, md, NULL) == 1;
    }
    return EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, tbs, tbs_len) == 1
        && EVP_DigestFinal_ex(ctx, dg, dglen) == 1;
}

/**
 * 1 when sig (raw, as in the JWS) is alg's signature of tbs: on kept (ot_jose_evp_pctx) itself,
 * tbs hashed apart, when not NULL (no context is copied, made or freed: the caller's thread owns
 * it, and a verification leaves nothing in it); else on a copy of tmpl.
 */
static int sig_ok(const EVP_MD_CTX *tmpl, EVP_PKEY_CTX *kept, const char *alg, const char *tbs,
                  apr_size_t tbs_len, const unsigned char *sig, apr_size_t sig_len)
{
    apr_size_t size = alg[0] != 'E' || alg[1] != 'S' ? 0              /* not ES */
        : alg[2] == '2' ? 32 : alg[2] == '3' ? 48 : 66;
    unsigned char *der = NULL, dg[EVP_MAX_MD_SIZE];
    unsigned int dglen = 0;
    EVP_MD_CTX *ctx;
    int der_len = 0, ok = 0;

    if (size && sig_len != 2 * size) {
        return 0;                   /* r||s of exactly the curve's size, nothing else */
    }
    if (size) {
        if ((der = ot_ecdsa_der(&der_len, sig, size)) == NULL) {
            return 0;
        }
        sig = der;
        sig_len = (apr_size_t)der_len;
    }
    if (kept != NULL) {
        ok = digest(tbs, tbs_len, ot_dpop_md(atoi(alg + 2)), dg, &dglen)
            && EVP_PKEY_verify(kept, sig, sig_len, dg, dglen) == 1;
        OPENSSL_free(der);
        return ok;
    }
    if ((ctx = EVP_MD_CTX_new()) != NULL && fresh_or_copy(ctx, tmpl, alg)) {
        ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)tbs, tbs_len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

int ot_jose_evp_verify(const EVP_MD_CTX *tmpl, EVP_PKEY_CTX *kept, const char *alg,
                       const char *compact, apr_size_t len, const char **text,
                       apr_size_t *text_len, apr_pool_t *p)
{
    const char *dot1 = memchr(compact, '.', len), *dot2;
    char *sig, *plain;
    apr_size_t sig_len, plain_len;

    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (apr_size_t)(dot1 + 1 - compact)) : NULL;
    if ((tmpl == NULL && kept == NULL) || dot2 == NULL
        || ot_b64url_decode(&sig, &sig_len, dot2 + 1, len - (apr_size_t)(dot2 + 1 - compact), p)
           != APR_SUCCESS
        || !sig_ok(tmpl, kept, alg, compact, (apr_size_t)(dot2 - compact),
                   (unsigned char *)sig, sig_len)
        || ot_b64url_decode(&plain, &plain_len, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), p)
           != APR_SUCCESS) {
        return 0;
    }
    *text = plain;
    *text_len = plain_len;
    return 1;
}
