/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * RFC 3986 §6.2.2-6.2.3 normalisation of an http(s) URL, for comparing a DPoP proof's htu with
 * the URL the request arrived at. What is refused here (user information, a bad port, a bad
 * percent-encoding) makes the proof invalid: a client has no reason to send it.
 */
#include <stdio.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "ot_url.h"

static int unreserved(unsigned char c)
{
    return apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/**
 * Copy n bytes of s to out, decoding percent-encoded unreserved characters, upper-casing the
 * hex digits of the others and lower-casing the rest when lower is set. 0 on a bad encoding.
 */
static int copy_pct(char **out, const char *s, apr_size_t n, int lower)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = *out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                return 0;
            }
            if ((hi = hexval((unsigned char)s[i + 1])) < 0
                || (lo = hexval((unsigned char)s[i + 2])) < 0) {
                return 0;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (unreserved(c)) {
                *o++ = lower ? (char)apr_tolower(c) : (char)c;
            }
            else {
                *o++ = '%';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            continue;
        }
        *o++ = lower ? (char)apr_tolower(c) : (char)c;
    }
    *out = o;
    return 1;
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments, in place on a path that starts with '/'. The result is
 * never empty: each dot segment leaves a '/' in the input, and the last step copies it.
 */
static void remove_dots(char *path)
{
    char *in = path, *out = path;

    while (*in) {
        if (strncmp(in, "/./", 3) == 0) {
            in += 2;
        }
        else if (strcmp(in, "/.") == 0) {
            in[1] = '\0';
        }
        else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
            in += 3;
            if (*in == '\0') {
                *--in = '/';
            }
            while (out > path && *--out != '/') {
            }
        }
        else {
            do {
                *out++ = *in++;
            } while (*in && *in != '/');
        }
    }
    *out = '\0';
}

/** The port after the host, as digits; 0 when there is none; -1 when it is malformed. */
static long parse_port(const char *s, apr_size_t n)
{
    long v = 0;
    apr_size_t i;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!apr_isdigit(s[i]) || (v = v * 10 + (s[i] - '0')) > 65535) {
            return -1;
        }
    }
    return v;
}

/** Lower-cased host and port (without a default one) of an authority of n bytes, into *out. */
static int authority(char **out, const char *a, apr_size_t n, long default_port)
{
    const char *colon = NULL, *end = a + n, *c;
    long port;

    if (n == 0 || memchr(a, '@', n) != NULL) {
        return 0;
    }
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL || close == a + 1) {
            return 0;
        }
        for (c = a + 1; c < close; c++) {          /* an IPv6 address: no zone, no IPvFuture */
            if (!apr_isxdigit(*c) && *c != ':' && *c != '.') {
                return 0;
            }
        }
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon && *colon != ':') {
            return 0;
        }
    }
    else {
        /* A reg-name (RFC 3986 §3.2.2): unreserved, pct-encoded and sub-delims, up to a ':'. */
        for (c = a; c < end && *c != ':'; c++) {
            if (!unreserved((unsigned char)*c) && *c != '%' && strchr("!$&'()*+,;=", *c) == NULL) {
                return 0;
            }
        }
        colon = c < end ? c : NULL;
        if (colon == a) {
            return 0;
        }
    }
    if (!copy_pct(out, a, (apr_size_t)((colon ? colon : end) - a), 1)) {
        return 0;
    }
    port = colon ? parse_port(colon + 1, (apr_size_t)(end - colon - 1)) : 0;
    if (port < 0 || (colon && colon + 1 < end && port == 0)) {
        return 0;
    }
    if (port != 0 && port != default_port) {
        *out += sprintf(*out, ":%ld", port);
    }
    return 1;
}

const char *ot_url_normalize(const char *url, apr_pool_t *p)
{
    apr_size_t len = url ? strlen(url) : 0, alen, plen;
    const char *s, *auth, *path;
    char *buf, *o, *path_out;
    long default_port;

    if (len == 0 || len > OT_URL_MAX) {
        return NULL;
    }
    for (s = url; *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
            return NULL;
        }
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        auth = url + 7, default_port = 80;
    }
    else if (strncasecmp(url, "https://", 8) == 0) {
        auth = url + 8, default_port = 443;
    }
    else {
        return NULL;
    }
    alen = strcspn(auth, "/?#");
    path = auth + alen;
    plen = strcspn(path, "?#");
    /* Room for the scheme, a port of up to 6 bytes, and "/" for an empty path. */
    o = buf = apr_palloc(p, len + 16);
    o += sprintf(o, default_port == 80 ? "http://" : "https://");
    if (!authority(&o, auth, alen, default_port)) {
        return NULL;
    }
    path_out = o;
    if (!copy_pct(&o, path, plen, 0)) {
        return NULL;
    }
    *o = '\0';
    if (*path_out == '\0') {
        strcpy(path_out, "/");
    }
    remove_dots(path_out);
    return buf;
}
