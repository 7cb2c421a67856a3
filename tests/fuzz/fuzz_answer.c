/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The issuer's answer: the input is the body of an HTTP 200 from the introspection endpoint.
 * It goes through ot_introspect_result (ot_answer_parse) and ot_answer_judge for several
 * policies and times, whose verdict must follow the contract. ot_answer_parse reads plain answers
 * with a reader of its own: it must accept exactly what jansson alone (ot_answer_parse_tree)
 * accepts and give the same claims. Then the answer goes through the cache as
 * mod_offtok_authn.c sends it there (its digest in an ot_cache_entry_t, encoded and decoded)
 * and back, where it must be judged the same, give the back end the same texts and become the
 * same JSON again.
 */
#include <string.h>
#include <apr_time.h>

#include "fuzz_common.h"
#include "ot_answer.h"
#include "ot_entry.h"
#include "ot_judge.h"
#include "ot_cache.h"
#include "ot_claims.h"
#include "ot_introspect.h"
#include "ot_json.h"

#define ISSUER "https://issuer.example/realms/test"

static const ot_policy_t policies[] = {
    { NULL, NULL, 0, NULL, 0 },
    { NULL, NULL, 1, NULL, 0 },
    { ISSUER, "rs-client", 0, NULL, 0 },
    { ISSUER, "rs-client", 1, NULL, 0 },
};

/** obj[key] as a number of seconds the contract accepts as a time, else -1. */
static double seconds(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    double d = json_is_number(v) ? json_number_value(v) : -1;

    return d >= 1.0 ? d : -1;
}

static int aud_has(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *v;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), want) == 0;
    }
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) {
            return 1;
        }
    }
    return 0;
}

/** An accepted answer, checked against the contract straight from the JSON. */
static void check_accepted(const ot_answer_t *a, const ot_policy_t *pol, apr_int64_t now)
{
    const json_t *j = ot_answer_json((ot_answer_t *)a);
    const char *typ = ot_json_string(j, "typ");
    const char *iss = ot_json_string(j, "iss");

    fuzz_require(json_is_true(json_object_get(j, "active")), "accepted only when active");
    fuzz_require(json_object_get(j, "cnf") == NULL, "a bound token is never accepted");
    fuzz_require(json_object_get(j, "exp") == NULL || seconds(j, "exp") > (double)now,
                 "accepted only before exp");
    fuzz_require(json_object_get(j, "nbf") == NULL
                 || (seconds(j, "nbf") > 0 && seconds(j, "nbf") < (double)now + 1),
                 "accepted only from nbf on");
    fuzz_require(json_object_get(j, "typ") == NULL
                 || (typ && (strcmp(typ, "Bearer") == 0 || strcmp(typ, "Offline") == 0)),
                 "typ is Bearer or Offline");
    fuzz_require(!pol->issuer || json_object_get(j, "iss") == NULL
                 || (iss && strcmp(iss, pol->issuer) == 0), "iss is OfftokIssuer");
    fuzz_require(a->kind == OT_KIND_ACCESS || pol->allow_offline, "offline only where allowed");
    fuzz_require(!pol->audience || a->kind == OT_KIND_OFFLINE
                 || aud_has(json_object_get(j, "aud"), pol->audience), "aud has OfftokAudience");
}

static void judge_all(const ot_answer_t *a, ot_verdict_t out[][3], const apr_int64_t now[3])
{
    size_t i, t;

    for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        for (t = 0; t < 3; t++) {
            out[i][t] = ot_answer_judge(a, &policies[i], now[t]);
            fuzz_require(ot_verdict_text(out[i][t]) != NULL, "every verdict has a text");
            if (out[i][t] == OT_VERDICT_OK) {
                check_accepted(a, &policies[i], now[t]);
            }
        }
    }
}

/** The entry mod_offtok_authn.c's to_cache makes of an answer. */
static int cache_entry(ot_cache_entry_t *e, const ot_answer_t *a, apr_pool_t *p)
{
    apr_time_t started = apr_time_from_sec(1700000000);

    memset(e, 0, sizeof(*e));
    e->fetched = started;
    e->drop_after = started + apr_time_from_sec(86400);
    e->active = a->active;
    if (a->active) {
        e->exp = a->exp ? apr_time_from_sec(a->exp) : 0;
        e->iat = a->iat ? apr_time_from_sec(a->iat) : 0;
        e->offline = a->kind == OT_KIND_OFFLINE;
        e->iss = a->iss;
        e->sub = a->sub;
        e->sid = a->sid;
        e->claims = ot_answer_digest(a, &e->claims_len, p);
        if (e->exp && e->exp < e->drop_after) {
            e->drop_after = e->exp;
        }
    }
    return !a->active || e->claims != NULL;
}

