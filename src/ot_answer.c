/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <math.h>
#include <apr_strings.h>

#include "ot_answer.h"
#include "ot_claims.h"
#include "ot_json.h"

/**
 * The last second of the year 9999. A larger NumericDate is not a date in seconds: most likely
 * milliseconds, which would make an exp look as if the token never expired. (It also keeps
 * apr_time_from_sec(), which the cache uses, far from overflowing.)
 */
#define OT_LAST_SANE_DATE 253402300799.0

/** A NumericDate claim as whole seconds; 0 when absent or not a sane number. */
static apr_int64_t numeric_date(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    double d;

    if (!json_is_number(v)) {
        return 0;
    }
    d = json_number_value(v);
    if (!isfinite(d) || d < 1.0 || d > OT_LAST_SANE_DATE) {
        return 0;
    }
    return (apr_int64_t)d;
}

/**
 * The contract's rule: a bound token (cnf) is refused; with `typ`, Bearer is an access token,
 * Offline an offline token and anything else is refused; without it, `token_type` makes an
 * access token, else `offline_access` in the scope makes an offline one.
 */
static void decide_kind(ot_answer_t *a)
{
    const char *typ = ot_json_string(a->json, "typ");
    const char *scope = ot_json_string(a->json, "scope");

    a->typ = typ ? typ : ot_json_string(a->json, "token_type");
    if (json_object_get(a->json, "cnf") != NULL) {
        a->kind_refused = 1;
    }
    if (json_object_get(a->json, "typ") != NULL) {
        if (typ && strcmp(typ, "Bearer") == 0) {
            a->kind = OT_KIND_ACCESS;
        }
        else if (typ && strcmp(typ, "Offline") == 0) {
            a->kind = OT_KIND_OFFLINE;
        }
        else {
            a->kind_refused = 1;
        }
        return;
    }
    if (json_object_get(a->json, "token_type") != NULL) {
        a->kind = OT_KIND_ACCESS;
        return;
    }
    a->kind = (scope && ot_scope_has(scope, "offline_access")) ? OT_KIND_OFFLINE : OT_KIND_ACCESS;
}

ot_answer_t *ot_answer_from_json(json_t *json, const char **err, apr_pool_t *p)
{
    ot_answer_t *a;
    const json_t *active = json_object_get(json, "active");

    if (!json_is_object(json)) {
        *err = "the answer is not a JSON object";
        return NULL;
    }
    if (!json_is_boolean(active)) {
        *err = active ? "\"active\" is not a boolean" : "the answer has no \"active\" member";
        return NULL;
    }
    a = apr_pcalloc(p, sizeof(*a));
    a->json = json;
    a->active = json_is_true(active);
    if (!a->active) {
        return a;
    }
    a->exp = numeric_date(json, "exp");
    a->nbf = numeric_date(json, "nbf");
    a->iat = numeric_date(json, "iat");
    a->iss = ot_json_string(json, "iss");
    a->sub = ot_json_string(json, "sub");
    a->sid = ot_json_string(json, "sid");
    decide_kind(a);
    return a;
}

ot_answer_t *ot_answer_parse(const char *body, apr_size_t len, const char **err, apr_pool_t *p)
{
    const char *why = NULL;
    json_t *json;

    if (len > OT_ANSWER_MAX) {
        *err = "the answer is larger than 256 KiB";
        return NULL;
    }
    json = ot_json_parse(body, len, &why, p);
    if (json == NULL) {
        *err = apr_pstrcat(p, "the answer is not JSON: ", why, NULL);
        return NULL;
    }
    return ot_answer_from_json(json, err, p);
}

/** aud is a string equal to want, or an array holding it. */
static int audience_has(const json_t *aud, const char *want)
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

ot_verdict_t ot_answer_judge(const ot_answer_t *a, const ot_policy_t *policy, apr_int64_t now)
{
    if (!a->active) {
        return OT_VERDICT_INACTIVE;
    }
    if (json_object_get(a->json, "cnf") != NULL) {
        return OT_VERDICT_BOUND;
    }
    if (a->kind_refused) {
        return OT_VERDICT_KIND;
    }
    if (json_object_get(a->json, "exp") != NULL && (a->exp == 0 || a->exp <= now)) {
        return OT_VERDICT_EXPIRED;
    }
    if (json_object_get(a->json, "nbf") != NULL && (a->nbf == 0 || a->nbf > now)) {
        return OT_VERDICT_NOT_YET;
    }
    if (policy->issuer && json_object_get(a->json, "iss") != NULL
        && (a->iss == NULL || strcmp(a->iss, policy->issuer) != 0)) {
        return OT_VERDICT_ISSUER;
    }
    if (a->kind == OT_KIND_OFFLINE && !policy->allow_offline) {
        return OT_VERDICT_OFFLINE_DENIED;
    }
    if (policy->audience && a->kind == OT_KIND_ACCESS
        && !audience_has(json_object_get(a->json, "aud"), policy->audience)) {
        return OT_VERDICT_AUDIENCE;
    }
    return OT_VERDICT_OK;
}

const char *ot_verdict_text(ot_verdict_t v)
{
    switch (v) {
    case OT_VERDICT_OK:             return "accepted";
    case OT_VERDICT_INACTIVE:       return "the issuer says the token is not active";
    case OT_VERDICT_EXPIRED:        return "the token has expired";
    case OT_VERDICT_NOT_YET:        return "the token is not valid yet (nbf)";
    case OT_VERDICT_ISSUER:         return "the answer's iss is not OfftokIssuer";
    case OT_VERDICT_AUDIENCE:       return "the token's aud does not contain OfftokAudience";
    case OT_VERDICT_BOUND:          return "the token is bound to a key (cnf) and cannot be used as a Bearer token";
    case OT_VERDICT_KIND:           return "the token is not an access or offline token";
    case OT_VERDICT_OFFLINE_DENIED: return "offline tokens are not accepted here";
    }
    return "refused";
}

const char *ot_kind_name(ot_kind_t kind)
{
    return kind == OT_KIND_OFFLINE ? "offline" : "access";
}
