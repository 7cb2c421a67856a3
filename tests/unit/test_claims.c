/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>

#include "ot_unit.h"
#include "ot_claims.h"
#include "ot_json.h"

static json_t *J(const char *text)
{
    json_t *j = ot_json_parse(text, strlen(text), NULL, ot_test_pool);

    ck_assert_ptr_nonnull(j);
    return j;
}

static const char *text_of(const char *json)
{
    return ot_claim_text(J(json), ot_test_pool);
}

START_TEST(env_names)
{
    ck_assert_str_eq(ot_claim_env_name("sub", ot_test_pool), "OFFTOK_CLAIM_sub");
    ck_assert_str_eq(ot_claim_env_name("realm_access", ot_test_pool),
                     "OFFTOK_CLAIM_realm_access");
    ck_assert_str_eq(ot_claim_env_name("allowed-origins", ot_test_pool),
                     "OFFTOK_CLAIM_allowed_origins");
    ck_assert_str_eq(ot_claim_env_name("https://x.org/c laim", ot_test_pool),
                     "OFFTOK_CLAIM_https___x_org_c_laim");
    ck_assert_str_eq(ot_claim_env_name("n\xc3\xa4me", ot_test_pool), "OFFTOK_CLAIM_n__me");
}
END_TEST

START_TEST(values_as_the_contract_writes_them)
{
    ck_assert_str_eq(text_of("\"ada\""), "ada");
    ck_assert_str_eq(text_of("42"), "42");
    ck_assert_str_eq(text_of("1.5"), "1.5");
    ck_assert_str_eq(text_of("0.1"), "0.1");
    ck_assert_str_eq(text_of("1000.0"), "1000.0");
    ck_assert_str_eq(text_of("1e300"), "1e+300");
    ck_assert_str_eq(text_of("0.30000000000000004"), "0.30000000000000004");
    ck_assert_str_eq(text_of("true"), "true");
    ck_assert_str_eq(text_of("false"), "false");
    ck_assert_str_eq(text_of("null"), "");
    ck_assert_str_eq(text_of("[\"a\",\"b\",3,true]"), "a,b,3,true");
    ck_assert_str_eq(text_of("[]"), "");
    ck_assert_str_eq(text_of("{\"roles\":[\"admin\",\"x\"]}"), "{\"roles\":[\"admin\",\"x\"]}");
    ck_assert_str_eq(text_of("[[1],2]"), "[[1],2]");
    ck_assert_str_eq(text_of("[{\"a\":1}]"), "[{\"a\":1}]");
}
END_TEST

START_TEST(no_control_characters_survive)
{
    const char *t = text_of("\"line1\\r\\nX-Injected: yes\\u0007\\u007f\\t\"");

    ck_assert_str_eq(t, "line1  X-Injected: yes   ");
    ck_assert_str_eq(text_of("[\"a\\nb\",\"c\"]"), "a b,c");
    /* In compact JSON control characters are escaped; nothing raw remains. */
    ck_assert_ptr_null(strpbrk(text_of("{\"k\":\"a\\nb\"}"), "\r\n"));
    ck_assert_str_eq(ot_sanitize("ok", ot_test_pool), "ok");
}
END_TEST

START_TEST(lookup_top_level_first_then_dotted)
{
    json_t *a = J("{\"realm_access\":{\"roles\":[\"admin\",\"user\"]},"
                  "\"a.b\":\"flat\",\"a\":{\"b\":\"nested\"},\"n\":{\"m\":{\"k\":5}}}");

    ck_assert_str_eq(json_string_value(ot_claim_lookup(a, "a.b")), "flat");
    ck_assert(json_is_array(ot_claim_lookup(a, "realm_access.roles")));
    ck_assert_int_eq(json_integer_value(ot_claim_lookup(a, "n.m.k")), 5);
    ck_assert_ptr_null(ot_claim_lookup(a, "n.x.k"));
    ck_assert_ptr_null(ot_claim_lookup(a, "n..m"));
    ck_assert_ptr_null(ot_claim_lookup(a, "realm_access.roles.0"));
    ck_assert_ptr_null(ot_claim_lookup(a, "missing"));
}
END_TEST

START_TEST(matching_values)
{
    json_t *a = J("{\"roles\":[\"admin\",\"user\"],\"lvl\":3,\"ok\":true,\"name\":\"ada\"}");

    ck_assert(ot_claim_matches(ot_claim_lookup(a, "roles"), "admin", ot_test_pool));
    ck_assert(!ot_claim_matches(ot_claim_lookup(a, "roles"), "adm", ot_test_pool));
    ck_assert(ot_claim_matches(ot_claim_lookup(a, "lvl"), "3", ot_test_pool));
    ck_assert(ot_claim_matches(ot_claim_lookup(a, "ok"), "true", ot_test_pool));
    ck_assert(ot_claim_matches(ot_claim_lookup(a, "name"), "ada", ot_test_pool));
    ck_assert(!ot_claim_matches(ot_claim_lookup(a, "name"), "Ada", ot_test_pool));
    ck_assert(!ot_claim_matches(NULL, "x", ot_test_pool));
}
END_TEST

START_TEST(scopes)
{
    ck_assert(ot_scope_has("openid read write", "read"));
    ck_assert(ot_scope_has("read", "read"));
    ck_assert(ot_scope_has("openid write read", "read"));
    ck_assert(!ot_scope_has("openid reader", "read"));
    ck_assert(!ot_scope_has("openid unread write", "read"));
    ck_assert(!ot_scope_has("openid", ""));
    ck_assert(ot_scope_has("unread read", "read"));
}
END_TEST

START_TEST(header_names)
{
    ck_assert(ot_header_name_eq("X-Remote-User", "x_remote_user"));
    ck_assert(ot_header_name_eq("X-REMOTE-USER", "X-Remote-User"));
    ck_assert(!ot_header_name_eq("X-Remote-User", "X-Remote-Users"));
    ck_assert(!ot_header_name_eq("X-Remote", "X-Remote-User"));
}
END_TEST

Suite *suite_claims(void)
{
    Suite *s = suite_create("claims");
    TCase *tc = tcase_create("claims");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, env_names);
    tcase_add_test(tc, values_as_the_contract_writes_them);
    tcase_add_test(tc, no_control_characters_survive);
    tcase_add_test(tc, lookup_top_level_first_then_dotted);
    tcase_add_test(tc, matching_values);
    tcase_add_test(tc, scopes);
    tcase_add_test(tc, header_names);
    suite_add_tcase(s, tc);
    return s;
}
