/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* DPoP proofs (ot_dpop.c), htu normalisation (ot_url.c), the replay table (ot_replay.c), the
 * DPoP scheme (ot_token.c) and the binding verdicts (ot_answer.c). Proofs are signed here with
 * keys cjose makes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <cjose/cjose.h>
#include <openssl/evp.h>

#include "ot_unit.h"
#include "ot_answer.h"
#include "ot_entry.h"
#include "ot_judge.h"
#include "ot_dpop.h"
#include "ot_dpop_key.h"
#include "ot_json.h"
#include "ot_replay.h"
#include "ot_token.h"
#include "ot_url.h"
#include "ot_util.h"
#include "test_dpop.h"


/* ---- htu normalisation ---------------------------------------------------------------------- */

static const char *norm(const char *url)
{
    return ot_url_normalize(url, ot_test_pool);
}

START_TEST(urls_are_normalised_per_rfc_3986)
{
    ck_assert_str_eq(norm("https://rs.example/a"), "https://rs.example/a");
    ck_assert_str_eq(norm("HTTPS://RS.Example/a"), "https://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example:443/a"), "https://rs.example/a");
    ck_assert_str_eq(norm("http://rs.example:80/a"), "http://rs.example/a");
    ck_assert_str_eq(norm("http://rs.example:0080/a"), "http://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example:8443/a"), "https://rs.example:8443/a");
    ck_assert_str_eq(norm("https://rs.example:/a"), "https://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example"), "https://rs.example/");
    ck_assert_str_eq(norm("https://rs.example?q=1"), "https://rs.example/");
    ck_assert_str_eq(norm("https://rs.example/a?q=1#f"), "https://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example/a#f?x"), "https://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example/%7e%41b%2f"), "https://rs.example/~Ab%2F");
    ck_assert_str_eq(norm("https://rs.example/%e2%82%ac"), "https://rs.example/%E2%82%AC");
    ck_assert_str_eq(norm("https://rs.example/a/./b/../c"), "https://rs.example/a/c");
    ck_assert_str_eq(norm("https://rs.example/a/b/.."), "https://rs.example/a/");
    ck_assert_str_eq(norm("https://rs.example/../../a"), "https://rs.example/a");
    ck_assert_str_eq(norm("https://rs.example/a/%2E%2E/b"), "https://rs.example/b");
    ck_assert_str_eq(norm("https://rs.example/..."), "https://rs.example/...");
    ck_assert_str_eq(norm("http://[::1]:8080/x"), "http://[::1]:8080/x");
    ck_assert_str_eq(norm("http://[::1]:80/x"), "http://[::1]/x");
    ck_assert_str_eq(norm("https://rs.example/Path"), "https://rs.example/Path");
}
END_TEST

/* Every path of "/" and up to 7 more of '/', '.' and 'a': the dot segments are gone and the
 * path is never empty, which is why remove_dots needs no "empty output becomes /" case. */
START_TEST(dot_segments_go_and_the_path_stays_rooted)
{
    static const char alphabet[] = "/.a";
    char url[32], path[16];
    int len, i, code, total = 1;

    for (len = 0; len <= 7; len++, total *= 3) {
        for (code = 0; code < total; code++) {
            const char *out, *seg;
            int c = code;

            path[0] = '/';
            for (i = 1; i <= len; i++, c /= 3) {
                path[i] = alphabet[c % 3];
            }
            path[len + 1] = '\0';
            snprintf(url, sizeof(url), "https://h%s", path);
            out = norm(url);
            ck_assert_msg(out != NULL, "%s refused", url);
            ck_assert_msg(strncmp(out, "https://h/", 10) == 0, "%s gave %s", url, out);
            for (seg = out + 9; seg != NULL; seg = strchr(seg + 1, '/')) {
                ck_assert_msg(strncmp(seg, "/./", 3) != 0 && strcmp(seg, "/.") != 0
                              && strncmp(seg, "/../", 4) != 0 && strcmp(seg, "/..") != 0,
                              "%s gave %s", url, out);
            }
        }
    }
}
END_TEST

START_TEST(urls_that_cannot_be_htu_are_refused)
{
    ck_assert_ptr_null(norm(NULL));
    ck_assert_ptr_null(norm(""));
    ck_assert_ptr_null(norm("/api/items"));
    ck_assert_ptr_null(norm("ftp://rs.example/"));
    ck_assert_ptr_null(norm("https:///a"));
    ck_assert_ptr_null(norm("https://user@rs.example/a"));
    ck_assert_ptr_null(norm("https://rs.example:99999/a"));
    ck_assert_ptr_null(norm("https://rs.example:0/a"));
    ck_assert_ptr_null(norm("https://rs.example:8x/a"));
    ck_assert_ptr_null(norm("https://rs.example/a%"));
    ck_assert_ptr_null(norm("https://rs.example/a%4"));
    ck_assert_ptr_null(norm("https://rs.example/a%zz"));
    ck_assert_ptr_null(norm("https://rs.example/a b"));
    ck_assert_ptr_null(norm("https://rs.example/a\tb"));
    ck_assert_ptr_null(norm("https://[::1/a"));
    ck_assert_ptr_null(norm("https://:80/a"));
}
END_TEST

/* ---- proofs ---------------------------------------------------------------------------------- */

