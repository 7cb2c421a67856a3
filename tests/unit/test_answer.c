/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_answer.h"
#include "ot_entry.h"
#include "ot_judge.h"
#include "ot_introspect.h"

#define NOW 1796014600

static ot_answer_t *parse(const char *json)
{
    const char *err = NULL;
    ot_answer_t *a = ot_answer_parse(json, strlen(json), &err, ot_test_pool);

    ck_assert_msg(a != NULL, "parse failed: %s", err ? err : "?");
    return a;
}

static const char *refusal(const char *json)
{
    const char *err = NULL;

    ck_assert_ptr_null(ot_answer_parse(json, strlen(json), &err, ot_test_pool));
    ck_assert_ptr_nonnull(err);
    return err;
}

static ot_verdict_t judge(const char *json, const char *iss, const char *aud, int offline_ok)
{
    ot_policy_t pol = { iss, aud, offline_ok, NULL, 0 };
    return ot_answer_judge(parse(json), &pol, NOW);
}

START_TEST(only_objects_with_boolean_active_are_answers)
{
    ck_assert_ptr_nonnull(strstr(refusal("not json"), "not JSON"));
    /* jansson quotes the input after "near": none of it may reach the log. */
    ck_assert_ptr_null(strstr(refusal("{\"active\":true,\"sub\":secret-claim}"), "secret"));
    ck_assert_ptr_nonnull(strstr(refusal("[1,2]"), "not a JSON object"));
    ck_assert_ptr_nonnull(strstr(refusal("{\"sub\":\"x\"}"), "no \"active\""));
    ck_assert_ptr_nonnull(strstr(refusal("{\"active\":\"true\"}"), "not a boolean"));
    ck_assert_ptr_nonnull(strstr(refusal("{\"active\":1}"), "not a boolean"));
    refusal("{\"active\":true,\"active\":false}");                /* duplicate keys */
    refusal("{\"active\":true,\"sub\":\"a\\u0000b\"}");           /* NUL in a claim */
    refusal("{\"active\":true,\"sub\":\"\xff\xfe\"}");            /* invalid UTF-8 */
    ck_assert_int_eq(parse("{\"active\":false}")->active, 0);
}
END_TEST

/** The claim's value, type and text, read by ot_answer_parse and by jansson alone. */
static void claim_is(const char *json, const char *name, char type, const char *value,
                     const char *text)
{
    const char *err = NULL;
    ot_answer_t *both[2];
    int i;

    both[0] = parse(json);
    both[1] = ot_answer_parse_tree(json, strlen(json), &err, ot_test_pool);
    ck_assert_ptr_nonnull(both[1]);
    for (i = 0; i < 2; i++) {
        const ot_claim_t *c = ot_answer_claim(both[i], name);

        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->type, type);
        ck_assert_str_eq(c->value, value);
        ck_assert_int_eq(c->value_len, strlen(value));
        ck_assert_str_eq(c->text, text);
    }
}

