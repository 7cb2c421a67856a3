/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_token.h"
#include "ot_util.h"

static ot_bearer_t parse(const char *h, const char **tok)
{
    *tok = NULL;
    return ot_bearer_parse(h, tok, ot_test_pool);
}

START_TEST(bearer_well_formed)
{
    const char *tok;

    ck_assert_int_eq(parse("Bearer abc.DEF-_~+/==", &tok), OT_BEARER_OK);
    ck_assert_str_eq(tok, "abc.DEF-_~+/==");
    ck_assert_int_eq(parse("bearer abc", &tok), OT_BEARER_OK);
    ck_assert_int_eq(parse("BEARER   abc", &tok), OT_BEARER_OK);
    ck_assert_str_eq(tok, "abc");
}
END_TEST

START_TEST(bearer_absent_or_other_scheme)
{
    const char *tok;

    ck_assert_int_eq(parse(NULL, &tok), OT_BEARER_NONE);
    ck_assert_int_eq(parse("Basic dXNlcjpwYXNz", &tok), OT_BEARER_NONE);
    ck_assert_int_eq(parse("Bearerabc", &tok), OT_BEARER_NONE);
    ck_assert_int_eq(parse("", &tok), OT_BEARER_NONE);
}
END_TEST

START_TEST(bearer_malformed)
{
    const char *tok;
    char *big = apr_palloc(ot_test_pool, OT_TOKEN_MAX + 2);

    ck_assert_int_eq(parse("Bearer", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer ", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer a b", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer a\tb", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer\tabc", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer abc, Bearer def", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer ab=c", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer =abc", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer ab\xc3\xa9", &tok), OT_BEARER_MALFORMED);
    ck_assert_int_eq(parse("Bearer a\"b", &tok), OT_BEARER_MALFORMED);
    memset(big, 'a', OT_TOKEN_MAX + 1);
    big[OT_TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(parse(apr_pstrcat(ot_test_pool, "Bearer ", big, NULL), &tok),
                     OT_BEARER_MALFORMED);
    big[OT_TOKEN_MAX] = '\0';
    ck_assert_int_eq(parse(apr_pstrcat(ot_test_pool, "Bearer ", big, NULL), &tok), OT_BEARER_OK);
}
END_TEST

/* base64url of {"typ":"Offline","azp":"orders-web"} and of {"typ":"Bearer"} */
#define OFFLINE_JWT "eyJhbGciOiJIUzUxMiJ9.eyJ0eXAiOiJPZmZsaW5lIiwiYXpwIjoib3JkZXJzLXdlYiJ9.c2ln"
#define ACCESS_JWT  "eyJhbGciOiJSUzI1NiJ9.eyJ0eXAiOiJCZWFyZXIifQ.c2ln"

START_TEST(jwt_peek_and_hint)
{
    ot_jwt_peek_t pk;

    ot_jwt_peek(&pk, OFFLINE_JWT, ot_test_pool);
    ck_assert(pk.is_jwt);
    ck_assert_str_eq(pk.typ, "Offline");
    ck_assert_str_eq(pk.azp, "orders-web");
    ck_assert_str_eq(ot_token_hint(OT_HINT_AUTO, &pk), "refresh_token");
    ck_assert_str_eq(ot_token_hint(OT_HINT_ACCESS, &pk), "access_token");
    ck_assert_ptr_null(ot_token_hint(OT_HINT_NONE, &pk));

    ot_jwt_peek(&pk, ACCESS_JWT, ot_test_pool);
    ck_assert(pk.is_jwt);
    ck_assert_str_eq(ot_token_hint(OT_HINT_AUTO, &pk), "access_token");

    ot_jwt_peek(&pk, "opaque-token-value", ot_test_pool);
    ck_assert(!pk.is_jwt);
    ck_assert_ptr_null(ot_token_hint(OT_HINT_AUTO, &pk));
    ck_assert_str_eq(ot_token_hint(OT_HINT_REFRESH, &pk), "refresh_token");
}
END_TEST

START_TEST(jwt_peek_refuses_odd_shapes)
{
    ot_jwt_peek_t pk;

    ot_jwt_peek(&pk, "a.b", ot_test_pool);                       /* two parts */
    ck_assert(!pk.is_jwt);
    ot_jwt_peek(&pk, "a.b.c.d", ot_test_pool);                   /* four parts */
    ck_assert(!pk.is_jwt);
    ot_jwt_peek(&pk, "x.WzFd.y", ot_test_pool);                  /* payload [1] is no object */
    ck_assert(!pk.is_jwt);
    ot_jwt_peek(&pk, "x.%%%.y", ot_test_pool);                   /* not base64url */
    ck_assert(!pk.is_jwt);
    ot_jwt_peek(&pk, "x.eyJ0eXAiOjF9.y", ot_test_pool);          /* typ is a number */
    ck_assert(pk.is_jwt);
    ck_assert_ptr_null(pk.typ);
    ck_assert_str_eq(ot_token_hint(OT_HINT_AUTO, &pk), "access_token");
}
END_TEST

/** A token whose payload is json (base64url of it, as a JWT's middle part). */
static const char *jwt_of(const char *json);

/*
 * The peek also reads iss and exp (what tells a token certain to fail, mod_offtok_flood.c), by
 * jansson's reading: an integer exp as such, any other number left to jansson.
 */
START_TEST(jwt_peek_reads_iss_and_exp)
{
    static const struct {
        const char *payload;
        int is_jwt;
        const char *iss;
        ot_peek_exp_t kind;
        apr_int64_t exp;
    } cases[] = {
        { "{\"iss\":\"https://kc/realms/a\",\"exp\":1700000000}", 1, "https://kc/realms/a",
          OT_PEEK_EXP_INT, 1700000000 },
        { "{\"exp\":-12,\"n\":{\"iss\":\"inner\",\"exp\":5}}", 1, NULL, OT_PEEK_EXP_INT, -12 },
        { "{\"exp\":0}", 1, NULL, OT_PEEK_EXP_INT, 0 },
        { "{\"exp\":17.5}", 1, NULL, OT_PEEK_EXP_OTHER, 0 },
        { "{\"exp\":1e9}", 1, NULL, OT_PEEK_EXP_OTHER, 0 },          /* jansson's reading */
        { "{\"exp\":\"1700000000\",\"iss\":7}", 1, NULL, OT_PEEK_EXP_NONE, 0 },
        { "{\"exp\":true,\"iss\":null}", 1, NULL, OT_PEEK_EXP_NONE, 0 },
        { "{\"iss\":\"a\\/b\"}", 1, "a/b", OT_PEEK_EXP_NONE, 0 },   /* escaped: jansson */
        { "{\"e\\u0078p\":99}", 1, NULL, OT_PEEK_EXP_INT, 99 },       /* an escaped name */
        { "{\"exp\":123456789012345678901}", 0, NULL, OT_PEEK_EXP_NONE, 0 }, /* too big */
        { "{\"exp\":1,\"exp\":2}", 0, NULL, OT_PEEK_EXP_NONE, 0 },      /* jansson: twice */
        { "{\"iss\":\"a\",\"iss\":\"b\"}", 0, NULL, OT_PEEK_EXP_NONE, 0 },
        /* numbers at jansson's edges: -0, 19 digits (left to jansson), 2^64, an exponent */
        { "{\"exp\":-0}", 1, NULL, OT_PEEK_EXP_INT, 0 },
        { "{\"exp\":9223372036854775807}", 1, NULL, OT_PEEK_EXP_INT, APR_INT64_MAX },
        { "{\"exp\":-9223372036854775808}", 1, NULL, OT_PEEK_EXP_INT, APR_INT64_MIN },
        { "{\"exp\":18446744073709551616}", 0, NULL, OT_PEEK_EXP_NONE, 0 },
        { "{\"exp\":1E3}", 1, NULL, OT_PEEK_EXP_OTHER, 0 },
        { "{\"exp\":100000000000000000}", 1, NULL, OT_PEEK_EXP_INT, 100000000000000000 },
        /* the same name spelled twice, once escaped: jansson refuses the payload */
        { "{\"exp\":1,\"\\u0065xp\":2}", 0, NULL, OT_PEEK_EXP_NONE, 0 },
        { "{\"\\u0069ss\":\"a\",\"x\":0,\"iss\":\"b\"}", 0, NULL, OT_PEEK_EXP_NONE, 0 },
        { "\xef\xbb\xbf{\"exp\":1}", 0, NULL, OT_PEEK_EXP_NONE, 0 },   /* a byte-order mark */
    };
    ot_jwt_peek_t pk;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ot_jwt_peek(&pk, jwt_of(cases[i].payload), ot_test_pool);
        ck_assert_msg(pk.is_jwt == cases[i].is_jwt, "case %zu: is_jwt", i);
        ck_assert_msg((pk.iss == NULL) == (cases[i].iss == NULL)
                      && (!pk.iss || strcmp(pk.iss, cases[i].iss) == 0), "case %zu: iss", i);
        ck_assert_msg(pk.exp_kind == cases[i].kind, "case %zu: exp kind %d", i, pk.exp_kind);
        ck_assert_msg(pk.exp_kind != OT_PEEK_EXP_INT || pk.exp == cases[i].exp,
                      "case %zu: exp", i);
    }
}
END_TEST

