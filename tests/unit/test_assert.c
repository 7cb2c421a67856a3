/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Client assertions (ot_assert.c) decoded and verified with OpenSSL; RFC 9701 signed answers
 * (ot_signed.c); credential files read again (ot_cred.c); the form of the new client
 * authentication methods (ot_introspect.c). OT_BENCH_SIGN=1 prints the signing cost per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <apr_strings.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "ot_unit.h"
#include "ot_assert.h"
#include "ot_cred.h"
#include "ot_introspect.h"
#include "ot_json.h"
#include "ot_signed.h"
#include "ot_util.h"

static EVP_PKEY *keygen(const char *type, const char *param, size_t bits)
{
    EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits)
        : strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", param)
        : EVP_PKEY_Q_keygen(NULL, NULL, type);

    ck_assert_ptr_nonnull(k);
    return k;
}

/** The JSON of one base64url part of a compact JWS. */
static json_t *part(const char *b64, apr_size_t len)
{
    char *raw;
    apr_size_t raw_len;

    ck_assert_int_eq(ot_b64url_decode(&raw, &raw_len, b64, len, ot_test_pool), APR_SUCCESS);
    return ot_json_parse(raw, raw_len, NULL, ot_test_pool);
}

/** 1 when jwt's signature verifies with key (or HS256 with secret), as a relying party would. */
static int signature_ok(const char *jwt, EVP_PKEY *key, const char *secret)
{
    const char *dot = strrchr(jwt, '.'), *alg = key ? ot_assert_key_alg(key) : "HS256";
    apr_size_t in_len = (apr_size_t)(dot - jwt), sig_len, der_len;
    char *sig;
    unsigned char mac[64], der[256], *q = der;
    unsigned int mac_len = 0;
    EVP_MD_CTX *ctx;
    ECDSA_SIG *es;
    int ok, half;

    ck_assert_int_eq(ot_b64url_decode(&sig, &sig_len, dot + 1, strlen(dot + 1), ot_test_pool),
                     APR_SUCCESS);
    if (key == NULL) {
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)jwt, in_len, mac,
             &mac_len);
        return mac_len == sig_len && memcmp(mac, sig, sig_len) == 0;
    }
    der_len = sig_len;
    if (alg[0] == 'E' && alg[1] == 'S') {
        half = (int)sig_len / 2;
        es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig, half, NULL),
                       BN_bin2bn((unsigned char *)sig + half, half, NULL));
        der_len = (apr_size_t)i2d_ECDSA_SIG(es, &q);
        ECDSA_SIG_free(es);
        memcpy(sig, der, der_len);
    }
    ctx = EVP_MD_CTX_new();
    ok = EVP_DigestVerifyInit(ctx, NULL, strcmp(alg, "EdDSA") == 0 ? NULL
                              : strcmp(alg, "ES384") == 0 ? EVP_sha384()
                              : strcmp(alg, "ES512") == 0 ? EVP_sha512() : EVP_sha256(),
                              NULL, key) == 1
        && EVP_DigestVerify(ctx, (unsigned char *)sig, der_len, (const unsigned char *)jwt,
                            in_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/** Check one assertion's header and claims; returns its jti. */
static const char *check_claims(const char *jwt, const char *alg, const char *kid)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *h, *c;

    ck_assert_ptr_nonnull(d2);
    h = part(jwt, (apr_size_t)(d1 - jwt));
    c = part(d1 + 1, (apr_size_t)(d2 - d1 - 1));
    ck_assert_str_eq(ot_json_string(h, "alg"), alg);
    ck_assert_str_eq(ot_json_string(h, "typ"), "JWT");
    if (kid) {
        ck_assert_str_eq(ot_json_string(h, "kid"), kid);
    }
    else {
        ck_assert_ptr_null(json_object_get(h, "kid"));
    }
    ck_assert_str_eq(ot_json_string(c, "iss"), "rs-client");
    ck_assert_str_eq(ot_json_string(c, "sub"), "rs-client");
    ck_assert_str_eq(ot_json_string(c, "aud"), "https://issuer.example/realms/r");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "iat")), 1700000000);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "exp")), 1700000060);
    ck_assert_int_eq((int)strlen(ot_json_string(c, "jti")), 22);   /* 128 bits */
    return ot_json_string(c, "jti");
}

static const ot_assert_claims_t claims = {
    "rs-client", "https://issuer.example/realms/r", APR_INT64_C(1700000000) * 1000000, 60
};