START_TEST(plain_answers_are_read_without_a_tree)
{
    const char *plain = "{ \"active\": true, \"sub\": \"a b\", \"exp\": 1796018200,\n"
                        "  \"l\": [\"a,b\", \"c\", 1, true], \"e\": [], \"o\": {},\n"
                        "  \"x\": {\"a\": [1, {\"b\": \"c\"}]}, \"z\": null, \"f\": false }";

    /* Read by the plain reader: no JSON tree until one is asked for. */
    ck_assert_ptr_null(parse(plain)->json);
    claim_is(plain, "sub", 's', "a b", "a b");
    claim_is(plain, "exp", 'n', "1796018200", "1796018200");
    claim_is(plain, "l", 'l', "[\"a,b\",\"c\",1,true]", "a,b,c,1,true");
    claim_is(plain, "e", 'l', "[]", "");
    claim_is(plain, "o", 'j', "{}", "{}");
    claim_is(plain, "x", 'j', "{\"a\":[1,{\"b\":\"c\"}]}", "{\"a\":[1,{\"b\":\"c\"}]}");
    claim_is(plain, "z", 'z', "null", "");
    claim_is(plain, "f", 'b', "false", "false");
    ck_assert_int_eq(parse(plain)->exp, 1796018200);
    ck_assert_ptr_nonnull(ot_answer_json(parse(plain)));

    /* Anything else is left to jansson, which gives the same claims or the refusal. */
    ck_assert_ptr_nonnull(parse("{\"active\":true,\"sub\":\"a\\/b\"}")->json);
    claim_is("{\"active\":true,\"sub\":\"a\\/b\"}", "sub", 's', "a/b", "a/b");
    claim_is("{\"active\":true,\"n\":-0}", "n", 'n', "0", "0");
    claim_is("{\"active\":true,\"n\":1.5}", "n", 'n', "1.5", "1.5");
    claim_is("{\"active\":true,\"n\":1234567890123456789}", "n", 'n', "1234567890123456789",
             "1234567890123456789");
    claim_is("{\"active\":true,\"d\":\"a\x7f" "b\"}", "d", 's', "a\x7f" "b", "a b");
    refusal("{\"active\":true,\"x\":{\"a\":1,\"a\":2}}");     /* a duplicate, nested */
    refusal("{\"active\":true,\"n\":01}");
    refusal("{\"active\":true,\"n\":[1,]}");
    refusal("{\"active\":true} x");
    ck_assert_ptr_null(ot_answer_parse("{\"active\":true}\0", 16, &(const char *){ NULL },
                                       ot_test_pool));       /* a NUL after the object */
}
END_TEST

/** {"active":<first>, "m0":0, .. "m<n-1>":0, "<name>":<last>} */
static const char *many_members(const char *first, int n, const char *name, const char *last)
{
    char *doc = apr_psprintf(ot_test_pool, "{\"active\":%s", first);
    int i;

    for (i = 0; i < n; i++) {
        doc = apr_psprintf(ot_test_pool, "%s,\"m%d\":%d", doc, i, i);
    }
    return apr_psprintf(ot_test_pool, "%s,\"%s\":%s}", doc, name, last);
}

START_TEST(active_is_read_only_at_the_top_once_whatever_its_spelling)
{
    const ot_claim_t *c;
    ot_answer_t *a;

    /* "active" inside a claim, or in a string, is not the answer's */
    ck_assert_int_eq(parse("{\"active\":false,\"x\":{\"active\":true}}")->active, 0);
    ck_assert_int_eq(parse("{\"x\":[{\"active\":true}],\"active\":false}")->active, 0);
    ck_assert_int_eq(parse("{\"active\":false,\"sub\":\"\\\"active\\\":true\"}")->active, 0);
    ck_assert_ptr_nonnull(strstr(refusal("{\"x\":{\"active\":true}}"), "no \"active\""));
    /* spelled with escapes it is the same name: read, and twice refused */
    ck_assert_int_eq(parse("{\"\\u0061ctive\":false}")->active, 0);
    ck_assert_int_eq(parse("{\"\\u0061ctive\":true,\"sub\":\"u\"}")->active, 1);
    refusal("{\"\\u0061ctive\":false,\"active\":true}");
    refusal("{\"active\":false,\"\\u0061ctiv\\u0065\":true}");
    refusal("{\"active\":false,\"act\\u0069ve\":true,\"sub\":\"u\"}");
    /* twice, far apart: more members than the plain reader checks; jansson refuses */
    refusal(many_members("false", 70, "active", "true"));
    refusal(many_members("false", 70, "\\u0061ctive", "true"));
    ck_assert_int_eq(parse(many_members("false", 70, "z", "true"))->active, 0);
    /* CR and LF made by escapes reach the back end's texts as spaces, in any claim shape */
    a = parse("{\"active\":true,\"name\":\"x\\r\\nX-Evil: 1\","
              "\"o\":{\"k\":\"a\\u000d\\u000ab\\u007f\"},\"l\":[\"a\\nb\",\"c\"]}");
    ck_assert_ptr_nonnull(c = ot_answer_claim(a, "name"));
    ck_assert_str_eq(c->text, "x  X-Evil: 1");
    ck_assert_ptr_nonnull(c = ot_answer_claim(a, "o"));
    ck_assert(strpbrk(c->text, "\r\n\x7f") == NULL);
    ck_assert_ptr_nonnull(c = ot_answer_claim(a, "l"));
    ck_assert_str_eq(c->text, "a b,c");
}
END_TEST

