/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The proof's header and payload read with ot_jscan (ot_dpop_read.c) against the old jansson
 * path, on hostile proofs: each is signed here as written (duplicate members, escaped names and
 * all, which a JSON library would not write) with a P-256 key made by OpenSSL, and judged by
 * ot_dpop_verify twice, once per reader: the verdict and its reason must be the same, and must
 * be the one the table says. The decoded texts are also read by each reader alone, and the
 * table says which of them the scanner must leave to jansson (unsure). Signatures whose r or s
 * starts with zero bytes (ot_dpop_key.c writes the DER OpenSSL verifies) are checked here too.
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "ot_unit.h"
#include "ot_dpop.h"
#include "ot_dpop_key.h"
#include "ot_dpop_read.h"
#include "ot_util.h"

#define NOW 1796014600
#define URL "https://rs.example/api/items"
#define TOKEN "the-access-token"

typedef struct {
    EVP_PKEY *key;
    const char *members;  /* "kty":"EC","crv":"P-256","x":"...","y":"..." */
} signer_t;

static apr_status_t signer_free(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

static const char *coordinate(EVP_PKEY *key, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[32];

    ck_assert(EVP_PKEY_get_bn_param(key, name, &bn) == 1);
    ck_assert(BN_bn2binpad(bn, buf, 32) == 32);
    BN_free(bn);
    return ot_dpop_b64url(buf, 32, ot_test_pool);
}

static signer_t make_signer(void)
{
    signer_t s;

    s.key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(s.key);
    apr_pool_cleanup_register(ot_test_pool, s.key, signer_free, apr_pool_cleanup_null);
    s.members = apr_psprintf(ot_test_pool, "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\","
                             "\"y\":\"%s\"", coordinate(s.key, OSSL_PKEY_PARAM_EC_PUB_X),
                             coordinate(s.key, OSSL_PKEY_PARAM_EC_PUB_Y));
    return s;
}

static const char *b64(const char *s)
{
    return ot_dpop_b64url((const unsigned char *)s, strlen(s), ot_test_pool);
}

/** header.payload, as given, signed ES256 (r||s) with s's key. */
static const char *sign_raw(const signer_t *s, const char *header, const char *payload)
{
    const char *tbs = apr_pstrcat(ot_test_pool, b64(header), ".", b64(payload), NULL);
    unsigned char der[80], raw[64];
    const unsigned char *q = der;
    size_t n = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ECDSA_SIG *sig;
    const BIGNUM *r, *z;

    ck_assert(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->key) == 1);
    ck_assert(EVP_DigestSign(ctx, der, &n, (const unsigned char *)tbs, strlen(tbs)) == 1);
    EVP_MD_CTX_free(ctx);
    sig = d2i_ECDSA_SIG(NULL, &q, (long)n);
    ck_assert_ptr_nonnull(sig);
    ECDSA_SIG_get0(sig, &r, &z);
    ck_assert(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(z, raw + 32, 32) == 32);
    ECDSA_SIG_free(sig);
    return apr_pstrcat(ot_test_pool, tbs, ".", ot_dpop_b64url(raw, 64, ot_test_pool), NULL);
}

/** One hostile proof: %K in head is the key's members, %A in body the token's ath. */
typedef struct {
    const char *head, *body;
    const char *why;      /* NULL: the proof passes; else a part of the refusal's reason */
    int unsure;           /* 1: the scanner leaves the header to jansson, 2: the payload */
} hostile_t;

#define H_OK "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K}}"
#define B_TAIL "\"htm\":\"GET\",\"htu\":\"" URL "\",\"ath\":\"%A\""
#define B_OK "{\"jti\":\"j\",\"iat\":1796014600," B_TAIL "}"
#define NOT_JSON "header is not a JSON object"
#define PL_NOT_JSON "payload is not a JSON object"
#define LACKS "lacks jti, htm, htu or iat"
#define PRIV "private or symmetric key material"