static apr_status_t key_cleanup(void *data)
{
    test_key_t *k = data;

    cjose_jwk_release(k->jwk);
    json_decref(k->pub);
    json_decref(k->priv);
    return APR_SUCCESS;
}

test_key_t *make_key(void)
{
    test_key_t *k = apr_pcalloc(ot_test_pool, sizeof(*k));
    cjose_err err;
    char *s;

    k->jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    ck_assert_ptr_nonnull(k->jwk);
    s = cjose_jwk_to_json(k->jwk, false, &err);
    k->pub = json_loads(s, 0, NULL);
    free(s);
    s = cjose_jwk_to_json(k->jwk, true, &err);
    k->priv = json_loads(s, 0, NULL);
    free(s);
    apr_pool_cleanup_register(ot_test_pool, k, key_cleanup, apr_pool_cleanup_null);
    return k;
}

static const char *b64url_sha256(const char *s)
{
    unsigned char md[32];
    unsigned int n = 0;

    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    return ot_dpop_b64url(md, 32, ot_test_pool);
}

/** A proof signed by signer carrying jwk; header and payload given as JSON to merge in. */
const char *sign(const test_key_t *signer, const json_t *jwk, const char *typ,
                 const char *payload_json)
{
    json_t *hdr = json_pack("{s:s, s:O}", "alg", "ES256", "jwk", jwk);
    cjose_err err;
    cjose_jws_t *jws;
    const char *out;
    char *copy;

    if (typ) {
        json_object_set_new(hdr, "typ", json_string(typ));
    }
    jws = cjose_jws_sign(signer->jwk, (cjose_header_t *)hdr, (const uint8_t *)payload_json,
                         strlen(payload_json), &err);
    ck_assert_ptr_nonnull(jws);
    ck_assert(cjose_jws_export(jws, &out, &err));
    copy = apr_pstrdup(ot_test_pool, out);
    cjose_jws_release(jws);
    json_decref(hdr);
    return copy;
}

const char *payload(const char *jti, const char *htm, const char *htu, long iat,
                    const char *token, const char *nonce)
{
    return apr_psprintf(ot_test_pool, "{\"jti\":\"%s\",\"htm\":\"%s\",\"htu\":\"%s\","
                        "\"iat\":%ld,\"ath\":\"%s\"%s%s%s}", jti, htm, htu, iat,
                        b64url_sha256(token), nonce ? ",\"nonce\":\"" : "", nonce ? nonce : "",
                        nonce ? "\"" : "");
}

ot_dpop_ask_t ask_for(apr_array_header_t *algs, const unsigned char *nonce_key)
{
    ot_dpop_ask_t a;

    memset(&a, 0, sizeof(a));
    a.method = "GET";
    a.url = URL;
    a.token = TOKEN;
    a.now = apr_time_from_sec(NOW);
    a.max_age = 60;
    a.skew = 30;
    a.algs = algs;
    a.nonce_key = nonce_key;
    return a;
}

apr_array_header_t *algs_of(const char *names)
{
    apr_array_header_t *a = apr_array_make(ot_test_pool, 4, sizeof(const char *));
    char *last, *s = apr_pstrdup(ot_test_pool, names), *w;

    for (w = apr_strtok(s, " ", &last); w; w = apr_strtok(NULL, " ", &last)) {
        APR_ARRAY_PUSH(a, const char *) = w;
    }
    return a;
}

ot_dpop_result_t verify(const ot_dpop_ask_t *ask, const char *proof, const char **why)
{
    ot_dpop_proof_t out;
    const char *w = NULL;
    ot_dpop_result_t rv = ot_dpop_verify(&out, &w, ask, proof, ot_test_pool);

    if (why) {
        *why = w;
    }
    return rv;
}

/** verify, and on OT_DPOP_OK accept the proof (its key joins the cache), as a request would. */
ot_dpop_result_t verify_accept(const ot_dpop_ask_t *ask, const char *proof)
{
    ot_dpop_proof_t out;
    const char *w = NULL;
    ot_dpop_result_t rv = ot_dpop_verify(&out, &w, ask, proof, ot_test_pool);

    if (rv == OT_DPOP_OK) {
        ot_dpop_proof_accepted(&out);
    }
    return rv;
}

START_TEST(a_valid_proof_gives_its_thumbprint_and_jti)
{
    test_key_t *k = make_key();
    ot_dpop_ask_t ask = ask_for(algs_of("ES256"), NULL);
    const char *p = sign(k, k->pub, "dpop+jwt", payload("j1", "GET", URL "?x=1", NOW, TOKEN,
                                                         NULL));
    char *text = json_dumps(k->pub, JSON_COMPACT);
    ot_dpop_proof_t out;
    const char *why = NULL;

    ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, p, ot_test_pool), OT_DPOP_OK);
    ck_assert_str_eq(out.jti, "j1");
    ck_assert_str_eq(out.htu, URL);
    ck_assert_int_eq(out.iat, NOW);
    ck_assert_str_eq(out.jkt, ot_dpop_jwk_thumbprint(text, strlen(text), ot_test_pool));
    free(text);
}
END_TEST

