/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * ot_jose: JWS verification against a JWKS, the forgeries it must refuse, and the key cache's
 * fetching and rate limiting (with a fake fetcher and a fake clock).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <cjose/cjose.h>

#include "ot_unit.h"
#include "ot_dpop_key.h"
#include "ot_jose.h"
#include "ot_jose_int.h"
#include "ot_json.h"

#define T0 apr_time_from_sec(1796015000)
#define SEC(n) apr_time_from_sec(n)

/* Keys made once for the suite (RSA generation is slow); test processes inherit them. */
static cjose_jwk_t *rsa1, *rsa2, *rsa_small, *ec1, *ec2, *ec384, *ec521;

static cjose_jwk_t *with_kid(cjose_jwk_t *k, const char *kid)
{
    cjose_err err;

    ck_assert_ptr_nonnull(k);
    ck_assert(cjose_jwk_set_kid(k, kid, strlen(kid), &err));
    return k;
}

static void make_keys(void)
{
    static const uint8_t e[] = { 0x01, 0x00, 0x01 };
    cjose_err err;

    rsa1 = with_kid(cjose_jwk_create_RSA_random(2048, e, sizeof(e), &err), "rsa1");
    rsa2 = with_kid(cjose_jwk_create_RSA_random(2048, e, sizeof(e), &err), "rsa2");
    rsa_small = with_kid(cjose_jwk_create_RSA_random(1024, e, sizeof(e), &err), "small");
    ec1 = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err), "ec1");
    ec2 = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err), "ec2");
    ec384 = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, &err), "ec384");
    ec521 = with_kid(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_521, &err), "ec521");
}

/** The public JWK of k as JSON, with extra members merged in (extra may be NULL). */
static json_t *public_jwk(const cjose_jwk_t *k, const char *extra)
{
    cjose_err err;
    char *text = cjose_jwk_to_json(k, false, &err);
    json_t *j = ot_json_parse(text, strlen(text), NULL, ot_test_pool);

    free(text);
    if (extra) {
        json_object_update(j, ot_json_parse(extra, strlen(extra), NULL, ot_test_pool));
    }
    return j;
}

/** {"keys": [...]} of the given JWKs (NULL-terminated). */
static const char *jwks_of(json_t *first, ...)
{
    json_t *keys = ot_json_own(json_array(), ot_test_pool), *k;
    va_list ap;

    va_start(ap, first);
    for (k = first; k; k = va_arg(ap, json_t *)) {
        json_array_append(keys, k);
    }
    va_end(ap);
    return ot_json_dump(json_pack("{s:O}", "keys", keys), NULL, ot_test_pool);
}

static const char *b64(const char *data, size_t len)
{
    cjose_err err;
    char *out = NULL;
    size_t out_len = 0;
    const char *copy;

    ck_assert(cjose_base64url_encode((const uint8_t *)data, len, &out, &out_len, &err));
    copy = apr_pstrmemdup(ot_test_pool, out, out_len);
    free(out);
    return copy;
}

/** A compact JWS of payload signed by k with this header (a JSON object text). */
static const char *sign(const cjose_jwk_t *k, const char *header, const char *payload)
{
    cjose_err err;
    json_t *h = ot_json_parse(header, strlen(header), NULL, ot_test_pool);
    cjose_jws_t *jws = cjose_jws_sign(k, (cjose_header_t *)h, (const uint8_t *)payload,
                                      strlen(payload), &err);
    const char *out = NULL;

    ck_assert_ptr_nonnull(jws);
    ck_assert(cjose_jws_export(jws, &out, &err));
    out = apr_pstrdup(ot_test_pool, out);
    cjose_jws_release(jws);
    return out;
}

#define PAYLOAD "{\"sub\":\"alice\",\"iat\":1796015000}"

static ot_jose_result_t check(const char *jwks, const char *token, int *no_key, ot_jws_t *jws)
{
    const char *why = NULL;
    ot_jose_result_t res = ot_jose_verify_jwks(jws, &why, no_key, jwks, strlen(jwks), token,
                                               strlen(token), ot_test_pool);

    ck_assert(res == OT_JOSE_OK || why != NULL);
    return res;
}