START_TEST(deep_nesting_is_refused)
{
    apr_size_t depth = 100000, i;
    char *deep = apr_palloc(ot_test_pool, 2 * depth + 32), *o = deep;

    o += sprintf(o, "{\"active\":true,\"x\":");
    for (i = 0; i < depth; i++) *o++ = '[';
    for (i = 0; i < depth; i++) *o++ = ']';
    *o++ = '}';
    *o = '\0';
    refusal(deep);
}
END_TEST

START_TEST(oversized_answer_is_refused)
{
    const char *err = NULL;
    apr_size_t n = OT_ANSWER_MAX + 1;
    char *big = apr_palloc(ot_test_pool, n);

    memset(big, ' ', n);
    ck_assert_ptr_null(ot_answer_parse(big, n, &err, ot_test_pool));
    ck_assert_ptr_nonnull(strstr(err, "256 KiB"));
}
END_TEST

START_TEST(kinds_follow_the_contract)
{
    ot_answer_t *a;

    a = parse("{\"active\":true,\"typ\":\"Bearer\",\"scope\":\"openid offline_access\"}");
    ck_assert_int_eq(a->kind, OT_KIND_ACCESS);
    ck_assert(!a->kind_refused);
    a = parse("{\"active\":true,\"typ\":\"Offline\"}");
    ck_assert_int_eq(a->kind, OT_KIND_OFFLINE);
    ck_assert(parse("{\"active\":true,\"typ\":\"Refresh\"}")->kind_refused);
    ck_assert(parse("{\"active\":true,\"typ\":\"ID\"}")->kind_refused);
    ck_assert(parse("{\"active\":true,\"typ\":7}")->kind_refused);
    a = parse("{\"active\":true,\"token_type\":\"Bearer\",\"scope\":\"offline_access\"}");
    ck_assert_int_eq(a->kind, OT_KIND_ACCESS);
    a = parse("{\"active\":true,\"scope\":\"openid offline_access\"}");
    ck_assert_int_eq(a->kind, OT_KIND_OFFLINE);
    a = parse("{\"active\":true,\"scope\":\"openid not_offline_access\"}");
    ck_assert_int_eq(a->kind, OT_KIND_ACCESS);
}
END_TEST

START_TEST(verdicts)
{
    ck_assert_int_eq(judge("{\"active\":false}", NULL, NULL, 1), OT_VERDICT_INACTIVE);
    ck_assert_int_eq(judge("{\"active\":true,\"sub\":\"a\"}", NULL, NULL, 1), OT_VERDICT_OK);
    /* time */
    ck_assert_int_eq(judge("{\"active\":true,\"exp\":1796014599}", NULL, NULL, 1),
                     OT_VERDICT_EXPIRED);
    ck_assert_int_eq(judge("{\"active\":true,\"exp\":1796014600}", NULL, NULL, 1),
                     OT_VERDICT_EXPIRED);
    ck_assert_int_eq(judge("{\"active\":true,\"exp\":\"soon\"}", NULL, NULL, 1),
                     OT_VERDICT_EXPIRED);
    ck_assert_int_eq(judge("{\"active\":true,\"exp\":1796014601.5}", NULL, NULL, 1),
                     OT_VERDICT_OK);
    /* exp in milliseconds would never expire: it is not taken for a date */
    ck_assert_int_eq(judge("{\"active\":true,\"exp\":1796014601000}", NULL, NULL, 1),
                     OT_VERDICT_EXPIRED);
    ck_assert_int_eq(judge("{\"active\":true,\"nbf\":1796014601}", NULL, NULL, 1),
                     OT_VERDICT_NOT_YET);
    ck_assert_int_eq(judge("{\"active\":true,\"nbf\":1796014600}", NULL, NULL, 1),
                     OT_VERDICT_OK);
    /* issuer: must match when both are there */
    ck_assert_int_eq(judge("{\"active\":true,\"iss\":\"https://a\"}", "https://a", NULL, 1),
                     OT_VERDICT_OK);
    ck_assert_int_eq(judge("{\"active\":true,\"iss\":\"https://b\"}", "https://a", NULL, 1),
                     OT_VERDICT_ISSUER);
    ck_assert_int_eq(judge("{\"active\":true,\"iss\":[\"https://a\"]}", "https://a", NULL, 1),
                     OT_VERDICT_ISSUER);
    ck_assert_int_eq(judge("{\"active\":true}", "https://a", NULL, 1), OT_VERDICT_OK);
    /* audience: string or array; offline tokens exempt */
    ck_assert_int_eq(judge("{\"active\":true,\"aud\":\"api\"}", NULL, "api", 1), OT_VERDICT_OK);
    ck_assert_int_eq(judge("{\"active\":true,\"aud\":[\"x\",\"api\"]}", NULL, "api", 1),
                     OT_VERDICT_OK);
    ck_assert_int_eq(judge("{\"active\":true,\"aud\":[\"x\"]}", NULL, "api", 1),
                     OT_VERDICT_AUDIENCE);
    ck_assert_int_eq(judge("{\"active\":true}", NULL, "api", 1), OT_VERDICT_AUDIENCE);
    ck_assert_int_eq(judge("{\"active\":true,\"typ\":\"Offline\",\"aud\":\"https://realm\"}",
                           NULL, "api", 1), OT_VERDICT_OK);
    /* kinds */
    ck_assert_int_eq(judge("{\"active\":true,\"typ\":\"Offline\"}", NULL, NULL, 0),
                     OT_VERDICT_OFFLINE_DENIED);
    ck_assert_int_eq(judge("{\"active\":true,\"typ\":\"Refresh\"}", NULL, NULL, 1),
                     OT_VERDICT_KIND);
    ck_assert_int_eq(judge("{\"active\":true,\"cnf\":{\"jkt\":\"x\"}}", NULL, NULL, 1),
                     OT_VERDICT_BOUND);
}
END_TEST

