/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* ot_logout: back-channel logout tokens and Keycloak admin actions, judged on decoded JSON. */
#include <string.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_json.h"
#include "ot_logout.h"

#define NOW 1796015000LL
#define ISS "https://sso.example.org/realms/acme"
#define CLIENT "orders-api"

static const ot_push_expect_t expect = { ISS, CLIENT, NOW, 60, NULL };

static json_t *js(const char *text)
{
    json_t *j = ot_json_parse(text, strlen(text), NULL, ot_test_pool);

    ck_assert_ptr_nonnull(j);
    return j;
}

/** Keycloak's logout token (shared/keycloak/backchannel-logout-token.json), iat = NOW. */
static json_t *logout_payload(void)
{
    return js("{\"iat\":1796015000,\"exp\":1796015120,\"jti\":\"fc2a7d3e\",\"iss\":\"" ISS "\","
              "\"aud\":\"" CLIENT "\",\"sub\":\"7c9e6679\",\"typ\":\"Logout\",\"sid\":\"3f1c2b4a\","
              "\"events\":{\"" OT_LOGOUT_EVENT "\":{}},\"revoke_offline_access\":true}");
}

static json_t *logout_header(void)
{
    return js("{\"alg\":\"RS256\",\"typ\":\"logout+jwt\",\"kid\":\"k1\"}");
}

/** Check payload with one member replaced (value NULL: removed). */
static const char *logout_with(const char *name, json_t *value)
{
    json_t *p = logout_payload();
    ot_logout_t lt;

    if (value) {
        json_object_set_new(p, name, value);
    }
    else {
        json_object_del(p, name);
    }
    return ot_logout_check(&lt, logout_header(), p, &expect, ot_test_pool);
}

START_TEST(logout_keycloak_token_accepted)
{
    ot_logout_t lt;

    ck_assert_ptr_null(ot_logout_check(&lt, logout_header(), logout_payload(), &expect,
                                       ot_test_pool));
    ck_assert_str_eq(lt.sub, "7c9e6679");
    ck_assert_str_eq(lt.sid, "3f1c2b4a");
    ck_assert_str_eq(lt.jti, "fc2a7d3e");
    ck_assert_int_eq(lt.iat, NOW);
    ck_assert_int_eq(lt.exp, NOW + 120);
    ck_assert_int_eq(ot_logout_replay_until(&lt, &expect), NOW + 121);
}
END_TEST

START_TEST(logout_typ_header)
{
    ot_logout_t lt;
    const char *ok[] = { "{\"alg\":\"RS256\"}", "{\"alg\":\"RS256\",\"typ\":\"Logout+JWT\"}",
                         "{\"alg\":\"RS256\",\"typ\":\"application/logout+jwt\"}" };
    const char *bad[] = { "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"typ\":7}",
                          "{\"typ\":\"at+jwt\"}" };
    size_t i;

    for (i = 0; i < 3; i++) {
        ck_assert_ptr_null(ot_logout_check(&lt, js(ok[i]), logout_payload(), &expect,
                                           ot_test_pool));
        ck_assert_ptr_nonnull(ot_logout_check(&lt, js(bad[i]), logout_payload(), &expect,
                                              ot_test_pool));
    }
    ck_assert_ptr_nonnull(ot_logout_check(&lt, NULL, logout_payload(), &expect, ot_test_pool));
    ck_assert_ptr_nonnull(ot_logout_check(&lt, logout_header(), js("[]"), &expect,
                                          ot_test_pool));
}
END_TEST

START_TEST(logout_iss_and_aud)
{
    ck_assert_ptr_nonnull(logout_with("iss", json_string(ISS "/")));
    ck_assert_ptr_nonnull(logout_with("iss", NULL));
    ck_assert_ptr_nonnull(logout_with("iss", json_integer(1)));
    ck_assert_ptr_nonnull(logout_with("aud", json_string("other")));
    ck_assert_ptr_nonnull(logout_with("aud", NULL));
    ck_assert_ptr_nonnull(logout_with("aud", json_pack("[s,s]", "a", "b")));
    ck_assert_ptr_nonnull(logout_with("aud", json_pack("{s:s}", "x", CLIENT)));
    ck_assert_ptr_null(logout_with("aud", json_pack("[s,s]", "account", CLIENT)));
}
END_TEST