START_TEST(verifies_rs256_and_es256)
{
    const char *jwks = jwks_of(public_jwk(rsa1, "{\"alg\":\"RS256\",\"use\":\"sig\"}"),
                               public_jwk(ec1, NULL), NULL);
    ot_jws_t jws;
    int no_key;

    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":"
                                      "\"logout+jwt\"}", PAYLOAD), &no_key, &jws), OT_JOSE_OK);
    ck_assert_str_eq(ot_json_string(jws.payload, "sub"), "alice");
    ck_assert_str_eq(jws.typ, "logout+jwt");
    ck_assert_str_eq(jws.kid, "rsa1");
    ck_assert_str_eq(jws.alg, "RS256");
    ck_assert_int_eq(check(jwks, sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_OK);
    /* no kid: every key that fits the algorithm is tried */
    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"PS256\"}", "{}"), &no_key, &jws),
                     OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, NULL), NULL),
                           sign(rsa1, "{\"alg\":\"PS256\"}", "{}"), &no_key, &jws), OT_JOSE_OK);
}
END_TEST

START_TEST(refuses_none_and_hmac)
{
    json_t *pub = public_jwk(rsa1, NULL);
    const char *jwks = jwks_of(pub, NULL), *none, *text;
    cjose_jwk_t *oct;
    cjose_err err;
    ot_jws_t jws;
    int no_key;

    text = "{\"alg\":\"none\",\"kid\":\"rsa1\"}";
    none = apr_pstrcat(ot_test_pool, b64(text, strlen(text)), ".",
                       b64(PAYLOAD, strlen(PAYLOAD)), ".", NULL);
    ck_assert_int_eq(check(jwks, none, &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks, apr_pstrcat(ot_test_pool, none, "c2ln", NULL), &no_key, &jws),
                     OT_JOSE_INVALID);
    /* HS256 keyed with the public key's own JWK text */
    text = ot_json_dump(pub, NULL, ot_test_pool);
    oct = cjose_jwk_create_oct_spec((const uint8_t *)text, strlen(text), &err);
    ck_assert_ptr_nonnull(oct);
    ck_assert_int_eq(check(jwks, sign(oct, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_INVALID);
    /* and an HMAC key published in the set is never used */
    ck_assert_int_eq(check(jwks_of(public_jwk(oct, "{\"kid\":\"h\"}"), NULL),
                           sign(oct, "{\"alg\":\"HS256\",\"kid\":\"h\"}", PAYLOAD), &no_key,
                           &jws), OT_JOSE_INVALID);
    cjose_jwk_release(oct);
}
END_TEST

START_TEST(refuses_wrong_keys)
{
    const char *jwks = jwks_of(public_jwk(rsa1, NULL), public_jwk(ec1, NULL), NULL), *tok;
    ot_jws_t jws;
    int no_key;

    /* bad signature: one bit of it flipped */
    tok = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    tok = apr_pstrcat(ot_test_pool, apr_pstrndup(ot_test_pool, tok, strlen(tok) - 2),
                      tok[strlen(tok) - 2] == 'A' ? "B" : "A", tok + strlen(tok) - 1, NULL);
    ck_assert_int_eq(check(jwks, tok, &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 0);
    /* another key under a known kid */
    ck_assert_int_eq(check(jwks, sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 0);
    /* an unknown kid: the caller may look for newer keys */
    ck_assert_int_eq(check(jwks, sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    /* alg of another key type than the kid's key */
    ck_assert_int_eq(check(jwks, sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
}
END_TEST

START_TEST(key_constraints)
{
    const char *tok = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    ot_jws_t jws;
    int no_key;

    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, "{\"alg\":\"RS512\"}"), NULL), tok,
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, "{\"use\":\"enc\"}"), NULL), tok,
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, "{\"key_ops\":[\"encrypt\"]}"), NULL), tok,
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, "{\"key_ops\":[\"verify\"]}"), NULL), tok,
                           &no_key, &jws), OT_JOSE_OK);
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa_small, NULL), NULL),
                           sign(rsa_small, "{\"alg\":\"RS256\",\"kid\":\"small\"}", PAYLOAD),
                           &no_key, &jws), OT_JOSE_INVALID);
}
END_TEST

