/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_tables.h>

#include "ot_claims.h"
#include "ot_json.h"

#define ENV_PREFIX "OFFTOK_CLAIM_"
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)

/** The bytes that stay in an environment name, one bit each: 0-9 (0x30-0x39); A-Z, '_' and
 * a-z (0x41-0x5a, 0x5f, 0x61-0x7a). No bit above 0x7f: UTF-8's bytes become '_'. */
static const apr_uint64_t env_keeps[4] = {
    0x03ff000000000000ull, 0x07fffffe87fffffeull, 0, 0
};

/** Byte c of a claim name in the environment: ASCII letters, digits and '_' stay, all else
 * becomes '_'. A table, not isalnum(): a call per byte, and it depends on the locale. */
static char env_char(unsigned char c)
{
    return (env_keeps[c >> 6] >> (c & 63)) & 1 ? (char)c : '_';
}

/** Write "OFFTOK_CLAIM_" + name's characters (env_char) and the NUL at out; the end of it. */
static char *render_env_name(char *out, const char *name)
{
    memcpy(out, ENV_PREFIX, ENV_PREFIX_LEN);
    out += ENV_PREFIX_LEN;
    while (*name) {
        *out++ = env_char((unsigned char)*name++);
    }
    *out++ = '\0';
    return out;
}

const char *ot_claim_env_name(const char *name, apr_pool_t *p)
{
    char *out = apr_palloc(p, ENV_PREFIX_LEN + strlen(name) + 1);

    render_env_name(out, name);
    return out;
}

/** A rendered character (A-Za-z0-9_) in upper case, as strcasecmp() compares it. */
static apr_uint32_t fold(char c)
{
    return (apr_uint32_t)(unsigned char)c - ((c >= 'a') << 5);
}

/**
 * A hash of a rendered suffix of len characters that two names equal to strcasecmp() share:
 * its length and three of its characters, no loop over it (a meeting is decided by strcasecmp).
 */
static apr_uint32_t suffix_hash(const char *s, apr_size_t len)
{
    apr_uint32_t h = (apr_uint32_t)len * 0x9e3779b1u;

    if (len > 0) {
        h ^= fold(s[0]) ^ (fold(s[len - 1]) << 8) ^ (fold(s[len / 2]) << 16);
    }
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    return h ^ (h >> 12);
}

/**
 * Whether a name of the n rendered ones (ending at end, one after another) equals an earlier one
 * caselessly: an open table of slots (index + 1) by hash, n hashes and not n*n/2 compares.
 */
static int names_meet(const char **names, int n, const char *end, int *slots,
                      apr_uint32_t *hashes, int mask)
{
    int i;

    for (i = 0; i < n; i++) {
        const char *suffix = names[i] + ENV_PREFIX_LEN;
        const char *next = i + 1 < n ? names[i + 1] : end;
        apr_uint32_t h = suffix_hash(suffix, (apr_size_t)(next - suffix - 1));
        int at = (int)(h & (apr_uint32_t)mask);

        for (; slots[at] != 0; at = (at + 1) & mask) {
            int j = slots[at] - 1;
            if (hashes[j] == h && strcasecmp(names[j] + ENV_PREFIX_LEN, suffix) == 0) {
                return 1;
            }
        }
        slots[at] = i + 1;
        hashes[i] = h;
    }
    return 0;
}

int ot_claim_env_names(const char **names, const ot_claim_t *claims, int n, apr_pool_t *p)
{
    int stack_slots[128], *slots = stack_slots, mask = 15, i;
    apr_uint32_t stack_hashes[64], *hashes = stack_hashes;
    apr_size_t total = 0;
    char *out;

    for (i = 0; i < n; i++) {
        total += ENV_PREFIX_LEN + strlen(claims[i].name) + 1;
    }
    out = apr_palloc(p, total ? total : 1);
    for (i = 0; i < n; i++) {
        names[i] = out;
        out = render_env_name(out, claims[i].name);
    }
    while (mask + 1 < 2 * n) {
        mask = mask * 2 + 1;        /* at most half full: short probes */
    }
    if (n > 64) {
        slots = apr_palloc(p, sizeof(*slots) * (apr_size_t)(mask + 1));
        hashes = apr_palloc(p, sizeof(*hashes) * (apr_size_t)n);
    }
    memset(slots, 0, sizeof(*slots) * (apr_size_t)(mask + 1));
    return !names_meet(names, n, out, slots, hashes, mask);
}

static int is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

const char *ot_sanitize(const char *s, apr_pool_t *p)
{
    const char *c;
    char *copy, *d;

    for (c = s; *c && !is_control((unsigned char)*c); c++)
        ;
    if (*c == '\0') {
        return s;                       /* the common case: nothing to replace */
    }
    copy = apr_pstrdup(p, s);
    for (d = copy; *d; d++) {
        if (is_control((unsigned char)*d)) {
            *d = ' ';
        }
    }
    return copy;
}

static int is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v);
}

/**
 * A real number as the shortest text that reads back as the same double (0.1, not
 * 0.10000000000000001), with ".0" kept on whole numbers as JSON writers do.
 */
