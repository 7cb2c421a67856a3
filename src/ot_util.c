/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_env.h>
#include <apr_lib.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "ot_util.h"

/* ---- a digest context per thread ----------------------------------------------------------- */

static pthread_key_t md_key;
static int md_key_ok;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void md_key_make(void)
{
    md_key_ok = pthread_key_create(&md_key, md_ctx_free) == 0;
}

EVP_MD_CTX *ot_thread_md_ctx(void)
{
    EVP_MD_CTX *ctx;

    pthread_once(&md_once, md_key_make);
    if (!md_key_ok) {
        return NULL;
    }
    ctx = pthread_getspecific(md_key);
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) != NULL
        && pthread_setspecific(md_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/** Longest secret read from a file: client secrets and keys are short. */
#define OT_SECRET_MAX 8192

const char *ot_token_fingerprint(const char *token, apr_pool_t *p)
{
    unsigned char md[OT_SHA256_LEN];
    char hex[13];
    int i;

    SHA256((const unsigned char *)token, strlen(token), md);
    for (i = 0; i < 6; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    return apr_pstrcat(p, "sha256:", hex, NULL);
}

/** The value of each byte as a base64url digit (RFC 4648 §5), -1 for every other byte. */
static const signed char b64url_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

apr_status_t ot_b64url_decode(char **out, apr_size_t *out_len, const char *in, apr_size_t in_len,
                              apr_pool_t *p)
{
    const unsigned char *s = (const unsigned char *)in;
    apr_size_t i, o = 0, whole;
    apr_int32_t a, b, c, d;
    char *buf;

    while (in_len > 0 && in[in_len - 1] == '=') {
        in_len--;
    }
    if (in_len % 4 == 1) {
        return APR_EINVAL;
    }
    buf = apr_palloc(p, in_len * 3 / 4 + 1);
    whole = in_len - in_len % 4;
    for (i = 0; i < whole; i += 4) {
        a = b64url_values[s[i]], b = b64url_values[s[i + 1]];
        c = b64url_values[s[i + 2]], d = b64url_values[s[i + 3]];
        if ((a | b | c | d) < 0) {
            return APR_EINVAL;
        }
        a = (a << 18) | (b << 12) | (c << 6) | d;
        buf[o++] = (char)(a >> 16);
        buf[o++] = (char)((a >> 8) & 0xff);
        buf[o++] = (char)(a & 0xff);
    }
    if (in_len - whole >= 2) {          /* 2 or 3 digits left: 1 or 2 bytes (spare bits dropped) */
        a = b64url_values[s[i]], b = b64url_values[s[i + 1]];
        c = in_len - whole == 3 ? b64url_values[s[i + 2]] : 0;
        if ((a | b | c) < 0) {
            return APR_EINVAL;
        }
        a = (a << 18) | (b << 12) | (c << 6);
        buf[o++] = (char)(a >> 16);
        if (in_len - whole == 3) {
            buf[o++] = (char)((a >> 8) & 0xff);
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return APR_SUCCESS;
}

const char *ot_b64_encode(const char *in, apr_size_t len, apr_pool_t *p)
{
    char *out = apr_palloc(p, 4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    return out;
}

const char *ot_form_encode(const char *s, apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_size_t n = strlen(s);
    char *out = apr_palloc(p, 3 * n + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '*') {
            *o++ = (char)c;
        }
        else if (c == ' ') {
            *o++ = '+';
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static const char *secret_from_file(const char *path, const char **err, apr_pool_t *p)
{
    apr_file_t *f;
    char *buf = apr_palloc(p, OT_SECRET_MAX + 1);
    apr_size_t n = OT_SECRET_MAX + 1;
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "cannot open secret file %s: %pm", path, &rv);
        return NULL;
    }
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        *err = apr_psprintf(p, "cannot read secret file %s: %pm", path, &rv);
        return NULL;
    }
    if (n > OT_SECRET_MAX) {
        *err = apr_psprintf(p, "secret file %s is larger than %d bytes", path, OT_SECRET_MAX);
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n') n--;
    if (n > 0 && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        *err = apr_psprintf(p, "secret file %s is empty or holds a NUL byte", path);
        return NULL;
    }
    return buf;
}

const char *ot_secret_resolve(const char *spec, const char **err, apr_pool_t *p)
{
    *err = NULL;
    if (strncmp(spec, "env:", 4) == 0) {
        char *val = NULL;
        if (apr_env_get(&val, spec + 4, p) != APR_SUCCESS || val == NULL || *val == '\0') {
            *err = apr_psprintf(p, "environment variable %s is not set or empty", spec + 4);
            return NULL;
        }
        return val;
    }
    if (strncmp(spec, "file:", 5) == 0) {
        return secret_from_file(spec + 5, err, p);
    }
    if (*spec == '\0') {
        *err = "the secret is empty";
        return NULL;
    }
    return spec;
}

const char *ot_parse_seconds(const char *arg, apr_interval_time_t *out, apr_pool_t *p)
{
    char *end;
    double v = strtod(arg, &end);

    if (end == arg || *end != '\0' || !(v > 0.0) || v > 3600.0) {
        return apr_psprintf(p, "'%s' is not a number of seconds between 0 and 3600 (e.g. 2 or 0.5)",
                            arg);
    }
    *out = (apr_interval_time_t)(v * (double)APR_USEC_PER_SEC);
    if (*out < 1000) {
        return apr_psprintf(p, "'%s' seconds is shorter than a millisecond", arg);
    }
    return NULL;
}

const char *ot_parse_ttl(const char *arg, int max, int *out, apr_pool_t *p)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (end == arg || *end != '\0' || v < 0 || v > max) {
        return apr_psprintf(p, "'%s' is not a whole number of seconds between 0 and %d", arg, max);
    }
    *out = (int)v;
    return NULL;
}

/** A byte count in the largest unit that divides it: 64K, 1M, 64G. */
static const char *size_text(apr_size_t n, apr_pool_t *p)
{
    static const char units[] = "KMG";
    int u = -1;

    while (u < 2 && n >= 1024 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    return u < 0 ? apr_psprintf(p, "%" APR_SIZE_T_FMT, n)
                 : apr_psprintf(p, "%" APR_SIZE_T_FMT "%c", n, units[u]);
}

const char *ot_parse_size(const char *arg, apr_size_t min, apr_size_t max, apr_size_t *out,
                          apr_pool_t *p)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 10);
    unsigned long long mult = 1;

    if (end == arg || *arg == '-') {
        goto bad;
    }
    switch (*end) {
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    default: break;
    }
    if (*end != '\0' || v > max / mult || v * mult < min || v * mult > max) {
        goto bad;
    }
    *out = (apr_size_t)(v * mult);
    return NULL;
bad:
    return apr_psprintf(p, "'%s' is not a size between %s and %s (e.g. 16M)", arg,
                        size_text(min, p), size_text(max, p));
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/** Compare the form-encoded name in s[0..len) with the plain name, decoding %XX and '+'. */
static int form_name_equals(const char *s, apr_size_t len, const char *name)
{
    apr_size_t i = 0;

    while (i < len) {
        char c = s[i++];
        if (c == '+') {
            c = ' ';
        }
        else if (c == '%' && i + 1 < len && hex_value(s[i]) >= 0 && hex_value(s[i + 1]) >= 0) {
            c = (char)(hex_value(s[i]) * 16 + hex_value(s[i + 1]));
            i += 2;
        }
        if (*name == '\0' || c != *name++) {
            return 0;
        }
    }
    return *name == '\0';
}

int ot_query_has_param(const char *args, const char *name)
{
    const char *s = args;

    while (s && *s) {
        const char *amp = strchr(s, '&');
        apr_size_t len = amp ? (apr_size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (form_name_equals(s, eq ? (apr_size_t)(eq - s) : len, name)) {
            return 1;
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}

void ot_hex(char *out, const unsigned char *in, apr_size_t n)
{
    static const char digits[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/** 1 when s[0..n) is all base64url digits: eight bytes a test (one branch per block). */
static int all_b64url(const unsigned char *s, apr_size_t n)
{
    const signed char *v = b64url_values;
    apr_size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        if ((v[s[i]] | v[s[i + 1]] | v[s[i + 2]] | v[s[i + 3]] | v[s[i + 4]] | v[s[i + 5]]
             | v[s[i + 6]] | v[s[i + 7]]) < 0) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if (v[s[i]] < 0) {
            return 0;
        }
    }
    return 1;
}

int ot_jws_compact_shape(const char *s, apr_size_t len, apr_size_t *hlen)
{
    const unsigned char *u = (const unsigned char *)s;
    const char *d1 = memchr(s, '.', len), *d2, *end = s + len;

    /* The dots found by memchr, then each part's digits: a pass per byte, not a branch. */
    d2 = d1 ? memchr(d1 + 1, '.', (apr_size_t)(end - d1 - 1)) : NULL;
    if (d2 == NULL || d1 == s || d2 == d1 + 1 || d2 + 1 == end
        || memchr(d2 + 1, '.', (apr_size_t)(end - d2 - 1)) != NULL
        || !all_b64url(u, (apr_size_t)(d1 - s))
        || !all_b64url(u + (d1 + 1 - s), (apr_size_t)(d2 - d1 - 1))
        || !all_b64url(u + (d2 + 1 - s), (apr_size_t)(end - d2 - 1))) {
        return 0;
    }
    *hlen = (apr_size_t)(d1 - s);
    return 1;
}