/** The JWK of k with its private part, as a misconfigured issuer might publish it. */
static json_t *private_jwk(const cjose_jwk_t *k)
{
    cjose_err err;
    char *text = cjose_jwk_to_json(k, true, &err);
    json_t *j = ot_json_parse(text, strlen(text), NULL, ot_test_pool);

    free(text);
    ck_assert_ptr_nonnull(json_object_get(j, "d"));
    return j;
}

/*
 * Attack: a JWKS that publishes a private key (a static file of the issuer's key pair served as
 * its keys) lets anyone sign; such a key never verifies a token, nor makes a JWKS usable.
 */
START_TEST(refuses_published_private_keys)
{
    const char *rsa_tok = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *ec_tok = sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", PAYLOAD);
    const char *jwks = jwks_of(private_jwk(rsa1), private_jwk(ec1), NULL), *why = NULL;
    ot_jws_t jws;
    int no_key;

    ck_assert_int_eq(check(jwks, rsa_tok, &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    ck_assert_int_eq(check(jwks, ec_tok, &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_ne(ot_jose_jwks_check(jwks, strlen(jwks), &why, ot_test_pool), APR_SUCCESS);
    /* Its public half still verifies. */
    ck_assert_int_eq(check(jwks_of(public_jwk(rsa1, NULL), NULL), rsa_tok, &no_key, &jws),
                     OT_JOSE_OK);
}
END_TEST

/* Keys are never taken from the token: jwk, jku and x5u in the header are ignored. */
START_TEST(ignores_keys_named_by_the_token)
{
    const char *jwks = jwks_of(public_jwk(rsa1, NULL), NULL), *hdr;
    cjose_err err;
    char *own = cjose_jwk_to_json(rsa2, false, &err);
    ot_jws_t jws;
    int no_key;

    hdr = apr_pstrcat(ot_test_pool, "{\"alg\":\"RS256\",\"kid\":\"rsa2\",\"jwk\":", own,
                      ",\"jku\":\"https://evil.example/k\",\"x5u\":\"https://evil.example/c\"}",
                      NULL);
    free(own);
    ck_assert_int_eq(check(jwks, sign(rsa2, hdr, PAYLOAD), &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    own = cjose_jwk_to_json(rsa2, false, &err);
    hdr = apr_pstrcat(ot_test_pool, "{\"alg\":\"RS256\",\"jwk\":", own, "}", NULL);
    free(own);
    ck_assert_int_eq(check(jwks, sign(rsa2, hdr, PAYLOAD), &no_key, &jws), OT_JOSE_INVALID);
}
END_TEST

START_TEST(refuses_odd_shapes)
{
    const char *jwks = jwks_of(public_jwk(rsa1, NULL), NULL);
    const char *odd[] = { "", "abc", "a.b", "a.b.c.d", "a.b.c.d.e", "a..c", ".b.c", "a.b.",
                          "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n", "eyJhbGciOiJSUzI1NiJ9.e30.c2=n",
                          "bm90IGpzb24.e30.c2ln" };
    ot_jws_t jws;
    int no_key;
    size_t i;

    for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        ck_assert_msg(check(jwks, odd[i], &no_key, &jws) == OT_JOSE_INVALID, "%s", odd[i]);
    }
    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":"
                                      "[\"exp\"],\"exp\":1}", PAYLOAD), &no_key, &jws),
                     OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":7}", PAYLOAD), &no_key,
                           &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1]"),
                           &no_key, &jws), OT_JOSE_INVALID);
    ck_assert_int_eq(check(jwks, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "not json"),
                           &no_key, &jws), OT_JOSE_INVALID);
}
END_TEST

START_TEST(jwks_check)
{
    const char *why;
    const char *bad[] = { "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}",
                          "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
                          "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}" };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        ck_assert_int_ne(ot_jose_jwks_check(bad[i], strlen(bad[i]), &why, ot_test_pool),
                         APR_SUCCESS);
        ck_assert_ptr_nonnull(why);
    }
    why = jwks_of(json_pack("{s:s}", "kty", "EC"), public_jwk(ec1, NULL), NULL);
    ck_assert_int_eq(ot_jose_jwks_check(why, strlen(why), &why, ot_test_pool), APR_SUCCESS);
}
END_TEST

