/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * ot_entry_of: the one builder of cache entries, for introspection answers and locally verified
 * JWTs alike (azp, the iss fallback, the times), and a kept JWT verdict under pushed revocations;
 * ot_local_candidate's reading of the payload's typ (ot_jwt_peek's scanner) against the
 * jansson reading it replaced; and ot_answer_from_jwt_text (the plain reader) against
 * ot_answer_from_jwt (jansson): the same answers, claim for claim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_answer.h"
#include "ot_claims.h"
#include "ot_cache.h"
#include "ot_entry.h"
#include "ot_json.h"
#include "ot_jwt_verify.h"
#include "ot_revoke.h"
#include "ot_shm.h"
#include "ot_util.h"

#define ISS "https://kc.example:8443/realms/test"
#define FETCHED apr_time_from_sec(1796015000)
#define TTL apr_time_from_sec(3600)

static ot_answer_t *jwt(const char *json)
{
    const char *err = NULL;
    ot_answer_t *a = ot_answer_from_jwt(ot_json_parse(json, strlen(json), NULL, ot_test_pool),
                                        &err, ot_test_pool);

    ck_assert_ptr_nonnull(a);
    return a;
}

static ot_answer_t *answer(const char *json)
{
    const char *err = NULL;
    ot_answer_t *a = ot_answer_parse(json, strlen(json), &err, ot_test_pool);

    ck_assert_ptr_nonnull(a);
    return a;
}

START_TEST(builds_a_jwt_entry_as_an_answer_entry)
{
    ot_cache_entry_t e, f;

    ot_entry_of(&e, jwt("{\"iss\":\"" ISS "\",\"sub\":\"ada\",\"sid\":\"s1\",\"azp\":\"app\","
                        "\"iat\":1796015000,\"exp\":1796015300,\"typ\":\"Bearer\"}"),
                "https://other.example", FETCHED, TTL);
    ck_assert_int_eq(e.active, 1);
    ck_assert_int_eq(e.offline, 0);
    ck_assert_str_eq(e.iss, ISS);
    ck_assert_str_eq(e.sub, "ada");
    ck_assert_str_eq(e.sid, "s1");
    ck_assert_str_eq(e.azp, "app");         /* a kept local verdict knows its client */
    ck_assert(e.fetched == FETCHED);
    ck_assert(e.iat == FETCHED);
    ck_assert(e.exp == apr_time_from_sec(1796015300));
    ck_assert(e.drop_after == e.exp);       /* before fetched + TTL */
    ck_assert_ptr_null(e.claims);
    /* The same claims as an introspection answer: the same entry. */
    ot_entry_of(&f, answer("{\"active\":true,\"iss\":\"" ISS "\",\"sub\":\"ada\",\"sid\":\"s1\","
                           "\"azp\":\"app\",\"iat\":1796015000,\"exp\":1796015300,"
                           "\"typ\":\"Bearer\"}"), "https://other.example", FETCHED, TTL);
    ck_assert_str_eq(f.iss, e.iss);
    ck_assert_str_eq(f.azp, e.azp);
    ck_assert(f.exp == e.exp && f.iat == e.iat && f.drop_after == e.drop_after);
    ck_assert_int_eq(f.offline, e.offline);
}
END_TEST

START_TEST(fallbacks_and_edges)
{
    ot_cache_entry_t e;

    /* No iss: the location's issuer; no azp: client_id (RFC 9068); no exp: the TTL bounds it. */
    ot_entry_of(&e, jwt("{\"sub\":\"bob\",\"client_id\":\"cli\"}"), ISS, FETCHED, TTL);
    ck_assert_str_eq(e.iss, ISS);
    ck_assert_str_eq(e.azp, "cli");
    ck_assert_ptr_null(e.sid);
    ck_assert(e.exp == 0 && e.iat == 0);
    ck_assert(e.drop_after == FETCHED + TTL);
    /* An azp that is not a string is no client: client_id is. */
    ot_entry_of(&e, jwt("{\"azp\":7,\"client_id\":\"cli\",\"exp\":1796099999}"), ISS, FETCHED,
                TTL);
    ck_assert_str_eq(e.azp, "cli");
    ck_assert(e.drop_after == FETCHED + TTL);   /* exp later than the TTL */
    /* An offline introspection answer, and an inactive one (nothing but its times). */
    ot_entry_of(&e, answer("{\"active\":true,\"typ\":\"Offline\",\"sub\":\"c\"}"), NULL,
                FETCHED, TTL);
    ck_assert_int_eq(e.offline, 1);
    ck_assert_ptr_null(e.iss);
    ot_entry_of(&e, answer("{\"active\":false}"), ISS, FETCHED, TTL);
    ck_assert_int_eq(e.active, 0);
    ck_assert_ptr_null(e.iss);
    ck_assert_ptr_null(e.azp);
    ck_assert(e.drop_after == FETCHED + TTL);
}
END_TEST

/* A not-before policy pushed for the token's own client (not the location's) finds the entry. */
START_TEST(not_before_of_the_tokens_client_applies_to_a_kept_jwt)
{
    ot_shm_t *s;
    ot_cache_entry_t e;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    ot_entry_of(&e, jwt("{\"iss\":\"" ISS "\",\"sub\":\"ada\",\"azp\":\"app\","
                        "\"iat\":1796015000,\"exp\":1796015300}"), ISS, FETCHED, TTL);
    ck_assert_int_eq(ot_revoke_applies(s, ISS, "rs", &e), 0);
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "app", 1796015001, 1,
                                              FETCHED + apr_time_from_sec(1)), APR_SUCCESS);
    ck_assert_int_ne(ot_revoke_applies(s, ISS, "rs", &e), 0);
    /* Without azp in the entry (as keep() made it before), the push was not seen. */
    e.azp = NULL;
    ck_assert_int_eq(ot_revoke_applies(s, ISS, "rs", &e), 0);
}
END_TEST

