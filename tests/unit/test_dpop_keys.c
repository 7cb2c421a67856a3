/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* A DPoP proof's key (ot_dpop.c, ot_dpop_key.c): one key has one encoding and so one RFC 7638
 * thumbprint (EC and OKP coordinates of their curve's size, members in base64url's canonical
 * encoding), and the per-process key cache keeps only the keys of accepted proofs. Proofs are
 * signed here with keys cjose makes (test_dpop.c's helpers). */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "ot_unit.h"
#include "ot_dpop.h"
#include "ot_dpop_key.h"
#include "ot_util.h"
#include "test_dpop.h"

/**
 * The public JWK of a new key on curve whose member name (x or y) has a leading zero byte, with
 * that byte taken off (a shorter coordinate: the same point); *key is the key.
 */
static json_t *public_short(cjose_jwk_t **key, long curve, const char *name)
{
    cjose_err err;
    int tries;

    for (tries = 0; tries < 20000; tries++) {
        json_t *pub;
        const char *v;
        char *raw;
        apr_size_t len = 0;

        *key = cjose_jwk_create_EC_random(curve, &err);
        ck_assert_ptr_nonnull(*key);
        pub = public_padded(*key, name, 0);
        v = json_string_value(json_object_get(pub, name));
        ck_assert_int_eq(ot_b64url_decode(&raw, &len, v, strlen(v), ot_test_pool), APR_SUCCESS);
        if (raw[0] == 0) {
            json_object_set_new(pub, name, json_string(ot_dpop_b64url(
                (const unsigned char *)raw + 1, len - 1, ot_test_pool)));
            return pub;
        }
        json_decref(pub);
        cjose_jwk_release(*key);
    }
    ck_abort_msg("no key with a leading zero byte in %s", name);
    return NULL;
}

static const char *thumbprint_json(const json_t *jwk)
{
    char *text = json_dumps(jwk, JSON_COMPACT);
    const char *jkt = ot_dpop_jwk_thumbprint(text, strlen(text), ot_test_pool);

    free(text);
    return jkt;
}

/* RFC 7518 §6.2.1.2-3: an EC coordinate is the curve's full size, leading zeros included. A
 * shorter one, padded, was the same key under another thumbprint (another cnf.jkt). */
START_TEST(ec_coordinates_are_their_curve_s_full_size)
{
    static const struct { long curve; const char *alg, *name; } cases[] = {
        { CJOSE_JWK_EC_P_256, "ES256", "x" }, { CJOSE_JWK_EC_P_256, "ES256", "y" },
        { CJOSE_JWK_EC_P_384, "ES384", "y" }, { CJOSE_JWK_EC_P_521, "ES512", "x" },
        { CJOSE_JWK_EC_P_521, "ES512", "y" },
    };
    ot_dpop_ask_t ask = ask_for(algs_of("ES256 ES384 ES512"), NULL);
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cjose_jwk_t *k = NULL;
        json_t *shrt = public_short(&k, cases[i].curve, cases[i].name);
        json_t *full = public_padded(k, cases[i].name, 0);
        const char *why = NULL;

        ck_assert_int_eq(verify(&ask, sign_alg(k, cases[i].alg, full), NULL), OT_DPOP_OK);
        ck_assert_msg(verify(&ask, sign_alg(k, cases[i].alg, shrt), &why) == OT_DPOP_INVALID,
                      "%s: a short %s was taken", cases[i].alg, cases[i].name);
        ck_assert_ptr_nonnull(strstr(why, "jwk"));
        ck_assert_ptr_null(thumbprint_json(shrt));
        ck_assert_ptr_nonnull(thumbprint_json(full));
        /* A JWKS key goes through the same import. */
        ck_assert_ptr_null(ot_jwk_pkey_new(shrt, ot_test_pool));
        EVP_PKEY_free(ot_jwk_pkey_new(full, ot_test_pool));
        json_decref(shrt);
        json_decref(full);
        cjose_jwk_release(k);
    }
}
END_TEST

/* A member in another spelling of its bytes ('=' padding, a spare bit set) is refused: the
 * thumbprint is taken over the text. OKP coordinates have their curve's size too. */