static const hostile_t hostile[] = {
    { H_OK, B_OK, NULL, 0 },
    /* duplicate members, at the top and inside jwk, also when one is spelled with escapes */
    { "{\"typ\":\"dpop+jwt\",\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK,
      NOT_JSON, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"x\":\"AAAA\"}}", B_OK, NOT_JSON, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K},\"jw\\u006b\":{}}", B_OK, NOT_JSON,
      0 },
    { H_OK, "{\"jti\":\"j\",\"jti\":\"k\",\"iat\":1796014600," B_TAIL "}", PL_NOT_JSON, 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600,\"i\\u0061t\":1796014600," B_TAIL "}",
      PL_NOT_JSON, 0 },
    /* the same name twice with different values, one spelled with escapes (a reader that kept
       either would sign one jti and record another, or build one key and hash another) */
    { H_OK, "{\"jti\":\"j\",\"jt\\u0069\":\"k\",\"iat\":1796014600," B_TAIL "}", PL_NOT_JSON,
      0 },
    { H_OK, "{\"jt\\u0069\":\"k\",\"jti\":\"j\",\"iat\":1796014600," B_TAIL "}", PL_NOT_JSON,
      0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"\\u0078\":\"AAAA\"}}", B_OK,
      NOT_JSON, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K},\"jw\\u006b\":{%K,\"d\":\"A\"}}",
      B_OK, NOT_JSON, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K},\"cri\\u0074\":[\"exp\"]}", B_OK,
      "crit", 0 },
    /* typ is a media type, compared without case (RFC 7515 §4.1.9), but nothing more */
    { "{\"typ\":\"DPoP+JWT\",\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK, NULL, 0 },
    { "{\"typ\":\"dpop+jwt \",\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK, "typ is not dpop+jwt",
      0 },
    { "{\"typ\":\"dpop\\u002bjwt\\u0000\",\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK, NOT_JSON, 0 },
    /* htm and htu with escapes: read as decoded, then compared (htu once normalised) */
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600,\"htm\":\"G\\u0045T\",\"htu\":"
      "\"https:\\/\\/rs.example\\/api\\/items\",\"ath\":\"%A\"}", NULL, 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600,\"htm\":\"GET\\u0020\",\"htu\":\"" URL
      "\",\"ath\":\"%A\"}", "htm is not", 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600,\"htm\":\"GET\",\"htu\":\"" URL
      "\\u002f..\\u002f..\\u002fadmin\",\"ath\":\"%A\"}", "htu is not", 0 },
    /* iat with an exponent in range is the same second; out of range it is no number at all */
    { H_OK, "{\"jti\":\"j\",\"iat\":1.7960146e9," B_TAIL "}", NULL, 2 },
    { H_OK, "{\"jti\":\"j\",\"iat\":-1e999," B_TAIL "}", PL_NOT_JSON, 2 },
    { H_OK, "{\"jti\":\"j\",\"iat\":-9223372036854775808," B_TAIL "}", "iat is older", 2 },
    /* escaped names and values are read as decoded */
    { "{\"t\\u0079p\":\"dpop\\u002bjwt\",\"\\u0061lg\":\"ES256\",\"j\\u0077k\":{%K}}",
      "{\"jt\\u0069\":\"\\u00e9\",\"\\u0069at\":1796014600," B_TAIL "}", NULL, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"\\u0064\":\"AAAA\"}}", B_OK,
      PRIV " (d)", 0 },
    /* numbers as strings, strings as numbers */
    { H_OK, "{\"jti\":\"j\",\"iat\":\"1796014600\"," B_TAIL "}", LACKS, 0 },
    { H_OK, "{\"jti\":7,\"iat\":1796014600," B_TAIL "}", LACKS, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":[\"ES256\"],\"jwk\":{%K}}", B_OK, "alg is not one", 0 },
    { "{\"typ\":1,\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK, "typ is not dpop+jwt", 0 },
    /* iat as a real: truncated when in (0, 1e11); exponents and long integers go to jansson */
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600.75," B_TAIL "}", NULL, 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600.0e0," B_TAIL "}", NULL, 2 },
    { H_OK, "{\"jti\":\"j\",\"iat\":-1.5," B_TAIL "}", LACKS, 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":99999999999.99999999," B_TAIL "}", LACKS, 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1e11," B_TAIL "}", LACKS, 2 },
    { H_OK, "{\"jti\":\"j\",\"iat\":17960146000000000000000," B_TAIL "}", PL_NOT_JSON, 2 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1e999," B_TAIL "}", PL_NOT_JSON, 2 },
    /* nested objects: only the top level's members (and jwk's) count */
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":[{%K}]}", B_OK, "no jwk object", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":\"EC\",\"k\":{%K}}", B_OK,
      "no jwk object", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"x\":{\"jwk\":{%K}}}", B_OK, "no jwk object",
      0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\","
      "\"x\":{\"x\":\"AAAA\"},\"y\":\"AAAA\"}}", B_OK, "lacks a member", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"ext\":{\"d\":\"AAAA\"}}}", B_OK,
      NULL, 0 },
    { "{\"jwk\":{%K,\"typ\":\"dpop+jwt\"},\"alg\":\"ES256\"}", B_OK, "typ is not", 0 },
    { H_OK, "{\"jti\":\"j\",\"iat\":1796014600,\"htm\":{\"htm\":\"GET\"},\"htu\":\"" URL
      "\",\"ath\":\"%A\"}", LACKS, 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K},\"z\":"
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", B_OK,
      NULL, 1 },
    /* private or symmetric key members, whatever their value */
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"d\":\"AAAA\"}}", B_OK, PRIV " (d)",
      0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{\"p\":null,%K}}", B_OK, PRIV " (p)", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"q\":1}}", B_OK, PRIV " (q)", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"dp\":{}}}", B_OK, PRIV " (dp)", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"dq\":\"\"}}", B_OK, PRIV " (dq)", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"qi\":false}}", B_OK, PRIV " (qi)",
      0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"k\":\"AAAA\"}}", B_OK, PRIV " (k)",
      0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K,\"oth\":[]}}", B_OK, PRIV " (oth)", 0 },
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{\"k\":1,%K,\"d\":1}}", B_OK, PRIV " (d)",
      0 },
    /* crit with any value; bytes after the object; \u0000; not an object at all */
    { "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":{%K},\"crit\":null}", B_OK, "crit", 0 },
    { H_OK " x", B_OK, NOT_JSON, 0 },
    { H_OK, B_OK "{}", PL_NOT_JSON, 0 },
    { "{\"typ\":\"dpop+jwt\\u0000\",\"alg\":\"ES256\",\"jwk\":{%K}}", B_OK, NOT_JSON, 0 },
    { "[" H_OK "]", B_OK, NOT_JSON, 0 },
    { H_OK, "\"" URL "\"", PL_NOT_JSON, 0 },
};