/* ---- candidacy: the scanner against jansson ------------------------------------------------ */

static const char *b64u(const char *s, apr_size_t len)
{
    char *t = apr_pstrdup(ot_test_pool, ot_b64_encode(s, len, ot_test_pool)), *c;

    for (c = t; *c; c++) {
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    }
    if ((c = strchr(t, '=')) != NULL) {
        *c = '\0';
    }
    return t;
}

/** What the jansson reading said: the payload an object whose typ is Bearer or DPoP. */
static int jansson_access(const char *payload)
{
    json_t *j = ot_json_parse(payload, strlen(payload), NULL, ot_test_pool);
    const char *typ = json_is_object(j) ? ot_json_string(j, "typ") : NULL;

    return typ && (strcmp(typ, "Bearer") == 0 || strcmp(typ, "DPoP") == 0);
}

static int candidate(const char *payload)
{
    const char *why = NULL, *h = "{\"alg\":\"RS256\"}";
    const char *token = apr_pstrcat(ot_test_pool, b64u(h, strlen(h)), ".",
                                    b64u(payload, strlen(payload)), ".c2ln", NULL);

    return ot_local_candidate(token, &why, ot_test_pool);
}

START_TEST(candidacy_as_with_jansson)
{
    static const char *const payloads[] = {
        "{\"typ\":\"Bearer\"}", "{\"typ\":\"DPoP\"}", " {\"sub\":\"a\", \"typ\" : \"Bearer\"} ",
        "{\"typ\":\"Bear\\u0065r\"}", "{\"typ\":\"bearer\"}", "{\"typ\":\"Offline\"}",
        "{\"typ\":\"Refresh\"}", "{\"typ\":null}", "{\"typ\":7}", "{\"typ\":[\"Bearer\"]}",
        "{\"typ\":{\"typ\":\"Bearer\"}}", "{\"x\":{\"typ\":\"Bearer\"}}", "{}",
        "{\"typ\":\"Bearer\",\"typ\":\"Bearer\"}", "{\"typ\":\"Offline\",\"typ\":\"Bearer\"}",
        "{\"t\\u0079p\":\"Bearer\"}", "[{\"typ\":\"Bearer\"}]", "\"Bearer\"", "null",
        "{\"typ\":\"Bearer\"} x", "{\"typ\":\"Bearer\"", "{\"typ\":\"Bearer\",}",
        "{\"typ\":\"Bearer\x01\"}", "{\"typ\":\"Bearer\",\"n\":1e999}",
        "{\"typ\":\"Bearer\",\"n\":01}", "{\"typ\":\"Bearer\",\"s\":\"\xff\"}",
        "{\"typ\":\"Bearer\",\"a\":[1,[2,[3,{\"b\":{}}]]],\"t\":true,\"f\":false,\"z\":null}",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
        "\"typ\":\"Bearer\"}",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        ck_assert_msg(candidate(payloads[i]) == jansson_access(payloads[i]), "payload %s",
                      payloads[i]);
    }
    /* A NUL inside the payload: neither reads a typ after it. */
    {
        static const char nul[] = "{\"typ\":\"Bearer\",\"x\":\"a\0b\"}";
        const char *why = NULL, *h = "{\"alg\":\"RS256\"}";
        const char *token = apr_pstrcat(ot_test_pool, b64u(h, strlen(h)), ".",
                                        b64u(nul, sizeof(nul) - 1), ".c2ln", NULL);
        ck_assert(!ot_local_candidate(token, &why, ot_test_pool));
    }
    /*
     * Another claim named twice: jansson refuses the payload, and so does the scanner
     * (ot_jscan.c checks every name), so the token is no candidate and the issuer is asked.
     */
    ck_assert(!candidate("{\"typ\":\"Bearer\",\"sub\":\"a\",\"sub\":\"b\"}"));
    ck_assert(!jansson_access("{\"typ\":\"Bearer\",\"sub\":\"a\",\"sub\":\"b\"}"));
}
END_TEST