/* ---- the cache ----------------------------------------------------------------------------- */

/** What the fake fetcher serves and counts. */
typedef struct {
    const char *jwks;       /**< NULL: the fetch fails */
    int fetches;
} fake_t;

static apr_status_t fake_fetch(void *baton, const char *url, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p)
{
    fake_t *f = baton;

    f->fetches++;
    if (f->jwks == NULL) {
        *why = "connect: refused";
        return APR_ECONNREFUSED;
    }
    *body = f->jwks;
    *len = strlen(f->jwks);
    return APR_SUCCESS;
}

static ot_jose_result_t cached(ot_jose_keys_t *k, fake_t *f, const char *token, apr_time_t now)
{
    const char *why = NULL;
    ot_jws_t jws;

    return ot_jose_verify(&jws, &why, k, "https://issuer/certs", token, strlen(token),
                          fake_fetch, f, now, ot_test_pool);
}

START_TEST(cache_fetches_once_and_on_unknown_kid)
{
    fake_t f = { jwks_of(public_jwk(rsa1, NULL), NULL), 0 };
    const char *good = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *next = sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", PAYLOAD);
    ot_jose_keys_t *k;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(cached(k, &f, good, T0), OT_JOSE_OK);
    ck_assert_int_eq(cached(k, &f, good, T0 + SEC(1)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 1);
    /* garbage never costs a fetch */
    ck_assert_int_eq(cached(k, &f, "x.y", T0 + SEC(20)), OT_JOSE_INVALID);
    ck_assert_int_eq(f.fetches, 1);
    /* an unknown kid: one fetch, then none until the interval has passed */
    ck_assert_int_eq(cached(k, &f, next, T0 + SEC(20)), OT_JOSE_INVALID);
    ck_assert_int_eq(f.fetches, 2);
    ck_assert_int_eq(cached(k, &f, next, T0 + SEC(21)), OT_JOSE_INVALID);
    ck_assert_int_eq(cached(k, &f, next, T0 + SEC(29)), OT_JOSE_INVALID);
    ck_assert_int_eq(f.fetches, 2);
    /* the issuer rotated its key: found at the next allowed fetch */
    f.jwks = jwks_of(public_jwk(rsa1, NULL), public_jwk(rsa2, NULL), NULL);
    ck_assert_int_eq(cached(k, &f, next, T0 + SEC(30)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 3);
    ck_assert_int_eq(cached(k, &f, good, T0 + SEC(31)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 3);
}
END_TEST

/* A forgery is known only from keys already cached: never fetched, never for a kid not held. */
START_TEST(known_forgery_from_cached_keys)
{
    fake_t f = { jwks_of(public_jwk(rsa1, NULL), NULL), 0 };
    const char *good = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *other_key = sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *unknown_kid = sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", PAYLOAD);
    const char *no_kid = sign(rsa2, "{\"alg\":\"RS256\"}", PAYLOAD);
    const char *url = "https://issuer/certs";
    ot_jose_keys_t *k;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    /* No keys in the cache yet: nothing is known, and nothing is fetched. */
    ck_assert_int_eq(ot_jose_known_forgery(k, url, other_key, strlen(other_key), ot_test_pool), 0);
    ck_assert_int_eq(f.fetches, 0);
    ck_assert_int_eq(cached(k, &f, good, T0), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 1);
    ck_assert_int_eq(ot_jose_known_forgery(k, url, other_key, strlen(other_key), ot_test_pool), 1);
    ck_assert_int_eq(ot_jose_known_forgery(k, url, good, strlen(good), ot_test_pool), 0);
    ck_assert_int_eq(ot_jose_known_forgery(k, url, unknown_kid, strlen(unknown_kid),
                                           ot_test_pool), 0);
    ck_assert_int_eq(ot_jose_known_forgery(k, url, no_kid, strlen(no_kid), ot_test_pool), 0);
    ck_assert_int_eq(ot_jose_known_forgery(k, url, "a.b.c", 5, ot_test_pool), 0);
    ck_assert_int_eq(ot_jose_known_forgery(k, "https://other/certs", other_key,
                                           strlen(other_key), ot_test_pool), 0);
    ck_assert_int_eq(f.fetches, 1);
}
END_TEST

START_TEST(cache_unreachable_keys)
{
    fake_t f = { NULL, 0 };
    const char *good = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    ot_jose_keys_t *k;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(cached(k, &f, good, T0), OT_JOSE_NO_KEYS);
    ck_assert_int_eq(cached(k, &f, good, T0 + SEC(5)), OT_JOSE_NO_KEYS);
    ck_assert_int_eq(f.fetches, 1);
    /* an answer that is not a usable JWKS is as good as none */
    f.jwks = "{\"keys\":[]}";
    ck_assert_int_eq(cached(k, &f, good, T0 + SEC(10)), OT_JOSE_NO_KEYS);
    ck_assert_int_eq(f.fetches, 2);
    f.jwks = jwks_of(public_jwk(rsa1, NULL), NULL);
    ck_assert_int_eq(cached(k, &f, good, T0 + SEC(20)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 3);
}
END_TEST

START_TEST(cache_old_keys_refreshed_or_kept)
{
    fake_t f = { jwks_of(public_jwk(rsa1, NULL), NULL), 0 };
    const char *good = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    ot_jose_keys_t *k;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(cached(k, &f, good, T0), OT_JOSE_OK);
    f.jwks = NULL;
    /* past the maximal age a fetch is tried; when it fails the old keys still serve */
    ck_assert_int_eq(cached(k, &f, good, T0 + OT_JWKS_MAX_AGE), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 2);
    /* an unknown kid while the issuer is unreachable: its keys cannot be had */
    ck_assert_int_eq(cached(k, &f, sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", PAYLOAD),
                            T0 + OT_JWKS_MAX_AGE + SEC(10)), OT_JOSE_NO_KEYS);
    ck_assert_int_eq(f.fetches, 3);
}
END_TEST

/*
 * A thread keeps the keys it parsed per JWKS version (ot_jose_parsed.c): a key replaced under
 * the same kid is seen at once, and two key caches with the same URL never share parsed keys.
 */
START_TEST(parsed_keys_follow_every_new_set)
{
    fake_t f = { jwks_of(public_jwk(rsa1, NULL), NULL), 0 };
    fake_t g = { jwks_of(public_jwk(rsa2, "{\"kid\":\"rsa1\"}"), NULL), 0 };
    const char *one = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *two = sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    ot_jose_keys_t *k, *k2;
    int i;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_jose_keys_create(&k2, SEC(10), ot_test_pool), APR_SUCCESS);
    for (i = 0; i < 3; i++) {               /* parsed once, used again */
        ck_assert_int_eq(cached(k, &f, one, T0 + SEC(i)), OT_JOSE_OK);
        ck_assert_int_eq(cached(k, &f, two, T0 + SEC(i)), OT_JOSE_INVALID);
    }
    /* Another cache, the same URL, another key under the same kid: its own keys only. */
    ck_assert_int_eq(cached(k2, &g, two, T0), OT_JOSE_OK);
    ck_assert_int_eq(cached(k2, &g, one, T0), OT_JOSE_INVALID);
    ck_assert_int_eq(cached(k, &f, one, T0 + SEC(3)), OT_JOSE_OK);
    /* The issuer replaces rsa1's key: after the refresh the old key verifies nothing. */
    f.jwks = g.jwks;
    ck_assert_int_eq(cached(k, &f, one, T0 + OT_JWKS_MAX_AGE), OT_JOSE_INVALID);
    ck_assert_int_eq(cached(k, &f, two, T0 + OT_JWKS_MAX_AGE + SEC(1)), OT_JOSE_OK);
    ck_assert_int_eq(cached(k, &f, one, T0 + OT_JWKS_MAX_AGE + SEC(2)), OT_JOSE_INVALID);
}
END_TEST

/*
 * A key cache made anew where an old one was (the same address, URL and JWKS length, another
 * key under the same kid): the thread's parsed copy of the old cache's keys is never used. The
 * text is no longer compared: the generations, which start at random per cache, tell them apart.
 */
START_TEST(cache_made_anew_at_an_old_address)
{
    fake_t f = { jwks_of(public_jwk(rsa1, "{\"kid\":\"rsa1\"}"), NULL), 0 };
    fake_t g = { jwks_of(public_jwk(rsa2, "{\"kid\":\"rsa1\"}"), NULL), 0 };
    const char *one = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *two = sign(rsa2, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    ot_jose_keys_t *k, *old = NULL;
    apr_pool_t *sp;
    int i, same = 0;

    ck_assert_uint_eq(strlen(f.jwks), strlen(g.jwks));
    for (i = 0; i < 8 && !same; i++) {
        ck_assert_int_eq(apr_pool_create(&sp, ot_test_pool), APR_SUCCESS);
        ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), sp), APR_SUCCESS);
        same = k == old;
        if (same) {                 /* the old one held rsa1 as "rsa1": this one holds rsa2 */
            ck_assert_int_eq(cached(k, &g, one, T0), OT_JOSE_INVALID);
            ck_assert_int_eq(cached(k, &g, two, T0), OT_JOSE_OK);
        }
        else {
            ck_assert_int_eq(cached(k, &f, one, T0), OT_JOSE_OK);
        }
        old = k;
        apr_pool_destroy(sp);
    }
    ck_assert_msg(same, "no key cache was made at an old one's address");
}
END_TEST

/** 1 when cjose alone verifies token with k (the oracle of the OpenSSL path). */
static int cjose_ok(const cjose_jwk_t *k, const char *token)
{
    cjose_err err;
    cjose_jws_t *jws = cjose_jws_import(token, strlen(token), &err);
    int ok = jws != NULL && cjose_jws_verify(jws, k, &err);

    cjose_jws_release(jws);
    return ok;
}

/** token with its part (0..2) replaced by text. */
static const char *with_part(const char *token, int part, const char *text)
{
    const char *d1 = strchr(token, '.'), *d2 = strchr(d1 + 1, '.');

    return part == 1 ? apr_pstrcat(ot_test_pool, apr_pstrmemdup(ot_test_pool, token,
                                                                  (apr_size_t)(d1 - token + 1)),
                                   text, d2, NULL)
        : apr_pstrcat(ot_test_pool, apr_pstrmemdup(ot_test_pool, token,
                                                   (apr_size_t)(d2 - token + 1)), text, NULL);
}

/**
 * The key cache verifies with OpenSSL on keys made once per thread (ot_jose_evp.c): it accepts
 * exactly what cjose verifies with the same key, for every algorithm cjose has, good signatures
 * and bad: a byte changed, one byte more or fewer (an ES signature of the wrong length), the
 * payload changed, another key's signature.
 */
START_TEST(evp_path_agrees_with_cjose)
{
    static const char *const algs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                        "ES256", "ES384", "ES512" };
    const cjose_jwk_t *keys[] = { rsa1, rsa1, rsa1, rsa1, rsa1, rsa1, ec1, ec384, ec521 };
    const char *kids[] = { "rsa1", "rsa1", "rsa1", "rsa1", "rsa1", "rsa1", "ec1", "ec384",
                           "ec521" };
    ot_jws_t jws;
    size_t i, v;
    int no_key;

    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        const char *header = apr_psprintf(ot_test_pool, "{\"alg\":\"%s\",\"kid\":\"%s\"}",
                                          algs[i], kids[i]);
        const char *tok = sign(keys[i], header, PAYLOAD), *sig = strrchr(tok, '.') + 1;
        const cjose_jwk_t *wrong = algs[i][0] != 'E' ? rsa2 : keys[i] == ec1 ? ec2 : ec1;
        const char *other = strrchr(sign(wrong, header, PAYLOAD), '.');
        char *flipped = apr_pstrdup(ot_test_pool, sig);
        fake_t f = { jwks_of(public_jwk(keys[i], NULL), NULL), 0 };
        ot_jose_keys_t *k;
        const char *variants[7];

        flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
        variants[0] = tok;
        variants[1] = with_part(tok, 2, flipped);
        variants[2] = with_part(tok, 2, apr_pstrcat(ot_test_pool, sig, "AA", NULL));
        variants[3] = with_part(tok, 2, apr_pstrndup(ot_test_pool, sig, strlen(sig) - 4));
        variants[4] = with_part(tok, 1, b64("{\"sub\":\"mallory\"}", 17));
        variants[5] = with_part(tok, 2, other + 1);
        variants[6] = with_part(tok, 2, "AAAA");
        ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
        for (v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
            /* cjose 0.6.2 takes an ES384 signature with a byte more: refused here (exact
             * r||s), the one place the oracle is laxer. */
            ck_assert_msg(cached(k, &f, variants[v], T0) != OT_JOSE_OK
                          || cjose_ok(keys[i], variants[v]), "%s variant %zu", algs[i], v);
            ck_assert_msg((cached(k, &f, variants[v], T0) == OT_JOSE_OK)
                          == cjose_ok(keys[i], variants[v])
                          || (algs[i][0] == 'E' && (v == 2 || v == 3)), "%s variant %zu",
                          algs[i], v);
            ck_assert_int_eq(check(f.jwks, variants[v], &no_key, &jws) == OT_JOSE_OK, v == 0);
            ck_assert_msg((cached(k, &f, variants[v], T0) == OT_JOSE_OK) == (v == 0),
                          "%s variant %zu", algs[i], v);
        }
    }
}
END_TEST

