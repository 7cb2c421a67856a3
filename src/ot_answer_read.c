/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Reading the issuer's answer: ot_answer_parse() tries the plain reader below, and jansson
 * (ot_answer_parse_tree()) reads whatever the plain reader gives up on.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "ot_answer.h"
#include "ot_claims.h"
#include "ot_json.h"

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
        ot_answer_derive(a);
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
