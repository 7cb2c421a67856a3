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

/** A NumericDate claim as whole seconds; 0 when not a sane number. */
static apr_int64_t numeric_date(const ot_claim_t *c)
{
    double d;

    if (c->type != OT_CT_NUMBER) {
        return 0;
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

/**
 * Read the fields the checks use off the claims, and decide the kind by the contract's rule
 * (a bound token is judged by ot_answer_judge against what the request proved); with `typ`,
 * Bearer and DPoP are access tokens, Offline an offline token and anything else is refused; without it, `token_type` makes an access token, else
 * `offline_access` in the scope makes an offline one. Used for fresh and cached answers alike,
 * so both are judged the same.
 */
static void derive(ot_answer_t *a)
{
    const ot_claim_t *typ = NULL, *token_type = NULL;
    int i;

    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];
        const char *n = c->name;

        if (strcmp(n, "exp") == 0) {
            a->has_exp = 1, a->exp = numeric_date(c);
        }
        else if (strcmp(n, "nbf") == 0) {
            a->has_nbf = 1, a->nbf = numeric_date(c);
        }
        else if (strcmp(n, "iat") == 0) {
            a->iat = numeric_date(c);
        }
        else if (strcmp(n, "iss") == 0) {
            a->has_iss = 1, a->iss = string_of(c);
        }
        else if (strcmp(n, "sub") == 0) {
            a->sub = string_of(c);
        }
        else if (strcmp(n, "sid") == 0) {
            a->sid = string_of(c);
        }
        else if (strcmp(n, "scope") == 0) {
            a->scope = string_of(c);
        }
        else if (strcmp(n, "aud") == 0) {
            a->aud = c;
        }
        else if (strcmp(n, "cnf") == 0) {
            read_cnf(a, c);
        }
        else if (strcmp(n, "typ") == 0) {
            typ = c;
        }
        else if (strcmp(n, "token_type") == 0) {
            token_type = c;
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
    derive(a);
    return a;
}

/* -- Plain answers, read without a JSON tree ------------------------------------------------ */

/*
 * Nearly every answer holds nothing but printable-ASCII strings without escapes, integers,
 * booleans and null, in objects and arrays a few levels deep. plain_answer() reads such an answer
 * in one pass straight into claims, with the same values and texts ot_claim_from_json() gives
 * (compact JSON of a nested value is then its source without the white space). Anything else (an
 * escape or any other byte in a string, a fraction or an exponent, a duplicate name, deep nesting,
 * more members than it checks, malformed JSON) makes it give up, and jansson reads the answer and
 * gives the error if there is one. fuzz_answer holds the two readers to the same answers.
 */

/** Nesting that plain_answer() reads, and members of one object it checks for duplicates. */
#define PLAIN_DEPTH 8
#define PLAIN_MEMBERS 64

typedef struct {
    const char *s;
    const char *end;
} plain_t;

/** A value's kind: a JSON string, integer, boolean, null, array or object. */
typedef enum { PV_STR, PV_INT, PV_BOOL, PV_NULL, PV_ARRAY, PV_OBJECT } plain_kind_t;

static void plain_ws(plain_t *r)
{
    while (r->s < r->end && (*r->s == ' ' || *r->s == '\t' || *r->s == '\n' || *r->s == '\r')) {
        r->s++;
    }
}

/** The next non-white byte, or 0 at the end. */
static char plain_peek(plain_t *r)
{
    plain_ws(r);
    return r->s < r->end ? *r->s : '\0';
}

/** Take the next non-white byte if it is c. */
static int plain_take(plain_t *r, char c)
{
    if (plain_peek(r) != c) {
        return 0;
    }
    r->s++;
    return 1;
}

/** A string of printable ASCII without escapes; *start and *len are its content. */
static int plain_string(plain_t *r, const char **start, apr_size_t *len)
{
    const char *q;

    if (plain_peek(r) != '"') {
        return 0;
    }
    for (q = r->s + 1; q < r->end; q++) {
        unsigned char c = (unsigned char)*q;

        if (c == '"') {
            *start = r->s + 1;
            *len = (apr_size_t)(q - *start);
            r->s = q + 1;
            return 1;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            return 0;
        }
    }
    return 0;
}

/** An integer that jansson writes back as it is: at most 18 digits, no leading zero, not -0. */
static int plain_integer(plain_t *r)
{
    const char *q = r->s, *digits;

    if (q < r->end && *q == '-') {
        q++;
    }
    digits = q;
    while (q < r->end && *q >= '0' && *q <= '9') {
        q++;
    }
    if (q == digits || q - digits > 18 || (*digits == '0' && (q - digits > 1 || digits != r->s))) {
        return 0;
    }
    if (q < r->end && (*q == '.' || *q == 'e' || *q == 'E')) {
        return 0;
    }
    r->s = q;
    return 1;
}

static int plain_word(plain_t *r, const char *word, apr_size_t n)
{
    if ((apr_size_t)(r->end - r->s) < n || memcmp(r->s, word, n) != 0) {
        return 0;
    }
    r->s += n;
    return 1;
}

static int plain_value(plain_t *r, int depth, plain_kind_t *kind, const char **start,
                       apr_size_t *len, int *flat);

/** An array; *flat: every element is a string, an integer or a boolean. */
static int plain_array(plain_t *r, int depth, int *flat)
{
    plain_kind_t kind;
    const char *start;
    apr_size_t len;
    int inner;

    *flat = 1;
    r->s++;
    if (plain_take(r, ']')) {
        return 1;
    }
    do {
        if (!plain_value(r, depth, &kind, &start, &len, &inner)) {
            return 0;
        }
        *flat = *flat && kind != PV_NULL && kind != PV_ARRAY && kind != PV_OBJECT;
    } while (plain_take(r, ','));
    return plain_take(r, ']');
}

/** An object whose names are all different; with out, its members become claims. */
static int plain_object(plain_t *r, int depth, apr_array_header_t *out, apr_pool_t *p);

static int plain_value(plain_t *r, int depth, plain_kind_t *kind, const char **start,
                       apr_size_t *len, int *flat)
{
    const char *at;

    *flat = 0;
    switch (plain_peek(r)) {
    case '"':
        *kind = PV_STR;
        return plain_string(r, start, len);
    case '[':
        *kind = PV_ARRAY;
        return depth < PLAIN_DEPTH && plain_array(r, depth + 1, flat);
    case '{':
        *kind = PV_OBJECT;
        return depth < PLAIN_DEPTH && plain_object(r, depth + 1, NULL, NULL);
    case 't':
        *kind = PV_BOOL;
        return plain_word(r, "true", 4);
    case 'f':
        *kind = PV_BOOL;
        return plain_word(r, "false", 5);
    case 'n':
        *kind = PV_NULL;
        return plain_word(r, "null", 4);
    default:
        *kind = PV_INT;
        at = r->s;
        if (!plain_integer(r)) {
            return 0;
        }
        *start = at;
        *len = (apr_size_t)(r->s - at);
        return 1;
    }
}

/** Compact JSON of a nested value read from [from, to): its source without white space. */
static char *plain_compact(const char *from, const char *to, apr_pool_t *p)
{
    char *out = apr_palloc(p, (apr_size_t)(to - from) + 1), *o = out;
    int in_string = 0;

    for (; from < to; from++) {
        if (*from == '"') {
            in_string = !in_string;
        }
        else if (!in_string && (*from == ' ' || *from == '\t' || *from == '\n' || *from == '\r')) {
            continue;
        }
        *o++ = *from;
    }
    *o = '\0';
    return out;
}

/** A flat array's text: its elements' texts joined with ','. compact has no white space. */
static const char *plain_list_text(const char *compact, apr_pool_t *p)
{
    apr_size_t n = strlen(compact);
    char *out = apr_palloc(p, n + 1), *o = out;
    const char *q;

    for (q = compact + 1; q < compact + n - 1; q++) {   /* inside the brackets */
        if (*q != '"') {
            *o++ = *q;
        }
    }
    *o = '\0';
    return out;
}

/** One member's value as a claim, as ot_claim_from_json() makes it. */
static int plain_claim(plain_t *r, ot_claim_t *c, apr_pool_t *p)
{
    const char *from, *start = NULL;
    apr_size_t len = 0;
    plain_kind_t kind;
    int flat;

    plain_ws(r);
    from = r->s;
    if (!plain_value(r, 0, &kind, &start, &len, &flat)) {
        return 0;
    }
    switch (kind) {
    case PV_STR:
    case PV_INT:
        c->type = kind == PV_STR ? OT_CT_STRING : OT_CT_NUMBER;
        c->value = c->text = apr_pstrmemdup(p, start, len);
        break;
    case PV_BOOL:
        c->type = OT_CT_BOOL;
        c->value = c->text = *from == 't' ? "true" : "false";
        break;
    case PV_NULL:
        c->type = OT_CT_NULL;
        c->value = "null";
        c->text = "";
        break;
    default:
        c->type = flat ? OT_CT_LIST : OT_CT_JSON;
        c->value = plain_compact(from, r->s, p);
        c->text = flat ? plain_list_text(c->value, p) : c->value;
        break;
    }
    c->value_len = strlen(c->value);
    return 1;
}

static int plain_object(plain_t *r, int depth, apr_array_header_t *out, apr_pool_t *p)
{
    const char *names[PLAIN_MEMBERS];
    apr_size_t lens[PLAIN_MEMBERS];
    const char *start;
    apr_size_t len;
    plain_kind_t kind;
    int n = 0, i, flat;

    r->s++;
    if (plain_take(r, '}')) {
        return 1;
    }
    do {
        if (n == PLAIN_MEMBERS || !plain_string(r, &names[n], &lens[n])) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (lens[i] == lens[n] && memcmp(names[i], names[n], lens[n]) == 0) {
                return 0;
            }
        }
        if (!plain_take(r, ':')) {
            return 0;
        }
        if (out) {
            ot_claim_t *c = apr_array_push(out);

            c->name = apr_pstrmemdup(p, names[n], lens[n]);
            if (!plain_claim(r, c, p)) {
                return 0;
            }
        }
        else if (!plain_value(r, depth, &kind, &start, &len, &flat)) {
            return 0;
        }
        n++;
    } while (plain_take(r, ','));
    return plain_take(r, '}');
}

/** The answer read by the plain reader, or NULL when it gave up (jansson reads it then). */
static ot_answer_t *plain_answer(const char *body, apr_size_t len, apr_pool_t *p)
{
    plain_t r = { body, body + len };
    apr_array_header_t *claims = apr_array_make(p, 32, sizeof(ot_claim_t));
    const ot_claim_t *active = NULL;
    ot_answer_t *a;
    int i;

    if (plain_peek(&r) != '{' || !plain_object(&r, 1, claims, p)) {
        return NULL;
    }
    plain_ws(&r);
    if (r.s != r.end) {
        return NULL;
    }
    for (i = 0; i < claims->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(claims, i, ot_claim_t).name, "active") == 0) {
            active = &APR_ARRAY_IDX(claims, i, ot_claim_t);
        }
    }
    if (active == NULL || active->type != OT_CT_BOOL) {
        return NULL;
    }
    a = ot_answer_inactive(p);
    a->active = strcmp(active->value, "true") == 0;
    if (a->active) {
        a->claims = (const ot_claim_t *)claims->elts;
        a->nclaims = claims->nelts;
        derive(a);
    }
    return a;
}