START_TEST(logout_times)
{
    ck_assert_ptr_null(logout_with("iat", json_integer(NOW - 59)));
    ck_assert_ptr_null(logout_with("iat", json_integer(NOW + 59)));
    ck_assert_ptr_null(logout_with("iat", json_real((double)NOW + 0.5)));
    ck_assert_ptr_nonnull(logout_with("iat", json_integer(NOW - 61)));
    ck_assert_ptr_nonnull(logout_with("iat", json_integer(NOW + 61)));
    ck_assert_ptr_nonnull(logout_with("iat", NULL));
    ck_assert_ptr_nonnull(logout_with("iat", json_string("1796015000")));
    ck_assert_ptr_nonnull(logout_with("iat", json_integer(-1)));
    ck_assert_ptr_null(logout_with("exp", NULL));
    ck_assert_ptr_nonnull(logout_with("exp", json_integer(NOW)));
    ck_assert_ptr_nonnull(logout_with("exp", json_integer(NOW - 3600)));
    ck_assert_ptr_nonnull(logout_with("exp", json_true()));
}
END_TEST

START_TEST(logout_events_nonce_subject)
{
    ck_assert_ptr_nonnull(logout_with("events", NULL));
    ck_assert_ptr_nonnull(logout_with("events", json_string(OT_LOGOUT_EVENT)));
    ck_assert_ptr_nonnull(logout_with("events", json_pack("{s:{}}", "http://other/event")));
    ck_assert_ptr_nonnull(logout_with("events", json_pack("{s:b}", OT_LOGOUT_EVENT, 1)));
    ck_assert_ptr_nonnull(logout_with("nonce", json_string("n-0S6_WzA2Mj")));
    ck_assert_ptr_null(logout_with("sub", NULL));
    ck_assert_ptr_null(logout_with("sid", NULL));
    ck_assert_ptr_nonnull(logout_with("sub", json_string("")));
    ck_assert_ptr_nonnull(logout_with("sid", json_integer(5)));
    ck_assert_ptr_nonnull(logout_with("jti", NULL));
    ck_assert_ptr_nonnull(logout_with("jti", json_string("")));
}
END_TEST

START_TEST(logout_needs_sub_or_sid)
{
    json_t *p = logout_payload();
    ot_logout_t lt;
    char *long_sub = apr_palloc(ot_test_pool, OT_PUSH_VALUE_MAX + 2);

    json_object_del(p, "sub");
    json_object_del(p, "sid");
    ck_assert_ptr_nonnull(ot_logout_check(&lt, logout_header(), p, &expect, ot_test_pool));
    memset(long_sub, 'a', OT_PUSH_VALUE_MAX + 1);
    long_sub[OT_PUSH_VALUE_MAX + 1] = '\0';
    ck_assert_ptr_nonnull(logout_with("sub", json_string(long_sub)));
    ck_assert_ptr_nonnull(logout_with("sub", json_stringn("a\0b", 3)));
}
END_TEST

/* ---- admin actions ------------------------------------------------------------------------- */

static const char *admin(const char *text, ot_admin_kind_t kind, ot_admin_t *act)
{
    return ot_admin_check(act, js(text), kind, &expect, ot_test_pool);
}

/* OfftokLogoutAudience: Keycloak addresses a user's logout to the clients the user logged in
 * through; with the list set, those are the audiences accepted (OfftokClientID only if listed),
 * and an admin action may name any of them or OfftokClientID as its resource. */