START_TEST(assertion_for_each_key_type_verifies)
{
    struct { const char *type, *param; size_t bits; const char *alg; } kinds[] = {
        { "RSA", NULL, 2048, "RS256" }, { "EC", "P-256", 0, "ES256" },
        { "EC", "P-384", 0, "ES384" }, { "EC", "P-521", 0, "ES512" },
        { "ED25519", NULL, 0, "EdDSA" }
    };
    const char *err = NULL, *a, *b;
    EVP_PKEY *key, *other = keygen("EC", "P-256", 0);
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        key = keygen(kinds[i].type, kinds[i].param, kinds[i].bits);
        ck_assert_str_eq(ot_assert_key_alg(key), kinds[i].alg);
        a = ot_assertion_make(&claims, key, "kid-1", NULL, &err, ot_test_pool);
        b = ot_assertion_make(&claims, key, NULL, NULL, &err, ot_test_pool);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert(signature_ok(a, key, NULL));
        ck_assert(signature_ok(b, key, NULL));
        ck_assert(strcmp(check_claims(a, kinds[i].alg, "kid-1"),
                         check_claims(b, kinds[i].alg, NULL)) != 0);
        if (strcmp(kinds[i].alg, "ES256") == 0) {
            ck_assert(!signature_ok(a, other, NULL));
        }
        EVP_PKEY_free(key);
    }
    EVP_PKEY_free(other);
}
END_TEST

START_TEST(client_secret_jwt_is_hs256_with_the_secret)
{
    const char *err = NULL;
    const char *a = ot_assertion_make(&claims, NULL, "ignored", "s3cret", &err, ot_test_pool);

    ck_assert_ptr_nonnull(a);
    check_claims(a, "HS256", NULL);
    ck_assert(signature_ok(a, NULL, "s3cret"));
    ck_assert(!signature_ok(a, NULL, "s3cret2"));
    ck_assert_ptr_null(strstr(a, "s3cret"));
    ck_assert_ptr_null(ot_assertion_make(&claims, NULL, NULL, "", &err, ot_test_pool));
}
END_TEST

static const char *pem_of(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *out;

    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    out = apr_pstrmemdup(ot_test_pool, data, (apr_size_t)n);
    BIO_free(bio);
    return out;
}

START_TEST(key_reading_refuses_what_cannot_sign)
{
    const char *err = NULL, *pem;
    EVP_PKEY *small = keygen("RSA", NULL, 1024), *k;

    pem = pem_of(small);
    ck_assert_ptr_null(ot_assert_key_parse(pem, strlen(pem), &err, ot_test_pool));
    ck_assert_ptr_nonnull(strstr(err, "2048"));
    ck_assert_ptr_null(ot_assert_key_parse("garbage", 7, &err, ot_test_pool));
    k = keygen("EC", "P-256", 0);
    pem = pem_of(k);
    ck_assert_ptr_nonnull(ot_assert_key_parse(pem, strlen(pem), &err, ot_test_pool));
    EVP_PKEY_free(small);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(signing_cost)
{
    struct { const char *type, *param; size_t bits; } kinds[] = {
        { "RSA", NULL, 2048 }, { "EC", "P-256", 0 }, { "ED25519", NULL, 0 }
    };
    const char *err = NULL;
    apr_time_t t0;
    apr_pool_t *p;
    EVP_PKEY *key;
    size_t i;
    int n, rounds = 500;

    if (getenv("OT_BENCH_SIGN") == NULL) {
        return;
    }
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        key = keygen(kinds[i].type, kinds[i].param, kinds[i].bits);
        apr_pool_create(&p, ot_test_pool);
        t0 = apr_time_now();
        for (n = 0; n < rounds; n++) {
            ck_assert_ptr_nonnull(ot_assertion_make(&claims, key, "k", NULL, &err, p));
            apr_pool_clear(p);
        }
        fprintf(stderr, "signing cost %s: %.1f us per assertion\n", ot_assert_key_alg(key),
                (double)(apr_time_now() - t0) / rounds);
        apr_pool_destroy(p);
        EVP_PKEY_free(key);
    }
}
END_TEST

/* ---- signed answers ------------------------------------------------------------------------ */

static const char *ec_jwks(EVP_PKEY *key)
{
    BIGNUM *x = NULL, *y = NULL;
    unsigned char bx[32], by[32];
    const char *out;

    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    BN_bn2binpad(x, bx, 32);
    BN_bn2binpad(y, by, 32);
    out = apr_psprintf(ot_test_pool, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\","
                       "\"x\":\"%s\",\"y\":\"%s\"}]}", ot_b64url_encode(bx, 32, ot_test_pool),
                       ot_b64url_encode(by, 32, ot_test_pool));
    BN_free(x);
    BN_free(y);
    return out;
}

