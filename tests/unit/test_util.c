/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>

#include "ot_cache.h"
#include "ot_unit.h"
#include "ot_util.h"

START_TEST(cache_key_separates_fields)
{
    unsigned char a[OT_SHA256_LEN], b[OT_SHA256_LEN], c[OT_SHA256_LEN];

    ot_cache_key(a, "https://i/x", "client", "access_token", "verify", "tok");
    ot_cache_key(b, "https://i/x", "client", NULL, "verify", "tok");
    ck_assert(memcmp(a, b, sizeof(a)) != 0);
    /* Moving a character from one field to the next must change the key. */
    ot_cache_key(b, "https://i/x", "clien", "taccess_token", "verify", "tok");
    ck_assert(memcmp(a, b, sizeof(a)) != 0);
    /* Answers fetched with weaker TLS checks are kept apart (issue 13, hole 6). */
    ot_cache_key(b, "https://i/x", "client", "access_token", "noverify", "tok");
    ck_assert(memcmp(a, b, sizeof(a)) != 0);
    ot_cache_key(c, "https://i/x", "client", "access_token", "verify", "tok");
    ck_assert(memcmp(a, c, sizeof(a)) == 0);
}
END_TEST

START_TEST(fingerprint_hides_token)
{
    const char *fp = ot_token_fingerprint("secret-token-value", ot_test_pool);

    ck_assert_int_eq(strlen(fp), strlen("sha256:") + 12);
    ck_assert(strncmp(fp, "sha256:", 7) == 0);
    ck_assert_ptr_null(strstr(fp, "secret"));
}
END_TEST