static ot_jose_header_t header_of(const char *json)
{
    const char *b = b64(json, strlen(json));
    ot_jose_header_t h;

    ot_jose_header_read(&h, b, strlen(b), ot_test_pool);
    return h;
}

/**
 * The header read once with the scanner: alg, kid and typ as jansson reads them (escapes
 * decoded), crit and non-string kid or typ noted, a name twice or no object refused, and what
 * the scanner cannot vouch for (nesting deeper than it follows) read by jansson.
 */
START_TEST(header_read_once)
{
    ot_jose_header_t h = header_of("{\"alg\":\"RS256\",\"kid\":\"k\\u0031\",\"typ\":\"at+jwt\"}");
    char deep[200];

    ck_assert(h.object && !h.crit && !h.bad_kid && !h.bad_typ);
    ck_assert_str_eq(h.alg, "RS256");
    ck_assert_str_eq(h.kid, "k1");
    ck_assert_str_eq(h.typ, "at+jwt");
    h = header_of("{\"\\u0061lg\":\"ES256\",\"crit\":[\"b64\"],\"kid\":7,\"typ\":null}");
    ck_assert(h.object && h.crit && h.bad_kid && h.bad_typ);
    ck_assert_str_eq(h.alg, "ES256");
    ck_assert_ptr_null(h.kid);
    ck_assert(!header_of("{\"alg\":\"RS256\",\"alg\":\"none\"}").object);
    ck_assert(!header_of("[\"alg\",\"RS256\"]").object);
    ck_assert(!header_of("{\"alg\":\"RS256\"} x").object);
    ck_assert_ptr_null(header_of("{\"alg\":[\"RS256\"]}").alg);
    /* 40 levels: more than the scanner follows, so jansson reads it. */
    snprintf(deep, sizeof(deep), "{\"alg\":\"PS256\",\"x\":%s%s}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    h = header_of(deep);
    ck_assert(h.object);
    ck_assert_str_eq(h.alg, "PS256");
}
END_TEST


/**
 * The per-thread path (keys and DigestVerify contexts made once per thread, key and algorithm)
 * refuses the confusions the per-call path refuses, also once every context it could reuse is
 * made: a PS256 header on an RS256 signature and back, a kid naming another key than the signer,
 * an ES256 signature for a P-384 key and an ES384 header on a P-256 signature, r = s = 0.
 */
START_TEST(thread_contexts_refuse_confusions)
{
    fake_t f = { jwks_of(public_jwk(rsa1, NULL), public_jwk(rsa2, NULL), public_jwk(ec1, NULL),
                         public_jwk(ec384, NULL), NULL), 0 };
    const char *rs = sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *ps = sign(rsa1, "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", PAYLOAD);
    const char *es = sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", PAYLOAD);
    const char *es384 = sign(ec384, "{\"alg\":\"ES384\",\"kid\":\"ec384\"}", PAYLOAD);
    const char *on384 = sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"ec384\"}", PAYLOAD);
    const char *as384 = sign(ec384, "{\"alg\":\"ES384\",\"kid\":\"ec1\"}", PAYLOAD);
    char zero[64];
    ot_jose_keys_t *k;
    int pass;

    memset(zero, 0, sizeof(zero));
    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    for (pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(cached(k, &f, rs, T0), OT_JOSE_OK);
        ck_assert_int_eq(cached(k, &f, ps, T0), OT_JOSE_OK);
        ck_assert_int_eq(cached(k, &f, es, T0), OT_JOSE_OK);
        ck_assert_int_eq(cached(k, &f, es384, T0), OT_JOSE_OK);
        ck_assert_int_eq(cached(k, &f, with_part(ps, 2, strrchr(rs, '.') + 1), T0),
                         OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, with_part(rs, 2, strrchr(ps, '.') + 1), T0),
                         OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}",
                                            PAYLOAD), T0), OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, on384, T0), OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, as384, T0), OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, with_part(es384, 2, strrchr(es, '.') + 1), T0),
                         OT_JOSE_INVALID);
        ck_assert_int_eq(cached(k, &f, with_part(es, 2, b64(zero, 64)), T0), OT_JOSE_INVALID);
    }
}
END_TEST