START_TEST(every_bad_field_is_refused)
{
    test_key_t *k = make_key(), *other = make_key();
    ot_dpop_ask_t ask = ask_for(algs_of("ES256 RS256"), NULL);
    const char *good = payload("j", "GET", URL, NOW, TOKEN, NULL), *why;

    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt", good), NULL), OT_DPOP_OK);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "JWT", good), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "typ"));
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, NULL, good), NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, sign(k, k->priv, "dpop+jwt", good), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "private"));
    ck_assert_int_eq(verify(&ask, sign(other, k->pub, "dpop+jwt", good), &why),
                     OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "signature"));
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "POST", URL, NOW, TOKEN, NULL)), NULL),
                     OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL "/x", NOW, TOKEN, NULL)), &why),
                     OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "htu"));
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW - 61, TOKEN, NULL)), NULL),
                     OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW - 60, TOKEN, NULL)), NULL),
                     OT_DPOP_OK);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW + 31, TOKEN, NULL)), NULL),
                     OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW + 30, TOKEN, NULL)), NULL),
                     OT_DPOP_OK);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW, "other", NULL)), &why),
                     OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "ath"));
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("", "GET", URL, NOW, TOKEN, NULL)), NULL),
                     OT_DPOP_INVALID);
    ask.algs = algs_of("RS256");
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt", good), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "alg"));
}
END_TEST

START_TEST(headers_that_are_not_one_proof_are_refused)
{
    test_key_t *k = make_key();
    ot_dpop_ask_t ask = ask_for(algs_of("ES256"), NULL);
    const char *p = sign(k, k->pub, "dpop+jwt", payload("j", "GET", URL, NOW, TOKEN, NULL));

    ck_assert_int_eq(verify(&ask, NULL, NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, "", NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, apr_pstrcat(ot_test_pool, p, ", ", p, NULL), NULL),
                     OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, "a.b", NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, "e30.e30.", NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, "e30.e30.e30", NULL), OT_DPOP_INVALID);
}
END_TEST

START_TEST(nonces_rotate_and_the_previous_one_passes)
{
    test_key_t *k = make_key();
    unsigned char key[OT_DPOP_KEY_LEN];
    ot_dpop_ask_t ask;
    ot_dpop_proof_t out;
    const char *why, *now_nonce, *old_nonce, *older_nonce;
    apr_time_t window = apr_time_from_sec(OT_DPOP_NONCE_WINDOW);

    ot_dpop_nonce_key(key, "a redis key of some length", 26);
    ask = ask_for(algs_of("ES256"), key);
    now_nonce = ot_dpop_nonce(key, ask.now, ot_test_pool);
    old_nonce = ot_dpop_nonce(key, ask.now - window, ot_test_pool);
    older_nonce = ot_dpop_nonce(key, ask.now - 2 * window, ot_test_pool);
    ck_assert_str_ne(now_nonce, old_nonce);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW, TOKEN, NULL)), NULL),
                     OT_DPOP_NONCE);
    ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, sign(k, k->pub, "dpop+jwt",
                     payload("j", "GET", URL, NOW, TOKEN, now_nonce)), ot_test_pool), OT_DPOP_OK);
    ck_assert_int_eq(out.nonce_old, 0);
    ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, sign(k, k->pub, "dpop+jwt",
                     payload("j", "GET", URL, NOW, TOKEN, old_nonce)), ot_test_pool), OT_DPOP_OK);
    ck_assert_int_eq(out.nonce_old, 1);
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt",
                                       payload("j", "GET", URL, NOW, TOKEN, older_nonce)), NULL),
                     OT_DPOP_NONCE);
    /* Another key makes other nonces. */
    ot_dpop_nonce_key(key, "another key", 11);
    ck_assert_str_ne(ot_dpop_nonce(key, ask.now, ot_test_pool), now_nonce);
    /* An invalid proof is invalid, whatever its nonce. */
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "JWT",
                                       payload("j", "GET", URL, NOW, TOKEN, NULL)), NULL),
                     OT_DPOP_INVALID);
}
END_TEST

START_TEST(thumbprint_is_rfc_7638)
{
    /* RFC 7638 §3.1. */
    static const char jwk[] =
        "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86"
        "zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt"
        "7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn"
        "1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-c"
        "sFCur-kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";

    ck_assert_str_eq(ot_dpop_jwk_thumbprint(jwk, strlen(jwk), ot_test_pool),
                     "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    ck_assert_ptr_null(ot_dpop_jwk_thumbprint("{\"kty\":\"oct\",\"k\":\"AAAA\"}", 25,
                                              ot_test_pool));
    ck_assert_ptr_null(ot_dpop_jwk_thumbprint("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\"}",
                                              36, ot_test_pool));
}
END_TEST

START_TEST(only_asymmetric_algorithms_are_known)
{
    ck_assert(ot_dpop_alg_known("ES256"));
    ck_assert(ot_dpop_alg_known("PS512"));
    ck_assert(!ot_dpop_alg_known("HS256"));
    ck_assert(!ot_dpop_alg_known("none"));
    ck_assert(!ot_dpop_alg_known(NULL));
}
END_TEST

/* ---- the proof's key: its parameters --------------------------------------------------------- */

