/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The JSON scanner (ot_jscan.c): each case against jansson as ot_json_parse() calls it, so that a
 * case that is wrong here is wrong about jansson, not about an expectation written by hand.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_jscan.h"

/** The whole document read with the scanner: its final status. */
static ot_jstatus_t scan(const char *doc, apr_size_t len)
{
    ot_jscan_t sc;

    ot_jscan_init(&sc, doc, len);
    ot_jscan_value(&sc, NULL);
    ot_jscan_end(&sc);
    return sc.status;
}

static int jansson_reads(const char *doc, apr_size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(doc, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);

    json_decref(j);
    return j != NULL;
}

START_TEST(jscan_accepts_and_refuses_what_jansson_does)
{
    static const struct {
        const char *doc;
        ot_jstatus_t want;
    } cases[] = {
        { "{}", OT_JS_OK },
        { " [1, -2, 0, -0, 3.25, \"a\", true, false, null, {\"k\": []}] ", OT_JS_OK },
        { "\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\x7f\"", OT_JS_OK },
        { "{\"a\":1,\"b\":{\"a\":2}}", OT_JS_OK },            /* the same name at two levels */
        { "{\"a\":1,\"\\u0061\":2}", OT_JS_BAD },             /* a twice, once escaped */
        { "{\"\xc3\xa9\":1,\"\\u00e9\":2}", OT_JS_BAD },      /* é twice, once escaped */
        { "{\"ab\":1,\"a\\u0062\":2,\"ba\":3}", OT_JS_BAD },
        { "{\"a\":1,\"b\":2,\"a\":3}", OT_JS_BAD },
        { "{\"x\":{\"k\":1,\"k\":1}}", OT_JS_BAD },           /* a duplicate in a nested object */
        { "{\"a\":1,}", OT_JS_BAD },
        { "[1,]", OT_JS_BAD },
        { "[,1]", OT_JS_BAD },
        { "{,}", OT_JS_BAD },
        { "{\"a\" 1}", OT_JS_BAD },
        { "{\"a\":1", OT_JS_BAD },
        { "[1 2]", OT_JS_BAD },
        { "01", OT_JS_BAD },
        { "-", OT_JS_BAD },
        { "1.", OT_JS_BAD },
        { ".5", OT_JS_BAD },
        { "+1", OT_JS_BAD },
        { "1e", OT_JS_BAD },
        { "tru", OT_JS_BAD },
        { "truex", OT_JS_BAD },
        { "nul", OT_JS_BAD },
        { "", OT_JS_BAD },
        { "  ", OT_JS_BAD },
        { "{} {}", OT_JS_BAD },
        { "\"\\u0000\"", OT_JS_BAD },                        /* jansson: no NUL without ALLOW_NUL */
        { "\"\\ud800\"", OT_JS_BAD },                        /* a lone high surrogate */
        { "\"\\udc00\"", OT_JS_BAD },                        /* a lone low surrogate */
        { "\"\\ud800\\u0041\"", OT_JS_BAD },
        { "\"\\ud800\\ud800\"", OT_JS_BAD },
        { "\"\\u12G4\"", OT_JS_BAD },
        { "\"\\x\"", OT_JS_BAD },
        { "\"a\tb\"", OT_JS_BAD },                           /* a raw control character */
        { "\"\xc3\x28\"", OT_JS_BAD },                       /* invalid UTF-8 */
        { "\"\xc0\xaf\"", OT_JS_BAD },                       /* an overlong form */
        { "\"\xed\xa0\x80\"", OT_JS_BAD },                   /* a surrogate in UTF-8 */
        { "\"\xf4\x90\x80\x80\"", OT_JS_BAD },               /* over U+10FFFF */
        { "\"\xe2\x82\"", OT_JS_BAD },                       /* cut short */
        { "\xef\xbb\xbf{}", OT_JS_BAD },                     /* a byte-order mark */
        { "\"abc", OT_JS_BAD },
        { "1e3", OT_JS_UNSURE },                             /* jansson says whether in range */
        { "1E-400", OT_JS_UNSURE },
        { "1234567890123456789", OT_JS_UNSURE },
        { "123456789012345678", OT_JS_OK },
        { "-123456789012345678.5", OT_JS_OK },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_size_t len = strlen(cases[i].doc);
        ot_jstatus_t got = scan(cases[i].doc, len);

        ck_assert_msg(got == cases[i].want, "case %zu: status %d", i, (int)got);
        if (got != OT_JS_UNSURE) {
            ck_assert_msg(jansson_reads(cases[i].doc, len) == (got == OT_JS_OK),
                          "case %zu: jansson disagrees", i);
        }
    }
    /* A NUL inside the buffer is a byte like any other: a control character in a string. */
    ck_assert_int_eq(scan("\"a\0b\"", 5), OT_JS_BAD);
    ck_assert_int_eq(jansson_reads("\"a\0b\"", 5), 0);
    ck_assert_int_eq(scan("{}\0", 3), OT_JS_BAD);
    ck_assert_int_eq(jansson_reads("{}\0", 3), 0);
    /* ... but jansson loses a NUL after a number or a word, and reads these: unsure. */
    ck_assert_int_eq(scan("[1\0]", 4), OT_JS_UNSURE);
    ck_assert_int_eq(scan("false\0", 6), OT_JS_UNSURE);
    ck_assert_int_eq(jansson_reads("[1\0]", 4) && jansson_reads("false\0", 6), 1);
}
END_TEST

