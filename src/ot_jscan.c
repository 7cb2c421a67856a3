/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The JSON scanner (ot_jscan.h). It checks what jansson checks (RFC 8259's grammar, UTF-8 as
 * jansson's stream does: no overlong forms, no surrogates, nothing over U+10FFFF; escapes, \u0000
 * and surrogate pairs as jansson's lexer does; duplicate names) and gives up (OT_JS_UNSURE) only
 * where jansson's answer depends on more than the grammar: numbers it may find out of range,
 * nesting and objects beyond the scanner's fixed bounds. Decoding what it has checked is
 * ot_jscan_val.c's.
 */
#include <string.h>
#include <apr_strings.h>

#include "ot_jscan.h"
#include "ot_jscan_int.h"

/** Digits of an integer part that no parser can find out of range (an int64 has 19). */
#define INT_DIGITS_MAX 18

static int fail(ot_jscan_t *sc, ot_jstatus_t why)
{
    if (sc->status == OT_JS_OK) {
        sc->status = why;
    }
    return 0;
}

static void skip_ws(ot_jscan_t *sc)
{
    const unsigned char *q = sc->s, *end = sc->end;

    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
        q++;
    }
    sc->s = q;
}

int ot_jscan_hex4(const unsigned char *h, unsigned *v)
{
    int i;

    *v = 0;
    for (i = 0; i < 4; i++) {
        unsigned char c = h[i];
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= c - '0';
        else if (c >= 'a' && c <= 'f') *v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') *v |= c - 'A' + 10;
        else return 0;
    }
    return 1;
}

/** One UTF-8 sequence starting at s (a byte >= 0x80): its length, or 0 when invalid. */
static int utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], cp, min;
    int n, i;

    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (end - s < n) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/** A \u escape at s (s[0] is '\\'): its length (6, or 12 for a surrogate pair), 0 when bad. */
static int u_escape(const unsigned char *s, const unsigned char *end)
{
    unsigned v, lo;

    if (end - s < 6 || !ot_jscan_hex4(s + 2, &v) || v == 0 || (v >= 0xdc00 && v <= 0xdfff)) {
        return 0;                       /* \u0000 without JSON_ALLOW_NUL; a lone low surrogate */
    }
    if (v < 0xd800 || v > 0xdbff) {
        return 6;
    }
    if (end - s < 12 || s[6] != '\\' || s[7] != 'u' || !ot_jscan_hex4(s + 8, &lo)
        || lo < 0xdc00 || lo > 0xdfff) {
        return 0;                       /* a high surrogate not followed by a low one */
    }
    return 12;
}

/** Bytes that stand for themselves in a plain string: printable ASCII but '"' and '\\'. */
static const unsigned char ordinary[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* ' ' .. '/' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                        /* '0' .. '?' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                        /* '@' .. 'O' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,                        /* 'P' .. '_' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                        /* '`' .. 'o' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,                        /* 'p' .. DEL */
};

/** A string at sc->s ('"'). */
static int scan_string(ot_jscan_t *sc, ot_jval_t *v)
{
    const unsigned char *start = ++sc->s;
    int plain = 1, escaped = 0, n;

    while (sc->s < sc->end) {
        const unsigned char *q = sc->s, *end = sc->end;   /* locals: bytes alias sc */
        unsigned char c;

        while (q < end && ordinary[*q]) {
            q++;
        }
        sc->s = q;
        if (q == end) {
            break;
        }
        c = *q;
        if (c == '"') {
            v->type = OT_JS_STRING;
            v->raw = (const char *)start;
            v->raw_len = (apr_size_t)(sc->s - start);
            v->escaped = escaped;
            v->plain = plain;
            v->flat = 0;
            sc->s++;
            return 1;
        }
        plain = 0;
        if (c < 0x20) {
            return fail(sc, OT_JS_BAD);
        }
        if (c == '\\') {
            escaped = 1;
            if (sc->end - sc->s < 2) {
                return fail(sc, OT_JS_BAD);
            }
            c = sc->s[1];
            if (c == 'u') {
                n = u_escape(sc->s, sc->end);
            }
            else {
                n = (c != '\0' && strchr("\"\\/bfnrt", c) != NULL) ? 2 : 0;
            }
        }
        else {
            n = c < 0x80 ? 1 : utf8_len(sc->s, sc->end);    /* DEL is allowed, not plain */
        }
        if (n == 0) {
            return fail(sc, OT_JS_BAD);
        }
        sc->s += n;
    }
    return fail(sc, OT_JS_BAD);
}

