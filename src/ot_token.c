/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ot_token.h"
#include "ot_util.h"
#include "ot_json.h"

/** RFC 6750 b64token characters, before the padding (ASCII, whatever the locale). */
static int b64token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/** RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int is_b64token(const char *s, apr_size_t len)
{
    apr_size_t i = 0;

    while (i < len && b64token_char((unsigned char)s[i])) {
        i++;
    }
    if (i == 0) {
        return 0;
    }
    while (i < len && s[i] == '=') {
        i++;
    }
    return i == len;
}

/** After a scheme name of n bytes: the credentials (as ot_bearer_parse says). */
static ot_bearer_t parse_after(const char *header, apr_size_t n, const char **token,
                               apr_pool_t *p)
{
    const char *s = header + n;
    apr_size_t len;

    if (*s == '\0') {
        return OT_BEARER_MALFORMED;            /* "Bearer" and nothing */
    }
    if (*s != ' ') {
        /* "Bearer\t..." is a Bearer credential with bad white space; "Bearerx" another scheme. */
        return (*s == '\t') ? OT_BEARER_MALFORMED : OT_BEARER_NONE;
    }
    while (*s == ' ') {
        s++;
    }
    len = strlen(s);
    if (len == 0 || len > OT_TOKEN_MAX || !is_b64token(s, len)) {
        return OT_BEARER_MALFORMED;
    }
    *token = apr_pstrmemdup(p, s, len);
    return OT_BEARER_OK;
}

ot_bearer_t ot_credentials_parse(const char *header, int bearer, int dpop, ot_scheme_t *scheme,
                                 const char **token, apr_pool_t *p)
{
    ot_bearer_t rv = OT_BEARER_NONE;

    *scheme = OT_SCHEME_NONE;
    if (header == NULL) {
        return OT_BEARER_NONE;
    }
    if (bearer && strncasecmp(header, "Bearer", 6) == 0) {
        rv = parse_after(header, 6, token, p);
        *scheme = OT_SCHEME_BEARER;
    }
    else if (dpop && strncasecmp(header, "DPoP", 4) == 0) {
        rv = parse_after(header, 4, token, p);
        *scheme = OT_SCHEME_DPOP;
    }
    if (rv == OT_BEARER_NONE) {
        *scheme = OT_SCHEME_NONE;
    }
    return rv;
}

ot_bearer_t ot_bearer_parse(const char *header, const char **token, apr_pool_t *p)
{
    ot_scheme_t scheme;

    return ot_credentials_parse(header, 1, 0, &scheme, token, p);
}

/*
 * The peek reads only "typ", "azp", "iss" and "exp" at the top of the payload, on every request
 * (typ and azp choose the hint and client that the cache key covers; all four tell a token
 * certain to fail, mod_offtok_flood.c): building a jansson tree for that cost about 10 µs, as
 * much as the rest of a cache hit. The scanner below walks the JSON without building anything
 * and accepts only what it fully checks (grammar, UTF-8, escapes); anything else — an escape in
 * one of the four or in a key, a number it cannot vouch for, depth over PEEK_DEPTH, one of the
 * four twice — makes it give up, and jansson decides as before. It accepts nothing jansson
 * refuses except an object with a duplicate key other than those four (the peek only chooses the
 * hint and credentials; the issuer judges the token, and the flood check has jansson confirm a
 * refusal). tests/fuzz/fuzz_jwt.c holds it to that.
 */
#define PEEK_DEPTH 32
#define PEEK_NUMBER_MAX 15      /* longer numbers (or exponents) may overflow for jansson */

typedef struct {
    const unsigned char *s, *end;
} scan_t;

static void scan_ws(scan_t *sc)
{
    while (sc->s < sc->end
           && (*sc->s == ' ' || *sc->s == '\t' || *sc->s == '\n' || *sc->s == '\r')) {
        sc->s++;
    }
}

static int hex4(const unsigned char *h, unsigned *v)
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