/* ---- the answer of a payload: plain reader against jansson --------------------------------- */

static void same_str(const char *a, const char *b, const char *what, const char *payload)
{
    ck_assert_msg((a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0),
                  "%s differs (%s / %s) for %s", what, a ? a : "NULL", b ? b : "NULL", payload);
}

static const char *dumped(const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    const char *copy = s ? apr_pstrdup(ot_test_pool, s) : NULL;

    free(s);
    return copy;
}

static void same_answer_n(const char *payload, apr_size_t len)
{
    static const char *const dotted[] = {
        "realm_access.roles", "resource_access.rs.roles", "a.b.c", "cnf.jkt", "aud"
    };
    const char *e1 = NULL, *e2 = NULL, *d1, *d2;
    ot_answer_t *a = ot_answer_from_jwt(ot_json_parse(payload, len, NULL, ot_test_pool), &e1,
                                        ot_test_pool);
    ot_answer_t *b = ot_answer_from_jwt_text(payload, len, &e2, ot_test_pool);
    apr_size_t la = 0, lb = 0, i;

    if (a == NULL) {
        ck_assert_msg(b == NULL, "only the plain reader read %s", payload);
        same_str(e1, e2, "the error", payload);
        return;
    }
    ck_assert_msg(b != NULL, "only jansson read %s (%s)", payload, e2 ? e2 : "");
    ck_assert_int_eq(a->nclaims, b->nclaims);
    d1 = ot_answer_digest(a, &la, ot_test_pool);
    d2 = ot_answer_digest(b, &lb, ot_test_pool);
    ck_assert_msg(la == lb && memcmp(d1, d2, la) == 0, "claims differ for %s", payload);
    ck_assert(a->active == b->active && a->kind == b->kind && a->kind_refused == b->kind_refused);
    ck_assert(a->exp == b->exp && a->nbf == b->nbf && a->iat == b->iat);
    ck_assert(a->has_exp == b->has_exp && a->has_nbf == b->has_nbf && a->has_iss == b->has_iss
              && a->has_cnf == b->has_cnf && a->cnf_unknown == b->cnf_unknown
              && a->typ_dpop == b->typ_dpop);
    same_str(a->iss, b->iss, "iss", payload);
    same_str(a->sub, b->sub, "sub", payload);
    same_str(a->sid, b->sid, "sid", payload);
    same_str(a->scope, b->scope, "scope", payload);
    same_str(a->typ, b->typ, "typ", payload);
    same_str(a->cnf_jkt, b->cnf_jkt, "cnf_jkt", payload);
    same_str(a->cnf_x5t, b->cnf_x5t, "cnf_x5t", payload);
    same_str(a->aud ? a->aud->text : NULL, b->aud ? b->aud->text : NULL, "aud", payload);
    same_str(ot_answer_client(a), ot_answer_client(b), "client", payload);
    same_str(dumped(ot_answer_json(a)), dumped(ot_answer_json(b)), "the JSON", payload);
    for (i = 0; i < sizeof(dotted) / sizeof(dotted[0]); i++) {
        same_str(dumped(ot_claim_lookup(ot_answer_json(a), dotted[i])),
                 dumped(ot_claim_lookup(ot_answer_json(b), dotted[i])), dotted[i], payload);
    }
}

static void same_answer(const char *payload)
{
    same_answer_n(payload, strlen(payload));
}