/*
 * jansson reads a number or a word one byte ahead and puts that byte back, but a NUL put back is
 * lost: it reads "[1\0]" and "false\0" as if the NUL were not there. The scanner does not copy
 * that; it is unsure when a NUL follows a number or a word.
 */
static int after_nul(const ot_jscan_t *sc)
{
    return sc->s < sc->end && *sc->s == '\0';
}

static int is_digit(const ot_jscan_t *sc)
{
    return sc->s < sc->end && *sc->s >= '0' && *sc->s <= '9';
}

/** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? ; an exponent or a long integer part: unsure. */
static int scan_number(ot_jscan_t *sc, ot_jval_t *v)
{
    const unsigned char *start = sc->s, *digits;
    int unsure = 0;

    v->type = OT_JS_INTEGER;
    if (sc->s < sc->end && *sc->s == '-') {
        sc->s++;
    }
    digits = sc->s;
    if (!is_digit(sc)) {
        return fail(sc, OT_JS_BAD);
    }
    if (*sc->s++ != '0') {
        while (is_digit(sc)) sc->s++;
    }
    unsure = sc->s - digits > INT_DIGITS_MAX;
    if (sc->s < sc->end && *sc->s == '.') {
        sc->s++;
        if (!is_digit(sc)) {
            return fail(sc, OT_JS_BAD);
        }
        while (is_digit(sc)) sc->s++;
        v->type = OT_JS_REAL;
    }
    if (sc->s < sc->end && (*sc->s == 'e' || *sc->s == 'E')) {
        sc->s++;
        if (sc->s < sc->end && (*sc->s == '+' || *sc->s == '-')) {
            sc->s++;
        }
        if (!is_digit(sc)) {
            return fail(sc, OT_JS_BAD);
        }
        unsure = 1;                     /* 1e999 is out of range for jansson */
    }
    if (unsure || after_nul(sc)) {
        return fail(sc, OT_JS_UNSURE);
    }
    v->raw = (const char *)start;
    v->raw_len = (apr_size_t)(sc->s - start);
    v->escaped = 0;
    v->plain = v->type == OT_JS_INTEGER && !(*start == '-' && *digits == '0');
    v->flat = 0;
    return 1;
}

static int scan_word(ot_jscan_t *sc, ot_jval_t *v, const char *word, ot_jtype_t type)
{
    apr_size_t n = strlen(word);

    if ((apr_size_t)(sc->end - sc->s) < n || memcmp(sc->s, word, n) != 0) {
        return fail(sc, OT_JS_BAD);
    }
    if ((apr_size_t)(sc->end - sc->s) > n && sc->s[n] == '\0') {      /* see after_nul() */
        return fail(sc, OT_JS_UNSURE);
    }
    v->type = type;
    v->raw = (const char *)sc->s;
    v->raw_len = n;
    v->escaped = v->flat = 0;
    v->plain = 1;
    sc->s += n;
    return 1;
}

void ot_jscan_init(ot_jscan_t *sc, const char *buf, apr_size_t len)
{
    sc->s = (const unsigned char *)buf;
    sc->end = sc->s + len;
    sc->depth = 0;
    sc->status = OT_JS_OK;
}

