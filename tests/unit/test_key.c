/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The `how` input of the cache key (ot_cache_key_how, as answer_how in mod_offtok_authn.c calls
 * it): what an answer was checked against is in its key, and no setting's text can pass for
 * another's.
 *   - Without signed answers the key is the same bytes as ever (digests computed in Python from
 *     the length-prefixed inputs): entries kept in the segment or in Redis are still found.
 *   - With them, the expected issuer, the JWKS URL and the clock skew are in it: an answer
 *     verified for one location never serves another that checks against something else.
 *   - A CA file, issuer or JWKS URL holding the text of another setting (a CA file named
 *     "x signed") is another key.
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "ot_unit.h"
#include "ot_cache.h"
#include "ot_util.h"

/** The key of URL "https://i/x", client "client", hint "access_token", token "tok", and how. */
static void key_with(unsigned char out[OT_KEY_LEN], int verify, const char *ca_file,
                     const ot_key_signed_t *sig)
{
    char buf[OT_KEY_HOW_BUF];
    ot_key_part_t parts[OT_KEY_PARTS] = {
        { { "https://i/x" } }, { { "client" } }, { { "access_token" } }, { { NULL } },
        { { "tok" } }
    };

    ot_cache_key_how(&parts[3], buf, verify, ca_file, sig);
    ot_cache_key_parts(out, parts);
}

static const char *hex(const unsigned char key[OT_KEY_LEN])
{
    char *s = apr_palloc(ot_test_pool, 2 * OT_KEY_LEN + 1);
    int i;

    for (i = 0; i < OT_KEY_LEN; i++) {
        apr_snprintf(s + 2 * i, 3, "%02x", key[i]);
    }
    return s;
}

/** SHA-256 of the inputs above with `how` given as bytes (it may hold NULs), from scratch. */
static void ref_key(unsigned char out[OT_KEY_LEN], const char *how, apr_size_t how_len)
{
    const char *in[5] = { "https://i/x", "client", "access_token", how, "tok" };
    unsigned char buf[512];
    apr_size_t off = 0, n;
    int i;

    for (i = 0; i < 5; i++) {
        n = i == 3 ? how_len : strlen(in[i]);
        ck_assert_uint_lt(off + 4 + n, sizeof(buf));
        ot_be_put(buf + off, n, 4);
        memcpy(buf + off + 4, in[i], n);
        off += 4 + n;
    }
    ck_assert(EVP_Digest(buf, off, out, NULL, EVP_sha256(), NULL) == 1);
}

START_TEST(keys_without_signed_answers_are_the_same_bytes_as_before)
{
    unsigned char got[OT_KEY_LEN], want[OT_KEY_LEN];

    /* Digests computed with Python's hashlib over the length-prefixed inputs. */
    key_with(got, 1, NULL, NULL);
    ck_assert_str_eq(hex(got), "b6cbdf5d9c91a69cbaa61f23d006c3184776b8bd7e6ab6136c4bd9802a3c0dd3");
    key_with(got, 1, "/etc/ca.pem", NULL);
    ck_assert_str_eq(hex(got), "d5bd69804a5d7d84547d1fd9793678d84deae9a83806720500e3c7b847f12e08");
    key_with(got, 0, NULL, NULL);
    ot_cache_key(want, "https://i/x", "client", "access_token", "noverify", "tok");
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
    key_with(got, 0, "/ca.pem", NULL);
    ot_cache_key(want, "https://i/x", "client", "access_token", "noverify ca=/ca.pem", "tok");
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
}
END_TEST

START_TEST(signed_keys_are_laid_out_as_documented)
{
    static const char how[] = "verify signed 60 https://kc/realms/r\0https://kc/certs\0"
                              " ca=/ca.pem";
    static const char how_noca[] = "noverify signed -5 \0https://kc/certs\0";
    ot_key_signed_t sig = { "https://kc/realms/r", "https://kc/certs", 60 };
    unsigned char got[OT_KEY_LEN], want[OT_KEY_LEN];

    key_with(got, 1, "/ca.pem", &sig);
    ref_key(want, how, sizeof(how) - 1);
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
    /* An unset issuer hashes as the empty one (OfftokSignedAnswers On needs one anyway). */
    sig.issuer = NULL;
    sig.clock_skew = -5;
    key_with(got, 0, NULL, &sig);
    ref_key(want, how_noca, sizeof(how_noca) - 1);
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
}
END_TEST

