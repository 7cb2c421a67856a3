/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What the scanner (ot_jscan.c) found, read: strings decoded as jansson decodes them (escapes,
 * surrogate pairs into UTF-8), compared, integers and booleans; and ot_jscan_find. Everything
 * here runs on text the scanner has already checked.
 */
#include <string.h>
#include <apr_strings.h>

#include "ot_jscan.h"
#include "ot_jscan_int.h"

/** One decoded character of a checked string at *pp: its UTF-8 bytes in out, their count. */
int ot_jscan_decode_one(const unsigned char **pp, unsigned char out[4])
{
    const unsigned char *p = *pp;
    unsigned cp, lo;

    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    *pp = p + 2;
    switch (p[1]) {
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: out[0] = p[1]; return 1;
    }
    ot_jscan_hex4(p + 2, &cp);
    *pp = p + 6;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        ot_jscan_hex4(p + 8, &lo);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        *pp = p + 12;
    }
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/**
 * a and b are the same text: each either a checked JSON string's content, decoded (aesc, besc),
 * or bytes as they are (a name as the caller spells it may hold a backslash).
 */
int ot_jscan_same_text(const char *a, apr_size_t alen, int aesc, const char *b, apr_size_t blen,
                       int besc)
{
    const unsigned char *p = (const unsigned char *)a, *pe = p + alen;
    const unsigned char *q = (const unsigned char *)b, *qe = q + blen;
    unsigned char x[4], y[4];
    int xn = 0, xi = 0, yn = 0, yi = 0;

    if (!aesc && !besc) {
        return alen == blen && memcmp(a, b, alen) == 0;
    }
    for (;;) {                          /* byte by byte, each side decoded as it goes */
        if (xi == xn) {
            if (p == pe) {
                break;
            }
            xn = aesc ? ot_jscan_decode_one(&p, x) : (x[0] = *p++, 1);
            xi = 0;
        }
        if (yi == yn) {
            if (q == qe) {
                break;
            }
            yn = besc ? ot_jscan_decode_one(&q, y) : (y[0] = *q++, 1);
            yi = 0;
        }
        if (x[xi++] != y[yi++]) {
            return 0;
        }
    }
    return p == pe && xi == xn && q == qe && yi == yn;
}

apr_uint64_t ot_jscan_text_hash(const char *s, apr_size_t len, int esc)
{
    const unsigned char *p = (const unsigned char *)s, *pe = p + len;
    apr_uint64_t h = APR_UINT64_C(14695981039346656037);       /* FNV-1a */
    unsigned char x[4];
    int n, i;

    while (p < pe) {
        n = esc ? ot_jscan_decode_one(&p, x) : (x[0] = *p++, 1);
        for (i = 0; i < n; i++) {
            h = (h ^ x[i]) * APR_UINT64_C(1099511628211);
        }
    }
    return h;
}

ot_jstatus_t ot_jscan_find(const char *buf, apr_size_t len, const char *name, ot_jval_t *v)
{
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t key;
    int found = 0;

    v->type = OT_JS_NONE;
    ot_jscan_init(&sc, buf, len);
    if (ot_jscan_object(&sc, &o)) {
        while (ot_jscan_member(&sc, &o, &key)) {
            if (!found && ot_jval_is(&key, name)) {
                found = ot_jscan_value(&sc, v);
            }
            else {
                ot_jscan_value(&sc, NULL);
            }
        }
    }
    ot_jscan_end(&sc);
    if (sc.status != OT_JS_OK) {
        v->type = OT_JS_NONE;
    }
    return sc.status;
}

ot_jstatus_t ot_jscan_pick(const char *buf, apr_size_t len, const char *const *names, int n,
                           ot_jscan_pick_fn *note, void *baton)
{
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t name, v;
    int which;

    ot_jscan_init(&sc, buf, len);
    if (ot_jscan_object(&sc, &o)) {
        while (ot_jscan_member(&sc, &o, &name)) {
            which = ot_jval_which(&name, names, n);
            if (!ot_jscan_value(&sc, &v)) {
                break;
            }
            if (which >= 0) {
                note(baton, which, &v);
            }
        }
    }
    ot_jscan_end(&sc);
    return sc.status;
}

int ot_jval_which(const ot_jval_t *v, const char *const *names, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (ot_jval_is(v, names[i])) {
            return i;
        }
    }
    return -1;
}

int ot_jval_is(const ot_jval_t *v, const char *s)
{
    apr_size_t i;

    if (v->type != OT_JS_STRING) {
        return 0;
    }
    if (v->escaped) {
        return ot_jscan_same_text(v->raw, v->raw_len, 1, s, strlen(s), 0);
    }
    for (i = 0; i < v->raw_len; i++) {  /* raw holds no NUL: a shorter s differs before its end */
        if (v->raw[i] != s[i]) {
            return 0;
        }
    }
    return s[i] == '\0';
}

const char *ot_jval_str(const ot_jval_t *v, apr_size_t *len, apr_pool_t *p)
{
    const unsigned char *q, *end;
    unsigned char *out, *o;

    if (v->type != OT_JS_STRING) {
        return NULL;
    }
    if (!v->escaped) {
        if (len) {
            *len = v->raw_len;
        }
        return apr_pstrmemdup(p, v->raw, v->raw_len);
    }
    q = (const unsigned char *)v->raw;
    end = q + v->raw_len;
    o = out = apr_palloc(p, v->raw_len + 1);   /* decoding never lengthens */
    while (q < end) {
        o += ot_jscan_decode_one(&q, o);
    }
    *o = '\0';
    if (len) {
        *len = (apr_size_t)(o - out);
    }
    return (const char *)out;
}

int ot_jval_int(const ot_jval_t *v, apr_int64_t *out)
{
    const char *q = v->raw, *end = v->raw + v->raw_len;
    apr_int64_t n = 0;
    int neg = 0;

    if (v->type != OT_JS_INTEGER) {
        return 0;
    }
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; q < end; q++) {
        n = n * 10 + (*q - '0');        /* at most 18 digits: no overflow */
    }
    *out = neg ? -n : n;
    return 1;
}

int ot_jval_bool(const ot_jval_t *v, int *out)
{
    if (v->type != OT_JS_TRUE && v->type != OT_JS_FALSE) {
        return 0;
    }
    *out = v->type == OT_JS_TRUE;
    return 1;
}