/** text with %K and %A replaced. */
static const char *fill(const char *text, const signer_t *s)
{
    unsigned char md[32];
    unsigned int n = 0;
    const char *ath, *at;
    char *out = apr_pstrdup(ot_test_pool, text);

    EVP_Digest(TOKEN, strlen(TOKEN), md, &n, EVP_sha256(), NULL);
    ath = ot_dpop_b64url(md, 32, ot_test_pool);
    while ((at = strstr(out, "%K")) != NULL || (at = strstr(out, "%A")) != NULL) {
        out = apr_pstrcat(ot_test_pool, apr_pstrndup(ot_test_pool, out, (apr_size_t)(at - out)),
                          at[1] == 'K' ? s->members : ath, at + 2, NULL);
    }
    return out;
}

static ot_dpop_result_t verify_with(ot_dpop_reader_t how, const char *proof, const char **why)
{
    apr_array_header_t *algs = apr_array_make(ot_test_pool, 1, sizeof(const char *));
    ot_dpop_ask_t ask;
    ot_dpop_proof_t out;
    ot_dpop_result_t rv;

    APR_ARRAY_PUSH(algs, const char *) = "ES256";
    memset(&ask, 0, sizeof(ask));
    ask.method = "GET";
    ask.url = URL;
    ask.token = TOKEN;
    ask.now = apr_time_from_sec(NOW);
    ask.max_age = 60;
    ask.skew = 30;
    ask.algs = algs;
    *why = NULL;
    ot_dpop_read_use(how);
    rv = ot_dpop_verify(&out, why, &ask, proof, ot_test_pool);
    ot_dpop_read_use(OT_DPOP_READ_ANY);
    if (rv == OT_DPOP_OK) {
        ck_assert_str_eq(out.htu, URL);
        ck_assert_int_eq(out.iat, NOW);
    }
    return rv;
}

