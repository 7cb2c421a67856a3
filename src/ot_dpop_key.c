/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A DPoP proof's key made with OpenSSL from the JWK's public members, cached per process by
 * thumbprint, and the proof's signature checked with it (see ot_dpop_key.h). The key is given to
 * OpenSSL as the DER of a SubjectPublicKeyInfo (RFC 5480 for EC, RFC 8017 for RSA), which works
 * alike on OpenSSL 1.1.1 and 3 without the deprecated EC_KEY and RSA types.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ot_dpop_key.h"
#include "ot_util.h"

/** Longest DER written here: an 8192-bit modulus and a 4-byte exponent, with their headers. */
#define DER_MAX 1200

typedef struct {
    unsigned char b[DER_MAX];
    apr_size_t n;
} der_t;

/** Make d's bytes the content of a DER element: put tag and length before them. */
static int der_wrap(der_t *d, unsigned char tag)
{
    unsigned char head[4];
    apr_size_t h = 0, n = d->n;

    head[h++] = tag;
    if (n < 0x80) {
        head[h++] = (unsigned char)n;
    }
    else if (n < 0x100) {
        head[h++] = 0x81;
        head[h++] = (unsigned char)n;
    }
    else {
        head[h++] = 0x82;
        head[h++] = (unsigned char)(n >> 8);
        head[h++] = (unsigned char)n;
    }
    if (n + h > DER_MAX) {
        return 0;
    }
    memmove(d->b + h, d->b, n);
    memcpy(d->b, head, h);
    d->n = n + h;
    return 1;
}

/** Append the bytes of s to d. */
static int der_add(der_t *d, const void *s, apr_size_t n)
{
    if (d->n + n > DER_MAX) {
        return 0;
    }
    memcpy(d->b + d->n, s, n);
    d->n += n;
    return 1;
}

/**
 * An RSA JWK member, base64url, into raw bytes without leading zeros; 0 when absent or longer
 * than max bytes as sent.
 */
static int member_raw(const unsigned char **raw, apr_size_t *n, const char *v, apr_size_t max,
                      apr_pool_t *p)
{
    char *out;

    if (v == NULL || ot_b64url_decode(&out, n, v, strlen(v), p) != APR_SUCCESS) {
        return 0;
    }
    if (*n > max) {
        return 0;
    }
    *raw = (const unsigned char *)out;
    while (*n > 0 && **raw == 0) {
        (*raw)++;
        (*n)--;
    }
    return 1;
}

/** Append a DER INTEGER (positive) holding raw (no leading zeros). */
static int der_integer(der_t *d, const unsigned char *raw, apr_size_t n)
{
    der_t i;

    i.n = 0;
    if ((n == 0 || raw[0] & 0x80) && !der_add(&i, "", 1)) {
        return 0;
    }
    return der_add(&i, raw, n) && der_wrap(&i, 0x02) && der_add(d, i.b, i.n);
}

static const unsigned char OID_EC[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char OID_P256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
                                          0x07 };
static const unsigned char OID_P384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const unsigned char OID_P521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };
static const unsigned char ALG_RSA[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                         0x0d, 0x01, 0x01, 0x01, 0x05, 0x00 };

/**
 * An EC coordinate, base64url, into exactly size raw bytes; 0 when absent or of another length.
 * RFC 7518 §6.2.1.2-3: x and y MUST be the full size of a coordinate for the curve, leading zero
 * bytes included. A shorter one, padded here, would be a second encoding of the same key with
 * another RFC 7638 thumbprint (a second cnf.jkt for one key); a longer one, a third.
 */
static int coordinate(const unsigned char **raw, const char *v, apr_size_t size, apr_pool_t *p)
{
    char *out;
    apr_size_t n = 0;

    if (v == NULL || ot_b64url_decode(&out, &n, v, strlen(v), p) != APR_SUCCESS || n != size) {
        return 0;
    }
    *raw = (const unsigned char *)out;
    return 1;
}