static apr_status_t unwrap_about(const char **answer, const char **why, EVP_PKEY *signer,
                                 EVP_PKEY *published, const char *typ, const char *payload,
                                 const char *token_jti)
{
    const char *header = apr_psprintf(ot_test_pool, "{\"alg\":\"ES256\",\"kid\":\"k1\"%s%s%s}",
                                      typ ? ",\"typ\":\"" : "", typ ? typ : "", typ ? "\"" : "");
    const char *jws = ot_jws_sign(header, payload, signer, NULL, ot_test_pool);
    const char *jwks = ec_jwks(published);
    const char *body = apr_pstrcat(ot_test_pool, "\n ", jws, "\r\n", NULL);
    ot_signed_rules_t rules = { "https://as.example", "rs-client",
                                apr_time_from_sec(1700000000 - 30),
                                apr_time_from_sec(1700000005 + 30), token_jti };
    apr_size_t len;
    int no_key;

    return ot_signed_unwrap(answer, &len, why, &no_key, body, strlen(body), jwks, strlen(jwks),
                            &rules, ot_test_pool);
}

static apr_status_t unwrap(const char **answer, const char **why, EVP_PKEY *signer,
                           EVP_PKEY *published, const char *typ, const char *payload)
{
    return unwrap_about(answer, why, signer, published, typ, payload, NULL);
}

START_TEST(signed_answers_are_judged)
{
    EVP_PKEY *key = keygen("EC", "P-256", 0), *other = keygen("EC", "P-256", 0);
    const char *ok = "{\"iss\":\"https://as.example\",\"aud\":[\"x\",\"rs-client\"],"
                     "\"iat\":1700000003,\"token_introspection\":{\"active\":true,\"sub\":\"a\"}}";
    const char *answer, *why = NULL;
    struct { const char *typ, *payload, *why; } bad[] = {
        { "JWT", ok, "typ" },
        { NULL, ok, "typ" },
        { "token-introspection+jwt", "{\"iss\":\"https://other\",\"aud\":\"rs-client\","
          "\"iat\":1700000003,\"token_introspection\":{\"active\":true}}", "iss" },
        { "token-introspection+jwt", "{\"iss\":\"https://as.example\",\"aud\":\"rs-other\","
          "\"iat\":1700000003,\"token_introspection\":{\"active\":true}}", "aud" },
        { "token-introspection+jwt", "{\"iss\":\"https://as.example\",\"aud\":\"rs-client\","
          "\"iat\":1699990000,\"token_introspection\":{\"active\":true}}", "iat" },
        { "token-introspection+jwt", "{\"iss\":\"https://as.example\",\"aud\":\"rs-client\","
          "\"iat\":1700009000,\"token_introspection\":{\"active\":true}}", "future" },
        { "token-introspection+jwt", "{\"iss\":\"https://as.example\",\"aud\":\"rs-client\","
          "\"token_introspection\":{\"active\":true}}", "iat" },
        { "token-introspection+jwt", "{\"iss\":\"https://as.example\",\"aud\":\"rs-client\","
          "\"iat\":1700000003,\"token_introspection\":\"x\"}", "token_introspection" },
    };
    size_t i;

    ck_assert_int_eq(unwrap(&answer, &why, key, key, "token-introspection+jwt", ok),
                     APR_SUCCESS);
    ck_assert_str_eq(answer, "{\"active\":true,\"sub\":\"a\"}");
    ck_assert_int_eq(unwrap(&answer, &why, key, key, "Application/Token-Introspection+JWT", ok),
                     APR_SUCCESS);
    ck_assert_int_ne(unwrap(&answer, &why, other, key, "token-introspection+jwt", ok),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(why, "signature"));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_ne(unwrap(&answer, &why, key, key, bad[i].typ, bad[i].payload),
                         APR_SUCCESS);
        ck_assert_ptr_null(answer);
        ck_assert_msg(strstr(why, bad[i].why) != NULL, "case %d: %s", (int)i, why);
    }
    ck_assert(ot_signed_content_type("application/token-introspection+jwt; charset=utf-8"));
    ck_assert(!ot_signed_content_type("application/json"));
    ck_assert(!ot_signed_content_type("application/token-introspection+jwtx"));
    ck_assert(!ot_signed_content_type(NULL));
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}
END_TEST

/*
 * RFC 9701 binds an answer to no token: a signed answer about token A (replayed by whoever
 * stands between us and the issuer, within the iat window) must not pass for token B's when
 * both name their jti.
 */