START_TEST(keycloak_offline_answer_without_exp_is_accepted)
{
    const char *kc = "{\"iat\":1796014548,\"jti\":\"7d8f\",\"iss\":\"https://sso/realms/acme\","
        "\"aud\":\"https://sso/realms/acme\",\"sub\":\"7c9e\",\"typ\":\"Offline\","
        "\"azp\":\"orders-web\",\"sid\":\"3f1c\",\"scope\":\"openid offline_access\","
        "\"client_id\":\"orders-web\",\"username\":\"ada\",\"token_type\":\"Offline\","
        "\"active\":true}";
    ot_answer_t *a = parse(kc);

    ck_assert_int_eq(a->kind, OT_KIND_OFFLINE);
    ck_assert_int_eq(a->exp, 0);
    ck_assert_int_eq(a->iat, 1796014548);
    ck_assert_str_eq(a->sid, "3f1c");
    ck_assert_int_eq(judge(kc, "https://sso/realms/acme", "orders-api", 1), OT_VERDICT_OK);
}
END_TEST

/* OfftokOfflineClients: the client an offline token was issued to (azp, else client_id). */
START_TEST(offline_tokens_only_of_listed_clients)
{
    apr_array_header_t *clients = apr_array_make(ot_test_pool, 2, sizeof(const char *));
    ot_policy_t pol = { NULL, "orders-api", 1, NULL, 0 };
    const char *azp = "{\"active\":true,\"typ\":\"Offline\",\"azp\":\"orders-web\"}";
    const char *cid = "{\"active\":true,\"typ\":\"Offline\",\"client_id\":\"orders-web\"}";
    const char *none = "{\"active\":true,\"typ\":\"Offline\"}";
    const char *access = "{\"active\":true,\"typ\":\"Bearer\",\"azp\":\"other\","
                         "\"aud\":\"orders-api\"}";

    APR_ARRAY_PUSH(clients, const char *) = "mobile";
    pol.offline_clients = clients;
    ck_assert_int_eq(ot_answer_judge(parse(azp), &pol, NOW), OT_VERDICT_OFFLINE_CLIENT);
    ck_assert_int_eq(ot_answer_judge(parse(none), &pol, NOW), OT_VERDICT_OFFLINE_CLIENT);
    APR_ARRAY_PUSH(clients, const char *) = "orders-web";
    ck_assert_int_eq(ot_answer_judge(parse(azp), &pol, NOW), OT_VERDICT_OK);
    ck_assert_int_eq(ot_answer_judge(parse(cid), &pol, NOW), OT_VERDICT_OK);
    ck_assert_int_eq(ot_answer_judge(parse(none), &pol, NOW), OT_VERDICT_OFFLINE_CLIENT);
    /* access tokens are judged by their audience, not by this list */
    ck_assert_int_eq(ot_answer_judge(parse(access), &pol, NOW), OT_VERDICT_OK);
}
END_TEST

