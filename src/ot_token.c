/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ot_token.h"
#include "ot_util.h"
#include "ot_json.h"
#include "ot_jscan.h"

/*
 * RFC 6750 b64token characters, before the padding (ASCII, whatever the locale), as a table: the
 * token's every byte is looked up on every request (about 1.3 KB for a Keycloak JWT), and an
 * if-chain of ten comparisons per byte showed in the cached path's profile.
 */
#define B64_AZ(c) ((c) >= 'a' && (c) <= 'z')
#define B64_CHAR(c) (B64_AZ(c) || B64_AZ((c) + ('a' - 'A')) || ((c) >= '0' && (c) <= '9') \
                     || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' || (c) == '+' \
                     || (c) == '/')
#define B64_ROW(r) B64_CHAR((r) + 0), B64_CHAR((r) + 1), B64_CHAR((r) + 2), B64_CHAR((r) + 3), \
                   B64_CHAR((r) + 4), B64_CHAR((r) + 5), B64_CHAR((r) + 6), B64_CHAR((r) + 7), \
                   B64_CHAR((r) + 8), B64_CHAR((r) + 9), B64_CHAR((r) + 10), \
                   B64_CHAR((r) + 11), B64_CHAR((r) + 12), B64_CHAR((r) + 13), \
                   B64_CHAR((r) + 14), B64_CHAR((r) + 15)
static const unsigned char b64token_table[256] = {
    B64_ROW(0x00), B64_ROW(0x10), B64_ROW(0x20), B64_ROW(0x30),
    B64_ROW(0x40), B64_ROW(0x50), B64_ROW(0x60), B64_ROW(0x70)
    /* 0x80-0xff: 0 */
};

apr_size_t ot_b64token_span(const char *s)
{
    const unsigned char *u = (const unsigned char *)s, *t = b64token_table;
    apr_size_t n = strlen(s), i = 0;

    /* The length first, then eight bytes a test (one branch, not one per byte); the NUL at n is
     * never in the table, so the span is what the byte-by-byte loop found. */
    while (i + 8 <= n && (t[u[i]] & t[u[i + 1]] & t[u[i + 2]] & t[u[i + 3]] & t[u[i + 4]]
                          & t[u[i + 5]] & t[u[i + 6]] & t[u[i + 7]])) {
        i += 8;
    }
    while (t[u[i]]) {
        i++;
    }
    if (i == 0) {
        return 0;
    }
    while (u[i] == '=') {
        i++;
    }
    return i == n ? i : 0;
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
    /* One pass: the span is the whole rest of the header or 0 (empty or not a b64token). */
    len = ot_b64token_span(s);
    if (len == 0 || len > OT_TOKEN_MAX) {
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
 * much as the rest of a cache hit. The payload goes through the scanner of ot_jscan.c, which
 * builds nothing; what it refuses jansson refuses too (no JWT), and only what it cannot vouch for
 * (ot_jscan.h: OT_JS_UNSURE) is left to jansson. tests/fuzz/fuzz_jwt.c holds the peek to jansson,
 * tests/fuzz/fuzz_jscan.c the scanner.
 */

/** The members the peek notes, in the order of peek_note's `which`. */
static const char *const peek_names[] = { "typ", "azp", "iss", "exp" };

typedef struct {
    ot_jwt_peek_t *out;
    apr_pool_t *p;
} peek_baton_t;

/** Note the value v of the member `which` in out, as jansson would read it. */
static void peek_note(void *baton, int which, const ot_jval_t *v)
{
    ot_jwt_peek_t *out = ((peek_baton_t *)baton)->out;
    apr_pool_t *p = ((peek_baton_t *)baton)->p;
    const char **dst[] = { &out->typ, &out->azp, &out->iss };

    if (which < 3) {
        *dst[which] = ot_jval_str(v, NULL, p);          /* NULL when not a string */
    }
    else if (ot_jval_int(v, &out->exp)) {
        out->exp_kind = OT_PEEK_EXP_INT;
    }
    else if (v->type == OT_JS_REAL) {
        out->exp_kind = OT_PEEK_EXP_OTHER;
    }
}

/** The peek by the scanner: OT_JS_OK with out filled, or why not. */
static ot_jstatus_t peek_scan(ot_jwt_peek_t *out, const char *raw, apr_size_t len, apr_pool_t *p)
{
    peek_baton_t b;

    b.out = out;
    b.p = p;
    return ot_jscan_pick(raw, len, peek_names, 4, peek_note, &b);
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
    ot_jstatus_t st;

    memset(out, 0, sizeof(*out));
    if (raw == NULL) {
        return;
    }
    st = peek_scan(out, raw, len, p);
    if (st == OT_JS_OK) {
        out->is_jwt = 1;
        return;
    }
    memset(out, 0, sizeof(*out));
    if (st == OT_JS_BAD) {
        return;                         /* not JSON jansson reads */
    }
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
