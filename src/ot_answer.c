/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <math.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "ot_answer.h"
#include "ot_claims.h"
#include "ot_json.h"

/**
 * The last second of the year 9999. A larger NumericDate is not a date in seconds: most likely
 * milliseconds, which would make an exp look as if the token never expired. (It also keeps
 * apr_time_from_sec(), which the cache uses, far from overflowing.)
 */
#define OT_LAST_SANE_DATE 253402300799.0

/**
 * An integer of 1 to 12 digits without a leading zero (every sane date is one) read exactly, as
 * strtod would read it; -1 for any other text, which strtod reads.
 */
static apr_int64_t plain_seconds(const char *s)
{
    apr_int64_t v = 0;
    int i;

    if (s[0] < '1' || s[0] > '9') {
        return -1;
    }
    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (i == 12) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return s[i] == '\0' ? v : -1;
}

/** A NumericDate claim as whole seconds; 0 when not a sane number. */
static apr_int64_t numeric_date(const ot_claim_t *c)
{
    apr_int64_t v;
    double d;

    if (c->type != OT_CT_NUMBER) {
        return 0;
    }
    if ((v = plain_seconds(c->value)) >= 0) {
        return v > (apr_int64_t)OT_LAST_SANE_DATE ? 0 : v;
    }
    d = strtod(c->value, NULL);
    if (!isfinite(d) || d < 1.0 || d > OT_LAST_SANE_DATE) {
        return 0;
    }
    return (apr_int64_t)d;
}

static const char *string_of(const ot_claim_t *c)
{
    return c->type == OT_CT_STRING ? c->value : NULL;
}

/**
 * cnf (RFC 7800): its jkt and x5t#S256, as strings. Anything else in it, or nothing the module
 * knows, marks it unknown: a confirmation that cannot be checked is refused.
 */
static void read_cnf(ot_answer_t *a, const ot_claim_t *c)
{
    json_t *cnf = c->type == OT_CT_JSON ? ot_json_parse(c->value, strlen(c->value), NULL,
                                                        a->pool)
                                        : NULL;
    const char *name;
    json_t *v;

    a->has_cnf = 1;
    a->cnf_unknown = 1;
    if (!json_is_object(cnf) || json_object_size(cnf) == 0) {
        return;
    }
    json_object_foreach(cnf, name, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            return;
        }
        if (strcmp(name, "jkt") == 0) {
            a->cnf_jkt = apr_pstrdup(a->pool, json_string_value(v));
        }
        else if (strcmp(name, "x5t#S256") == 0) {
            a->cnf_x5t = apr_pstrdup(a->pool, json_string_value(v));
        }
        else {
            return;
        }
    }
    a->cnf_unknown = 0;
}

/** n is exactly the three letters w (a short-circuit read: never past n's NUL). */
static APR_INLINE int is3(const char *n, const char *w)
{
    return n[0] == w[0] && n[1] == w[1] && n[2] == w[2] && n[3] == '\0';
}

/** The derived fields a claim sets. */
enum {
    D_NONE, D_EXP, D_NBF, D_IAT, D_ISS, D_SUB, D_SID, D_SCOPE, D_AUD, D_CNF, D_TYP, D_TOKEN_TYPE
};

/** Which derived field the claim `n` sets, by its first letter: no strcmp chain per claim. */
static int derived_of(const char *n)
{
    switch (n[0]) {
    case 'e': return is3(n, "exp") ? D_EXP : D_NONE;
    case 'n': return is3(n, "nbf") ? D_NBF : D_NONE;
    case 'i': return is3(n, "iat") ? D_IAT : is3(n, "iss") ? D_ISS : D_NONE;
    case 's': return is3(n, "sub") ? D_SUB : is3(n, "sid") ? D_SID
                     : strcmp(n, "scope") == 0 ? D_SCOPE : D_NONE;
    case 'a': return is3(n, "aud") ? D_AUD : D_NONE;
    case 'c': return is3(n, "cnf") ? D_CNF : D_NONE;
    case 't': return is3(n, "typ") ? D_TYP
                     : strcmp(n, "token_type") == 0 ? D_TOKEN_TYPE : D_NONE;
    default: return D_NONE;
    }
}

