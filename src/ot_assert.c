/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "ot_assert.h"

/** Smallest RSA key accepted (RFC 7518 §3.3). */
#define MIN_RSA_BITS 2048
/** Bytes of randomness in a jti. */
#define JTI_BYTES 16

const char *ot_b64url_encode(const unsigned char *in, apr_size_t len, apr_pool_t *p)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = abc[in[i] >> 2];
        *o++ = abc[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = abc[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *o++ = abc[in[i + 2] & 63];
    }
    if (len - i == 1) {
        *o++ = abc[in[i] >> 2];
        *o++ = abc[(in[i] & 3) << 4];
    }
    else if (len - i == 2) {
        *o++ = abc[in[i] >> 2];
        *o++ = abc[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = abc[(in[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

/** ES256/384/512 by the key's curve, or NULL. *size: bytes of R (and of S). */
static const char *ec_alg(EVP_PKEY *key, int *size)
{
    char group[64];
    size_t len = 0;

    if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &len)) {
        return NULL;
    }
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
        *size = 32;
        return "ES256";
    }
    if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
        *size = 48;
        return "ES384";
    }
    if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0) {
        *size = 66;
        return "ES512";
    }
    return NULL;
}

const char *ot_assert_key_alg(EVP_PKEY *key)
{
    int size;

    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
        return EVP_PKEY_get_bits(key) >= MIN_RSA_BITS ? "RS256" : NULL;
    case EVP_PKEY_EC:
        return ec_alg(key, &size);
    case EVP_PKEY_ED25519:
        return "EdDSA";
    default:
        return NULL;
    }
}

EVP_PKEY *ot_assert_key_read(const char *pem, apr_size_t len, const char **err)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;

    BIO_free(bio);
    if (key == NULL) {
        *err = "not a PEM private key (an encrypted key is not accepted)";
        return NULL;
    }
    if (ot_assert_key_alg(key) == NULL) {
        EVP_PKEY_free(key);
        *err = "the key is not RSA of at least 2048 bits, EC on P-256, P-384 or P-521, "
               "or Ed25519";
        return NULL;
    }
    return key;
}

static apr_status_t key_free(void *key)
{
    EVP_PKEY_free(key);
    return APR_SUCCESS;
}

EVP_PKEY *ot_assert_key_parse(const char *pem, apr_size_t len, const char **err, apr_pool_t *p)
{
    EVP_PKEY *key = ot_assert_key_read(pem, len, err);

    if (key) {
        apr_pool_cleanup_register(p, key, key_free, apr_pool_cleanup_null);
    }
    return key;
}

/** A JSON object as compact text from p (jansson's copy freed here). */
static const char *dump(json_t *obj, apr_pool_t *p)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    const char *out = text ? apr_pstrdup(p, text) : NULL;

    free(text);
    json_decref(obj);
    return out;
}

static const char *header_text(const char *alg, const char *kid, apr_pool_t *p)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");

    if (h && kid) {
        json_object_set_new(h, "kid", json_string(kid));
    }
    return dump(h, p);
}

static const char *payload_text(const ot_assert_claims_t *cl, apr_pool_t *p)
{
    unsigned char rnd[JTI_BYTES];
    json_int_t iat = (json_int_t)apr_time_sec(cl->now);

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return NULL;
    }
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "iss", cl->client_id,
                          "sub", cl->client_id, "aud", cl->aud,
                          "jti", ot_b64url_encode(rnd, sizeof(rnd), p),
                          "iat", iat, "exp", iat + cl->lifetime), p);
}

/** An ECDSA signature from DER into R||S of size bytes each; 0 on failure. */
static int ecdsa_raw(unsigned char *out, int size, const unsigned char *der, size_t der_len)
{
    const unsigned char *q = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)der_len);
    const BIGNUM *r, *s;
    int ok;

    if (sig == NULL) {
        return 0;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, out, size) == size && BN_bn2binpad(s, out + size, size) == size;
    ECDSA_SIG_free(sig);
    return ok;
}

/** The signature over input with key, base64url; NULL on failure. */
static const char *sign_key(EVP_PKEY *key, const char *alg, const char *input, apr_pool_t *p)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = strcmp(alg, "EdDSA") == 0 ? NULL
        : strcmp(alg, "ES384") == 0 ? EVP_sha384()
        : strcmp(alg, "ES512") == 0 ? EVP_sha512() : EVP_sha256();
    size_t len = 0;
    unsigned char *sig = NULL;
    unsigned char raw[2 * 66];
    const char *out = NULL;
    int size = 0;

    if (ctx && EVP_DigestSignInit(ctx, NULL, md, NULL, key) == 1
        && EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)input, strlen(input)) == 1) {
        sig = apr_palloc(p, len);
        if (EVP_DigestSign(ctx, sig, &len, (const unsigned char *)input, strlen(input)) != 1) {
            sig = NULL;
        }
    }
    EVP_MD_CTX_free(ctx);
    if (sig == NULL) {
        return NULL;
    }
    if (alg[0] != 'E' || alg[1] != 'S') {
        return ot_b64url_encode(sig, len, p);
    }
    if (ec_alg(key, &size) && ecdsa_raw(raw, size, sig, len)) {
        out = ot_b64url_encode(raw, (apr_size_t)(2 * size), p);
    }
    return out;
}

static const char *sign_secret(const char *secret, const char *input, apr_pool_t *p)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input,
              strlen(input), mac, &len)) {
        return NULL;
    }
    return ot_b64url_encode(mac, len, p);
}

const char *ot_jws_sign(const char *header, const char *payload, EVP_PKEY *key,
                        const char *secret, apr_pool_t *p)
{
    const char *alg = key ? ot_assert_key_alg(key) : "HS256";
    const char *input, *sig;

    if (alg == NULL || (key == NULL && (secret == NULL || *secret == '\0'))) {
        return NULL;
    }
    input = apr_pstrcat(p, ot_b64url_encode((const unsigned char *)header, strlen(header), p),
                        ".", ot_b64url_encode((const unsigned char *)payload, strlen(payload), p),
                        NULL);
    sig = key ? sign_key(key, alg, input, p) : sign_secret(secret, input, p);
    return sig ? apr_pstrcat(p, input, ".", sig, NULL) : NULL;
}

const char *ot_assertion_make(const ot_assert_claims_t *cl, EVP_PKEY *key, const char *kid,
                              const char *secret, const char **err, apr_pool_t *p)
{
    const char *alg = key ? ot_assert_key_alg(key) : "HS256";
    const char *head, *body, *jwt;

    if (alg == NULL || (key == NULL && (secret == NULL || *secret == '\0'))) {
        *err = key ? "the key cannot sign a JWS" : "no client secret to sign with";
        return NULL;
    }
    head = header_text(alg, key ? kid : NULL, p);
    body = payload_text(cl, p);
    if (head == NULL || body == NULL) {
        *err = "cannot build the assertion (out of memory or no randomness)";
        return NULL;
    }
    jwt = ot_jws_sign(head, body, key, secret, p);
    if (jwt == NULL) {
        *err = apr_pstrcat(p, "signing the assertion with ", alg, " failed", NULL);
    }
    return jwt;
}