ot_answer_t *ot_answer_parse_tree(const char *body, apr_size_t len, const char **err,
                                  apr_pool_t *p)
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

ot_answer_t *ot_answer_parse(const char *body, apr_size_t len, const char **err, apr_pool_t *p)
{
    ot_answer_t *a;

    if (len <= OT_ANSWER_MAX && (a = plain_answer(body, len, p)) != NULL) {
        return a;
    }
    return ot_answer_parse_tree(body, len, err, p);
}

/** aud is a string equal to want, or an array holding it. */
static int audience_has(const ot_claim_t *aud, const char *want)
{
    size_t i;
    const json_t *v;
    json_t *arr;
    int found = 0;

    if (aud == NULL) {
        return 0;
    }
    if (aud->type == OT_CT_STRING) {
        return strcmp(aud->value, want) == 0;
    }
    if (aud->type != OT_CT_LIST && aud->type != OT_CT_JSON) {
        return 0;
    }
    arr = ot_claim_json(aud);
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) {
            found = 1;
            break;
        }
    }
    json_decref(arr);
    return found;
}

const char *ot_answer_client(const ot_answer_t *a)
{
    const ot_claim_t *cl = ot_answer_claim(a, "azp");

    if (cl == NULL || cl->type != OT_CT_STRING) {
        cl = ot_answer_claim(a, "client_id");
    }
    return cl && cl->type == OT_CT_STRING ? cl->value : NULL;
}