/**
 * Read the fields the checks use off the claims, and decide the kind by the contract's rule
 * (a bound token is judged by ot_answer_judge against what the request proved); with `typ`,
 * Bearer and DPoP are access tokens, Offline an offline token and anything else is refused; without it, `token_type` makes an access token, else
 * `offline_access` in the scope makes an offline one. Used for fresh and cached answers alike,
 * so both are judged the same.
 */
void ot_answer_derive(ot_answer_t *a)
{
    const ot_claim_t *typ = NULL, *token_type = NULL;
    int i;

    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];

        switch (derived_of(c->name)) {
        case D_EXP: a->has_exp = 1, a->exp = numeric_date(c); break;
        case D_NBF: a->has_nbf = 1, a->nbf = numeric_date(c); break;
        case D_IAT: a->iat = numeric_date(c); break;
        case D_ISS: a->has_iss = 1, a->iss = string_of(c); break;
        case D_SUB: a->sub = string_of(c); break;
        case D_SID: a->sid = string_of(c); break;
        case D_SCOPE: a->scope = string_of(c); break;
        case D_AUD: a->aud = c; break;
        case D_CNF: read_cnf(a, c); break;
        case D_TYP: typ = c; break;
        case D_TOKEN_TYPE: token_type = c; break;
        default: break;
        }
    }
    a->typ = typ && string_of(typ) ? typ->value : token_type ? string_of(token_type) : NULL;
    a->typ_dpop = (typ && string_of(typ) && strcmp(typ->value, "DPoP") == 0)
        || (token_type && string_of(token_type) && strcasecmp(token_type->value, "DPoP") == 0);
    a->kind_refused = 0;
    if (typ != NULL) {
        if (string_of(typ)
            && (strcmp(typ->value, "Bearer") == 0 || strcmp(typ->value, "DPoP") == 0)) {
            a->kind = OT_KIND_ACCESS;
        }
        else if (string_of(typ) && strcmp(typ->value, "Offline") == 0) {
            a->kind = OT_KIND_OFFLINE;
        }
        else {
            a->kind_refused = 1;
        }
        return;
    }
    if (token_type != NULL) {
        a->kind = OT_KIND_ACCESS;
        return;
    }
    a->kind = (a->scope && ot_scope_has(a->scope, "offline_access"))
              ? OT_KIND_OFFLINE : OT_KIND_ACCESS;
}

ot_answer_t *ot_answer_inactive(apr_pool_t *p)
{
    ot_answer_t *a = apr_pcalloc(p, sizeof(*a));

    a->pool = p;
    return a;
}

ot_answer_t *ot_answer_from_json(json_t *json, const char **err, apr_pool_t *p)
{
    ot_answer_t *a;
    const json_t *active = json_object_get(json, "active");
    ot_claim_t *claims;
    const char *key;
    json_t *v;
    int n = 0;

    if (!json_is_object(json)) {
        *err = "the answer is not a JSON object";
        return NULL;
    }
    if (!json_is_boolean(active)) {
        *err = active ? "\"active\" is not a boolean" : "the answer has no \"active\" member";
        return NULL;
    }
    a = ot_answer_inactive(p);
    a->json = json;
    a->active = json_is_true(active);
    if (!a->active) {
        return a;
    }
    claims = apr_palloc(p, json_object_size(json) * sizeof(*claims));
    json_object_foreach(json, key, v) {
        if (ot_claim_from_json(&claims[n], key, v, p) != APR_SUCCESS) {
            *err = "a claim holds a NUL character";
            return NULL;
        }
        n++;
    }
    a->claims = claims;
    a->nclaims = n;
    ot_answer_derive(a);
    return a;
}

const char *ot_kind_name(ot_kind_t kind)
{
    return kind == OT_KIND_OFFLINE ? "offline" : "access";
}