START_TEST(b64url_round_trip_and_refusals)
{
    char *out;
    apr_size_t n;

    ck_assert_int_eq(ot_b64url_decode(&out, &n, "eyJhIjoxfQ", 10, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(out, "{\"a\":1}");
    ck_assert_int_eq(ot_b64url_decode(&out, &n, "eyJhIjoxfQ==", 12, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(out, "{\"a\":1}");
    ck_assert_int_eq(ot_b64url_decode(&out, &n, "-_8", 3, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ot_b64url_decode(&out, &n, "ab+c", 4, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(ot_b64url_decode(&out, &n, "abcde", 5, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(ot_b64url_decode(&out, &n, "", 0, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(n, 0);
}
END_TEST

/** The decoder as it was (a digit at a time, with if-chains): the table must give the same. */
static int ref_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

static apr_status_t ref_decode(unsigned char *buf, apr_size_t *out_len, const char *in,
                               apr_size_t in_len)
{
    apr_size_t i, o = 0;
    apr_uint32_t acc = 0;
    int bits = 0, v;

    while (in_len > 0 && in[in_len - 1] == '=') {
        in_len--;
    }
    if (in_len % 4 == 1) {
        return APR_EINVAL;
    }
    for (i = 0; i < in_len; i++) {
        if ((v = ref_value((unsigned char)in[i])) < 0) {
            return APR_EINVAL;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    *out_len = o;
    return APR_SUCCESS;
}

/** ot_b64url_decode and ref_decode agree on in[0..len). */
static void same_decode(const char *in, apr_size_t len)
{
    unsigned char want[64];
    apr_size_t want_len = 0, n = 0;
    apr_status_t rv = ref_decode(want, &want_len, in, len);
    char *out = NULL;

    ck_assert_int_eq(ot_b64url_decode(&out, &n, in, len, ot_test_pool), rv);
    if (rv == APR_SUCCESS) {
        ck_assert_uint_eq(n, want_len);
        ck_assert(memcmp(out, want, n) == 0 && out[n] == '\0');
    }
}

/**
 * The table decoder gives what the if-chains gave: every byte at every place of a group and of
 * a short tail, every length to three groups, with 0 to 3 '=' after, and '=' inside.
 */
START_TEST(b64url_table_same_as_before)
{
    static const char digits[] = "QUJDRGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0123-_89";
    char in[24];
    apr_size_t len, pos, pad;
    int c;

    for (len = 0; len <= 13; len++) {
        for (pad = 0; pad <= 3; pad++) {
            memcpy(in, digits, len);
            memset(in + len, '=', pad);
            same_decode(in, len + pad);
            for (pos = 0; pos < len + pad; pos++) {
                for (c = 0; c < 256; c++) {
                    memcpy(in, digits, len);
                    memset(in + len, '=', pad);
                    in[pos] = (char)c;
                    same_decode(in, len + pad);
                }
            }
        }
    }
}
END_TEST

/** A compact JWS's shape: three non-empty parts of base64url digits, whatever the byte. */
START_TEST(compact_shape_every_byte)
{
    char tok[] = "aA0-_.bB9.cZz";
    apr_size_t hlen = 0;
    int c;

    ck_assert(ot_jws_compact_shape(tok, strlen(tok), &hlen));
    ck_assert_uint_eq(hlen, 5);
    ck_assert(!ot_jws_compact_shape("a..c", 4, &hlen));
    ck_assert(!ot_jws_compact_shape("a.b.c.d", 7, &hlen));
    ck_assert(!ot_jws_compact_shape("a.b.", 4, &hlen));
    for (c = 0; c < 256; c++) {
        tok[7] = (char)c;
        ck_assert_int_eq(ot_jws_compact_shape(tok, 13, &hlen),
                         c == '.' ? 0 : ref_value((unsigned char)c) >= 0);
    }
}
END_TEST

/* The shape check before the dots were found with memchr: the reference of the one after. */
static int old_compact_shape(const char *s, apr_size_t len, apr_size_t *hlen)
{
    apr_size_t i, dots = 0, start = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (i == start || ++dots > 2) {
                return 0;
            }
            if (dots == 1) {
                *hlen = i;
            }
            start = i + 1;
        }
        else if (ref_value((unsigned char)s[i]) < 0) {
            return 0;
        }
    }
    return dots == 2 && start < len;
}

/**
 * Long parts, checked eight bytes at a time: a bad byte, a dot or a NUL at every place of tokens
 * whose parts are 1 to 19 bytes long, as the byte-by-byte check said (and the same *hlen).
 */
START_TEST(compact_shape_long_parts)
{
    static const char odd[] = { '.', '=', '+', '/', ' ', '\0', '\x80', 'a' };
    char tok[64];
    apr_size_t a, b, len, at, k, h1, h2;

    for (a = 1; a < 20; a += 3) {
        for (b = 1; b < 20; b += 2) {
            len = a + 1 + b + 1 + 17;
            for (at = 0; at < len; at++) {
                for (k = 0; k < sizeof(odd); k++) {
                    memset(tok, 'x', len);
                    tok[a] = '.', tok[a + 1 + b] = '.';
                    tok[at] = odd[k];
                    h1 = h2 = 0;
                    ck_assert_msg(ot_jws_compact_shape(tok, len, &h1)
                                  == old_compact_shape(tok, len, &h2),
                                  "parts %lu %lu, 0x%02x at %lu", (unsigned long)a,
                                  (unsigned long)b, (unsigned char)odd[k], (unsigned long)at);
                    if (old_compact_shape(tok, len, &h2)) {
                        ck_assert_uint_eq(h1, h2);
                    }
                }
            }
        }
    }
}
END_TEST

START_TEST(form_encoding_follows_rfc6749)
{
    ck_assert_str_eq(ot_form_encode("a b+c/d:é", ot_test_pool), "a+b%2Bc%2Fd%3A%C3%A9");
    ck_assert_str_eq(ot_form_encode("Az09-._*~", ot_test_pool), "Az09-._*%7E");
    ck_assert_str_eq(ot_b64_encode("rs client:s3cr%t", 16, ot_test_pool),
                     "cnMgY2xpZW50OnMzY3IldA==");
}
END_TEST

START_TEST(secrets_from_env_and_file)
{
    const char *err;
    char path[] = "/tmp/ot-secret-XXXXXX";
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "hunter2\n", 8), 8);
    close(fd);
    ck_assert_str_eq(ot_secret_resolve(apr_pstrcat(ot_test_pool, "file:", path, NULL), &err,
                                       ot_test_pool), "hunter2");
    unlink(path);
    ck_assert_ptr_null(ot_secret_resolve(apr_pstrcat(ot_test_pool, "file:", path, NULL), &err,
                                         ot_test_pool));
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));

    setenv("OT_TEST_SECRET", "from-env", 1);
    ck_assert_str_eq(ot_secret_resolve("env:OT_TEST_SECRET", &err, ot_test_pool), "from-env");
    ck_assert_ptr_null(ot_secret_resolve("env:OT_TEST_UNSET_VAR", &err, ot_test_pool));
    ck_assert_ptr_null(strstr(err, "from-env"));
    ck_assert_str_eq(ot_secret_resolve("literal", &err, ot_test_pool), "literal");
    ck_assert_ptr_null(ot_secret_resolve("", &err, ot_test_pool));
}
END_TEST

START_TEST(argument_parsers)
{
    apr_interval_time_t t;
    apr_size_t sz;
    int ttl;

    ck_assert_ptr_null(ot_parse_seconds("0.5", &t, ot_test_pool));
    ck_assert_int_eq(t, 500000);
    ck_assert_ptr_null(ot_parse_seconds("2", &t, ot_test_pool));
    ck_assert_int_eq(t, 2000000);
    ck_assert_ptr_nonnull(ot_parse_seconds("0", &t, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_seconds("-1", &t, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_seconds("2s", &t, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_seconds("nan", &t, ot_test_pool));

    ck_assert_ptr_null(ot_parse_ttl("0", 86400, &ttl, ot_test_pool));
    ck_assert_int_eq(ttl, 0);
    ck_assert_ptr_nonnull(ot_parse_ttl("86401", 86400, &ttl, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_ttl("1.5", 86400, &ttl, ot_test_pool));

    ck_assert_ptr_null(ot_parse_size("16M", 65536, (apr_size_t)1 << 36, &sz, ot_test_pool));
    ck_assert_uint_eq(sz, 16u << 20);
    ck_assert_ptr_null(ot_parse_size("512k", 65536, (apr_size_t)1 << 36, &sz, ot_test_pool));
    ck_assert_uint_eq(sz, 512u << 10);
    ck_assert_ptr_nonnull(ot_parse_size("1K", 65536, (apr_size_t)1 << 36, &sz, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_size("16Q", 65536, (apr_size_t)1 << 36, &sz, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_size("-16M", 65536, (apr_size_t)1 << 36, &sz, ot_test_pool));
    ck_assert_ptr_nonnull(ot_parse_size("99999999999G", 65536, (apr_size_t)1 << 36, &sz,
                                        ot_test_pool));
}
END_TEST

START_TEST(query_parameter_detection)
{
    ck_assert(ot_query_has_param("access_token=x", "access_token"));
    ck_assert(ot_query_has_param("a=1&access_token=x", "access_token"));
    ck_assert(ot_query_has_param("access%5Ftoken=x", "access_token"));
    ck_assert(ot_query_has_param("access_token", "access_token"));
    ck_assert(!ot_query_has_param("my_access_token=x", "access_token"));
    ck_assert(!ot_query_has_param("a=access_token", "access_token"));
    ck_assert(!ot_query_has_param("", "access_token"));
}
END_TEST

Suite *suite_util(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, cache_key_separates_fields);
    tcase_add_test(tc, fingerprint_hides_token);
    tcase_add_test(tc, b64url_round_trip_and_refusals);
    tcase_add_test(tc, b64url_table_same_as_before);
    tcase_add_test(tc, compact_shape_every_byte);
    tcase_add_test(tc, compact_shape_long_parts);
    tcase_add_test(tc, form_encoding_follows_rfc6749);
    tcase_add_test(tc, secrets_from_env_and_file);
    tcase_add_test(tc, argument_parsers);
    tcase_add_test(tc, query_parameter_detection);
    suite_add_tcase(s, tc);
    return s;
}