/** The SubjectPublicKeyInfo of an EC JWK: x and y each of the curve's size exactly. */
static int spki_ec(der_t *d, const ot_dpop_jwk_t *jwk, apr_pool_t *p)
{
    const char *crv = jwk->crv;
    const unsigned char *x, *y, *oid;
    apr_size_t size, oid_len;
    der_t alg, bits;

    if (crv && strcmp(crv, "P-256") == 0) {
        size = 32, oid = OID_P256, oid_len = sizeof(OID_P256);
    }
    else if (crv && strcmp(crv, "P-384") == 0) {
        size = 48, oid = OID_P384, oid_len = sizeof(OID_P384);
    }
    else if (crv && strcmp(crv, "P-521") == 0) {
        size = 66, oid = OID_P521, oid_len = sizeof(OID_P521);
    }
    else {
        return 0;
    }
    if (!coordinate(&x, jwk->x, size, p) || !coordinate(&y, jwk->y, size, p)) {
        return 0;
    }
    alg.n = bits.n = 0;
    return der_add(&alg, OID_EC, sizeof(OID_EC)) && der_add(&alg, oid, oid_len)
        && der_wrap(&alg, 0x30)
        && der_add(&bits, "\0\4", 2) && der_add(&bits, x, size) && der_add(&bits, y, size)
        && der_wrap(&bits, 0x03)
        && der_add(d, alg.b, alg.n) && der_add(d, bits.b, bits.n) && der_wrap(d, 0x30);
}

/** The SubjectPublicKeyInfo of an RSA JWK (sizes checked by the caller). */
static int spki_rsa(der_t *d, const ot_dpop_jwk_t *jwk, apr_pool_t *p)
{
    const unsigned char *n, *e;
    apr_size_t nn, ne;
    der_t key, bits;

    if (!member_raw(&n, &nn, jwk->n, 1025, p) || !member_raw(&e, &ne, jwk->e, 8, p)
        || nn > 1024) {
        return 0;
    }
    key.n = bits.n = 0;
    return der_integer(&key, n, nn) && der_integer(&key, e, ne) && der_wrap(&key, 0x30)
        && der_add(&bits, "", 1) && der_add(&bits, key.b, key.n) && der_wrap(&bits, 0x03)
        && der_add(d, ALG_RSA, sizeof(ALG_RSA)) && der_add(d, bits.b, bits.n)
        && der_wrap(d, 0x30);
}

/* ---- the cache ------------------------------------------------------------------------------- */

typedef struct {
    char jkt[64];
    EVP_PKEY *key;
} cached_t;