/** A token whose payload is json (base64url of it, as a JWT's middle part). */
static const char *jwt_of(const char *json)
{
    char *b = (char *)ot_b64_encode(json, strlen(json), ot_test_pool), *c;

    for (c = b; *c; c++) {
        if (*c == '+') *c = '-';
        else if (*c == '/') *c = '_';
        else if (*c == '=') *c = '\0';
    }
    return apr_pstrcat(ot_test_pool, "eyJhbGciOiJSUzI1NiJ9.", b, ".c2ln", NULL);
}

START_TEST(jwt_peek_reads_payloads_as_jansson_does)
{
    static const struct {
        const char *payload;
        int is_jwt;
        const char *typ, *azp;
    } cases[] = {
        { "{\"typ\":\"Offline\",\"azp\":\"web\"}", 1, "Offline", "web" },
        { " {\"n\":{\"typ\":\"inner\"},\"a\":[1,-2.5,true,null,\"\\u00e9\"],\"typ\":\"Bearer\"} ",
          1, "Bearer", NULL },
        { "{\"name\":\"Jos\xc3\xa9\",\"azp\":\"x\"}", 1, NULL, "x" },
        { "{\"t\\u0079p\":\"Offline\"}", 1, "Offline", NULL },      /* an escaped key */
        { "{\"azp\":\"a\\\"b\"}", 1, NULL, "a\"b" },                   /* an escaped value */
        { "{\"exp\":1e3,\"typ\":\"Bearer\"}", 1, "Bearer", NULL },     /* an exponent */
        { "{\"typ\":1}", 1, NULL, NULL },
        { "{\"typ\":\"a\",\"typ\":\"b\"}", 0, NULL, NULL },          /* jansson: duplicate */
        { "{\"x\":1,\"x\":2,\"typ\":\"Bearer\"}", 0, NULL, NULL },   /* any duplicate */
        { "{\"o\":{\"k\":1,\"k\":2},\"typ\":\"Bearer\"}", 0, NULL, NULL },
        { "{\"typ\":\"Off\\u006cine\",\"azp\":\"\\ud83d\\ude00\"}", 1, "Offline",
          "\xf0\x9f\x98\x80" },                                        /* escapes decoded */
        { "{\"typ\":\"\\u0000\"}", 0, NULL, NULL },                  /* jansson: no NUL */
        { "{\"typ\":\"\\ud800\"}", 0, NULL, NULL },                  /* a lone surrogate */
        { "{\"typ\":\"Bearer\"} x", 0, NULL, NULL },                  /* trailing bytes */
        { "{\"typ\":\"Bearer\",}", 0, NULL, NULL },
        { "{\"bad\":\"\xc3\x28\"}", 0, NULL, NULL },                  /* invalid UTF-8 */
        { "{\"n\":01}", 0, NULL, NULL },
        { "[{\"typ\":\"Bearer\"}]", 0, NULL, NULL },
        { "{\"typ\":\"Bearer\"", 0, NULL, NULL },
        /* azp picks the client asked as, typ the hint: one spelled twice is no JWT */
        { "{\"azp\":\"web\",\"\\u0061zp\":\"admin\"}", 0, NULL, NULL },
        { "{\"\\u0074yp\":\"Offline\",\"typ\":\"Bearer\"}", 0, NULL, NULL },
        { "{\"typ\":\"Bearer\",\"t\\u0079\\u0070\":\"Offline\"}", 0, NULL, NULL },
        { "{\"o\":{\"azp\":\"admin\"},\"azp\":\"web\"}", 1, NULL, "web" },
    };
    ot_jwt_peek_t pk;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ot_jwt_peek(&pk, jwt_of(cases[i].payload), ot_test_pool);
        ck_assert_msg(pk.is_jwt == cases[i].is_jwt, "case %zu: is_jwt", i);
        ck_assert_msg((pk.typ == NULL) == (cases[i].typ == NULL)
                      && (!pk.typ || strcmp(pk.typ, cases[i].typ) == 0), "case %zu: typ", i);
        ck_assert_msg((pk.azp == NULL) == (cases[i].azp == NULL)
                      && (!pk.azp || strcmp(pk.azp, cases[i].azp) == 0), "case %zu: azp", i);
        ck_assert_msg((ot_jwt_payload(jwt_of(cases[i].payload), ot_test_pool) != NULL)
                      == cases[i].is_jwt, "case %zu: as jansson reads the payload", i);
    }
}
END_TEST

