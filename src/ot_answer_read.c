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
#include "ot_jscan.h"

/* -- Plain answers, read without a JSON tree ------------------------------------------------ */

/*
 * Nearly every answer holds nothing but printable-ASCII strings without escapes, integers,
 * booleans and null, in objects and arrays a few levels deep. plain_answer() reads such an answer
 * with the scanner of ot_jscan.c in one pass straight into claims, with the same values and texts
 * ot_claim_from_json() gives (compact JSON of a nested value is then its source without the white
 * space). Anything else (an escape or any other byte in a string, a fraction or an exponent, what
 * the scanner refuses or cannot vouch for) makes it give up, and jansson reads the answer and
 * gives the error if there is one. fuzz_answer holds the two readers to the same answers.
 */

/** Compact JSON of a plain nested value: its source without white space (*n bytes). */
static char *plain_compact(const ot_jval_t *v, apr_size_t *n, apr_pool_t *p)
{
    const char *from = v->raw, *to = v->raw + v->raw_len;
    char *out = apr_palloc(p, v->raw_len + 1), *o = out;
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
    *n = (apr_size_t)(o - out);
    return out;
}

/** A flat array's text: its elements' texts joined with ','. compact (n bytes) has no white
 * space. */
static const char *plain_list_text(const char *compact, apr_size_t n, apr_pool_t *p)
{
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

/** One member's value as a claim, as ot_claim_from_json() makes it; 0 when it is not plain. */
static int plain_claim(ot_jscan_t *sc, ot_claim_t *c, apr_pool_t *p)
{
    ot_jval_t v;

    if (!ot_jscan_value(sc, &v) || !v.plain) {
        return 0;
    }
    /* value_len from what was read: a plain value holds no NUL (strlen would say the same) */
    switch (v.type) {
    case OT_JS_STRING:
    case OT_JS_INTEGER:
        c->type = v.type == OT_JS_STRING ? OT_CT_STRING : OT_CT_NUMBER;
        c->value = c->text = apr_pstrmemdup(p, v.raw, v.raw_len);
        c->value_len = v.raw_len;
        break;
    case OT_JS_TRUE:
    case OT_JS_FALSE:
        c->type = OT_CT_BOOL;
        c->value = c->text = v.type == OT_JS_TRUE ? "true" : "false";
        c->value_len = v.type == OT_JS_TRUE ? 4 : 5;
        break;
    case OT_JS_NULL:
        c->type = OT_CT_NULL;
        c->value = "null";
        c->text = "";
        c->value_len = 4;
        break;
    default:
        c->type = v.flat ? OT_CT_LIST : OT_CT_JSON;
        c->value = plain_compact(&v, &c->value_len, p);
        c->text = v.flat ? plain_list_text(c->value, c->value_len, p) : c->value;
        break;
    }
    return 1;
}

/** The answer read by the plain reader, or NULL when it gave up (jansson reads it then). */
static ot_answer_t *plain_answer(const char *body, apr_size_t len, apr_pool_t *p)
{
    apr_array_header_t *claims = apr_array_make(p, 32, sizeof(ot_claim_t));
    const ot_claim_t *active = NULL;
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t name;
    ot_answer_t *a;
    int i;

    ot_jscan_init(&sc, body, len);
    if (!ot_jscan_object(&sc, &o)) {
        return NULL;
    }
    while (ot_jscan_member(&sc, &o, &name)) {
        ot_claim_t *c = apr_array_push(claims);

        if (!name.plain) {
            return NULL;
        }
        c->name = apr_pstrmemdup(p, name.raw, name.raw_len);
        if (!plain_claim(&sc, c, p)) {
            return NULL;
        }
    }
    if (!ot_jscan_end(&sc)) {
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
