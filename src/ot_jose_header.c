/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_header.c
 * @brief A compact JWS's protected header read once, with the checked scanner (ot_jscan.h), for
 *        both the local candidate decision (ot_jwt_verify.c) and the verification (ot_jose.c).
 *
 * Only `alg`, `kid`, `typ` and `crit` are read, as jansson would read them (ot_json_parse): a
 * header the scanner refuses jansson refuses too, and one it cannot vouch for (OT_JS_UNSURE:
 * deep nesting, many members, huge numbers) is read with jansson after all.
 */
#include <string.h>

#include "ot_jose.h"
#include "ot_json.h"
#include "ot_jscan.h"
#include "ot_util.h"

/** The members read, in the order of note's `which`. */
static const char *const header_names[] = { "alg", "kid", "typ", "crit" };

typedef struct {
    ot_jose_header_t *h;
    apr_pool_t *p;
} header_baton_t;

/** Note member `which` of value v in h: a string, or present but not one. */
static void note(void *baton, int which, const ot_jval_t *v)
{
    ot_jose_header_t *h = ((header_baton_t *)baton)->h;
    apr_pool_t *p = ((header_baton_t *)baton)->p;
    const char **dst[] = { &h->alg, &h->kid, &h->typ };

    if (which == 3) {
        h->crit = 1;
        return;
    }
    *dst[which] = ot_jval_str(v, NULL, p);             /* NULL when not a string */
    if (*dst[which] == NULL) {
        h->bad_kid |= which == 1;
        h->bad_typ |= which == 2;
    }
}

static ot_jstatus_t scan(ot_jose_header_t *h, const char *raw, apr_size_t len, apr_pool_t *p)
{
    header_baton_t b;

    b.h = h;
    b.p = p;
    return ot_jscan_pick(raw, len, header_names, 4, note, &b);
}

/** The header read with jansson (what the scanner cannot vouch for). */
static void with_jansson(ot_jose_header_t *h, const char *raw, apr_size_t len, apr_pool_t *p)
{
    json_t *j = ot_json_parse(raw, len, NULL, p);

    if (!json_is_object(j)) {
        return;
    }
    h->object = 1;
    h->alg = ot_json_string(j, "alg");
    h->kid = ot_json_string(j, "kid");
    h->typ = ot_json_string(j, "typ");
    h->bad_kid = json_object_get(j, "kid") != NULL && h->kid == NULL;
    h->bad_typ = json_object_get(j, "typ") != NULL && h->typ == NULL;
    h->crit = json_object_get(j, "crit") != NULL;
}

void ot_jose_header_read(ot_jose_header_t *h, const char *b64, apr_size_t len, apr_pool_t *p)
{
    char *raw;
    apr_size_t raw_len;
    ot_jstatus_t st;

    memset(h, 0, sizeof(*h));
    if (len == 0 || ot_b64url_decode(&raw, &raw_len, b64, len, p) != APR_SUCCESS) {
        return;
    }
    st = scan(h, raw, raw_len, p);
    if (st == OT_JS_OK) {
        h->object = 1;
        return;
    }
    memset(h, 0, sizeof(*h));
    if (st == OT_JS_UNSURE) {
        with_jansson(h, raw, raw_len, p);
    }
}