START_TEST(logout_audience_list)
{
    apr_array_header_t *aud = apr_array_make(ot_test_pool, 2, sizeof(const char *));
    ot_push_expect_t x = expect;
    json_t *p = logout_payload();
    ot_logout_t lt;
    ot_admin_t act;

    APR_ARRAY_PUSH(aud, const char *) = "orders-web";
    APR_ARRAY_PUSH(aud, const char *) = "orders-mobile";
    x.audiences = aud;
    ck_assert_ptr_nonnull(ot_logout_check(&lt, logout_header(), p, &x, ot_test_pool));
    json_object_set_new(p, "aud", json_string("orders-mobile"));
    ck_assert_ptr_null(ot_logout_check(&lt, logout_header(), p, &x, ot_test_pool));
    json_object_set_new(p, "aud", json_pack("[s,s]", "account", "orders-web"));
    ck_assert_ptr_null(ot_logout_check(&lt, logout_header(), p, &x, ot_test_pool));
    json_object_set_new(p, "aud", json_string("orders-admin"));
    ck_assert_ptr_nonnull(ot_logout_check(&lt, logout_header(), p, &x, ot_test_pool));

    ck_assert_ptr_null(ot_admin_check(&act, js("{\"id\":\"r1\",\"expiration\":1796015030,"
        "\"resource\":\"orders-web\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":5}"),
        OT_ADMIN_PUSH_NOT_BEFORE, &x, ot_test_pool));
    ck_assert_str_eq(act.resource, "orders-web");
    ck_assert_ptr_null(ot_admin_check(&act, js("{\"id\":\"r2\",\"expiration\":1796015030,"
        "\"resource\":\"" CLIENT "\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":5}"),
        OT_ADMIN_PUSH_NOT_BEFORE, &x, ot_test_pool));
    ck_assert_str_eq(act.resource, CLIENT);
    ck_assert_ptr_nonnull(ot_admin_check(&act, js("{\"id\":\"r3\",\"expiration\":1796015030,"
        "\"resource\":\"orders-admin\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":5}"),
        OT_ADMIN_PUSH_NOT_BEFORE, &x, ot_test_pool));
}
END_TEST

START_TEST(admin_kinds_by_path)
{
    ck_assert_int_eq(ot_admin_kind("k_push_not_before"), OT_ADMIN_PUSH_NOT_BEFORE);
    ck_assert_int_eq(ot_admin_kind("k_logout"), OT_ADMIN_LOGOUT);
    ck_assert_int_eq(ot_admin_kind("k_test_available"), OT_ADMIN_TEST_AVAILABLE);
    ck_assert_int_eq(ot_admin_kind("k_push_not_before/"), -1);
    ck_assert_int_eq(ot_admin_kind("k_query_bearer_token"), -1);
    ck_assert_int_eq(ot_admin_kind(""), -1);
    ck_assert_int_eq(ot_admin_kind(NULL), -1);
}
END_TEST

START_TEST(admin_push_not_before)
{
    ot_admin_t act;

    ck_assert_ptr_null(admin("{\"id\":\"d9b1\",\"expiration\":1796015030,\"resource\":\"" CLIENT
                             "\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":1796015000}",
                             OT_ADMIN_PUSH_NOT_BEFORE, &act));
    ck_assert_str_eq(act.id, "d9b1");
    ck_assert_int_eq(act.not_before, 1796015000);
    ck_assert_int_eq(act.expiration, 1796015030);
    ck_assert_ptr_null(admin("{\"id\":\"x\",\"expiration\":1796015000,\"resource\":\"" CLIENT
                             "\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":0}",
                             OT_ADMIN_PUSH_NOT_BEFORE, &act));
    ck_assert_int_eq(act.not_before, 0);
}
END_TEST