START_TEST(introspection_request_and_results)
{
    ot_http_req_t req;
    ot_http_resp_t resp;
    ot_introspect_t in = { "https://i/introspect", "rs client", "p@ss:w", OT_AUTH_BASIC,
                           "refresh_token", "a+b/c=", NULL, 0 };
    ot_answer_t *a;
    ot_err_kind_t kind;
    const char *why;

    memset(&req, 0, sizeof(req));
    ot_introspect_request(&req, &in, ot_test_pool);
    ck_assert_str_eq(req.body, "token=a%2Bb%2Fc%3D&token_type_hint=refresh_token");
    /* base64("rs+client:p%40ss%3Aw") */
    ck_assert_str_eq(req.authorization, "Basic cnMrY2xpZW50OnAlNDBzcyUzQXc=");
    in.auth = OT_AUTH_POST;
    in.hint = NULL;
    ot_introspect_request(&req, &in, ot_test_pool);
    ck_assert_ptr_null(req.authorization);
    ck_assert_str_eq(req.body, "token=a%2Bb%2Fc%3D&client_id=rs+client&client_secret=p%40ss%3Aw");

    memset(&resp, 0, sizeof(resp));
    resp.err = OT_HTTP_OK;
    resp.status = 302;
    ck_assert_int_ne(ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(kind, OT_ERR_REDIRECT);
    resp.status = 401;
    ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool);
    ck_assert_int_eq(kind, OT_ERR_CLIENT_AUTH);
    ck_assert_ptr_nonnull(strstr(why, "client credentials"));
    resp.status = 503;
    ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool);
    ck_assert_int_eq(kind, OT_ERR_STATUS);
    resp.status = 200;
    resp.body = "<html>";
    resp.body_len = 6;
    ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool);
    ck_assert_int_eq(kind, OT_ERR_PARSE);
    resp.body = "{\"active\":true}";
    resp.body_len = strlen(resp.body);
    ck_assert_int_eq(ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool), APR_SUCCESS);
    ck_assert(a->active);
    resp.err = OT_HTTP_ETIMEOUT;
    ot_introspect_result(&a, &kind, &why, &resp, ot_test_pool);
    ck_assert_int_eq(kind, OT_ERR_TIMEOUT);
}
END_TEST


#define RICH "{\"active\":true,\"sub\":\"ada\",\"iss\":\"https://kc/realms/x\",\"exp\":1796018200," \
    "\"iat\":1796014000,\"typ\":\"Bearer\",\"aud\":[\"rs-client\",\"account\"],\"n\":null," \
    "\"ratio\":0.1,\"big\":9007199254740993,\"ok\":false,\"ctl\":\"a\\tb\"," \
    "\"realm_access\":{\"roles\":[\"admin\",\"x\\u007fy\"]},\"mixed\":[1,null]," \
    "\"scope\":\"openid profile\"}"