static cached_t cache[OT_DPOP_KEY_CACHE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static apr_size_t slot_of(const char *jkt)
{
    apr_uint32_t h = 2166136261u;

    while (*jkt) {
        h = (h ^ (unsigned char)*jkt++) * 16777619u;
    }
    return h % OT_DPOP_KEY_CACHE;
}

static apr_status_t key_free(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

/** The cached key of jkt, with a reference for the caller; NULL when none. */
static EVP_PKEY *lookup(const char *jkt)
{
    cached_t *c = &cache[slot_of(jkt)];
    EVP_PKEY *key = NULL;

    pthread_mutex_lock(&cache_lock);
    if (c->key != NULL && strcmp(c->jkt, jkt) == 0 && EVP_PKEY_up_ref(c->key) == 1) {
        key = c->key;
    }
    pthread_mutex_unlock(&cache_lock);
    return key;
}

void ot_dpop_key_keep(const char *jkt, EVP_PKEY *key)
{
    cached_t *c = &cache[slot_of(jkt)];
    EVP_PKEY *old = NULL;

    if (strlen(jkt) >= sizeof(c->jkt) || EVP_PKEY_up_ref(key) != 1) {
        return;
    }
    pthread_mutex_lock(&cache_lock);
    old = c->key;
    c->key = key;
    strcpy(c->jkt, jkt);
    pthread_mutex_unlock(&cache_lock);
    EVP_PKEY_free(old);
}

EVP_PKEY *ot_jwk_pkey_of(const ot_dpop_jwk_t *jwk, apr_pool_t *p)
{
    const char *kty = jwk->kty;
    const unsigned char *in;
    EVP_PKEY *key;
    der_t d;

    d.n = 0;
    if (kty == NULL || !(strcmp(kty, "EC") == 0 ? spki_ec(&d, jwk, p)
                         : strcmp(kty, "RSA") == 0 && spki_rsa(&d, jwk, p))) {
        return NULL;
    }
    in = d.b;
    if ((key = d2i_PUBKEY(NULL, &in, (long)d.n)) == NULL || in != d.b + d.n) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

EVP_PKEY *ot_jwk_pkey_new(const json_t *jwk, apr_pool_t *p)
{
    ot_dpop_jwk_t k;

    ot_dpop_jwk_from_json(&k, jwk);
    return ot_jwk_pkey_of(&k, p);
}

EVP_PKEY *ot_dpop_key_get(const char *jkt, const ot_dpop_jwk_t *jwk, int *kept, apr_pool_t *p)
{
    EVP_PKEY *key = lookup(jkt);

    *kept = key != NULL;
    if (key == NULL && (key = ot_jwk_pkey_of(jwk, p)) == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, key, key_free, apr_pool_cleanup_null);
    return key;
}

int ot_dpop_key_kept(const char *jkt)
{
    EVP_PKEY *key = lookup(jkt);

    EVP_PKEY_free(key);
    return key != NULL;
}

/* ---- digests and signatures ---------------------------------------------------------------- */

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* OpenSSL 3 looks a digest up (EVP_MD_fetch) on every use of EVP_sha256() and friends: fetch
 * the three once per process instead. */
static EVP_MD *fetched[3];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_digests(void)
{
    fetched[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
    fetched[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
    fetched[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}
#endif

const EVP_MD *ot_dpop_md(int bits)
{
    int i = bits == 256 ? 0 : bits == 384 ? 1 : 2;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    pthread_once(&fetch_once, fetch_digests);
    if (fetched[i] != NULL) {
        return fetched[i];
    }
#endif
    return i == 0 ? EVP_sha256() : i == 1 ? EVP_sha384() : EVP_sha512();
}

/**
 * An ES signature (r||s, each size bytes) as the DER ECDSA-Sig-Value OpenSSL verifies, written
 * here (ECDSA_SIG and two BIGNUMs cost four allocations a proof).
 */
static int ecdsa_der(der_t *d, const unsigned char *sig, apr_size_t size)
{
    const unsigned char *r = sig, *s = sig + size;
    apr_size_t nr = size, ns = size;

    while (nr > 0 && *r == 0) {
        r++;
        nr--;
    }
    while (ns > 0 && *s == 0) {
        s++;
        ns--;
    }
    d->n = 0;
    return der_integer(d, r, nr) && der_integer(d, s, ns) && der_wrap(d, 0x30);
}

unsigned char *ot_ecdsa_der(int *der_len, const unsigned char *sig, apr_size_t size)
{
    unsigned char *der;
    der_t d;

    *der_len = 0;
    if (!ecdsa_der(&d, sig, size) || (der = OPENSSL_malloc(d.n)) == NULL) {
        return NULL;
    }
    memcpy(der, d.b, d.n);
    *der_len = (int)d.n;
    return der;
}

/* ---- verification contexts ------------------------------------------------------------------ */

/*
 * EVP_DigestVerifyInit looks the signature algorithm up on OpenSSL 3 (a fetch through the
 * method store, ~9 µs a proof under load, dpop16r). A context made ready for one key and alg
 * (verify_init, digest, padding) is kept instead, and each proof verifies with a copy of it
 * (EVP_PKEY_CTX_dup: no lookup). The key's type was checked against alg when the context was
 * made (vctx_new), and a context is only found for its own key and alg. A kept context holds a reference to its key, so a key's
 * address names it for as long as the context is kept.
 */
typedef struct {
    const EVP_PKEY *key;
    char alg[8];
    EVP_PKEY_CTX *ctx;
} vctx_t;

static vctx_t vctxs[OT_DPOP_KEY_CACHE];

static apr_size_t vslot_of(const EVP_PKEY *key, const char *alg)
{
    apr_uintptr_t h = (apr_uintptr_t)key >> 4;

    return (apr_size_t)((h ^ (h >> 7) ^ (apr_uintptr_t)(unsigned char)alg[0]
                         ^ (apr_uintptr_t)(unsigned char)alg[3]) % OT_DPOP_KEY_CACHE);
}

/**
 * A new context ready to verify alg's signatures (over a digest made with md) with key; NULL when
 * key is not of alg's type (checked here only: EVP_PKEY_base_id searches a table on each call).
 */
static EVP_PKEY_CTX *vctx_new(EVP_PKEY *key, const char *alg, const EVP_MD *md)
{
    int want = alg[0] == 'E' ? EVP_PKEY_EC : EVP_PKEY_RSA;
    EVP_PKEY_CTX *ctx;

    if (EVP_PKEY_base_id(key) != want) {
        return NULL;
    }
    ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1
        || EVP_PKEY_CTX_set_signature_md(ctx, md) <= 0
        || (alg[0] == 'P'
            && (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) <= 0))) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/**
 * A context of this process's own to verify alg with key: a copy of the kept one, or, when
 * none is kept, a new one and in *made a copy of it, ready for vctx_keep once a signature
 * verified with it (a signature that fails keeps nothing, so it evicts no other key's).
 */
static EVP_PKEY_CTX *vctx_get(EVP_PKEY *key, const char *alg, const EVP_MD *md,
                              EVP_PKEY_CTX **made)
{
    vctx_t *v = &vctxs[vslot_of(key, alg)];
    EVP_PKEY_CTX *ctx = NULL;

    *made = NULL;
    pthread_mutex_lock(&cache_lock);
    if (v->ctx != NULL && v->key == key && strcmp(v->alg, alg) == 0) {
        ctx = EVP_PKEY_CTX_dup(v->ctx);
    }
    pthread_mutex_unlock(&cache_lock);
    if (ctx != NULL || strlen(alg) >= sizeof(v->alg) || (ctx = vctx_new(key, alg, md)) == NULL) {
        return ctx;
    }
    *made = EVP_PKEY_CTX_dup(ctx);
    return ctx;
}

int ot_dpop_vctx_kept(const EVP_PKEY *key, const char *alg)
{
    vctx_t *v = &vctxs[vslot_of(key, alg)];
    int kept;

    pthread_mutex_lock(&cache_lock);
    kept = v->ctx != NULL && v->key == key && strcmp(v->alg, alg) == 0;
    pthread_mutex_unlock(&cache_lock);
    return kept;
}

/** Keep made (vctx_get's) as key's context for alg, in place of what its slot held. */
static void vctx_keep(EVP_PKEY *key, const char *alg, EVP_PKEY_CTX *made)
{
    vctx_t *v = &vctxs[vslot_of(key, alg)];
    EVP_PKEY_CTX *old;

    pthread_mutex_lock(&cache_lock);
    old = v->ctx;
    v->ctx = made;
    v->key = key;
    strcpy(v->alg, alg);
    pthread_mutex_unlock(&cache_lock);
    EVP_PKEY_CTX_free(old);
}

int ot_dpop_sig_ok(EVP_PKEY *key, const char *alg, const char *tbs, apr_size_t tbs_len,
                   const unsigned char *sig, apr_size_t sig_len)
{
    return ot_dpop_sig_check(key, alg, tbs, tbs_len, sig, sig_len, 1);
}

int ot_dpop_sig_check(EVP_PKEY *key, const char *alg, const char *tbs, apr_size_t tbs_len,
                      const unsigned char *sig, apr_size_t sig_len, int keep)
{
    int bits = atoi(alg + 2);
    const EVP_MD *md = ot_dpop_md(bits);
    apr_size_t size = alg[0] != 'E' ? 0 : bits == 256 ? 32 : bits == 384 ? 48 : 66;
    int ok = 0;
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dglen = 0;
    der_t der;
    EVP_PKEY_CTX *ctx, *made;

    if (size && sig_len != 2 * size) {
        return 0;
    }
    if (size) {
        if (!ecdsa_der(&der, sig, size)) {
            return 0;
        }
        sig = der.b;
        sig_len = der.n;
    }
    if (EVP_Digest(tbs, tbs_len, dg, &dglen, md, NULL) != 1
        || (ctx = vctx_get(key, alg, md, &made)) == NULL) {
        return 0;
    }
    ok = EVP_PKEY_verify(ctx, sig, sig_len, dg, dglen) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (made != NULL && ok && keep) {
        vctx_keep(key, alg, made);
    }
    else {
        EVP_PKEY_CTX_free(made);
    }
    return ok;
}