ot_jtype_t ot_jscan_peek(ot_jscan_t *sc)
{
    skip_ws(sc);
    if (sc->status != OT_JS_OK || sc->s >= sc->end) {
        return OT_JS_NONE;
    }
    switch (*sc->s) {
    case '{': return OT_JS_OBJECT;
    case '[': return OT_JS_ARRAY;
    case '"': return OT_JS_STRING;
    case 't': return OT_JS_TRUE;
    case 'f': return OT_JS_FALSE;
    case 'n': return OT_JS_NULL;
    case '-': return OT_JS_INTEGER;
    default: return (*sc->s >= '0' && *sc->s <= '9') ? OT_JS_INTEGER : OT_JS_NONE;
    }
}

/** A container read whole into v; its flags gather those of everything in it. */
static int scan_container(ot_jscan_t *sc, ot_jval_t *v, int object)
{
    const unsigned char *start = sc->s;
    ot_jobj_t o;
    ot_jarr_t a;
    ot_jval_t name, inner;
    int plain = 1, escaped = 0, flat = 1;

    if (object ? !ot_jscan_object(sc, &o) : !ot_jscan_array(sc, &a)) {
        return 0;
    }
    for (;;) {
        if (object) {
            if (!ot_jscan_member(sc, &o, &name)) {
                break;
            }
            plain = plain && name.plain;
            escaped = escaped || name.escaped;
        }
        else if (!ot_jscan_element(sc, &a)) {
            break;
        }
        if (!ot_jscan_value(sc, &inner)) {
            return 0;
        }
        plain = plain && inner.plain;
        escaped = escaped || inner.escaped;
        flat = flat && (inner.type == OT_JS_STRING || inner.type == OT_JS_INTEGER
                        || inner.type == OT_JS_TRUE || inner.type == OT_JS_FALSE);
    }
    if (sc->status != OT_JS_OK) {
        return 0;
    }
    v->type = object ? OT_JS_OBJECT : OT_JS_ARRAY;
    v->raw = (const char *)start;
    v->raw_len = (apr_size_t)(sc->s - start);
    v->escaped = escaped;
    v->plain = plain;
    v->flat = !object && flat;
    return 1;
}

int ot_jscan_value(ot_jscan_t *sc, ot_jval_t *v)
{
    ot_jval_t ignored;

    if (v == NULL) {
        v = &ignored;
    }
    v->type = OT_JS_NONE;
    skip_ws(sc);
    if (sc->status != OT_JS_OK) {
        return 0;
    }
    if (sc->s >= sc->end) {
        return fail(sc, OT_JS_BAD);
    }
    switch (*sc->s) {
    case '{': return scan_container(sc, v, 1);
    case '[': return scan_container(sc, v, 0);
    case '"': return scan_string(sc, v);
    case 't': return scan_word(sc, v, "true", OT_JS_TRUE);
    case 'f': return scan_word(sc, v, "false", OT_JS_FALSE);
    case 'n': return scan_word(sc, v, "null", OT_JS_NULL);
    default: return scan_number(sc, v);
    }
}

/** Enter a container opened by c; deeper than OT_JS_DEPTH is unsure. */
static int enter(ot_jscan_t *sc, unsigned char c)
{
    skip_ws(sc);
    if (sc->status != OT_JS_OK) {
        return 0;
    }
    if (sc->s >= sc->end || *sc->s != c) {
        return fail(sc, OT_JS_BAD);
    }
    if (sc->depth >= OT_JS_DEPTH) {
        return fail(sc, OT_JS_UNSURE);
    }
    sc->depth++;
    sc->s++;
    return 1;
}

int ot_jscan_object(ot_jscan_t *sc, ot_jobj_t *o)
{
    o->n = 0;
    o->escaped = 0;
    memset(o->seen, 0, sizeof(o->seen));
    return enter(sc, '{');
}

int ot_jscan_array(ot_jscan_t *sc, ot_jarr_t *a)
{
    a->n = 0;
    return enter(sc, '[');
}