static const char *real_text(double d, apr_pool_t *p)
{
    char buf[40];
    int prec;

    for (prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    if (strpbrk(buf, ".eEn") == NULL) {       /* n: inf, nan (which JSON cannot carry) */
        return apr_pstrcat(p, buf, ".0", NULL);
    }
    return apr_pstrdup(p, buf);
}

/** Text of a scalar, not yet sanitised. */
static const char *scalar_text(const json_t *v, apr_pool_t *p)
{
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_null(v)) {
        return "";
    }
    if (json_is_real(v)) {
        return real_text(json_real_value(v), p);
    }
    if (json_is_integer(v)) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)json_integer_value(v));
    }
    return json_is_true(v) ? "true" : "false";
}

/** Arrays holding only scalars are joined with ','; others are not flat. */
static const char *flat_array_text(const json_t *arr, apr_pool_t *p)
{
    size_t i;
    const json_t *v;
    apr_array_header_t *parts = apr_array_make(p, (int)json_array_size(arr), sizeof(char *));

    json_array_foreach(arr, i, v) {
        if (!is_scalar(v) || json_is_null(v)) {
            return NULL;
        }
        APR_ARRAY_PUSH(parts, const char *) = scalar_text(v, p);
    }
    return apr_array_pstrcat(p, parts, ',');
}

const char *ot_claim_text(const json_t *v, apr_pool_t *p)
{
    const char *text = NULL;

    if (is_scalar(v)) {
        text = scalar_text(v, p);
    }
    else if (json_is_array(v)) {
        text = flat_array_text(v, p);
    }
    if (text == NULL) {
        text = ot_json_dump(v, NULL, p);  /* objects and nested arrays: compact JSON */
    }
    return text ? ot_sanitize(text, p) : "";
}

apr_status_t ot_claim_from_json(ot_claim_t *c, const char *name, const json_t *v, apr_pool_t *p)
{
    const char *flat;

    /* The same texts as ot_claim_text(), each computed once: this runs on every issuer answer. */
    c->name = name;
    if (json_is_string(v)) {
        c->type = OT_CT_STRING;
        c->value = json_string_value(v);
        c->value_len = json_string_length(v);
        c->text = ot_sanitize(c->value, p);
        return memchr(c->value, 0, c->value_len) ? APR_EINVAL : APR_SUCCESS;
    }
    if (json_is_null(v)) {
        c->type = OT_CT_NULL;
        c->value = "null";
        c->text = "";
    }
    else if (json_is_number(v) || json_is_boolean(v)) {
        c->type = json_is_number(v) ? OT_CT_NUMBER : OT_CT_BOOL;
        c->value = c->text = scalar_text(v, p);     /* numbers and booleans read as their JSON */
    }
    else {
        flat = json_is_array(v) ? flat_array_text(v, p) : NULL;
        c->type = flat ? OT_CT_LIST : OT_CT_JSON;
        c->value = ot_json_dump(v, NULL, p);
        if (c->value == NULL) {
            return APR_EINVAL;
        }
        /* Not c->value itself for OT_CT_JSON: sanitising takes its DEL bytes. */
        c->text = ot_sanitize(flat ? flat : c->value, p);
    }
    c->value_len = strlen(c->value);
    return APR_SUCCESS;
}

json_t *ot_claim_json(const ot_claim_t *c)
{
    if (c->type == OT_CT_STRING) {
        return json_stringn(c->value, c->value_len);
    }
    return json_loadb(c->value, c->value_len, JSON_DECODE_ANY, NULL);
}

const json_t *ot_claim_lookup(const json_t *answer, const char *name)
{
    const json_t *v = json_object_get(answer, name);
    const char *seg = name, *dot;
    char key[256];

    if (v != NULL || strchr(name, '.') == NULL) {
        return v;
    }
    v = answer;
    while (v != NULL && seg != NULL) {
        apr_size_t len;
        dot = strchr(seg, '.');
        len = dot ? (apr_size_t)(dot - seg) : strlen(seg);
        if (len == 0 || len >= sizeof(key) || !json_is_object(v)) {
            return NULL;
        }
        memcpy(key, seg, len);
        key[len] = '\0';
        v = json_object_get(v, key);
        seg = dot ? dot + 1 : NULL;
    }
    return v;
}

int ot_claim_matches(const json_t *v, const char *value, apr_pool_t *p)
{
    size_t i;
    const json_t *e;

    if (v == NULL) {
        return 0;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if (is_scalar(e) && strcmp(scalar_text(e, p), value) == 0) {
                return 1;
            }
        }
        return 0;
    }
    return is_scalar(v) && strcmp(scalar_text(v, p), value) == 0;
}

int ot_scope_has(const char *scope, const char *want)
{
    apr_size_t n = strlen(want);
    const char *s = scope;

    if (n == 0) {
        return 0;
    }
    while ((s = strstr(s, want)) != NULL) {
        int starts = (s == scope || s[-1] == ' ');
        int ends = (s[n] == '\0' || s[n] == ' ');
        if (starts && ends) {
            return 1;
        }
        s += n;
    }
    return 0;
}

int ot_header_name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (char)apr_tolower(*a), y = (char)apr_tolower(*b);
        if (x == '_') x = '-';
        if (y == '_') y = '-';
        if (x != y) {
            return 0;
        }
    }
    return *a == *b;
}
