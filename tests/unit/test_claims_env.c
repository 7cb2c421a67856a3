/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The environment names of claims as the back end receives them: ot_claim_env_name and
 * ot_claim_env_names (one allocation for an answer's names, their distinctness by hash) held
 * to the renderer and the pairwise check they replaced, on hostile claim names.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_claims.h"

/** The renderer before it was made one pass (apr_pstrcat, then apr_isalnum per byte). */
static const char *old_env_name(const char *name, apr_pool_t *p)
{
    char *out = apr_pstrcat(p, "OFFTOK_CLAIM_", name, NULL);
    char *c;

    for (c = out + sizeof("OFFTOK_CLAIM_") - 1; *c; c++) {
        if (!(apr_isalnum(*c) || *c == '_') || (unsigned char)*c > 0x7f) {
            *c = '_';
        }
    }
    return out;
}

/** The pairwise distinctness check the hash replaced (mod_offtok_env.c's names_distinct). */
static int old_distinct(const char **names, int n)
{
    const size_t skip = sizeof("OFFTOK_CLAIM_") - 1;
    int i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < i; j++) {
            if (strcasecmp(names[i] + skip, names[j] + skip) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/** Render names[0..n) both ways; every name as before; the distinctness returned. */
static int check_names(const char *const *claim_names, int n)
{
    ot_claim_t *claims = apr_pcalloc(ot_test_pool, sizeof(*claims) * (size_t)(n + 1));
    const char **names = apr_pcalloc(ot_test_pool, sizeof(*names) * (size_t)(n + 1));
    const char **old = apr_pcalloc(ot_test_pool, sizeof(*old) * (size_t)(n + 1));
    int i, distinct;

    for (i = 0; i < n; i++) {
        claims[i].name = claim_names[i];
        old[i] = old_env_name(claim_names[i], ot_test_pool);
    }
    distinct = ot_claim_env_names(names, claims, n, ot_test_pool);
    for (i = 0; i < n; i++) {
        ck_assert_str_eq(names[i], old[i]);
        ck_assert_str_eq(ot_claim_env_name(claim_names[i], ot_test_pool), old[i]);
    }
    ck_assert_int_eq(distinct, old_distinct(old, n));
    return distinct;
}

START_TEST(every_byte_as_before)
{
    char name[4];
    int c;

    for (c = 1; c < 256; c++) {
        const char *one[1] = { name };
        name[0] = 'a';
        name[1] = (char)c;
        name[2] = (char)c;
        name[3] = '\0';
        check_names(one, 1);
    }
}
END_TEST

START_TEST(hostile_names_as_before)
{
    static const char *const hostile[] = {
        "sub", "realm_access.roles", "allowed-origins", "https://x.org/c laim", "n\xc3\xa4me",
        "\xe2\x82\xac", "\xf0\x9f\x94\x91key", "a=b;c", "OFFTOK_CLAIM_x", "", "_", "-", ".",
        "0lead", "tab\there", "quote\"and'back\\slash", "\x7f" "del", "\xff\xfe",
    };
    const int n = (int)(sizeof(hostile) / sizeof(hostile[0]));
    char *long_name = apr_palloc(ot_test_pool, 10001);
    const char *longs[2];
    int i;

    ck_assert_int_eq(check_names(hostile, n), 0);          /* "_", "-" and "." meet */
    ck_assert_int_eq(check_names(hostile, 11), 1);
    for (i = 0; i < 10000; i++) {
        long_name[i] = "a.b-C\xc3"[i % 6];
    }
    long_name[10000] = '\0';
    longs[0] = long_name;
    longs[1] = apr_pstrndup(ot_test_pool, long_name, 9999);
    ck_assert_int_eq(check_names(longs, 2), 1);
    ck_assert_int_eq(check_names(longs, 1), 1);
    ck_assert_int_eq(check_names(NULL, 0), 1);
}
END_TEST

START_TEST(names_that_meet_in_the_environment)
{
    static const char *const dash_dot[] = { "a-b", "x", "a.b" };
    static const char *const cases[] = { "Sub", "email", "sub" };
    static const char *const rendered[] = { "a_b", "A-B" };
    static const char *const utf8[] = { "n\xc3\xa4me", "n\xc3\xb6me" };   /* both n__me */
    static const char *const apart[] = { "ab", "ba", "a_b", "ab_", "_ab", "AB_C" };
    static const char *const prefix[] = { "OFFTOK_CLAIM_x", "offtok-claim-X" };

    ck_assert_int_eq(check_names(dash_dot, 3), 0);
    ck_assert_int_eq(check_names(cases, 3), 0);
    ck_assert_int_eq(check_names(rendered, 2), 0);
    ck_assert_int_eq(check_names(utf8, 2), 0);
    ck_assert_int_eq(check_names(apart, 6), 1);
    ck_assert_int_eq(check_names(prefix, 2), 0);
}
END_TEST

/** More names than the table on the stack holds: the pool's table, a meeting at either end. */
START_TEST(many_names)
{
    const char **names = apr_palloc(ot_test_pool, sizeof(*names) * 300);
    int i;

    for (i = 0; i < 300; i++) {
        names[i] = apr_psprintf(ot_test_pool, "claim-%d", i);
    }
    ck_assert_int_eq(check_names(names, 300), 1);
    ck_assert_int_eq(check_names(names, 64), 1);
    ck_assert_int_eq(check_names(names, 65), 1);
    names[299] = "CLAIM.0";
    ck_assert_int_eq(check_names(names, 300), 0);
    names[299] = "claim-299";
    names[1] = "Claim_0";
    ck_assert_int_eq(check_names(names, 300), 0);
}
END_TEST

/** Random sets over a small alphabet (many meetings, long probe chains) against the old check. */
START_TEST(random_sets_as_the_old_check)
{
    static const char alphabet[] = "aAbB-._\xc3";
    const char **names = apr_palloc(ot_test_pool, sizeof(*names) * 100);
    unsigned seed = 12345;
    int round, i, met = 0;

    for (round = 0; round < 2000; round++) {
        int n = (int)(seed % 100);
        for (i = 0; i < n; i++) {
            int len = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4, k;
            char *s = apr_palloc(ot_test_pool, (size_t)len + 1);
            for (k = 0; k < len; k++) {
                seed = seed * 1103515245u + 12345u;
                s[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
            }
            s[len] = '\0';
            names[i] = s;
        }
        met += !check_names(names, n);
        seed = seed * 1103515245u + 12345u;
    }
    ck_assert_int_gt(met, 100);     /* the sets did meet, and not always */
    ck_assert_int_lt(met, 2000);
}
END_TEST

Suite *suite_claims_env(void)
{
    Suite *s = suite_create("claims_env");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, every_byte_as_before);
    tcase_add_test(tc, hostile_names_as_before);
    tcase_add_test(tc, names_that_meet_in_the_environment);
    tcase_add_test(tc, many_names);
    tcase_add_test(tc, random_sets_as_the_old_check);
    suite_add_tcase(s, tc);
    return s;
}