/** Each reader alone on one decoded part: the scanner, when sure, says what jansson says. */
static void readers_agree(const char *json, int is_head, int want_unsure, int i)
{
    apr_size_t len = strlen(json);
    ot_dpop_head_t hs, hj;
    ot_dpop_claims_t cs, cj;
    int s, j;

    if (is_head) {
        s = ot_dpop_read_head(&hs, json, len, OT_DPOP_READ_SCAN, ot_test_pool);
        j = ot_dpop_read_head(&hj, json, len, OT_DPOP_READ_JANSSON, ot_test_pool);
    }
    else {
        s = ot_dpop_read_claims(&cs, json, len, OT_DPOP_READ_SCAN, ot_test_pool);
        j = ot_dpop_read_claims(&cj, json, len, OT_DPOP_READ_JANSSON, ot_test_pool);
    }
    ck_assert_msg((s == -1) == want_unsure, "case %d: the scanner is %s", i,
                  s == -1 ? "unsure" : "sure");
    if (s != -1) {
        ck_assert_msg(s == j, "case %d: scanner %d, jansson %d", i, s, j);
        ck_assert_msg(!s || (is_head ? ot_dpop_head_eq(&hs, &hj) : ot_dpop_claims_eq(&cs, &cj)),
                      "case %d: the readers read different members", i);
    }
}

START_TEST(hostile_proofs_are_judged_as_jansson_judged_them)
{
    signer_t s = make_signer();
    apr_size_t i;

    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const hostile_t *h = &hostile[i];
        const char *head = fill(h->head, &s), *body = fill(h->body, &s);
        const char *proof = sign_raw(&s, head, body), *why_scan, *why_old;
        ot_dpop_result_t rv = verify_with(OT_DPOP_READ_ANY, proof, &why_scan);

        ck_assert_int_eq(verify_with(OT_DPOP_READ_JANSSON, proof, &why_old), rv);
        ck_assert_msg(rv == (h->why ? OT_DPOP_INVALID : OT_DPOP_OK), "case %d: %s",
                      (int)i, why_scan ? why_scan : "passed");
        if (h->why) {
            ck_assert_str_eq(why_scan, why_old);
            ck_assert_msg(strstr(why_scan, h->why) != NULL, "case %d: %s", (int)i, why_scan);
        }
        readers_agree(head, 1, h->unsure == 1, (int)i);
        readers_agree(body, 0, h->unsure == 2, (int)i);
    }
}
END_TEST

/** The raw r||s of an ES256 proof. */
static void raw_signature(const char *proof, unsigned char raw[64])
{
    char *sig;
    apr_size_t n = 0;

    ck_assert_int_eq(ot_b64url_decode(&sig, &n, strrchr(proof, '.') + 1,
                                      strlen(strrchr(proof, '.') + 1), ot_test_pool),
                     APR_SUCCESS);
    ck_assert_uint_eq(n, 64);
    memcpy(raw, sig, 64);
}

/*
 * r or s with leading zero bytes (one signature in 256 each) is the same integer: the DER
 * ot_dpop_key.c writes for OpenSSL drops them. Signed until each case has been seen.
 */
START_TEST(signatures_whose_halves_start_with_zeros_verify)
{
    signer_t s = make_signer();
    const char *head = fill(H_OK, &s), *why, *proof, *body;
    unsigned char raw[64];
    int i, r0 = 0, s0 = 0;

    for (i = 0; i < 20000 && (!r0 || !s0); i++) {
        body = fill(apr_pstrcat(ot_test_pool, "{\"jti\":\"j", apr_itoa(ot_test_pool, i),
                                "\",\"iat\":1796014600," B_TAIL "}", NULL), &s);
        proof = sign_raw(&s, head, body);
        raw_signature(proof, raw);
        if ((raw[0] == 0 && !r0) || (raw[32] == 0 && !s0)) {
            r0 |= raw[0] == 0;
            s0 |= raw[32] == 0;
            ck_assert_int_eq(verify_with(OT_DPOP_READ_ANY, proof, &why), OT_DPOP_OK);
            raw[raw[0] == 0 ? 0 : 32] = 1;      /* no longer the same integer */
            proof = apr_pstrcat(ot_test_pool, apr_pstrndup(ot_test_pool, proof,
                                (apr_size_t)(strrchr(proof, '.') + 1 - proof)),
                                ot_dpop_b64url(raw, 64, ot_test_pool), NULL);
            ck_assert_int_eq(verify_with(OT_DPOP_READ_ANY, proof, &why), OT_DPOP_INVALID);
        }
    }
    ck_assert(r0 && s0);
}
END_TEST