ot_answer_t *ot_answer_from_jwt(json_t *payload, const char **err, apr_pool_t *p)
{
    ot_answer_t *a;
    ot_claim_t *claims;
    const char *key;
    json_t *v;
    int n = 0;

    if (!json_is_object(payload)) {
        *err = "the payload is not a JSON object";
        return NULL;
    }
    a = ot_answer_inactive(p);
    a->json = payload;
    a->active = 1;
    claims = apr_palloc(p, json_object_size(payload) * sizeof(*claims) + 1);
    json_object_foreach(payload, key, v) {
        if (ot_claim_from_json(&claims[n], key, v, p) != APR_SUCCESS) {
            *err = "a claim holds a NUL character";
            return NULL;
        }
        n++;
    }
    a->claims = claims;
    a->nclaims = n;
    ot_answer_derive(a);
    a->kind = OT_KIND_ACCESS;
    return a;
}

/** The JWT payload text as an answer with `"active":true` in front of its members, or NULL. */
static char *with_active(const char *text, apr_size_t len, apr_size_t *n, apr_pool_t *p)
{
    static const char active[] = "{\"active\":true";
    apr_size_t i = 0, j;
    char *buf;

    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    if (i >= len || text[i] != '{') {
        return NULL;
    }
    for (j = ++i; j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n'
                              || text[j] == '\r'); j++) {
    }
    buf = apr_palloc(p, sizeof(active) + 1 + (len - i));
    memcpy(buf, active, sizeof(active) - 1);
    *n = sizeof(active) - 1;
    if (j >= len || text[j] != '}') {
        buf[(*n)++] = ',';             /* members follow: "{"active":true," and the rest */
    }
    memcpy(buf + *n, text + i, len - i);
    *n += len - i;
    buf[*n] = '\0';
    return buf;
}

ot_answer_t *ot_answer_from_jwt_text(const char *text, apr_size_t len, const char **err,
                                     apr_pool_t *p)
{
    apr_size_t n = 0;
    const char *why = NULL, *body = with_active(text, len, &n, p);
    ot_answer_t *a = body ? ot_answer_parse(body, n, &why, p) : NULL;

    /*
     * The answer reader wants "active": given one in front, it reads the payload's members
     * after it, in order, as ot_answer_from_jwt would (a payload holding "active" itself is a
     * duplicate it refuses, and is read below). Dropping the first claim leaves the payload's
     * (ot_answer_derive reads nothing from "active").
     */
    if (a != NULL && a->active && a->nclaims >= 1 && strcmp(a->claims[0].name, "active") == 0) {
        a->claims++;
        a->nclaims--;
        if (a->json != NULL) {
            json_object_del(a->json, "active");     /* jansson read it: the payload's tree */
        }
        a->kind = OT_KIND_ACCESS;
        return a;
    }
    return ot_answer_from_jwt(ot_json_parse(text, len, NULL, p), err, p);
}

const ot_claim_t *ot_answer_claim(const ot_answer_t *a, const char *name)
{
    int i;

    /* the first byte compared here: most names differ there, and a call per claim was made */
    for (i = 0; i < a->nclaims; i++) {
        if (a->claims[i].name[0] == name[0] && strcmp(a->claims[i].name, name) == 0) {
            return &a->claims[i];
        }
    }
    return NULL;
}

const json_t *ot_answer_json(ot_answer_t *a)
{
    json_t *obj;
    int i;

    if (a->json != NULL) {
        return a->json;
    }
    obj = json_object();
    if (!a->active) {
        json_object_set_new(obj, "active", json_false());
    }
    for (i = 0; obj && i < a->nclaims; i++) {
        json_t *v = ot_claim_json(&a->claims[i]);
        if (v != NULL) {
            json_object_set_new(obj, a->claims[i].name, v);
        }
    }
    a->json = ot_json_own(obj, a->pool);
    return a->json;
}

const char *ot_answer_client(const ot_answer_t *a)
{
    const ot_claim_t *cl = ot_answer_claim(a, "azp");

    if (cl == NULL || cl->type != OT_CT_STRING) {
        cl = ot_answer_claim(a, "client_id");
    }
    return cl && cl->type == OT_CT_STRING ? cl->value : NULL;
}