/** 1 when the token was issued to one of clients. */
static int client_among(const ot_answer_t *a, const apr_array_header_t *clients)
{
    const char *client = ot_answer_client(a);
    int i;

    for (i = 0; client != NULL && i < clients->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(clients, i, const char *), client) == 0) {
            return 1;
        }
    }
    return 0;
}

ot_verdict_t ot_answer_judge(const ot_answer_t *a, const ot_policy_t *policy, apr_int64_t now)
{
    static const ot_bound_t bearer;

    return ot_answer_judge_bound(a, policy, &bearer, now);
}

ot_verdict_t ot_answer_judge_bound(const ot_answer_t *a, const ot_policy_t *policy,
                                   const ot_bound_t *bound, apr_int64_t now)
{
    ot_verdict_t v;

    if (!a->active) {
        return OT_VERDICT_INACTIVE;
    }
    if ((v = ot_bound_judge(a, bound)) != OT_VERDICT_OK) {
        return v;
    }
    if (a->kind_refused) {
        return OT_VERDICT_KIND;
    }
    if (a->has_exp && (a->exp == 0 || a->exp <= now)) {
        return OT_VERDICT_EXPIRED;
    }
    if (a->has_nbf && (a->nbf == 0 || a->nbf > now + policy->skew)) {
        return OT_VERDICT_NOT_YET;
    }
    if (policy->issuer && a->has_iss
        && (a->iss == NULL || strcmp(a->iss, policy->issuer) != 0)) {
        return OT_VERDICT_ISSUER;
    }
    if (a->kind == OT_KIND_OFFLINE && !policy->allow_offline) {
        return OT_VERDICT_OFFLINE_DENIED;
    }
    if (a->kind == OT_KIND_OFFLINE && policy->offline_clients != NULL
        && !client_among(a, policy->offline_clients)) {
        return OT_VERDICT_OFFLINE_CLIENT;
    }
    if (policy->audience && a->kind == OT_KIND_ACCESS
        && !audience_has(a->aud, policy->audience)) {
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
    case OT_VERDICT_BOUND:          return "the token is DPoP-bound and came as a Bearer token";
    case OT_VERDICT_KIND:           return "the token is not an access or offline token";
    case OT_VERDICT_OFFLINE_DENIED: return "offline tokens are not accepted here";
    case OT_VERDICT_OFFLINE_CLIENT: return "an offline token of a client not in OfftokOfflineClients";
    case OT_VERDICT_CNF_UNKNOWN:    return "the token's cnf holds a confirmation this server cannot check";
    case OT_VERDICT_DPOP_NO_JKT:    return "the token is typed DPoP but has no cnf.jkt";
    case OT_VERDICT_DPOP_OFF:       return "the token is DPoP-bound and OfftokDPoP is Off here";
    case OT_VERDICT_DPOP_KEY:       return "the DPoP proof's key is not the one the token is bound to (cnf.jkt)";
    case OT_VERDICT_UNBOUND_DPOP:   return "the token is not bound and came under the DPoP scheme";
    case OT_VERDICT_CERT:           return "the token is bound to a client certificate this connection did not present";
    case OT_VERDICT_MTLS_OFF:       return "the token is certificate-bound and OfftokMTLS is Off here";
    case OT_VERDICT_UNBOUND:        return "the token is not bound as OfftokDPoP/OfftokMTLS Require asks";
    }
    return "refused";
}