START_TEST(what_a_signed_answer_was_checked_against_is_in_its_key)
{
    ot_key_signed_t a = { "https://kc/realms/a", "https://kc/realms/a/certs", 60 }, b;
    unsigned char ka[OT_KEY_LEN], kb[OT_KEY_LEN];

    key_with(ka, 1, NULL, &a);
    b = a;
    key_with(kb, 1, NULL, &b);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) == 0);     /* alike: shared */
    b.issuer = "https://kc/realms/b";
    key_with(kb, 1, NULL, &b);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* another expected iss */
    b = a;
    b.jwks_url = "https://kc/realms/b/certs";
    key_with(kb, 1, NULL, &b);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* other keys */
    b = a;
    b.clock_skew = 600;
    key_with(kb, 1, NULL, &b);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* another iat window */
    key_with(kb, 1, NULL, NULL);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* not signed */
    key_with(kb, 0, NULL, &a);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* keys fetched without verifying TLS */
    key_with(kb, 1, "/ca.pem", &a);
    ck_assert(memcmp(ka, kb, OT_KEY_LEN) != 0);     /* keys fetched trusting a CA file */
}
END_TEST

START_TEST(no_setting_text_passes_for_another)
{
    ot_key_signed_t s1 = { "https://i", "https://i/certs", 60 }, s2;
    unsigned char k1[OT_KEY_LEN], k2[OT_KEY_LEN];

    /* The finding: a CA file named "x signed" without signed answers, and "x" with them. */
    key_with(k1, 1, "/x signed", NULL);
    key_with(k2, 1, "/x", &s1);
    ck_assert(memcmp(k1, k2, OT_KEY_LEN) != 0);
    /* The same, with the text of the whole signed piece in the file's name. */
    key_with(k1, 1, "/x signed 60 https://i", NULL);
    ck_assert(memcmp(k1, k2, OT_KEY_LEN) != 0);
    /* A boundary moved between issuer and JWKS URL. */
    s2 = s1;
    s2.issuer = "https://i/";
    s2.jwks_url = "certs";
    s1.jwks_url = "/certs";
    key_with(k1, 1, NULL, &s1);
    key_with(k2, 1, NULL, &s2);
    ck_assert(memcmp(k1, k2, OT_KEY_LEN) != 0);
    /* A JWKS URL ending in a CA file's piece, against that CA file. */
    s1.jwks_url = "https://i/certs ca=/ca.pem";
    s2 = s1;
    s2.jwks_url = "https://i/certs";
    key_with(k1, 1, NULL, &s1);
    key_with(k2, 1, "/ca.pem", &s2);
    ck_assert(memcmp(k1, k2, OT_KEY_LEN) != 0);
    /* A skew's digits and the issuer: 6 then "0x" against 60 then "x". */
    s1 = (ot_key_signed_t){ "0x", "j", 6 };
    s2 = (ot_key_signed_t){ "x", "j", 60 };
    key_with(k1, 1, NULL, &s1);
    key_with(k2, 1, NULL, &s2);
    ck_assert(memcmp(k1, k2, OT_KEY_LEN) != 0);
}
END_TEST

Suite *suite_key(void)
{
    Suite *s = suite_create("key");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, keys_without_signed_answers_are_the_same_bytes_as_before);
    tcase_add_test(tc, signed_keys_are_laid_out_as_documented);
    tcase_add_test(tc, what_a_signed_answer_was_checked_against_is_in_its_key);
    tcase_add_test(tc, no_setting_text_passes_for_another);
    suite_add_tcase(s, tc);
    return s;
}