/** A proof signed with alg by key, carrying jwk (its own public JWK, perhaps altered). */
const char *sign_alg(cjose_jwk_t *key, const char *alg, const json_t *jwk)
{
    json_t *hdr = json_pack("{s:s, s:s, s:O}", "alg", alg, "typ", "dpop+jwt", "jwk", jwk);
    const char *pl = payload("j", "GET", URL, NOW, TOKEN, NULL), *out;
    cjose_err err;
    cjose_jws_t *jws = cjose_jws_sign(key, (cjose_header_t *)hdr, (const uint8_t *)pl,
                                      strlen(pl), &err);
    char *copy;

    ck_assert_ptr_nonnull(jws);
    ck_assert(cjose_jws_export(jws, &out, &err));
    copy = apr_pstrdup(ot_test_pool, out);
    cjose_jws_release(jws);
    json_decref(hdr);
    return copy;
}

/** The public JWK of key, with member name's decoded bytes prefixed by pad zero bytes. */
json_t *public_padded(cjose_jwk_t *key, const char *name, apr_size_t pad)
{
    cjose_err err;
    char *s = cjose_jwk_to_json(key, false, &err), *raw, *padded;
    json_t *pub = json_loads(s, 0, NULL);
    const char *v = json_string_value(json_object_get(pub, name));
    apr_size_t len = 0;

    free(s);
    ck_assert_int_eq(ot_b64url_decode(&raw, &len, v, strlen(v), ot_test_pool), APR_SUCCESS);
    padded = apr_pcalloc(ot_test_pool, pad + len);
    memcpy(padded + pad, raw, len);
    json_object_set_new(pub, name, json_string(ot_dpop_b64url((const unsigned char *)padded,
                                                              pad + len, ot_test_pool)));
    return pub;
}

START_TEST(rsa_keys_are_measured_by_their_value_not_their_encoding)
{
    static const uint8_t f4[] = { 1, 0, 1 }, padded_e[] = { 0, 1, 0, 1 };
    ot_dpop_ask_t ask = ask_for(algs_of("RS256"), NULL);
    cjose_err err;
    cjose_jwk_t *big = cjose_jwk_create_RSA_random(2048, f4, sizeof(f4), &err);
    cjose_jwk_t *small = cjose_jwk_create_RSA_random(1024, f4, sizeof(f4), &err);
    const char *why = NULL;
    json_t *pub;

    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(small);
    pub = public_padded(big, "n", 0);
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), &why), OT_DPOP_OK);
    json_decref(pub);
    /* A 1024-bit modulus is too small, however many zero bytes lead its encoding. */
    pub = public_padded(small, "n", 0);
    ck_assert_int_eq(verify(&ask, sign_alg(small, "RS256", pub), NULL), OT_DPOP_INVALID);
    json_decref(pub);
    pub = public_padded(small, "n", 128);
    ck_assert_int_eq(verify(&ask, sign_alg(small, "RS256", pub), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "jwk"));
    json_decref(pub);
    /* Zero bytes ahead of a sound value (Java's BigInteger writes one) change nothing. */
    pub = public_padded(big, "n", 1);
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), NULL), OT_DPOP_OK);
    json_decref(pub);
    pub = public_padded(big, "e", 0);
    json_object_set_new(pub, "e", json_string(ot_dpop_b64url(padded_e, 4, ot_test_pool)));
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), NULL), OT_DPOP_OK);
    json_decref(pub);
    /* e = 1 makes the signature the message itself (anyone could sign); an even e is no key. */
    pub = public_padded(big, "n", 0);
    json_object_set_new(pub, "e", json_string("AQ"));
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "too small"));
    json_object_set_new(pub, "e", json_string("AAE"));
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "too small"));
    json_object_set_new(pub, "e", json_string("AQAA"));
    ck_assert_int_eq(verify(&ask, sign_alg(big, "RS256", pub), &why), OT_DPOP_INVALID);
    ck_assert_ptr_nonnull(strstr(why, "too small"));
    json_decref(pub);
    cjose_jwk_release(big);
    cjose_jwk_release(small);
}
END_TEST

START_TEST(ec_keys_off_their_curve_or_of_another_size_are_refused)
{
    ot_dpop_ask_t ask = ask_for(algs_of("ES256 ES384"), NULL);
    cjose_err err;
    cjose_jwk_t *k = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    cjose_jwk_t *k384 = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, &err);
    json_t *pub = public_padded(k, "y", 0);
    const char *y = json_string_value(json_object_get(pub, "y"));
    char *bent = apr_pstrdup(ot_test_pool, y);

    ck_assert_int_eq(verify(&ask, sign_alg(k, "ES256", pub), NULL), OT_DPOP_OK);
    /* Another y: the point is not on P-256. */
    bent[3] = bent[3] == 'A' ? 'B' : 'A';
    json_object_set_new(pub, "y", json_string(bent));
    ck_assert_int_eq(verify(&ask, sign_alg(k, "ES256", pub), NULL), OT_DPOP_INVALID);
    json_decref(pub);
    /* A coordinate with a leading zero byte more than the curve's size. */
    pub = public_padded(k, "x", 1);
    ck_assert_int_eq(verify(&ask, sign_alg(k, "ES256", pub), NULL), OT_DPOP_INVALID);
    json_decref(pub);
    /* A P-384 key named as P-256, and the other way round. */
    pub = public_padded(k384, "x", 0);
    json_object_set_new(pub, "crv", json_string("P-256"));
    ck_assert_int_eq(verify(&ask, sign_alg(k384, "ES384", pub), NULL), OT_DPOP_INVALID);
    json_decref(pub);
    pub = public_padded(k, "x", 0);
    json_object_set_new(pub, "kty", json_string("RSA"));
    ck_assert_int_eq(verify(&ask, sign_alg(k, "ES256", pub), NULL), OT_DPOP_INVALID);
    json_decref(pub);
    cjose_jwk_release(k);
    cjose_jwk_release(k384);
}
END_TEST