const char *ot_kind_name(ot_kind_t kind)
{
    return kind == OT_KIND_OFFLINE ? "offline" : "access";
}

/*
 * The digest: the cache's form of a positive answer (ot_cache_entry_t.claims, and so also what
 * Redis holds). A cache hit reads it without a JSON parser; the strings are used in place.
 *
 *  +----------+----------------------------------------------------------------------------+
 *  | count    | count claims, each:                                                        |
 *  | u16, BE  |   type: one byte, ot_claim_type_t, | DIGEST_TEXT when a text of its own    |
 *  |          |         follows (it differs from the value: lists, null, control chars)    |
 *  |          |   name NUL, value NUL, [text NUL]                                          |
 *  +----------+----------------------------------------------------------------------------+
 *
 * A typical Keycloak answer takes about as many bytes as its compact JSON.
 */
#define DIGEST_TEXT 0x80
#define DIGEST_MAX_CLAIMS 0xffff

const char *ot_answer_digest(const ot_answer_t *a, apr_size_t *len, apr_pool_t *p)
{
    apr_size_t n = 2;
    char *buf, *o;
    int i;

    if (!a->active || a->nclaims > DIGEST_MAX_CLAIMS) {
        return NULL;
    }
    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];
        n += 1 + strlen(c->name) + 1 + c->value_len + 1;
        if (strcmp(c->text, c->value) != 0) {
            n += strlen(c->text) + 1;
        }
    }
    o = buf = apr_palloc(p, n);
    *o++ = (char)((a->nclaims >> 8) & 0xff);
    *o++ = (char)(a->nclaims & 0xff);
    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];
        int own_text = strcmp(c->text, c->value) != 0;
        apr_size_t k = strlen(c->name) + 1;

        *o++ = (char)(c->type | (own_text ? DIGEST_TEXT : 0));
        memcpy(o, c->name, k), o += k;
        memcpy(o, c->value, c->value_len + 1), o += c->value_len + 1;
        if (own_text) {
            k = strlen(c->text) + 1;
            memcpy(o, c->text, k), o += k;
        }
    }
    *len = n;
    return buf;
}