/**
 * Before the next member or element of a container closed by `close` that has had n of them:
 * 1 when one follows, 0 at the close (taken) or on error.
 */
static int next_item(ot_jscan_t *sc, int n, unsigned char close)
{
    skip_ws(sc);
    if (sc->status != OT_JS_OK) {
        return 0;
    }
    if (sc->s < sc->end && *sc->s == close) {
        sc->s++;
        sc->depth--;
        return 0;
    }
    if (n > 0) {
        if (sc->s >= sc->end || *sc->s != ',') {
            return fail(sc, OT_JS_BAD);
        }
        sc->s++;
        skip_ws(sc);
    }
    return 1;
}

/** A bit of the names set for an unescaped name: of its length, ends and middle byte. */
static unsigned name_hash(const ot_jval_t *name)
{
    const unsigned char *r = (const unsigned char *)name->raw;
    apr_size_t n = name->raw_len;

    if (n == 0) {
        return 0;
    }
    return (unsigned)(n * 31 + r[0] * 7 + r[n / 2] * 13 + r[n - 1]) & 255;
}

int ot_jscan_member(ot_jscan_t *sc, ot_jobj_t *o, ot_jval_t *name)
{
    int i, total = o->n;
    unsigned h;
    apr_uint64_t bit;

    if (!next_item(sc, total, '}')) {
        return 0;
    }
    if (sc->s >= sc->end || *sc->s != '"') {
        return fail(sc, OT_JS_BAD);
    }
    if (!scan_string(sc, name)) {
        return 0;
    }
    skip_ws(sc);
    if (sc->s >= sc->end || *sc->s != ':') {
        return fail(sc, OT_JS_BAD);
    }
    sc->s++;
    if (total >= OT_JS_MEMBERS) {
        return fail(sc, OT_JS_UNSURE);
    }
    if (o->escaped || name->escaped) {
        /*
         * Escapes: the same text may be spelled differently, so names are compared decoded, but
         * only where their decoded texts hash alike: comparing every pair outright let 64 names
         * with a long common prefix cost a millisecond per object, in a token anyone can send.
         */
        if (!o->escaped) {
            for (i = 0; i < total; i++) {       /* the names so far: no escapes, hashed once */
                o->hashes[i] = ot_jscan_text_hash(o->names[i], o->lens[i], 0);
            }
        }
        o->hashes[total] = ot_jscan_text_hash(name->raw, name->raw_len, name->escaped);
        for (i = 0; i < total; i++) {
            if (o->hashes[i] == o->hashes[total]
                && ot_jscan_same_text(o->names[i], o->lens[i], 1, name->raw, name->raw_len,
                                      name->escaped)) {
                return fail(sc, OT_JS_BAD);
            }
        }
    }
    else {
        h = name_hash(name);
        bit = (apr_uint64_t)1 << (h & 63);
        if (o->seen[h >> 6] & bit) {
            for (i = 0; i < total; i++) {   /* the same bit: compare the texts */
                if (o->lens[i] == name->raw_len
                    && memcmp(o->names[i], name->raw, name->raw_len) == 0) {
                    return fail(sc, OT_JS_BAD);
                }
            }
        }
        o->seen[h >> 6] |= bit;
    }
    o->names[total] = name->raw;
    o->lens[total] = name->raw_len;
    o->escaped = o->escaped || name->escaped;
    o->n++;
    return 1;
}

int ot_jscan_element(ot_jscan_t *sc, ot_jarr_t *a)
{
    if (!next_item(sc, a->n, ']')) {
        return 0;
    }
    a->n++;
    return 1;
}

int ot_jscan_end(ot_jscan_t *sc)
{
    skip_ws(sc);
    if (sc->status != OT_JS_OK) {
        return 0;
    }
    if (sc->s != sc->end || sc->depth != 0) {
        return fail(sc, OT_JS_BAD);
    }
    return 1;
}