/** A DigestVerify context is made only on a key of the algorithm's type and curve. */
START_TEST(evp_context_fits_the_key)
{
    EVP_PKEY *p256 = ot_jwk_pkey_new(public_jwk(ec1, NULL), ot_test_pool);
    EVP_PKEY *p384 = ot_jwk_pkey_new(public_jwk(ec384, NULL), ot_test_pool);
    EVP_PKEY *p521 = ot_jwk_pkey_new(public_jwk(ec521, NULL), ot_test_pool);
    EVP_PKEY *rsa = ot_jwk_pkey_new(public_jwk(rsa1, NULL), ot_test_pool);
    static const char *const es[] = { "ES256", "ES384", "ES512" };
    EVP_PKEY *ec[3];
    EVP_MD_CTX *ctx;
    int a, c;

    ec[0] = p256, ec[1] = p384, ec[2] = p521;
    for (c = 0; c < 3; c++) {
        ck_assert_ptr_nonnull(ec[c]);
        for (a = 0; a < 3; a++) {
            ctx = ot_jose_evp_ctx(ec[c], es[a]);
            ck_assert_msg((ctx != NULL) == (a == c), "%s on curve %d", es[a], c);
            EVP_MD_CTX_free(ctx);
        }
        ck_assert_ptr_null(ot_jose_evp_ctx(ec[c], "RS256"));
        ck_assert_ptr_null(ot_jose_evp_ctx(ec[c], "EdDSA"));
    }
    ck_assert_ptr_null(ot_jose_evp_ctx(rsa, "ES256"));
    ctx = ot_jose_evp_ctx(rsa, "PS256");
    ck_assert_ptr_nonnull(ctx);
    EVP_MD_CTX_free(ctx);
    for (c = 0; c < 3; c++) {
        EVP_PKEY_free(ec[c]);
    }
    EVP_PKEY_free(rsa);
}
END_TEST