#define KC "\"exp\":1796015300,\"iat\":1796015000,\"jti\":\"3f1c\",\"iss\":\"" ISS "\"," \
    "\"aud\":[\"rs\",\"account\"],\"sub\":\"ada\",\"typ\":\"Bearer\",\"azp\":\"app\"," \
    "\"sid\":\"s1\",\"acr\":\"1\",\"allowed-origins\":[\"https://app\"]," \
    "\"realm_access\":{\"roles\":[\"offline_access\",\"user\"]}," \
    "\"resource_access\":{\"rs\":{\"roles\":[\"read\"]},\"account\":{\"roles\":[]}}," \
    "\"scope\":\"openid profile email\",\"email_verified\":false,\"name\":\"Ada L\"," \
    "\"preferred_username\":\"ada\",\"given_name\":\"Ada\""

START_TEST(jwt_answer_as_with_jansson)
{
    static const char *const payloads[] = {
        "{" KC "}", " {\n\t" KC " }\r\n", "{}", " { } ", "{\"aud\":\"rs\"}",
        "{\"n\":-7,\"z\":0,\"big\":12345678901234567890,\"t\":true,\"f\":false,\"x\":null}",
        "{\"half\":1.5,\"e\":1e3,\"neg\":-0}", "{\"exp\":1796015300.9,\"nbf\":1}",
        "{\"exp\":\"1796015300\",\"iat\":-5,\"nbf\":null}",
        "{\"name\":\"Jos\\u00e9\",\"q\":\"a\\\"b\",\"nl\":\"a\\nb\",\"tab\":\"\\t\"}",
        "{\"name\":\"Jos\xc3\xa9\",\"emoji\":\"\xf0\x9f\x98\x80\"}",
        "{\"ctl\":\"a\x01" "b\"}", "{\"nul\":\"a\\u0000b\"}",
        "{\"cnf\":{\"jkt\":\"abc\"}}", "{\"cnf\":{\"jkt\":\"abc\",\"x5t#S256\":\"def\"}}",
        "{\"cnf\":{\"other\":1}}", "{\"cnf\":\"jkt\"}", "{\"cnf\":{}}",
        "{\"typ\":\"DPoP\",\"token_type\":\"DPoP\"}", "{\"typ\":\"Offline\"}",
        "{\"typ\":7}", "{\"token_type\":\"dpop\",\"scope\":\"offline_access\"}",
        "{\"azp\":5,\"client_id\":\"cli\"}",
        "{\"a\":{\"b\":{\"c\":[1,{\"d\":[]},\"x\"]}},\"e\":[[],[[]],{}]}",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}",
        "{\"active\":false,\"sub\":\"x\"}", "{\"active\":true}",
        "{\"sub\":\"a\",\"sub\":\"b\"}", "{\"s\":\"a\",\"s\" :\"a\"}",
        "[]", "\"x\"", "7", "null", "", " ", "{", "{,}", "{ ,\"a\":1}", "{\"a\":1,}",
        "{\"a\":1} x", "{\"a\":1}}", "{\"a\" 1}", "{'a':1}", "{\"a\":01}", "{\"a\":+1}",
        "{\"a\":tru}", "{\"a\":\"\xff\"}", "{\"\":1}", "{\"a.b\":1,\"a\":{\"b\":2}}",
        "{\"a\":\"\\ud800\"}",
    };
    char many[4096];
    apr_size_t i, n;
    const char *err = NULL;

    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        same_answer(payloads[i]);
    }
    /* A Keycloak token's payload is read without a JSON tree. */
    ck_assert_ptr_null(ot_answer_from_jwt_text("{" KC "}", strlen("{" KC "}"), &err,
                                               ot_test_pool)->json);
    /* More members than the plain reader checks for duplicates, and a NUL byte in the text. */
    n = (apr_size_t)snprintf(many, sizeof(many), "{");
    for (i = 0; i < 80; i++) {
        n += (apr_size_t)snprintf(many + n, sizeof(many) - n, "%s\"m%u\":%u", i ? "," : "",
                                  (unsigned)i, (unsigned)i);
    }
    snprintf(many + n, sizeof(many) - n, "}");
    same_answer(many);
    same_answer_n("{\"a\":\"x\0y\"}", 11);
    same_answer_n("{\"a\":1}\0", 8);
}
END_TEST

Suite *suite_entry_of(void)
{
    Suite *s = suite_create("entry_of");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, builds_a_jwt_entry_as_an_answer_entry);
    tcase_add_test(tc, fallbacks_and_edges);
    tcase_add_test(tc, not_before_of_the_tokens_client_applies_to_a_kept_jwt);
    tcase_add_test(tc, candidacy_as_with_jansson);
    tcase_add_test(tc, jwt_answer_as_with_jansson);
    suite_add_tcase(s, tc);
    return s;
}