/*
 * The DER ot_dpop_key.c writes for an ES signature is the one OpenSSL writes (i2d_ECDSA_SIG):
 * r or s zero (a one-byte 0), all leading zeros dropped, a 0x00 before a high bit, and for
 * P-521 (66 bytes a half) a SEQUENCE longer than 127 bytes (long-form length).
 */
START_TEST(the_ecdsa_der_is_the_one_openssl_writes)
{
    static const apr_size_t sizes[] = { 32, 48, 66 };
    unsigned char sig[132], *mine, *theirs;
    apr_size_t k, z;
    int i, n_mine, n_theirs, long_form = 0;
    ECDSA_SIG *es;

    for (k = 0; k < 3; k++) {
        z = sizes[k];
        for (i = 0; i < 10; i++) {
            memset(sig, 0x5a, sizeof(sig));
            if (i == 0) memset(sig, 0, z);                    /* r = 0 */
            if (i == 1) memset(sig + z, 0, z);                /* s = 0 */
            if (i == 2) memset(sig, 0, 2 * z);                /* both */
            if (i == 3) memset(sig, 0xff, 2 * z);             /* high bits: 0x00 pads */
            if (i == 4) { memset(sig, 0, z - 1); sig[z - 1] = 0x80; }   /* r = 0x80 */
            if (i == 5) { sig[0] = 0; sig[1] = 0x80; sig[z] = 0x80; }
            if (i == 6) { sig[0] = 0; sig[1] = 0; sig[z] = 0; sig[z + 1] = 0x7f; }
            if (i == 7) { sig[0] = 0x01; sig[z] = 0x01; }             /* P-521's top byte */
            if (i == 8) { memset(sig, 0x80, 2 * z); }
            if (i == 9) { memset(sig + z, 0, z - 1); sig[2 * z - 1] = 1; }  /* s = 1 */
            mine = ot_ecdsa_der(&n_mine, sig, z);
            ck_assert_ptr_nonnull(mine);
            es = ECDSA_SIG_new();
            ck_assert(ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)z, NULL),
                                     BN_bin2bn(sig + z, (int)z, NULL)) == 1);
            theirs = NULL;
            n_theirs = i2d_ECDSA_SIG(es, &theirs);
            ck_assert_msg(n_mine == n_theirs && memcmp(mine, theirs, (size_t)n_mine) == 0,
                          "size %d case %d: %d bytes, OpenSSL's %d", (int)z, i, n_mine, n_theirs);
            long_form |= mine[1] == 0x81;
            OPENSSL_free(mine);
            OPENSSL_free(theirs);
            ECDSA_SIG_free(es);
        }
    }
    ck_assert(long_form);
}
END_TEST

START_TEST(an_object_of_many_members_is_left_to_jansson)
{
    const char *json = "{\"typ\":\"dpop+jwt\"", *dup;
    ot_dpop_head_t h;
    int i;

    for (i = 0; i < 70; i++) {
        json = apr_psprintf(ot_test_pool, "%s,\"m%d\":%d", json, i, i);
    }
    dup = apr_pstrcat(ot_test_pool, json, ",\"m3\":0}", NULL);
    json = apr_pstrcat(ot_test_pool, json, "}", NULL);
    ck_assert_int_eq(ot_dpop_read_head(&h, json, strlen(json), OT_DPOP_READ_SCAN, ot_test_pool),
                     -1);
    ck_assert_int_eq(ot_dpop_read_head(&h, json, strlen(json), OT_DPOP_READ_ANY, ot_test_pool), 1);
    ck_assert_str_eq(h.typ, "dpop+jwt");
    /* past 64 members the scanner no longer sees duplicates: jansson refuses this one */
    ck_assert_int_eq(ot_dpop_read_head(&h, dup, strlen(dup), OT_DPOP_READ_ANY, ot_test_pool), 0);
}
END_TEST

Suite *suite_dpop_read(void)
{
    Suite *s = suite_create("dpop_read");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, hostile_proofs_are_judged_as_jansson_judged_them);
    tcase_add_test(tc, an_object_of_many_members_is_left_to_jansson);
    tcase_add_test(tc, signatures_whose_halves_start_with_zeros_verify);
    tcase_add_test(tc, the_ecdsa_der_is_the_one_openssl_writes);
    suite_add_tcase(s, tc);
    return s;
}