/** n nested arrays around 1. */
static const char *nested(int n)
{
    char *s = apr_palloc(ot_test_pool, (apr_size_t)n * 2 + 2);

    memset(s, '[', (apr_size_t)n);
    s[n] = '1';
    memset(s + n + 1, ']', (apr_size_t)n);
    s[2 * n + 1] = '\0';
    return s;
}

START_TEST(jscan_bounds_are_unsure_not_wrong)
{
    char *big = apr_pstrdup(ot_test_pool, "{");
    int i;

    ck_assert_int_eq(scan(nested(OT_JS_DEPTH), strlen(nested(OT_JS_DEPTH))), OT_JS_OK);
    ck_assert_int_eq(scan(nested(OT_JS_DEPTH + 1), strlen(nested(OT_JS_DEPTH + 1))), OT_JS_UNSURE);
    for (i = 0; i < OT_JS_MEMBERS; i++) {
        big = apr_psprintf(ot_test_pool, "%s%s\"m%d\":%d", big, i ? "," : "", i, i);
    }
    ck_assert_int_eq(scan(apr_pstrcat(ot_test_pool, big, "}", NULL), strlen(big) + 1), OT_JS_OK);
    big = apr_pstrcat(ot_test_pool, big, ",\"more\":1}", NULL);
    ck_assert_int_eq(scan(big, strlen(big)), OT_JS_UNSURE);
}
END_TEST

