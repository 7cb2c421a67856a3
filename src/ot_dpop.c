/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * DPoP proofs checked as RFC 9449 §4.3 lists the checks, in its order, except that a missing or
 * stale nonce is reported last, so that a client told to fetch a nonce has an otherwise valid
 * proof. The header is read here before cjose sees anything (cjose aborts on some malformed
 * base64url), and the key is the proof's own `jwk`: public members only, of a type and size
 * that fit the algorithm.
 */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ot_dpop.h"
#include "ot_dpop_key.h"
#include "ot_dpop_read.h"
#include "ot_json.h"
#include "ot_url.h"
#include "ot_util.h"

#define MIN_RSA_BITS 2048
#define MAX_RSA_BITS 8192
#define MAX_RSA_E_BYTES 4

/** An algorithm a proof may use and the key it needs. */
typedef struct {
    const char *name;
    const char *kty;
    const char *crv;              /**< for EC and OKP */
} dpop_alg_t;

static const dpop_alg_t dpop_algs[] = {
    { "ES256", "EC", "P-256" }, { "ES384", "EC", "P-384" }, { "ES512", "EC", "P-521" },
    { "RS256", "RSA", NULL }, { "RS384", "RSA", NULL }, { "RS512", "RSA", NULL },
    { "PS256", "RSA", NULL }, { "PS384", "RSA", NULL }, { "PS512", "RSA", NULL },
};

static const dpop_alg_t *find_alg(const char *name)
{
    apr_size_t i;

    for (i = 0; name && i < sizeof(dpop_algs) / sizeof(dpop_algs[0]); i++) {
        if (strcmp(dpop_algs[i].name, name) == 0) {
            return &dpop_algs[i];
        }
    }
    return NULL;
}

int ot_dpop_alg_known(const char *name)
{
    return find_alg(name) != NULL;
}