/* The b64token predicate before the table (the if-chain), the reference for the table. */
static int old_b64token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* The check before the table: 1*b64token_char *"=" and nothing else, over len bytes. */
static int old_is_b64token(const char *s, apr_size_t len)
{
    apr_size_t i = 0;

    while (i < len && old_b64token_char((unsigned char)s[i])) {
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

START_TEST(b64token_table_matches_old_predicate)
{
    char buf[4];
    int a, b;

    /* Every byte alone: the table is the old predicate (NUL is the empty string: 0). */
    for (a = 1; a < 256; a++) {
        buf[0] = (char)a, buf[1] = '\0';
        ck_assert_msg(ot_b64token_span(buf) == (old_is_b64token(buf, 1) ? 1u : 0u),
                      "byte 0x%02x", a);
        ck_assert_int_eq(old_is_b64token(buf, 1), old_b64token_char((unsigned char)a));
    }
    ck_assert_uint_eq(ot_b64token_span(""), 0);
    /* Every pair, and every pair after a valid byte: the padding and what may follow it. */
    for (a = 1; a < 256; a++) {
        for (b = 1; b < 256; b++) {
            buf[0] = (char)a, buf[1] = (char)b, buf[2] = '\0';
            ck_assert_msg(ot_b64token_span(buf) == (old_is_b64token(buf, 2) ? 2u : 0u),
                          "bytes 0x%02x 0x%02x", a, b);
            buf[0] = 'x', buf[1] = (char)a, buf[2] = (char)b, buf[3] = '\0';
            ck_assert_msg(ot_b64token_span(buf) == (old_is_b64token(buf, 3) ? 3u : 0u),
                          "bytes x 0x%02x 0x%02x", a, b);
        }
    }
}
END_TEST

/*
 * Long tokens, eight bytes a test: a byte that is not a b64token character, or a '=' (padding
 * then more), at every place of tokens of 1 to 40 bytes, in and after the eight-byte blocks.
 */
START_TEST(b64token_span_long_tokens)
{
    static const char bad[] = { ' ', '=', '\t', '"', ',', '\x80', '\xff', '!' };
    char buf[48];
    apr_size_t len, at, b, pad;

    for (len = 1; len <= 40; len++) {
        memset(buf, 'a', len);
        buf[len] = '\0';
        ck_assert_uint_eq(ot_b64token_span(buf), len);
        for (at = 0; at < len; at++) {
            for (b = 0; b < sizeof(bad); b++) {
                memset(buf, 'a', len);
                buf[at] = bad[b];
                ck_assert_msg(ot_b64token_span(buf) == (old_is_b64token(buf, len) ? len : 0u),
                              "len %lu, 0x%02x at %lu", (unsigned long)len,
                              (unsigned char)bad[b], (unsigned long)at);
            }
            for (pad = 1; at + pad <= len; pad++) {      /* at..at+pad-1 padding, then more */
                memset(buf, 'a', len);
                memset(buf + at, '=', pad);
                ck_assert_uint_eq(ot_b64token_span(buf),
                                  old_is_b64token(buf, len) ? len : 0u);
            }
        }
    }
}
END_TEST

Suite *suite_token(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("token");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, bearer_well_formed);
    tcase_add_test(tc, bearer_absent_or_other_scheme);
    tcase_add_test(tc, bearer_malformed);
    tcase_add_test(tc, b64token_table_matches_old_predicate);
    tcase_add_test(tc, b64token_span_long_tokens);
    tcase_add_test(tc, jwt_peek_and_hint);
    tcase_add_test(tc, jwt_peek_refuses_odd_shapes);
    tcase_add_test(tc, jwt_peek_reads_payloads_as_jansson_does);
    tcase_add_test(tc, jwt_peek_reads_iss_and_exp);
    suite_add_tcase(s, tc);
    return s;
}