START_TEST(jscan_walks_members_and_reads_values)
{
    static const char doc[] = " {\"s\":\"a\\u00e9\\ud83d\\ude00\\n\", \"n\": -42, \"b\": true,"
                              " \"t\\u0079p\": \"x\", \"o\": {\"k\": [1, \"v\"]}, \"z\": null} ";
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t name, v;
    apr_size_t len;
    apr_int64_t n = 0;
    int b = 0, members = 0;
    const char *doc2;

    ot_jscan_init(&sc, doc, sizeof(doc) - 1);
    ck_assert_int_eq(ot_jscan_peek(&sc), OT_JS_OBJECT);
    ck_assert(ot_jscan_object(&sc, &o));
    while (ot_jscan_member(&sc, &o, &name)) {
        members++;
        ck_assert(ot_jscan_value(&sc, &v));
        if (ot_jval_is(&name, "s")) {
            ck_assert_str_eq(ot_jval_str(&v, &len, ot_test_pool), "a\xc3\xa9\xf0\x9f\x98\x80\n");
            ck_assert_uint_eq(len, 8);
            ck_assert(!v.plain && v.escaped);
        }
        else if (ot_jval_is(&name, "n")) {
            ck_assert(ot_jval_int(&v, &n) && v.plain);
        }
        else if (ot_jval_is(&name, "b")) {
            ck_assert(ot_jval_bool(&v, &b));
        }
        else if (ot_jval_is(&name, "typ")) {                /* an escaped name, decoded */
            ck_assert_str_eq(ot_jval_str(&v, NULL, ot_test_pool), "x");
        }
        else if (ot_jval_is(&name, "o")) {
            ck_assert_int_eq(v.type, OT_JS_OBJECT);
            ck_assert(v.plain && !v.flat);
            ck_assert_str_eq(apr_pstrmemdup(ot_test_pool, v.raw, v.raw_len), "{\"k\": [1, \"v\"]}");
        }
        else {
            ck_assert(ot_jval_is(&name, "z") && v.type == OT_JS_NULL);
        }
    }
    ck_assert(ot_jscan_end(&sc));
    ck_assert_int_eq(members, 6);
    ck_assert(n == -42 && b == 1);
    ck_assert(!ot_jval_is(&name, "zz") && !ot_jval_is(&name, ""));
    /* a name with an escaped backslash is found by its text, backslash and all */
    doc2 = "{\"\\\\u0061\":1,\"\\u00e9\":2}";
    ck_assert_int_eq(ot_jscan_find(doc2, strlen(doc2), "\\u0061", &v), OT_JS_OK);
    ck_assert_int_eq(v.type, OT_JS_INTEGER);
    ck_assert_int_eq(ot_jscan_find(doc2, strlen(doc2), "\xc3\xa9", &v), OT_JS_OK);
    ck_assert(v.type == OT_JS_INTEGER && v.raw[0] == '2');
    ck_assert_int_eq(ot_jscan_find(doc2, strlen(doc2), "a", &v), OT_JS_OK);
    ck_assert_int_eq(v.type, OT_JS_NONE);
}
END_TEST

START_TEST(jscan_find_checks_the_whole_document)
{
    ot_jval_t v;
    apr_int64_t n;

    ck_assert_int_eq(ot_jscan_find("{\"a\":[true],\"exp\":1700000000}", 29, "exp", &v), OT_JS_OK);
    ck_assert(ot_jval_int(&v, &n) && n == 1700000000);
    ck_assert_int_eq(ot_jscan_find("{\"a\":[true,false]}", 18, "exp", &v), OT_JS_OK);
    ck_assert_int_eq(v.type, OT_JS_NONE);
    ck_assert_int_eq(ot_jscan_find("{\"a\":[true,false]}", 18, "a", &v), OT_JS_OK);
    ck_assert(v.type == OT_JS_ARRAY && v.flat);
    /* found, but what follows is broken or repeats it: nothing is found */
    ck_assert_int_eq(ot_jscan_find("{\"exp\":1,}", 10, "exp", &v), OT_JS_BAD);
    ck_assert_int_eq(v.type, OT_JS_NONE);
    ck_assert_int_eq(ot_jscan_find("{\"exp\":1,\"exp\":2}", 17, "exp", &v), OT_JS_BAD);
    ck_assert_int_eq(ot_jscan_find("[1]", 3, "exp", &v), OT_JS_BAD);
    ck_assert_int_eq(ot_jscan_find("{\"exp\":1e3}", 11, "exp", &v), OT_JS_UNSURE);
}
END_TEST

/*
 * 64 names of `per` bytes, all alike but for their last three digits, the first spelled with an
 * escape (which makes the scanner compare the names decoded): {"\u0041AA..A000":1,"AA..A001":1,..}
 */
static char *alike_names(int per)
{
    char *doc = apr_palloc(ot_test_pool, (apr_size_t)(64 * (per + 16) + 2)), *o = doc;
    int i;

    *o++ = '{';
    for (i = 0; i < 64; i++) {
        o += sprintf(o, "%s\"%s", i ? "," : "", i ? "" : "\\u0041");
        memset(o, 'A', (apr_size_t)(per - 3 - (i ? 0 : 1)));
        o += per - 3 - (i ? 0 : 1);
        o += sprintf(o, "%03d\":1", i);
    }
    *o++ = '}';
    *o = '\0';
    return doc;
}