START_TEST(digest_round_trip_keeps_every_claim)
{
    ot_answer_t *a = parse(RICH), *b;
    ot_policy_t pol = { "https://kc/realms/x", "rs-client", 0, NULL, 0 };
    apr_size_t len;
    const char *d = ot_answer_digest(a, &len, ot_test_pool);
    int i;

    ck_assert_ptr_nonnull(d);
    b = ot_answer_from_digest(d, len, ot_test_pool);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->nclaims, a->nclaims);
    for (i = 0; i < a->nclaims; i++) {
        ck_assert_str_eq(b->claims[i].name, a->claims[i].name);
        ck_assert_str_eq(b->claims[i].text, a->claims[i].text);
        ck_assert_int_eq(b->claims[i].type, a->claims[i].type);
    }
    ck_assert_ptr_null(b->json);         /* a hit builds no JSON tree ... */
    ck_assert_int_eq(ot_answer_judge(b, &pol, NOW), OT_VERDICT_OK);
    ck_assert_int_eq(ot_answer_judge(b, &pol, 1796018200), OT_VERDICT_EXPIRED);
    pol.audience = "other";
    ck_assert_int_eq(ot_answer_judge(b, &pol, NOW), OT_VERDICT_AUDIENCE);
    ck_assert_str_eq(b->sub, "ada");
    ck_assert_str_eq(b->scope, "openid profile");
    ck_assert_str_eq(ot_answer_claim(b, "aud")->text, "rs-client,account");
    ck_assert_str_eq(ot_answer_claim(b, "n")->text, "");
    ck_assert_str_eq(ot_answer_claim(b, "ratio")->text, "0.1");
    ck_assert_str_eq(ot_answer_claim(b, "big")->text, "9007199254740993");
    ck_assert_str_eq(ot_answer_claim(b, "ctl")->text, "a b");
    ck_assert_str_eq(ot_answer_claim(b, "realm_access")->text,
                     "{\"roles\":[\"admin\",\"x y\"]}");
    ck_assert_str_eq(ot_answer_claim(b, "mixed")->text, "[1,null]");
    /* ... until something asks for one; it is the answer's JSON, control characters and all. */
    ck_assert(json_equal(a->json, (json_t *)ot_answer_json(b)));
}
END_TEST

START_TEST(malformed_digests_are_refused)
{
    ot_answer_t *a = parse("{\"active\":true,\"sub\":\"ada\",\"n\":null}");
    apr_size_t len, n;
    const char *d = ot_answer_digest(a, &len, ot_test_pool);
    char *bad;

    for (n = 0; n < len; n++) {          /* every truncation */
        ck_assert_ptr_null(ot_answer_from_digest(d, n, ot_test_pool));
    }
    bad = apr_pmemdup(ot_test_pool, d, len + 1);
    bad[len] = 'x';                      /* trailing bytes */
    ck_assert_ptr_null(ot_answer_from_digest(bad, len + 1, ot_test_pool));
    bad[2] = 'q';                        /* an unknown type */
    ck_assert_ptr_null(ot_answer_from_digest(bad, len, ot_test_pool));
    bad = apr_pmemdup(ot_test_pool, d, len);
    bad[1] = 2;                          /* fewer claims than are there */
    ck_assert_ptr_null(ot_answer_from_digest(bad, len, ot_test_pool));
    bad[1] = 4;                          /* more */
    ck_assert_ptr_null(ot_answer_from_digest(bad, len, ot_test_pool));
    /* Not a positive answer: no "active": true. */
    ck_assert_ptr_null(ot_answer_from_digest("\0\1ssub\0ada\0", 11, ot_test_pool));
    ck_assert_ptr_null(ot_answer_from_digest("\0\1bactive\0false\0", 16, ot_test_pool));
    ck_assert_ptr_null(ot_answer_digest(parse("{\"active\":false}"), &len, ot_test_pool));
}
END_TEST

START_TEST(forged_digest_carries_no_control_character)
{
    static const char forged[] = "\0\2bactive\0true\0ssub\0a\nb\0";
    ot_answer_t *b = ot_answer_from_digest(forged, sizeof(forged) - 1, ot_test_pool);

    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(ot_answer_claim(b, "sub")->text, "a b");
}
END_TEST

Suite *suite_answer(void)
{
    Suite *s = suite_create("answer");
    TCase *tc = tcase_create("answer");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, only_objects_with_boolean_active_are_answers);
    tcase_add_test(tc, plain_answers_are_read_without_a_tree);
    tcase_add_test(tc, active_is_read_only_at_the_top_once_whatever_its_spelling);
    tcase_add_test(tc, deep_nesting_is_refused);
    tcase_add_test(tc, oversized_answer_is_refused);
    tcase_add_test(tc, kinds_follow_the_contract);
    tcase_add_test(tc, offline_tokens_only_of_listed_clients);
    tcase_add_test(tc, verdicts);
    tcase_add_test(tc, keycloak_offline_answer_without_exp_is_accepted);
    tcase_add_test(tc, introspection_request_and_results);
    tcase_add_test(tc, digest_round_trip_keeps_every_claim);
    tcase_add_test(tc, malformed_digests_are_refused);
    tcase_add_test(tc, forged_digest_carries_no_control_character);
    suite_add_tcase(s, tc);
    return s;
}
