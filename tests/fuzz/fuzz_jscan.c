/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The JSON scanner (ot_jscan.c) against jansson as ot_json_parse() calls it, on any bytes: what
 * the scanner accepts jansson reads, and what it refuses jansson refuses (it may only be unsure).
 * Where both read the document, a second scan walks it beside jansson's tree: the same members
 * (decoded names), the same types, strings of the same bytes, the same integers; a value read
 * whole that the scanner calls plain is, without its white space, what jansson writes back
 * compactly, and a flat array holds only strings, integers and booleans. ot_jscan_find finds
 * each top-level member jansson has.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_jscan.h"

/** raw[0..len) without the white space outside strings (of a plain value: no escapes). */
static char *compact(const char *raw, apr_size_t len, apr_pool_t *p)
{
    char *out = apr_palloc(p, len + 1), *o = out;
    int in_string = 0;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (raw[i] == '"') {
            in_string = !in_string;
        }
        else if (!in_string && strchr(" \t\n\r", raw[i]) != NULL) {
            continue;
        }
        *o++ = raw[i];
    }
    *o = '\0';
    return out;
}

/** A value read whole: its type and flags against jansson's j. */
static void same_whole(const ot_jval_t *v, const json_t *j, apr_pool_t *p)
{
    static const json_type types[] = {
        [OT_JS_OBJECT] = JSON_OBJECT, [OT_JS_ARRAY] = JSON_ARRAY, [OT_JS_STRING] = JSON_STRING,
        [OT_JS_INTEGER] = JSON_INTEGER, [OT_JS_REAL] = JSON_REAL, [OT_JS_TRUE] = JSON_TRUE,
        [OT_JS_FALSE] = JSON_FALSE, [OT_JS_NULL] = JSON_NULL,
    };
    char *dump;
    size_t i;

    fuzz_require(v->type != OT_JS_NONE && json_typeof(j) == types[v->type], "the same type");
    if (v->plain) {
        dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        fuzz_require(dump && strcmp(dump, v->type == OT_JS_STRING
                                    ? apr_pstrcat(p, "\"", apr_pstrmemdup(p, v->raw, v->raw_len),
                                                  "\"", NULL)
                                    : compact(v->raw, v->raw_len, p)) == 0,
                     "a plain value is jansson's compact text");
        free(dump);
    }
    if (v->flat) {
        fuzz_require(json_is_array(j), "only an array is flat");
        for (i = 0; i < json_array_size(j); i++) {
            const json_t *e = json_array_get(j, i);
            fuzz_require(json_is_string(e) || json_is_integer(e) || json_is_boolean(e),
                         "a flat array holds strings, integers and booleans");
        }
    }
}

static void same_value(ot_jscan_t *sc, const json_t *j, int whole, apr_pool_t *p);

static void same_object(ot_jscan_t *sc, const json_t *j, apr_pool_t *p)
{
    ot_jobj_t o;
    ot_jval_t name;
    const char *k;
    size_t n = 0;

    fuzz_require(ot_jscan_object(sc, &o), "an object is entered");
    while (ot_jscan_member(sc, &o, &name)) {
        k = ot_jval_str(&name, NULL, p);
        fuzz_require(k != NULL && json_object_get(j, k) != NULL, "jansson has the member");
        same_value(sc, json_object_get(j, k), (int)(n++ % 2), p);
    }
    fuzz_require(sc->status == OT_JS_OK && n == json_object_size(j), "as many members");
}

static void same_array(ot_jscan_t *sc, const json_t *j, apr_pool_t *p)
{
    ot_jarr_t a;
    size_t n = 0;

    fuzz_require(ot_jscan_array(sc, &a), "an array is entered");
    while (ot_jscan_element(sc, &a)) {
        fuzz_require(n < json_array_size(j), "jansson has the element");
        same_value(sc, json_array_get(j, n), (int)(n % 2), p);
        n++;
    }
    fuzz_require(sc->status == OT_JS_OK && n == json_array_size(j), "as many elements");
}

/** The next value against j: walked into, or (whole, or a scalar) read whole. */
static void same_value(ot_jscan_t *sc, const json_t *j, int whole, apr_pool_t *p)
{
    ot_jtype_t t = ot_jscan_peek(sc);
    ot_jval_t v;
    apr_size_t len;
    apr_int64_t n;
    int b;
    const char *s;

    if (!whole && t == OT_JS_OBJECT) {
        same_object(sc, j, p);
        return;
    }
    if (!whole && t == OT_JS_ARRAY) {
        same_array(sc, j, p);
        return;
    }
    fuzz_require(ot_jscan_value(sc, &v), "a value is read");
    same_whole(&v, j, p);
    if (v.type == OT_JS_STRING) {
        s = ot_jval_str(&v, &len, p);
        fuzz_require(len == json_string_length(j) && memcmp(s, json_string_value(j), len) == 0
                     && s[len] == '\0', "a string of the same bytes");
        fuzz_require(v.escaped || (len == v.raw_len && memcmp(s, v.raw, len) == 0),
                     "an unescaped string is its raw text");
    }
    fuzz_require(!ot_jval_int(&v, &n) || n == json_integer_value(j), "the same integer");
    fuzz_require(!ot_jval_bool(&v, &b) || b == json_is_true(j), "the same boolean");
}

/** ot_jscan_find of each top-level member of the object j. */
static void find_each(const char *doc, size_t size, const json_t *j)
{
    const char *k;
    json_t *m;
    ot_jval_t v;

    json_object_foreach((json_t *)j, k, m) {
        fuzz_require(ot_jscan_find(doc, size, k, &v) == OT_JS_OK && v.type != OT_JS_NONE,
                     "find finds each member");
    }
    if (json_object_get(j, "not-a-member") == NULL) {
        fuzz_require(ot_jscan_find(doc, size, "not-a-member", &v) == OT_JS_OK
                     && v.type == OT_JS_NONE, "find finds nothing that is not there");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *doc = fuzz_bytes(data, size);
    json_error_t err;
    json_t *j = json_loadb(doc, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    ot_jscan_t sc;

    ot_jscan_init(&sc, doc, size);
    ot_jscan_value(&sc, NULL);
    ot_jscan_end(&sc);
    fuzz_require(sc.status != OT_JS_OK || j != NULL, "what the scanner accepts jansson reads");
    fuzz_require(sc.status != OT_JS_BAD || j == NULL, "what the scanner refuses jansson refuses");
    if (sc.status == OT_JS_OK) {
        ot_jscan_init(&sc, doc, size);
        same_value(&sc, j, 0, p);
        fuzz_require(ot_jscan_end(&sc), "the walk ends where the document does");
        if (json_is_object(j)) {
            find_each(doc, size, j);
        }
    }
    json_decref(j);
    fuzz_end();
    return 0;
}