/* ---- the replay table ------------------------------------------------------------------------ */

/** cjose's own verdict on proof with key: the path proofs took before ot_dpop_key.c. */
static int cjose_says(cjose_jwk_t *key, const char *proof)
{
    cjose_err err;
    cjose_jws_t *jws = cjose_jws_import(proof, strlen(proof), &err);
    int ok = jws != NULL && cjose_jws_verify(jws, key, &err);

    cjose_jws_release(jws);
    return ok;
}

/** proof with one byte of its signature changed (a middle one: every bit of it counts). */
const char *bent_signature(const char *proof)
{
    char *s = apr_pstrdup(ot_test_pool, proof), *sig = strrchr(s, '.') + 1;
    char *c = sig + strlen(sig) / 2;

    *c = *c == 'A' ? 'B' : 'A';
    return s;
}

START_TEST(every_algorithm_verifies_as_cjose_verifies_it)
{
    static const unsigned char e[] = { 1, 0, 1 };
    static const struct { const char *alg; int curve; } algs[] = {
        { "ES256", CJOSE_JWK_EC_P_256 }, { "ES384", CJOSE_JWK_EC_P_384 },
        { "ES512", CJOSE_JWK_EC_P_521 }, { "RS256", 0 }, { "RS384", 0 }, { "RS512", 0 },
        { "PS256", 0 }, { "PS384", 0 }, { "PS512", 0 },
    };
    ot_dpop_ask_t ask = ask_for(algs_of("ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512"),
                                NULL);
    cjose_err err;
    cjose_jwk_t *rsa = cjose_jwk_create_RSA_random(2048, e, sizeof(e), &err);
    apr_size_t i, round;

    ck_assert_ptr_nonnull(rsa);
    /* Twice: the second time each key comes from the per-process cache. */
    for (round = 0; round < 2; round++) {
        for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
            cjose_jwk_t *k = algs[i].curve ? cjose_jwk_create_EC_random(algs[i].curve, &err)
                                           : rsa;
            json_t *pub = public_padded(k, algs[i].curve ? "x" : "n", 0);
            const char *good = sign_alg(k, algs[i].alg, pub), *bad = bent_signature(good);

            ck_assert_msg(verify_accept(&ask, good) == OT_DPOP_OK && cjose_says(k, good),
                          "%s", algs[i].alg);
            ck_assert_msg(verify(&ask, bad, NULL) == OT_DPOP_INVALID && !cjose_says(k, bad),
                          "%s", algs[i].alg);
            json_decref(pub);
            if (k != rsa) {
                cjose_jwk_release(k);
            }
        }
    }
    cjose_jwk_release(rsa);
}
END_TEST

START_TEST(a_cached_key_is_used_only_for_its_own_jwk)
{
    test_key_t *k = make_key(), *other = make_key();
    ot_dpop_ask_t ask = ask_for(algs_of("ES256"), NULL);
    const char *good = payload("j", "GET", URL, NOW, TOKEN, NULL);
    int i;

    ck_assert_int_eq(verify_accept(&ask, sign(k, k->pub, "dpop+jwt", good)), OT_DPOP_OK);
    ck_assert_int_eq(verify_accept(&ask, sign(other, other->pub, "dpop+jwt", good)), OT_DPOP_OK);
    /* Both keys are cached now: each still verifies only what it signed. */
    ck_assert_int_eq(verify(&ask, sign(other, k->pub, "dpop+jwt", good), NULL), OT_DPOP_INVALID);
    ck_assert_int_eq(verify(&ask, sign(k, other->pub, "dpop+jwt", good), NULL), OT_DPOP_INVALID);
    /* More keys than the cache holds, then the first again. */
    for (i = 0; i < 3 * OT_DPOP_KEY_CACHE; i++) {
        test_key_t *x = make_key();
        ck_assert_int_eq(verify_accept(&ask, sign(x, x->pub, "dpop+jwt", good)), OT_DPOP_OK);
    }
    ck_assert_int_eq(verify(&ask, sign(k, k->pub, "dpop+jwt", good), NULL), OT_DPOP_OK);
    ck_assert_int_eq(verify(&ask, sign(other, k->pub, "dpop+jwt", good), NULL), OT_DPOP_INVALID);
}
END_TEST

