/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_tables.h>

#include "ot_claims.h"
#include "ot_json.h"

const char *ot_claim_env_name(const char *name, apr_pool_t *p)
{
    char *out = apr_pstrcat(p, "OFFTOK_CLAIM_", name, NULL);
    char *c;

    for (c = out + sizeof("OFFTOK_CLAIM_") - 1; *c; c++) {
        if (!(apr_isalnum(*c) || *c == '_') || (unsigned char)*c > 0x7f) {
            *c = '_';
        }
    }
    return out;
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