/** Through the cache and back: the answer must be judged as it was. */
static void round_trip(const ot_answer_t *a, ot_verdict_t before[][3], const apr_int64_t now[3],
                       apr_pool_t *p)
{
    ot_cache_entry_t e, back;
    ot_verdict_t after[4][3];
    ot_answer_t *b;
    char *buf;
    apr_size_t len;
    int i;

    if (!a->active || !cache_entry(&e, a, p)
        || ot_cache_entry_encode(&e, &buf, &len, p) != APR_SUCCESS) {
        return;
    }
    fuzz_require(ot_cache_entry_decode(&back, buf, len, p) == APR_SUCCESS,
                 "an encoded entry decodes");
    fuzz_require(back.claims_len == e.claims_len && memcmp(back.claims, e.claims, e.claims_len) == 0
                 && back.exp == e.exp && back.offline == e.offline, "the entry comes back whole");
    b = ot_answer_from_digest(back.claims, back.claims_len, p);
    fuzz_require(b != NULL && b->kind == a->kind, "the cached answer is the same kind");
    judge_all(b, after, now);
    fuzz_require(memcmp(before, after, sizeof(after)) == 0, "the cached answer is judged the same");
    fuzz_require(b->nclaims == a->nclaims, "every claim comes back");
    for (i = 0; i < a->nclaims; i++) {
        fuzz_require(strcmp(a->claims[i].name, b->claims[i].name) == 0
                     && strcmp(a->claims[i].text, b->claims[i].text) == 0
                     && a->claims[i].type == b->claims[i].type, "each with the same text");
    }
    fuzz_require(json_equal(ot_answer_json((ot_answer_t *)a), (json_t *)ot_answer_json(b)),
                 "and the same JSON");
}

static int same_str(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

/** The answer as ot_answer_parse read it (a) against jansson's reading (t). */
static void same_reading(ot_answer_t *a, const ot_answer_t *t)
{
    int i;

    fuzz_require(a->active == t->active && a->nclaims == t->nclaims && a->kind == t->kind
                 && a->kind_refused == t->kind_refused, "both readers: same answer");
    fuzz_require(a->exp == t->exp && a->nbf == t->nbf && a->iat == t->iat
                 && a->has_exp == t->has_exp && a->has_nbf == t->has_nbf
                 && a->has_iss == t->has_iss && a->has_cnf == t->has_cnf
                 && same_str(a->iss, t->iss) && same_str(a->sub, t->sub)
                 && same_str(a->sid, t->sid) && same_str(a->scope, t->scope)
                 && same_str(a->typ, t->typ) && (a->aud == NULL) == (t->aud == NULL),
                 "both readers: same fields");
    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *x = &a->claims[i], *y = &t->claims[i];

        fuzz_require(strcmp(x->name, y->name) == 0 && x->type == y->type
                     && x->value_len == y->value_len
                     && memcmp(x->value, y->value, x->value_len) == 0
                     && strcmp(x->text, y->text) == 0, "both readers: same claims");
    }
    fuzz_require(!a->active || json_equal(ot_answer_json(a), t->json), "both readers: same JSON");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    ot_http_resp_t resp;
    ot_answer_t *a = NULL, *t;
    ot_err_kind_t kind;
    const char *why = NULL;
    ot_verdict_t verdicts[4][3];
    apr_int64_t now[3] = { 1700000000, 0, 0 };
    int i;

    memset(&resp, 0, sizeof(resp));
    resp.err = OT_HTTP_OK;
    resp.status = 200;
    resp.body = fuzz_body(data, size);
    resp.body_len = size;
    t = ot_answer_parse_tree(resp.body, resp.body_len, &why, p);
    why = NULL;
    if (ot_introspect_result(&a, &kind, &why, &resp, p) != APR_SUCCESS) {
        fuzz_require(a == NULL && why != NULL, "a refused answer says why");
        fuzz_require(t == NULL, "what jansson accepts is accepted");
        fuzz_end();
        return 0;
    }
    fuzz_require(a != NULL && t != NULL, "what jansson refuses is refused");
    fuzz_require(json_is_object(t->json), "an answer is a JSON object");
    same_reading(a, t);
    for (i = 0; i < a->nclaims; i++) {
        fuzz_require(strcmp(a->claims[i].text,
                            ot_claim_text(json_object_get(t->json, a->claims[i].name), p)) == 0,
                     "each claim's text is ot_claim_text of its value");
    }
    now[1] = a->exp > 0 ? a->exp - 1 : 1;
    now[2] = a->exp > 0 ? a->exp : 2000000000;
    judge_all(a, verdicts, now);
    round_trip(a, verdicts, now, p);
    fuzz_end();
    return 0;
}