START_TEST(jwk_members_have_one_encoding_and_their_curve_s_size)
{
    ot_dpop_ask_t ask = ask_for(algs_of("ES256"), NULL);
    test_key_t *k = make_key();
    const char *x = json_string_value(json_object_get(k->pub, "x"));
    json_t *pub = json_deep_copy(k->pub);
    char *bent = apr_pstrdup(ot_test_pool, x);
    static const unsigned char zero[58];
    static const struct { const char *crv; apr_size_t size; } okp[] = {
        { "Ed25519", 32 }, { "Ed448", 57 }, { "X25519", 32 }, { "X448", 56 },
    };
    apr_size_t i;

    ck_assert_uint_eq(strlen(x), 43);                   /* 32 bytes: two spare bits */
    ck_assert_int_eq(verify(&ask, sign(k, pub, "dpop+jwt", payload("j", "GET", URL, NOW, TOKEN,
                                                                   NULL)), NULL), OT_DPOP_OK);
    json_object_set_new(pub, "x", json_string(apr_pstrcat(ot_test_pool, x, "=", NULL)));
    ck_assert_int_eq(verify(&ask, sign(k, pub, "dpop+jwt", payload("j", "GET", URL, NOW, TOKEN,
                                                                    NULL)), NULL),
                     OT_DPOP_INVALID);
    ck_assert_ptr_null(thumbprint_json(pub));
    /* The last digit with a spare bit set: the same 32 bytes. */
    bent[42]++;                 /* a multiple of 4 (A, E, ..., 8) to the digit after it */
    json_object_set_new(pub, "x", json_string(bent));
    ck_assert_ptr_null(thumbprint_json(pub));
    ck_assert_int_eq(verify(&ask, sign(k, pub, "dpop+jwt", payload("j", "GET", URL, NOW, TOKEN,
                                                                    NULL)), NULL),
                     OT_DPOP_INVALID);
    json_decref(pub);
    for (i = 0; i < sizeof(okp) / sizeof(okp[0]); i++) {
        apr_size_t n;
        for (n = okp[i].size - 1; n <= okp[i].size + 1; n++) {
            const char *jwk = apr_psprintf(ot_test_pool, "{\"kty\":\"OKP\",\"crv\":\"%s\","
                                           "\"x\":\"%s\"}", okp[i].crv,
                                           ot_dpop_b64url(zero, n, ot_test_pool));
            const char *jkt = ot_dpop_jwk_thumbprint(jwk, strlen(jwk), ot_test_pool);
            ck_assert_msg((jkt != NULL) == (n == okp[i].size), "%s of %u bytes", okp[i].crv,
                          (unsigned)n);
        }
    }
}
END_TEST

/* A key joins the per-process cache only once a proof signed with it was accepted: proofs that
 * fail their signature, or pass it and are never accepted (no token bound to their key), with a
 * new key each, evict nothing, however many. */
START_TEST(only_accepted_proofs_keep_their_key)
{
    test_key_t *k = make_key();
    ot_dpop_ask_t ask = ask_for(algs_of("ES256"), NULL);
    const char *good = payload("j", "GET", URL, NOW, TOKEN, NULL);
    ot_dpop_proof_t out;
    const char *why = NULL, *jkt;
    int i;

    ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, sign(k, k->pub, "dpop+jwt", good),
                                    ot_test_pool), OT_DPOP_OK);
    jkt = out.jkt;
    ck_assert_int_eq(ot_dpop_key_kept(jkt), 0);            /* verified, not accepted yet */
    ot_dpop_proof_accepted(&out);
    ck_assert_int_eq(ot_dpop_key_kept(jkt), 1);
    for (i = 0; i < 4 * OT_DPOP_KEY_CACHE; i++) {
        test_key_t *x = make_key();
        const char *proof = sign(x, x->pub, "dpop+jwt", good);

        ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, bent_signature(proof), ot_test_pool),
                         OT_DPOP_INVALID);
        ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, proof, ot_test_pool), OT_DPOP_OK);
        ck_assert_int_eq(ot_dpop_key_kept(out.jkt), 0);
    }
    ck_assert_int_eq(ot_dpop_key_kept(jkt), 1);
    /* The kept key's own proofs come from the cache: accepting one again changes nothing. */
    ck_assert_int_eq(ot_dpop_verify(&out, &why, &ask, sign(k, k->pub, "dpop+jwt", good),
                                    ot_test_pool), OT_DPOP_OK);
    ck_assert_ptr_null(out.key_new);
    ot_dpop_proof_accepted(&out);
    ck_assert_int_eq(ot_dpop_key_kept(jkt), 1);
}
END_TEST

Suite *suite_dpop_keys(void)
{
    Suite *s = suite_create("dpop_keys");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ec_coordinates_are_their_curve_s_full_size);
    tcase_add_test(tc, jwk_members_have_one_encoding_and_their_curve_s_size);
    tcase_add_test(tc, only_accepted_proofs_keep_their_key);
    suite_add_tcase(s, tc);
    return s;
}