START_TEST(replay_table_takes_a_key_once_until_it_expires)
{
    ot_replay_t *r;
    unsigned char k[32] = { 1, 2, 3, 4, 5 };
    apr_time_t now = apr_time_from_sec(NOW), until = now + apr_time_from_sec(90);

    ck_assert_int_eq(ot_replay_create(&r, 1024, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_once(r, k, until, now), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_once(r, k, until, now + 1), APR_EEXIST);
    ck_assert_int_eq(ot_replay_live(r, now), 1);
    k[15] = 9;
    ck_assert_int_eq(ot_replay_once(r, k, until, now), APR_SUCCESS);
    k[15] = 0;
    ck_assert_int_eq(ot_replay_once(r, k, until + 10, until), APR_SUCCESS);
}
END_TEST

START_TEST(a_full_window_is_refused_never_evicted)
{
    ot_replay_t *r;
    unsigned char k[32];
    apr_time_t now = apr_time_from_sec(NOW), until = now + apr_time_from_sec(90);
    int i, taken = 0, refused = 0;
    char ok[1100];

    /* More keys than slots: once a key's window is full it is refused, and nothing is evicted. */
    ck_assert_int_eq(ot_replay_create(&r, 1024, ot_test_pool), APR_SUCCESS);
    memset(k, 0, sizeof(k));
    for (i = 0; i < 1100; i++) {
        apr_status_t rv;
        k[10] = (unsigned char)i;
        k[11] = (unsigned char)(i >> 8);
        rv = ot_replay_once(r, k, until, now);
        ck_assert(rv == APR_SUCCESS || rv == APR_ENOSPC);
        ok[i] = rv == APR_SUCCESS;
        taken += ok[i];
        refused += !ok[i];
    }
    ck_assert_int_le(taken, 1024);
    ck_assert_int_ge(refused, 1100 - 1024);
    for (i = 0; i < 1100; i++) {
        k[10] = (unsigned char)i;
        k[11] = (unsigned char)(i >> 8);
        ck_assert_int_eq(ot_replay_once(r, k, until, now), ok[i] ? APR_EEXIST : APR_ENOSPC);
    }
    /* Once they expire, the windows are free again. */
    k[12] = 1;
    ck_assert_int_eq(ot_replay_once(r, k, until + 10, until), APR_SUCCESS);
}
END_TEST

START_TEST(a_client_cannot_aim_its_proofs_at_one_window)
{
    ot_replay_t *r;
    unsigned char k[32];
    apr_time_t now = apr_time_from_sec(NOW), until = now + apr_time_from_sec(90);
    int i;

    /*
     * A client picks its proofs' jti, so their replay keys: 2 * OT_REPLAY_PROBE keys ground to
     * share their first bytes (once, their home slot) must not fill one window and make the
     * proofs of everyone else whose home is there fail with 503. The table is far from full.
     */
    ck_assert_int_eq(ot_replay_create(&r, 4096, ot_test_pool), APR_SUCCESS);
    memset(k, 0, sizeof(k));
    k[0] = k[1] = k[2] = k[3] = 7;
    for (i = 0; i < 2 * OT_REPLAY_PROBE; i++) {
        k[10] = (unsigned char)i;
        k[11] = (unsigned char)(i >> 8);
        ck_assert_msg(ot_replay_once(r, k, until, now) == APR_SUCCESS, "key %d refused", i);
    }
    ck_assert_uint_eq(ot_replay_live(r, now), 2 * OT_REPLAY_PROBE);
}
END_TEST

START_TEST(replay_tables_are_sized_and_copied_at_restarts)
{
    ot_replay_t *small, *big;
    unsigned char k[32];
    apr_time_t now = apr_time_from_sec(NOW), until = now + apr_time_from_sec(90);
    int i;

    ck_assert_uint_eq(ot_replay_round(0), OT_REPLAY_SLOTS);
    ck_assert_uint_eq(ot_replay_round(1024), 1024);
    ck_assert_uint_eq(ot_replay_round(1025), 2048);
    ck_assert_uint_eq(ot_replay_round(3000000), 4194304);
    ck_assert_uint_eq(ot_replay_round(0xffffffffu), OT_REPLAY_SLOTS_MAX);
    ck_assert_int_eq(ot_replay_create(&small, 1024, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_create(&big, 5000, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(ot_replay_slots(small), 1024);
    ck_assert_uint_eq(ot_replay_slots(big), 8192);
    ck_assert(ot_replay_keyed(small) && ot_replay_keyed(big));
    memset(k, 0, sizeof(k));
    for (i = 0; i < 600; i++) {
        k[3] = (unsigned char)(i * 37);
        k[2] = (unsigned char)(i >> 8);
        ck_assert_int_eq(ot_replay_once(small, k, i < 500 ? until : now, now - 1), APR_SUCCESS);
    }
    /* The 500 live entries move to the larger table; the 100 expired ones do not. */
    ck_assert_uint_eq(ot_replay_copy(big, small, now), 0);
    ck_assert_uint_eq(ot_replay_live(big, now), 500);
    for (i = 0; i < 600; i++) {
        k[3] = (unsigned char)(i * 37);
        k[2] = (unsigned char)(i >> 8);
        ck_assert_int_eq(ot_replay_once(big, k, until, now), i < 500 ? APR_EEXIST : APR_SUCCESS);
    }
}
END_TEST

START_TEST(replay_entries_are_kept_longer_when_proofs_pass_longer)
{
    ot_replay_t *r;
    unsigned char live[32], lapsed[32];
    apr_time_t now = apr_time_from_sec(NOW), by = apr_time_from_sec(540);
    apr_uint32_t n = 99;

    memset(live, 1, sizeof(live));
    memset(lapsed, 2, sizeof(lapsed));
    ck_assert_int_eq(ot_replay_create(&r, 1024, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_once(r, live, now + apr_time_from_sec(6), now), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_once(r, lapsed, now, now - 1), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_extend(r, by, now, &n), APR_SUCCESS);
    ck_assert_uint_eq(n, 1);
    /* The live entry holds past its first end, up to its new one; the lapsed one stays free. */
    ck_assert_int_eq(ot_replay_once(r, live, now, now + apr_time_from_sec(7)), APR_EEXIST);
    ck_assert_int_eq(ot_replay_once(r, live, now, now + apr_time_from_sec(545)), APR_EEXIST);
    ck_assert_int_eq(ot_replay_once(r, live, now, now + apr_time_from_sec(546)), APR_SUCCESS);
    ck_assert_int_eq(ot_replay_once(r, lapsed, now + 1, now), APR_SUCCESS);
}
END_TEST

/* ---- the DPoP scheme ------------------------------------------------------------------------- */

START_TEST(dpop_scheme_is_parsed_where_allowed)
{
    ot_scheme_t s;
    const char *t = NULL;

    ck_assert_int_eq(ot_credentials_parse("DPoP abc", 1, 1, &s, &t, ot_test_pool), OT_BEARER_OK);
    ck_assert_int_eq(s, OT_SCHEME_DPOP);
    ck_assert_str_eq(t, "abc");
    ck_assert_int_eq(ot_credentials_parse("dpop  abc", 1, 1, &s, &t, ot_test_pool),
                     OT_BEARER_OK);
    ck_assert_int_eq(ot_credentials_parse("DPoP abc", 1, 0, &s, &t, ot_test_pool),
                     OT_BEARER_NONE);
    ck_assert_int_eq(s, OT_SCHEME_NONE);
    ck_assert_int_eq(ot_credentials_parse("Bearer abc", 0, 1, &s, &t, ot_test_pool),
                     OT_BEARER_NONE);
    ck_assert_int_eq(ot_credentials_parse("DPoP a b", 1, 1, &s, &t, ot_test_pool),
                     OT_BEARER_MALFORMED);
    ck_assert_int_eq(s, OT_SCHEME_DPOP);
    ck_assert_int_eq(ot_credentials_parse("Bearer a, DPoP b", 1, 1, &s, &t, ot_test_pool),
                     OT_BEARER_MALFORMED);
    ck_assert_int_eq(ot_credentials_parse("DPoPx abc", 1, 1, &s, &t, ot_test_pool),
                     OT_BEARER_NONE);
    ck_assert_int_eq(ot_bearer_parse("DPoP abc", &t, ot_test_pool), OT_BEARER_NONE);
}
END_TEST

/* ---- verdicts on bound tokens ---------------------------------------------------------------- */

static ot_verdict_t judge_bound(const char *json, ot_bound_t b)
{
    const char *err = NULL;
    ot_answer_t *a = ot_answer_parse(json, strlen(json), &err, ot_test_pool);
    ot_policy_t pol = { NULL, NULL, 1, NULL, 0 };

    ck_assert_ptr_nonnull(a);
    return ot_answer_judge_bound(a, &pol, &b, NOW);
}

START_TEST(binding_verdicts_follow_the_contract)
{
    const char *jkt = "{\"active\":true,\"token_type\":\"DPoP\",\"cnf\":{\"jkt\":\"K\"}}";
    const char *x5t = "{\"active\":true,\"cnf\":{\"x5t#S256\":\"C\"}}";
    const char *plain = "{\"active\":true,\"typ\":\"Bearer\"}";
    ot_bound_t dpop = { OT_BIND_ALLOW, OT_BIND_ALLOW, 1, "K", NULL };
    ot_bound_t bearer = { OT_BIND_ALLOW, OT_BIND_ALLOW, 0, NULL, NULL };
    ot_bound_t b;

    ck_assert_int_eq(judge_bound(jkt, dpop), OT_VERDICT_OK);
    b = dpop, b.jkt = "other";
    ck_assert_int_eq(judge_bound(jkt, b), OT_VERDICT_DPOP_KEY);
    ck_assert_int_eq(judge_bound(jkt, bearer), OT_VERDICT_BOUND);
    b = dpop, b.dpop = OT_BIND_OFF;
    ck_assert_int_eq(judge_bound(jkt, b), OT_VERDICT_DPOP_OFF);
    ck_assert_int_eq(judge_bound(plain, dpop), OT_VERDICT_UNBOUND_DPOP);
    ck_assert_int_eq(judge_bound(plain, bearer), OT_VERDICT_OK);
    b = bearer, b.dpop = OT_BIND_REQUIRE;
    ck_assert_int_eq(judge_bound(plain, b), OT_VERDICT_UNBOUND);
    b = dpop, b.dpop = OT_BIND_REQUIRE;
    ck_assert_int_eq(judge_bound(jkt, b), OT_VERDICT_OK);
    /* typ DPoP without cnf.jkt, under either scheme. */
    ck_assert_int_eq(judge_bound("{\"active\":true,\"typ\":\"DPoP\"}", dpop),
                     OT_VERDICT_DPOP_NO_JKT);
    ck_assert_int_eq(judge_bound("{\"active\":true,\"typ\":\"DPoP\"}", bearer),
                     OT_VERDICT_DPOP_NO_JKT);
    /* Keycloak: typ DPoP with cnf.jkt is an access token. */
    ck_assert_int_eq(judge_bound("{\"active\":true,\"typ\":\"DPoP\",\"cnf\":{\"jkt\":\"K\"}}",
                                 dpop), OT_VERDICT_OK);
    /* Certificates. */
    b = bearer, b.x5t = "C";
    ck_assert_int_eq(judge_bound(x5t, b), OT_VERDICT_OK);
    b.x5t = "D";
    ck_assert_int_eq(judge_bound(x5t, b), OT_VERDICT_CERT);
    ck_assert_int_eq(judge_bound(x5t, bearer), OT_VERDICT_CERT);
    b = dpop, b.x5t = "C";
    ck_assert_int_eq(judge_bound(x5t, b), OT_VERDICT_OK);
    b = bearer, b.x5t = "C", b.mtls = OT_BIND_OFF;
    ck_assert_int_eq(judge_bound(x5t, b), OT_VERDICT_MTLS_OFF);
    b = bearer, b.mtls = OT_BIND_REQUIRE;
    ck_assert_int_eq(judge_bound(plain, b), OT_VERDICT_UNBOUND);
    /* Both Require: bound either way. */
    b = dpop, b.dpop = OT_BIND_REQUIRE, b.mtls = OT_BIND_REQUIRE;
    ck_assert_int_eq(judge_bound(jkt, b), OT_VERDICT_OK);
    b = bearer, b.x5t = "C", b.dpop = OT_BIND_REQUIRE, b.mtls = OT_BIND_REQUIRE;
    ck_assert_int_eq(judge_bound(x5t, b), OT_VERDICT_OK);
    /* cnf that cannot be checked. */
    ck_assert_int_eq(judge_bound("{\"active\":true,\"cnf\":{}}", dpop), OT_VERDICT_CNF_UNKNOWN);
    ck_assert_int_eq(judge_bound("{\"active\":true,\"cnf\":{\"jwk\":{}}}", dpop),
                     OT_VERDICT_CNF_UNKNOWN);
    ck_assert_int_eq(judge_bound("{\"active\":true,\"cnf\":{\"jkt\":\"K\",\"kid\":\"x\"}}",
                                 dpop), OT_VERDICT_CNF_UNKNOWN);
    ck_assert_int_eq(judge_bound("{\"active\":true,\"cnf\":\"K\"}", dpop),
                     OT_VERDICT_CNF_UNKNOWN);
    ck_assert_int_eq(judge_bound("{\"active\":true,\"cnf\":{\"jkt\":1}}", dpop),
                     OT_VERDICT_CNF_UNKNOWN);
}
END_TEST

START_TEST(binding_survives_the_cache_digest)
{
    const char *json = "{\"active\":true,\"sub\":\"a\",\"cnf\":{\"jkt\":\"K\"}}";
    const char *err = NULL;
    ot_answer_t *a = ot_answer_parse(json, strlen(json), &err, ot_test_pool), *b;
    apr_size_t len = 0;
    const char *d = ot_answer_digest(a, &len, ot_test_pool);

    b = ot_answer_from_digest(d, len, ot_test_pool);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b->cnf_jkt, "K");
    ck_assert_int_eq(b->cnf_unknown, 0);
}
END_TEST

Suite *suite_dpop(void)
{
    Suite *s = suite_create("dpop");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, urls_are_normalised_per_rfc_3986);
    tcase_add_test(tc, dot_segments_go_and_the_path_stays_rooted);
    tcase_add_test(tc, urls_that_cannot_be_htu_are_refused);
    tcase_add_test(tc, a_valid_proof_gives_its_thumbprint_and_jti);
    tcase_add_test(tc, every_bad_field_is_refused);
    tcase_add_test(tc, headers_that_are_not_one_proof_are_refused);
    tcase_add_test(tc, nonces_rotate_and_the_previous_one_passes);
    tcase_add_test(tc, thumbprint_is_rfc_7638);
    tcase_add_test(tc, only_asymmetric_algorithms_are_known);
    tcase_add_test(tc, rsa_keys_are_measured_by_their_value_not_their_encoding);
    tcase_add_test(tc, ec_keys_off_their_curve_or_of_another_size_are_refused);
    tcase_add_test(tc, every_algorithm_verifies_as_cjose_verifies_it);
    tcase_add_test(tc, a_cached_key_is_used_only_for_its_own_jwk);
    tcase_add_test(tc, replay_table_takes_a_key_once_until_it_expires);
    tcase_add_test(tc, a_full_window_is_refused_never_evicted);
    tcase_add_test(tc, a_client_cannot_aim_its_proofs_at_one_window);
    tcase_add_test(tc, replay_tables_are_sized_and_copied_at_restarts);
    tcase_add_test(tc, replay_entries_are_kept_longer_when_proofs_pass_longer);
    tcase_add_test(tc, dpop_scheme_is_parsed_where_allowed);
    tcase_add_test(tc, binding_verdicts_follow_the_contract);
    tcase_add_test(tc, binding_survives_the_cache_digest);
    suite_add_tcase(s, tc);
    return s;
}