START_TEST(jscan_duplicates_found_through_escapes_in_any_order)
{
    static const char *const cases[] = {
        "{\"a\":1,\"b\":2,\"\\u0061\":3}",               /* plain first, escaped later */
        "{\"\\u0061\":1,\"b\":2,\"a\":3}",               /* escaped first, plain later */
        "{\"\\u00e9\":1,\"x\":2,\"\\u00E9\":3}",      /* two spellings of one escape */
        "{\"\\u00e9\":1,\"\xc3\xa9\":2}",
        "{\"a/b\":1,\"c\":2,\"a\\/b\":3}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
        "{\"x\":{\"q\":1,\"\\u0071\":2}}",
    };
    static const char *const differ[] = {
        "{\"a\":1,\"\\u0062\":2,\"ab\":3,\"\\u0061\\u0062c\":4}",
        "{\"\\u00e9\":1,\"\\u00e8\":2,\"\xc3\xa9x\":3}",
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(!jansson_reads(cases[i], strlen(cases[i])), "%s", cases[i]);
        ck_assert_msg(scan(cases[i], strlen(cases[i])) == OT_JS_BAD, "%s", cases[i]);
    }
    for (i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
        ck_assert_msg(jansson_reads(differ[i], strlen(differ[i])), "%s", differ[i]);
        ck_assert_msg(scan(differ[i], strlen(differ[i])) == OT_JS_OK, "%s", differ[i]);
    }
}
END_TEST

/*
 * Names alike but for their ends, one of them escaped, cost the scanner no more than other names:
 * it compared every pair decoded, so an object of 64 such names of 750 bytes took about 5 ms
 * (a 12 KB JWT payload, which anyone can send, about 1.3 ms: ten times jansson) where plain names
 * take some 50 µs. 400 scans must cost less than twice what jansson's take.
 */
START_TEST(jscan_alike_escaped_names_are_not_quadratic)
{
    const char *doc = alike_names(750);
    char *dup = apr_pstrdup(ot_test_pool, doc);
    clock_t t0;
    double cpu, jcpu;
    int i;

    ck_assert(jansson_reads(doc, strlen(doc)));
    /* Against jansson reading the same document as often (not instrumented by the sanitizers,
     * so this holds under ASan too, and whatever the machine's load): the quadratic comparison
     * took about ten times jansson's time, the hashed one takes a fraction of it. */
    t0 = clock();
    for (i = 0; i < 400; i++) {
        ck_assert(jansson_reads(doc, strlen(doc)));
    }
    jcpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    t0 = clock();
    for (i = 0; i < 400; i++) {
        ck_assert_int_eq(scan(doc, strlen(doc)), OT_JS_OK);
    }
    cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    ck_assert_msg(cpu < 2 * jcpu + 0.05,
                  "400 scans of 64 alike names took %.3f s of CPU, jansson %.3f s", cpu, jcpu);
    /* and a duplicate among them is still found: the last name made the first's text (A..A000) */
    memcpy(strrchr(dup, '"') - 3, "000", 3);
    ck_assert(!jansson_reads(dup, strlen(dup)));
    ck_assert_int_eq(scan(dup, strlen(dup)), OT_JS_BAD);
}
END_TEST

Suite *suite_jscan(void)
{
    Suite *s = suite_create("jscan");
    TCase *tc = tcase_create("jscan");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, jscan_accepts_and_refuses_what_jansson_does);
    tcase_add_test(tc, jscan_bounds_are_unsure_not_wrong);
    tcase_add_test(tc, jscan_walks_members_and_reads_values);
    tcase_add_test(tc, jscan_find_checks_the_whole_document);
    tcase_add_test(tc, jscan_duplicates_found_through_escapes_in_any_order);
    tcase_add_test(tc, jscan_alike_escaped_names_are_not_quadratic);
    suite_add_tcase(s, tc);
    return s;
}