const char *ot_dpop_b64url(const unsigned char *in, apr_size_t n, apr_pool_t *p)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(p, (n + 2) / 3 * 4 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *o++ = a[in[i] >> 2];
        *o++ = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = a[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *o++ = a[in[i + 2] & 63];
    }
    if (n - i == 1) {
        *o++ = a[in[i] >> 2];
        *o++ = a[(in[i] & 3) << 4];
    }
    else if (n - i == 2) {
        *o++ = a[in[i] >> 2];
        *o++ = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = a[(in[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

/** base64url(SHA-256(data)), or NULL when the digest cannot be made. */
static const char *sha256_b64url(const void *data, apr_size_t n, apr_pool_t *p)
{
    unsigned char md[OT_SHA256_LEN];
    unsigned int mdlen = 0;

    if (EVP_Digest(data, n, md, &mdlen, ot_dpop_md(256), NULL) != 1 || mdlen != OT_SHA256_LEN) {
        return NULL;                    /* out of memory: no thumbprint, no ath, refused */
    }
    return ot_dpop_b64url(md, OT_SHA256_LEN, p);
}

/* ---- the key --------------------------------------------------------------------------------- */

/**
 * One required member of a JWK as a non-empty string that decodes as base64url (or crv/kty).
 * *dlen is the length of its value without leading zero bytes: a modulus or exponent is as
 * large as its value, whatever its encoding. With size, the decoded member must be exactly size
 * bytes, leading zeros included (a coordinate, RFC 7518 §6.2.1.2-3 and RFC 8037 §2). A member
 * is in base64url's one encoding of its bytes (no '=', no spare bit set): the thumbprint is
 * taken over the text, so another spelling of the same bytes would give the key another one.
 */
static const char *member(const char *v, int b64, apr_size_t *dlen, apr_size_t size,
                          apr_pool_t *p)
{
    char *raw;
    apr_size_t i = 0;

    *dlen = 0;
    if (v == NULL || *v == '\0') {
        return NULL;
    }
    if (b64 && ot_b64url_decode(&raw, dlen, v, strlen(v), p) != APR_SUCCESS) {
        return NULL;
    }
    if (b64 && ((size && *dlen != size)
                || strcmp(ot_dpop_b64url((const unsigned char *)raw, *dlen, p), v) != 0)) {
        return NULL;
    }
    while (b64 && i < *dlen && raw[i] == '\0') {
        i++;
    }
    *dlen -= i;
    return v;
}

/**
 * The bytes of a coordinate of the curve crv of a key of type kty (EC or OKP); 0 for a curve
 * not known here. One key, one encoding: a JWK whose coordinates have other lengths is refused,
 * so no key has two thumbprints.
 */
static apr_size_t coordinate_size(const char *kty, const char *crv)
{
    static const struct { const char *kty, *crv; apr_size_t size; } curves[] = {
        { "EC", "P-256", 32 }, { "EC", "P-384", 48 }, { "EC", "P-521", 66 },
        { "OKP", "Ed25519", 32 }, { "OKP", "Ed448", 57 }, { "OKP", "X25519", 32 },
        { "OKP", "X448", 56 },
    };
    apr_size_t i;

    for (i = 0; crv && i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (strcmp(curves[i].kty, kty) == 0 && strcmp(curves[i].crv, crv) == 0) {
            return curves[i].size;
        }
    }
    return 0;
}

/** 1 when the RSA exponent e (base64url) is odd and at least 3: e = 1 lets anyone sign. */
static int rsa_exponent_sound(const char *e, apr_pool_t *p)
{
    char *raw;
    apr_size_t n = 0, i;
    int big = 0;

    if (ot_b64url_decode(&raw, &n, e, strlen(e), p) != APR_SUCCESS || n == 0) {
        return 0;
    }
    for (i = 0; i + 1 < n; i++) {
        big |= raw[i] != '\0';
    }
    return ((unsigned char)raw[n - 1] & 1) && (big || (unsigned char)raw[n - 1] >= 3);
}

/** RFC 7638: the required members, in lexical order, no white space. NULL: not a usable key. */
static const char *thumbprint_of(const ot_dpop_jwk_t *jwk, apr_size_t *rsa_bytes,
                                 apr_pool_t *p)
{
    const char *kty = jwk->kty, *a, *b, *c, *text;
    apr_size_t n1, n2, n3, size;

    if (kty == NULL) {
        return NULL;
    }
    size = coordinate_size(kty, jwk->crv);
    if (strcmp(kty, "RSA") == 0) {
        if (!(a = member(jwk->e, 1, &n1, 0, p)) || !(b = member(jwk->n, 1, &n2, 0, p))) {
            return NULL;
        }
        /* A huge modulus or exponent would make every verification slow: refuse them. */
        *rsa_bytes = (n1 > MAX_RSA_E_BYTES || n2 > MAX_RSA_BITS / 8
                      || !rsa_exponent_sound(a, p)) ? 0 : n2;
        text = apr_psprintf(p, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", a, b);
    }
    else if (strcmp(kty, "EC") == 0) {
        if (!size || !(a = member(jwk->crv, 0, &n1, 0, p))
            || !(b = member(jwk->x, 1, &n2, size, p))
            || !(c = member(jwk->y, 1, &n3, size, p))) {
            return NULL;
        }
        text = apr_psprintf(p, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                            a, b, c);
    }
    else if (strcmp(kty, "OKP") == 0) {
        if (!size || !(a = member(jwk->crv, 0, &n1, 0, p))
            || !(b = member(jwk->x, 1, &n2, size, p))) {
            return NULL;
        }
        text = apr_psprintf(p, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}", a, b);
    }
    else {
        return NULL;
    }
    return sha256_b64url(text, strlen(text), p);
}

const char *ot_dpop_jwk_thumbprint(const char *jwk_json, apr_size_t len, apr_pool_t *p)
{
    json_t *j = ot_json_parse(jwk_json, len, NULL, p);
    ot_dpop_jwk_t jwk;
    apr_size_t rsa = 0;

    if (!json_is_object(j)) {
        return NULL;
    }
    ot_dpop_jwk_from_json(&jwk, j);
    return thumbprint_of(&jwk, &rsa, p);
}

/**
 * The proof's key, when it is public and fits alg: out->jkt is its thumbprint, and out->key_new
 * the key when it was made for this proof (not from the cache). Else *why.
 */
static EVP_PKEY *proof_key(ot_dpop_proof_t *out, const char **why, const ot_dpop_head_t *h,
                           const dpop_alg_t *alg, apr_pool_t *p)
{
    const ot_dpop_jwk_t *jwk = &h->key;
    const char *kty = jwk->kty, *crv = jwk->crv;
    apr_size_t rsa_bytes = 0;
    EVP_PKEY *key;
    int kept = 0;

    if (!h->jwk) {
        *why = "its header has no jwk object";
        return NULL;
    }
    if (jwk->private_member != NULL) {
        *why = apr_psprintf(p, "its jwk holds private or symmetric key material (%s)",
                            jwk->private_member);
        return NULL;
    }
    if (kty == NULL || strcmp(kty, alg->kty) != 0
        || (alg->crv && (crv == NULL || strcmp(crv, alg->crv) != 0))) {
        *why = apr_psprintf(p, "its jwk is not a key for %s", alg->name);
        return NULL;
    }
    if ((out->jkt = thumbprint_of(jwk, &rsa_bytes, p)) == NULL
        || (alg->kty[0] == 'R' && rsa_bytes * 8 < MIN_RSA_BITS)) {
        *why = "its jwk lacks a member, has one that is not base64url, or is too small or large";
        return NULL;
    }
    if ((key = ot_dpop_key_get(out->jkt, jwk, &kept, p)) == NULL) {
        *why = "its jwk cannot be imported";
        return NULL;
    }
    out->key_new = kept ? NULL : key;
    return key;
}

void ot_dpop_proof_accepted(const ot_dpop_proof_t *proof)
{
    if (proof->key_new != NULL && proof->jkt != NULL) {
        ot_dpop_key_keep(proof->jkt, proof->key_new);
    }
}

/* ---- the proof ------------------------------------------------------------------------------ */

/** The JSON text of a part of the proof, decoded from base64url; NULL when it is not. */
static const char *decode_part(const char *s, apr_size_t n, apr_size_t *len, apr_pool_t *p)
{
    char *raw;

    return ot_b64url_decode(&raw, len, s, n, p) == APR_SUCCESS ? raw : NULL;
}

/** 1 when alg is one of the location's algorithms. */
static int alg_allowed(const apr_array_header_t *algs, const char *alg)
{
    int i;

    for (i = 0; algs && i < algs->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(algs, i, const char *), alg) == 0) {
            return 1;
        }
    }
    return 0;
}

/** The header: typ, alg and key. Returns the key, or NULL with *why. */
static EVP_PKEY *check_header(ot_dpop_proof_t *out, const char **why, const char **alg_out,
                                 const ot_dpop_ask_t *ask, const char *hdr, apr_size_t hlen,
                                 apr_pool_t *p)
{
    ot_dpop_head_t h;
    apr_size_t len = 0;
    const char *json = decode_part(hdr, hlen, &len, p);
    const dpop_alg_t *a;

    if (json == NULL || ot_dpop_read_head(&h, json, len, OT_DPOP_READ_ANY, p) != 1) {
        *why = "its header is not a JSON object";
        return NULL;
    }
    if (h.typ == NULL || strcasecmp(h.typ, "dpop+jwt") != 0) {
        *why = "its typ is not dpop+jwt";
        return NULL;
    }
    if (h.alg == NULL || (a = find_alg(h.alg)) == NULL || !alg_allowed(ask->algs, h.alg)) {
        *why = "its alg is not one of OfftokDPoPAlgorithms";
        return NULL;
    }
    if (h.crit) {
        *why = "it names critical header extensions (crit)";
        return NULL;
    }
    *alg_out = a->name;
    return proof_key(out, why, &h, a, p);
}

/**
 * The signature, with the proof's own key, over the first two parts as sent (RFC 7515 §5.2);
 * the shape was checked (three non-empty parts, hlen the first's length). The payload as a JSON
 * object, or NULL.
 */
static int check_signature(ot_dpop_claims_t *pl, const char **why, const char *compact,
                           apr_size_t len, apr_size_t hlen, EVP_PKEY *key, int kept,
                           const char *alg, apr_pool_t *p)
{
    const char *body = compact + hlen + 1, *dot = memchr(body, '.', len - hlen - 1);
    apr_size_t blen = dot ? (apr_size_t)(dot - body) : 0, sig_len, jlen = 0;
    const char *json;
    char *sig;

    if (dot == NULL
        || ot_b64url_decode(&sig, &sig_len, dot + 1, len - (apr_size_t)(dot + 1 - compact), p)
           != APR_SUCCESS) {
        *why = "it is not a JWS";
        return 0;
    }
    /* A context is kept only for a kept key: one an accepted proof was signed with. */
    if (!ot_dpop_sig_check(key, alg, compact, (apr_size_t)(dot - compact),
                           (const unsigned char *)sig, sig_len, kept)) {
        *why = "its signature does not verify with its jwk";
        return 0;
    }
    if ((json = decode_part(body, blen, &jlen, p)) == NULL
        || ot_dpop_read_claims(pl, json, jlen, OT_DPOP_READ_ANY, p) != 1) {
        *why = "its payload is not a JSON object";
        return 0;
    }
    return 1;
}

/** htm, htu, iat, ath: the claims about this request. */
static int check_claims(ot_dpop_proof_t *out, const char **why, const ot_dpop_ask_t *ask,
                        const ot_dpop_claims_t *pl, apr_pool_t *p)
{
    const char *htm = pl->htm, *htu = pl->htu, *ath = pl->ath, *want;
    apr_int64_t now = (apr_int64_t)apr_time_sec(ask->now);

    out->jti = pl->jti;
    out->iat = pl->iat;
    if (out->jti == NULL || *out->jti == '\0' || strlen(out->jti) > OT_DPOP_JTI_MAX
        || htm == NULL || htu == NULL || !pl->iat_ok) {
        *why = "it lacks jti, htm, htu or iat, or one is not of its type";
        return 0;
    }
    if (strcmp(htm, ask->method) != 0) {
        *why = "its htm is not the request's method";
        return 0;
    }
    out->htu = ot_url_normalize(htu, p);
    want = ot_url_normalize(ask->url, p);
    if (out->htu == NULL || want == NULL || strcmp(out->htu, want) != 0) {
        *why = apr_psprintf(p, "its htu is not this request's URL (%s)", want ? want : "?");
        return 0;
    }
    if (out->iat < now - ask->max_age || out->iat > now + ask->skew) {
        *why = out->iat < now ? "its iat is older than OfftokDPoPMaxAge"
                              : "its iat is in the future (beyond OfftokClockSkew)";
        return 0;
    }
    want = sha256_b64url(ask->token, strlen(ask->token), p);
    if (ath == NULL || want == NULL || strcmp(ath, want) != 0) {
        *why = "its ath is not the access token's hash";
        return 0;
    }
    return 1;
}

/** 1 when the proof's nonce is the current or the previous window's; *old for the previous. */
static int nonce_fits(const ot_dpop_ask_t *ask, const ot_dpop_claims_t *pl, int *old,
                      apr_pool_t *p)
{
    const char *nonce = pl->nonce;
    apr_time_t window = apr_time_from_sec(OT_DPOP_NONCE_WINDOW);

    if (nonce == NULL) {
        return 0;
    }
    if (strcmp(nonce, ot_dpop_nonce(ask->nonce_key, ask->now, p)) == 0) {
        return 1;
    }
    *old = strcmp(nonce, ot_dpop_nonce(ask->nonce_key, ask->now - window, p)) == 0;
    return *old;
}

ot_dpop_result_t ot_dpop_verify(ot_dpop_proof_t *out, const char **why, const ot_dpop_ask_t *ask,
                                const char *header, apr_pool_t *p)
{
    apr_size_t len = header ? strlen(header) : 0, hlen = 0;
    const char *alg = NULL;
    EVP_PKEY *key;
    ot_dpop_claims_t payload;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        *why = "there is no DPoP header";
        return OT_DPOP_INVALID;
    }
    if (strchr(header, ',') != NULL) {
        *why = "there is more than one DPoP header";
        return OT_DPOP_INVALID;
    }
    if (len > OT_DPOP_MAX || !ot_jws_compact_shape(header, len, &hlen)) {
        *why = "it is not a compact JWS (three non-empty base64url parts) or is too long";
        return OT_DPOP_INVALID;
    }
    if ((key = check_header(out, why, &alg, ask, header, hlen, p)) == NULL
        || !check_signature(&payload, why, header, len, hlen, key, out->key_new == NULL, alg,
                            p)
        || !check_claims(out, why, ask, &payload, p)) {
        return OT_DPOP_INVALID;
    }
    if (ask->nonce_key && !nonce_fits(ask, &payload, &out->nonce_old, p)) {
        *why = "its nonce is missing or stale";
        return OT_DPOP_NONCE;
    }
    return OT_DPOP_OK;
}

/* ---- nonces, replay keys, certificates -------------------------------------------------------- */

const char *ot_dpop_nonce(const unsigned char key[OT_DPOP_KEY_LEN], apr_time_t now,
                          apr_pool_t *p)
{
    apr_uint64_t w = (apr_uint64_t)apr_time_sec(now) / OT_DPOP_NONCE_WINDOW;
    unsigned char msg[24] = "offtok-dpop-nonce", md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int i;

    for (i = 0; i < 8; i++) {
        msg[16 + i] = (unsigned char)(w >> (56 - 8 * i));
    }
    HMAC(EVP_sha256(), key, OT_DPOP_KEY_LEN, msg, sizeof(msg), md, &mdlen);
    return ot_dpop_b64url(md, 24, p);
}

void ot_dpop_nonce_key(unsigned char key[OT_DPOP_KEY_LEN], const char *secret, apr_size_t len)
{
    static const char label[] = "mod_offtok DPoP nonce key";
    unsigned int mdlen = 0;

    HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)label, sizeof(label) - 1, key,
         &mdlen);
}

int ot_dpop_replay_key(unsigned char key[32], const ot_dpop_proof_t *proof)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    int ok;

    ok = ctx != NULL && EVP_DigestInit_ex(ctx, ot_dpop_md(256), NULL) == 1
        && EVP_DigestUpdate(ctx, proof->jti, strlen(proof->jti) + 1) == 1
        && EVP_DigestUpdate(ctx, proof->htu, strlen(proof->htu)) == 1
        && EVP_DigestFinal_ex(ctx, key, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    return ok;
}

const char *ot_cert_thumbprint(const char *pem, apr_pool_t *p)
{
    BIO *bio;
    X509 *x;
    unsigned char *der = NULL;
    const char *out = NULL;
    int n;

    if (pem == NULL || *pem == '\0' || (bio = BIO_new_mem_buf(pem, -1)) == NULL) {
        return NULL;
    }
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL) {
        return NULL;
    }
    if ((n = i2d_X509(x, &der)) > 0) {
        out = sha256_b64url(der, (apr_size_t)n, p);
        OPENSSL_free(der);
    }
    X509_free(x);
    return out;
}