Suite *suite_jose(void)
{
    Suite *s = suite_create("jose");
    TCase *tc = tcase_create("jose");

    tcase_add_unchecked_fixture(tc, make_keys, NULL);
    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, verifies_rs256_and_es256);
    tcase_add_test(tc, refuses_none_and_hmac);
    tcase_add_test(tc, refuses_wrong_keys);
    tcase_add_test(tc, key_constraints);
    tcase_add_test(tc, refuses_published_private_keys);
    tcase_add_test(tc, ignores_keys_named_by_the_token);
    tcase_add_test(tc, refuses_odd_shapes);
    tcase_add_test(tc, jwks_check);
    tcase_add_test(tc, cache_fetches_once_and_on_unknown_kid);
    tcase_add_test(tc, known_forgery_from_cached_keys);
    tcase_add_test(tc, cache_unreachable_keys);
    tcase_add_test(tc, cache_old_keys_refreshed_or_kept);
    tcase_add_test(tc, parsed_keys_follow_every_new_set);
    tcase_add_test(tc, cache_made_anew_at_an_old_address);
    tcase_add_test(tc, evp_path_agrees_with_cjose);
    tcase_add_test(tc, header_read_once);
    tcase_add_test(tc, thread_contexts_refuse_confusions);
    tcase_add_test(tc, evp_context_fits_the_key);
    suite_add_tcase(s, tc);
    return s;
}