START_TEST(signed_answers_about_another_token_are_refused)
{
    EVP_PKEY *key = keygen("EC", "P-256", 0);
    const char *head = "{\"iss\":\"https://as.example\",\"aud\":\"rs-client\","
                       "\"iat\":1700000003,\"token_introspection\":";
    const char *about_a = apr_pstrcat(ot_test_pool, head,
                                      "{\"active\":true,\"sub\":\"a\",\"jti\":\"jti-A\"}}",
                                      NULL);
    const char *no_jti = apr_pstrcat(ot_test_pool, head, "{\"active\":true}}", NULL);
    const char *odd_jti = apr_pstrcat(ot_test_pool, head, "{\"active\":true,\"jti\":7}}", NULL);
    const char *typ = "token-introspection+jwt", *answer, *why = NULL;

    ck_assert_int_eq(unwrap_about(&answer, &why, key, key, typ, about_a, "jti-A"), APR_SUCCESS);
    ck_assert_int_ne(unwrap_about(&answer, &why, key, key, typ, about_a, "jti-B"), APR_SUCCESS);
    ck_assert_ptr_null(answer);
    ck_assert_ptr_nonnull(strstr(why, "another token"));
    ck_assert_int_ne(unwrap_about(&answer, &why, key, key, typ, odd_jti, "jti-B"), APR_SUCCESS);
    /* Nothing to compare: an opaque token (no jti of its own), or an answer without jti. */
    ck_assert_int_eq(unwrap_about(&answer, &why, key, key, typ, about_a, NULL), APR_SUCCESS);
    ck_assert_int_eq(unwrap_about(&answer, &why, key, key, typ, no_jti, "jti-B"), APR_SUCCESS);
    EVP_PKEY_free(key);
}
END_TEST