START_TEST(admin_refusals)
{
    ot_admin_t act;
    const char *bad[] = {
        /* action of another path */
        "{\"id\":\"x\",\"expiration\":1796015030,\"resource\":\"" CLIENT "\",\"action\":\"LOGOUT\","
        "\"notBefore\":1}",
        /* another resource */
        "{\"id\":\"x\",\"expiration\":1796015030,\"resource\":\"other\",\"action\":"
        "\"PUSH_NOT_BEFORE\",\"notBefore\":1}",
        /* expired */
        "{\"id\":\"x\",\"expiration\":1796014999,\"resource\":\"" CLIENT "\",\"action\":"
        "\"PUSH_NOT_BEFORE\",\"notBefore\":1}",
        /* no expiration, no id, no notBefore, a negative one */
        "{\"id\":\"x\",\"resource\":\"" CLIENT "\",\"action\":\"PUSH_NOT_BEFORE\",\"notBefore\":1}",
        "{\"expiration\":1796015030,\"resource\":\"" CLIENT "\",\"action\":\"PUSH_NOT_BEFORE\","
        "\"notBefore\":1}",
        "{\"id\":\"x\",\"expiration\":1796015030,\"resource\":\"" CLIENT "\",\"action\":"
        "\"PUSH_NOT_BEFORE\"}",
        "{\"id\":\"x\",\"expiration\":1796015030,\"resource\":\"" CLIENT "\",\"action\":"
        "\"PUSH_NOT_BEFORE\",\"notBefore\":-5}",
        "{\"id\":\"x\",\"expiration\":1796015030,\"resource\":\"" CLIENT "\",\"action\":"
        "\"PUSH_NOT_BEFORE\",\"notBefore\":\"5\"}",
        "[]",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(admin(bad[i], OT_ADMIN_PUSH_NOT_BEFORE, &act) != NULL, "accepted %s",
                      bad[i]);
    }
}
END_TEST

START_TEST(admin_logout_and_test)
{
    ot_admin_t act;

    ck_assert_ptr_null(admin("{\"id\":\"a1\",\"expiration\":1796015030,\"resource\":\"" CLIENT
                             "\",\"action\":\"LOGOUT\",\"adapterSessionIds\":null,\"notBefore\":"
                             "1796015000,\"keycloakSessionIds\":[\"s1\",\"s2\"]}",
                             OT_ADMIN_LOGOUT, &act));
    ck_assert_int_eq(act.not_before, 1796015000);
    ck_assert_int_eq(act.sids->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(act.sids, 1, const char *), "s2");
    ck_assert_ptr_null(admin("{\"id\":\"a2\",\"expiration\":1796015030,\"resource\":\"" CLIENT
                             "\",\"action\":\"LOGOUT\",\"keycloakSessionIds\":null}",
                             OT_ADMIN_LOGOUT, &act));
    ck_assert_int_eq(act.not_before, 0);
    ck_assert_int_eq(act.sids->nelts, 0);
    ck_assert_ptr_nonnull(admin("{\"id\":\"a3\",\"expiration\":1796015030,\"resource\":\""
                                CLIENT "\",\"action\":\"LOGOUT\",\"keycloakSessionIds\":[1]}",
                                OT_ADMIN_LOGOUT, &act));
    ck_assert_ptr_nonnull(admin("{\"id\":\"a4\",\"expiration\":1796015030,\"resource\":\""
                                CLIENT "\",\"action\":\"LOGOUT\",\"keycloakSessionIds\":\"s1\"}",
                                OT_ADMIN_LOGOUT, &act));
    ck_assert_ptr_null(admin("{\"id\":\"t\",\"expiration\":1796015030,\"resource\":\"" CLIENT
                             "\",\"action\":\"TEST_AVAILABILITY\"}", OT_ADMIN_TEST_AVAILABLE,
                             &act));
    ck_assert_ptr_nonnull(admin("{\"id\":\"t\",\"expiration\":1796015030,\"resource\":\""
                                CLIENT "\",\"action\":\"TEST_AVAILABILITY\"}",
                                OT_ADMIN_LOGOUT, &act));
}
END_TEST

Suite *suite_logout(void)
{
    Suite *s = suite_create("logout");
    TCase *tc = tcase_create("logout");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, logout_keycloak_token_accepted);
    tcase_add_test(tc, logout_typ_header);
    tcase_add_test(tc, logout_iss_and_aud);
    tcase_add_test(tc, logout_audience_list);
    tcase_add_test(tc, logout_times);
    tcase_add_test(tc, logout_events_nonce_subject);
    tcase_add_test(tc, logout_needs_sub_or_sid);
    tcase_add_test(tc, admin_kinds_by_path);
    tcase_add_test(tc, admin_push_not_before);
    tcase_add_test(tc, admin_refusals);
    tcase_add_test(tc, admin_logout_and_test);
    suite_add_tcase(s, tc);
    return s;
}