/** A string at sc->s ('"'); *escaped: it held an escape. 0: give up. */
static int scan_string(scan_t *sc, const unsigned char **start, apr_size_t *len, int *escaped)
{
    unsigned v;
    int n;

    *escaped = 0;
    *start = ++sc->s;
    while (sc->s < sc->end) {
        unsigned char c = *sc->s;
        if (c == '"') {
            *len = (apr_size_t)(sc->s - *start);
            sc->s++;
            return 1;
        }
        if (c < 0x20) {
            return 0;
        }
        if (c == '\\') {
            *escaped = 1;
            if (sc->end - sc->s < 2) {
                return 0;
            }
            c = sc->s[1];
            if (c == 'u') {
                /* \u0000 and surrogates: jansson's rules; leave them to it. */
                if (sc->end - sc->s < 6 || !hex4(sc->s + 2, &v) || v == 0
                    || (v >= 0xd800 && v <= 0xdfff)) {
                    return 0;
                }
                sc->s += 6;
                continue;
            }
            if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return 0;
            }
            sc->s += 2;
            continue;
        }
        if (c >= 0x80) {
            if ((n = utf8_len(sc->s, sc->end)) == 0) {
                return 0;
            }
            sc->s += n;
            continue;
        }
        sc->s++;
    }
    return 0;
}

/** -?(0|[1-9][0-9]*)(.[0-9]+)?, short enough for any parser; no exponent. */
static int scan_number(scan_t *sc)
{
    const unsigned char *start = sc->s;

    if (sc->s < sc->end && *sc->s == '-') {
        sc->s++;
    }
    if (sc->s >= sc->end || !(*sc->s >= '0' && *sc->s <= '9')) {
        return 0;
    }
    if (*sc->s == '0') {
        sc->s++;
    }
    else {
        while (sc->s < sc->end && *sc->s >= '0' && *sc->s <= '9') sc->s++;
    }
    if (sc->s < sc->end && *sc->s == '.') {
        sc->s++;
        if (sc->s >= sc->end || !(*sc->s >= '0' && *sc->s <= '9')) {
            return 0;
        }
        while (sc->s < sc->end && *sc->s >= '0' && *sc->s <= '9') sc->s++;
    }
    if (sc->s < sc->end && (*sc->s == 'e' || *sc->s == 'E')) {
        return 0;
    }
    return sc->s - start <= PEEK_NUMBER_MAX;
}

static int scan_literal(scan_t *sc, const char *word)
{
    apr_size_t n = strlen(word);

    if ((apr_size_t)(sc->end - sc->s) < n || memcmp(sc->s, word, n) != 0) {
        return 0;
    }
    sc->s += n;
    return 1;
}

static int scan_value(scan_t *sc, int depth);

/** The members the peek notes: their index in peek_names, or -1. */
static const char *const peek_names[] = { "typ", "azp", "iss", "exp" };

static int peek_member(const unsigned char *key, apr_size_t key_len)
{
    int i;

    for (i = 0; key_len == 3 && i < (int)(sizeof(peek_names) / sizeof(peek_names[0])); i++) {
        if (memcmp(key, peek_names[i], 3) == 0) {
            return i;
        }
    }
    return -1;
}

/** exp's value at sc->s: an integer is noted, any other number marked for jansson. */
static int peek_exp(scan_t *sc, ot_jwt_peek_t *out)
{
    const unsigned char *start = sc->s, *c;
    apr_int64_t v = 0;

    if (sc->s >= sc->end || !(*sc->s == '-' || (*sc->s >= '0' && *sc->s <= '9'))) {
        return scan_value(sc, 2);                       /* not a number */
    }
    if (!scan_number(sc)) {
        return 0;
    }
    out->exp_kind = OT_PEEK_EXP_INT;
    for (c = start + (*start == '-'); c < sc->s; c++) {
        if (*c == '.') {
            out->exp_kind = OT_PEEK_EXP_OTHER;
            return 1;
        }
        v = v * 10 + (*c - '0');                        /* at most PEEK_NUMBER_MAX digits */
    }
    out->exp = *start == '-' ? -v : v;
    return 1;
}

/** The value of the noted member `which` at sc->s (a string, or exp's number). */
static int peek_value(scan_t *sc, int which, ot_jwt_peek_t *out, apr_pool_t *p)
{
    const char **dst[] = { &out->typ, &out->azp, &out->iss };
    const unsigned char *val;
    apr_size_t val_len;
    int escaped;

    if (which == 3) {
        return peek_exp(sc, out);
    }
    if (sc->s < sc->end && *sc->s == '"') {
        if (!scan_string(sc, &val, &val_len, &escaped) || escaped) {
            return 0;
        }
        *dst[which] = apr_pstrmemdup(p, (const char *)val, val_len);
        return 1;
    }
    return scan_value(sc, 2);
}

