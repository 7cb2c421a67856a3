/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Claims on their way to the back end. The input is a claim name (what OfftokRemoteUserClaim,
 * OfftokPassHeader or Require offtok-claim name), "\n", and an answer's JSON. Every member goes
 * to the environment as mod_offtok_env.c sends it (ot_claim_env_names, ot_claim_text), the name
 * is looked up (dotted paths too) and matched, the scope is searched: no name or value that
 * comes out may carry a character the environment or a header must not hold.
 */
#include <string.h>
#include <strings.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_claims.h"
#include "ot_json.h"

static int clean_value(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int clean_env_name(const char *s)
{
    const char *rest = s + strlen("OFFTOK_CLAIM_");

    return strncmp(s, "OFFTOK_CLAIM_", strlen("OFFTOK_CLAIM_")) == 0
           && rest[strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789_")] == '\0';
}

/** want is one of the space-separated words of scope (checked here without ot_scope_has). */
static int has_word(const char *scope, const char *want, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, scope), *last, *w;

    for (w = apr_strtok(copy, " ", &last); w; w = apr_strtok(NULL, " ", &last)) {
        if (strcmp(w, want) == 0) {
            return 1;
        }
    }
    return 0;
}

/** No two of the n names equal as an apr table compares keys (the pairwise check). */
static int distinct_pairwise(const char **names, int n)
{
    int i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < i; j++) {
            if (strcasecmp(names[i], names[j]) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/** Every member to the environment, and its names all at once as mod_offtok_env.c renders them
 * (ot_claim_env_names): the same names, the same verdict on their meeting. */
static void to_environment(const json_t *answer, const char *name, apr_pool_t *p)
{
    int n = (int)json_object_size(answer) + 1, i = 0;
    ot_claim_t *claims = apr_pcalloc(p, sizeof(*claims) * (apr_size_t)n);
    const char **names = apr_pcalloc(p, sizeof(*names) * (apr_size_t)n);
    const char *key;
    json_t *v;
    int distinct;

    json_object_foreach((json_t *)answer, key, v) {
        fuzz_require(clean_env_name(ot_claim_env_name(key, p)), "environment name");
        fuzz_require(clean_value(ot_claim_text(v, p)), "environment value");
        claims[i++].name = key;
    }
    claims[i++].name = name;        /* the input's name: a case or punctuation collision */
    distinct = ot_claim_env_names(names, claims, i, p);
    for (n = 0; n < i; n++) {
        fuzz_require(strcmp(names[n], ot_claim_env_name(claims[n].name, p)) == 0,
                     "names rendered at once as one by one");
    }
    fuzz_require(distinct == distinct_pairwise(names, i), "names meet as strcasecmp says");
}

static void by_name(const json_t *answer, const char *name, apr_pool_t *p)
{
    const json_t *v = ot_claim_lookup(answer, name);
    const char *scope = ot_json_string(answer, "scope");

    if (v != NULL) {
        fuzz_require(clean_value(ot_claim_text(v, p)), "header value");
        if (json_is_string(v)) {
            fuzz_require(ot_claim_matches(v, json_string_value(v), p), "a string matches itself");
        }
        ot_claim_matches(v, name, p);
    }
    if (scope != NULL && strchr(name, ' ') == NULL) {   /* Require splits its words at spaces */
        fuzz_require(ot_scope_has(scope, name) == has_word(scope, name, p), "scope words");
    }
    fuzz_require(ot_header_name_eq(name, "X-User") == ot_header_name_eq("X-User", name),
                 "header names compare both ways alike");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *name, *rest;
    const char *s;
    json_t *answer;

    fuzz_split(data, size, &name, &rest);
    s = ot_sanitize(rest, p);
    fuzz_require(clean_value(s) && strlen(s) == strlen(rest), "ot_sanitize");
    answer = ot_json_parse(rest, strlen(rest), NULL, p);
    if (json_is_object(answer)) {
        to_environment(answer, name, p);
        by_name(answer, name, p);
    }
    fuzz_end();
    return 0;
}