/** The NUL-terminated string at *off in buf[0..len), advancing *off; NULL when there is none. */
static const char *digest_str(const char *buf, apr_size_t len, apr_size_t *off, apr_size_t *slen)
{
    const char *s = buf + *off, *end;

    if (*off >= len || (end = memchr(s, 0, len - *off)) == NULL) {
        return NULL;
    }
    *slen = (apr_size_t)(end - s);
    *off += *slen + 1;
    return s;
}

/** The answer a digest describes; need_active: it must hold `"active": true`. */
static ot_answer_t *digest_answer(const char *buf, apr_size_t len, int need_active,
                                  apr_pool_t *p)
{
    const unsigned char *u = (const unsigned char *)buf;
    ot_answer_t *a;
    ot_claim_t *claims;
    apr_size_t off = 2, slen;
    int n, i, active = 0;

    if (buf == NULL || len < 2) {
        return NULL;
    }
    n = (u[0] << 8) | u[1];
    if ((apr_size_t)n > (len - 2) / 3) {      /* each claim takes at least three bytes */
        return NULL;
    }
    claims = apr_palloc(p, (apr_size_t)n * sizeof(*claims) + 1);
    for (i = 0; i < n; i++) {
        ot_claim_t *c = &claims[i];
        unsigned char type;

        if (off >= len) {
            return NULL;
        }
        type = u[off++];
        c->type = (char)(type & ~DIGEST_TEXT);
        if (strchr("snbzlj", c->type) == NULL || c->type == '\0'
            || (c->name = digest_str(buf, len, &off, &slen)) == NULL
            || (c->value = digest_str(buf, len, &off, &c->value_len)) == NULL) {
            return NULL;
        }
        c->text = c->value;
        if ((type & DIGEST_TEXT) && (c->text = digest_str(buf, len, &off, &slen)) == NULL) {
            return NULL;
        }
        /* Whoever wrote it, no control character reaches the back end. */
        c->text = ot_sanitize(c->text, p);
        if (strcmp(c->name, "active") == 0) {
            active = c->type == OT_CT_BOOL && strcmp(c->value, "true") == 0;
        }
    }
    if (off != len || (need_active && !active)) {
        return NULL;
    }
    a = ot_answer_inactive(p);
    a->active = 1;
    a->claims = claims;
    a->nclaims = n;
    derive(a);
    return a;
}

ot_answer_t *ot_answer_from_digest(const char *buf, apr_size_t len, apr_pool_t *p)
{
    return digest_answer(buf, len, 1, p);
}

ot_answer_t *ot_answer_from_jwt_digest(const char *buf, apr_size_t len, apr_pool_t *p)
{
    ot_answer_t *a = digest_answer(buf, len, 0, p);

    if (a != NULL) {
        a->kind = OT_KIND_ACCESS;
    }
    return a;
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
    derive(a);
    a->kind = OT_KIND_ACCESS;
    return a;
}

const ot_claim_t *ot_answer_claim(const ot_answer_t *a, const char *name)
{
    int i;

    for (i = 0; i < a->nclaims; i++) {
        if (strcmp(a->claims[i].name, name) == 0) {
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