/* ---- credential files ---------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(credential_files_are_read_again_when_changed)
{
    char path[] = "/tmp/ot-cred-XXXXXX";
    int fd = mkstemp(path);
    ot_cred_store_t *s;
    const char *err = NULL, *v;
    apr_time_t now = apr_time_from_sec(1000);
    apr_size_t len;
    unsigned gen = 9;

    ck_assert_int_ge(fd, 0);
    close(fd);
    write_text(path, "old\n");
    ck_assert_int_eq(ot_cred_store_create(&s, apr_time_from_sec(5), ot_test_pool), APR_SUCCESS);
    v = ot_cred_get(s, path, "old", 3, &len, &gen, ot_test_pool);
    ck_assert_str_eq(v, "old");
    ck_assert_uint_eq(gen, 0);
    /* The same content as the configuration's: no new generation. */
    ck_assert_int_eq(ot_cred_reload(s, path, OT_CRED_SECRET, "old", 3, now, &gen, &err,
                                    ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(gen, 0);
    write_text(path, "new-secret\r\n");
    /* Too early to look again. */
    ck_assert_int_eq(ot_cred_reload(s, path, OT_CRED_SECRET, "old", 3, now + 1000000, &gen,
                                    &err, ot_test_pool), APR_EAGAIN);
    ck_assert_int_eq(ot_cred_reload(s, path, OT_CRED_SECRET, "old", 3, now + 6000000, &gen,
                                    &err, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(gen, 1);
    v = ot_cred_get(s, path, "old", 3, &len, &gen, ot_test_pool);
    ck_assert_str_eq(v, "new-secret");
    ck_assert_uint_eq(len, 10);
    ck_assert_uint_eq(gen, 1);
    unlink(path);
    ck_assert_int_ne(ot_cred_reload(s, path, OT_CRED_SECRET, "old", 3, now + 20000000, &gen,
                                    &err, ot_test_pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "does not exist"));
    ck_assert_ptr_null(strstr(err, "new-secret"));
    /* What was read last stays in use. */
    ck_assert_str_eq(ot_cred_get(s, path, "old", 3, &len, &gen, ot_test_pool), "new-secret");
}
END_TEST

/*
 * Whoever can put a FIFO (or a symlink to one) where a credential file was must not be able to
 * hang the process: opening a FIFO without a writer blocks, under the store's lock, and every
 * issuer call of the process takes that lock. Nothing but a regular file is read.
 */
START_TEST(credential_files_that_are_not_regular_files_are_refused)
{
    char dir[] = "/tmp/ot-cred-XXXXXX";
    const char *path, *err = NULL;
    ot_cred_store_t *s;
    apr_size_t len;
    unsigned gen = 9;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    path = apr_pstrcat(ot_test_pool, dir, "/secret", NULL);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(ot_cred_store_create(&s, apr_time_from_sec(5), ot_test_pool), APR_SUCCESS);
    ck_assert_int_ne(ot_cred_reload(s, path, OT_CRED_SECRET, "old", 3, apr_time_from_sec(1000),
                                    &gen, &err, ot_test_pool), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_uint_eq(gen, 0);
    ck_assert_str_eq(ot_cred_get(s, path, "old", 3, &len, &gen, ot_test_pool), "old");
    ck_assert_ptr_null(ot_cred_read(path, OT_CRED_PEM, &len, &err, ot_test_pool));
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(rotated_key_files_are_parsed)
{
    char path[] = "/tmp/ot-key-XXXXXX";
    int fd = mkstemp(path);
    EVP_PKEY *k1 = keygen("EC", "P-256", 0), *k2 = keygen("ED25519", NULL, 0), *got;
    ot_cred_store_t *s;
    const char *err = NULL, *pem1 = pem_of(k1);
    unsigned gen;

    close(fd);
    write_text(path, pem_of(k2));
    ck_assert_int_eq(ot_cred_store_create(&s, 0, ot_test_pool), APR_SUCCESS);
    got = ot_cred_get_key(s, path, k1, &gen, ot_test_pool);
    ck_assert_str_eq(ot_assert_key_alg(got), "ES256");
    ck_assert_int_eq(ot_cred_reload(s, path, OT_CRED_KEY, pem1, strlen(pem1), 1, &gen, &err,
                                    ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(gen, 1);
    got = ot_cred_get_key(s, path, k1, &gen, ot_test_pool);
    ck_assert_str_eq(ot_assert_key_alg(got), "EdDSA");
    /* A file that is not a key leaves the last good one in use. */
    write_text(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    ck_assert_int_ne(ot_cred_reload(s, path, OT_CRED_KEY, pem1, strlen(pem1), 2, &gen, &err,
                                    ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(ot_assert_key_alg(ot_cred_get_key(s, path, k1, &gen, ot_test_pool)),
                     "EdDSA");
    unlink(path);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}
END_TEST

/* ---- the form ------------------------------------------------------------------------------ */

START_TEST(forms_of_the_new_methods)
{
    ot_introspect_t in = { "https://as/introspect", "rs client", "sec", OT_AUTH_KEY_JWT, NULL,
                           "tok", "a.b.c", 1 };
    ot_http_req_t req;
    ot_http_resp_t resp;

    memset(&req, 0, sizeof(req));
    ot_introspect_request(&req, &in, ot_test_pool);
    ck_assert_str_eq(req.body, "token=tok&client_id=rs+client&client_assertion_type=urn%3Aietf"
                     "%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                     "&client_assertion=a.b.c");
    ck_assert_ptr_null(req.authorization);
    ck_assert_str_eq(req.accept, "application/token-introspection+jwt");
    in.auth = OT_AUTH_TLS;
    in.signed_answers = 0;
    ot_introspect_request(&req, &in, ot_test_pool);
    ck_assert_str_eq(req.body, "token=tok&client_id=rs+client");
    ck_assert_str_eq(req.accept, "application/json");
    ck_assert_str_eq(ot_client_auth_name(OT_AUTH_SECRET_JWT), "client_secret_jwt");

    memset(&resp, 0, sizeof(resp));
    resp.status = 401;
    ck_assert(ot_introspect_invalid_client(&resp, ot_test_pool));
    resp.status = 400;
    resp.body = "{\"error\":\"invalid_client\"}";
    resp.body_len = strlen(resp.body);
    ck_assert(ot_introspect_invalid_client(&resp, ot_test_pool));
    resp.body = "{\"error\":\"invalid_request\"}";
    resp.body_len = strlen(resp.body);
    ck_assert(!ot_introspect_invalid_client(&resp, ot_test_pool));
    resp.status = 500;
    ck_assert(!ot_introspect_invalid_client(&resp, ot_test_pool));
}
END_TEST

Suite *suite_assert(void)
{
    Suite *s = suite_create("assert");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, assertion_for_each_key_type_verifies);
    tcase_add_test(tc, client_secret_jwt_is_hs256_with_the_secret);
    tcase_add_test(tc, key_reading_refuses_what_cannot_sign);
    tcase_add_test(tc, signing_cost);
    tcase_add_test(tc, signed_answers_are_judged);
    tcase_add_test(tc, signed_answers_about_another_token_are_refused);
    tcase_add_test(tc, credential_files_are_read_again_when_changed);
    tcase_add_test(tc, credential_files_that_are_not_regular_files_are_refused);
    tcase_add_test(tc, rotated_key_files_are_parsed);
    tcase_add_test(tc, forms_of_the_new_methods);
    suite_add_tcase(s, tc);
    return s;
}