/** An object or array at sc->s; for the top-level object (out != NULL) note the peek's members. */
static int scan_container(scan_t *sc, int depth, ot_jwt_peek_t *out, apr_pool_t *p)
{
    int object = *sc->s == '{', seen = 0, first = 1, escaped, which;
    unsigned char close = object ? '}' : ']';
    const unsigned char *key;
    apr_size_t key_len;

    if (depth > PEEK_DEPTH) {
        return 0;
    }
    sc->s++;
    for (;;) {
        scan_ws(sc);
        if (sc->s >= sc->end) {
            return 0;
        }
        if (*sc->s == close) {          /* after a member, or at once: "{}" (never after ",") */
            sc->s++;
            return 1;
        }
        if (!first) {
            if (*sc->s != ',') {
                return 0;
            }
            sc->s++;
            scan_ws(sc);
        }
        first = 0;
        if (!object) {
            if (!scan_value(sc, depth + 1)) {
                return 0;
            }
            continue;
        }
        if (sc->s >= sc->end || *sc->s != '"' || !scan_string(sc, &key, &key_len, &escaped)
            || escaped) {
            return 0;                   /* an escaped key might spell typ or azp */
        }
        scan_ws(sc);
        if (sc->s >= sc->end || *sc->s != ':') {
            return 0;
        }
        sc->s++;
        scan_ws(sc);
        if (out != NULL && (which = peek_member(key, key_len)) >= 0) {
            if (seen & (1 << which) || !peek_value(sc, which, out, p)) {
                return 0;
            }
            seen |= 1 << which;
            continue;
        }
        if (!scan_value(sc, depth + 1)) {
            return 0;
        }
    }
}

static int scan_value(scan_t *sc, int depth)
{
    const unsigned char *start;
    apr_size_t len;
    int escaped;

    if (sc->s >= sc->end) {
        return 0;
    }
    switch (*sc->s) {
    case '{': case '[':
        return scan_container(sc, depth, NULL, NULL);
    case '"':
        return scan_string(sc, &start, &len, &escaped);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        return scan_number(sc);
    }
}

/** The middle part of a compact JWS, decoded; NULL when token is not three parts. */
static char *jwt_middle(const char *token, apr_size_t *len, apr_pool_t *p)
{
    const char *dot1 = strchr(token, '.'), *dot2;
    char *raw;

    if (dot1 == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.') != NULL) {
        return NULL;
    }
    if (ot_b64url_decode(&raw, len, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), p) != APR_SUCCESS) {
        return NULL;
    }
    return raw;
}

void ot_jwt_peek(ot_jwt_peek_t *out, const char *token, apr_pool_t *p)
{
    apr_size_t len;
    char *raw = jwt_middle(token, &len, p);
    json_t *payload, *exp;
    scan_t sc;

    memset(out, 0, sizeof(*out));
    if (raw == NULL) {
        return;
    }
    sc.s = (const unsigned char *)raw;
    sc.end = sc.s + len;
    scan_ws(&sc);
    if (sc.s < sc.end && *sc.s == '{' && scan_container(&sc, 1, out, p)) {
        scan_ws(&sc);
        if (sc.s == sc.end) {
            out->is_jwt = 1;
            return;
        }
    }
    memset(out, 0, sizeof(*out));
    payload = ot_json_parse(raw, len, NULL, p);
    if (!json_is_object(payload)) {
        return;
    }
    out->is_jwt = 1;
    out->typ = ot_json_string(payload, "typ");
    out->azp = ot_json_string(payload, "azp");
    out->iss = ot_json_string(payload, "iss");
    exp = json_object_get(payload, "exp");
    if (json_is_integer(exp)) {
        out->exp_kind = OT_PEEK_EXP_INT;
        out->exp = (apr_int64_t)json_integer_value(exp);
    }
    else if (json_is_real(exp)) {
        out->exp_kind = OT_PEEK_EXP_OTHER;
    }
}

const char *ot_token_hint(ot_hint_mode_t mode, const ot_jwt_peek_t *peek)
{
    switch (mode) {
    case OT_HINT_ACCESS:
        return "access_token";
    case OT_HINT_REFRESH:
        return "refresh_token";
    case OT_HINT_NONE:
        return NULL;
    case OT_HINT_AUTO:
    default:
        break;
    }
    if (!peek->is_jwt) {
        return NULL;
    }
    if (peek->typ && (strcmp(peek->typ, "Refresh") == 0 || strcmp(peek->typ, "Offline") == 0)) {
        return "refresh_token";
    }
    return "access_token";
}

json_t *ot_jwt_payload(const char *token, apr_pool_t *p)
{
    apr_size_t len;
    char *raw = jwt_middle(token, &len, p);
    json_t *payload = raw ? ot_json_parse(raw, len, NULL, p) : NULL;

    return json_is_object(payload) ? payload : NULL;
}
