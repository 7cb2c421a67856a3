/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_claims.h
 * @brief Claims as the back end sees them: names and values for the environment and headers,
 *        and the lookups behind `Require offtok-scope` and `Require offtok-claim`.
 *
 * Whatever the issuer returns, no value produced here carries a control character
 * (U+0000–U+001F, U+007F): each becomes a space.
 */
#ifndef OT_CLAIMS_H
#define OT_CLAIMS_H

#include <apr_pools.h>
#include <jansson.h>

/** Longest value accepted for REMOTE_USER or a passed header. */
#define OT_VALUE_MAX 4096

/**
 * How a claim is kept once the answer is parsed (and in the cache): its JSON type as far as the
 * back end and the checks care. The value is the string itself for OT_CT_STRING and compact
 * JSON for the others, so that the claim can become JSON again.
 */
typedef enum {
    OT_CT_STRING = 's',
    OT_CT_NUMBER = 'n',
    OT_CT_BOOL = 'b',
    OT_CT_NULL = 'z',
    OT_CT_LIST = 'l',     /**< an array of strings, numbers and booleans */
    OT_CT_JSON = 'j'      /**< an object, or an array holding anything else */
} ot_claim_type_t;

/** One top-level claim of an answer, ready for the environment. */
typedef struct {
    const char *name;
    const char *value;    /**< the string (OT_CT_STRING) or compact JSON; never holds NUL */
    const char *text;     /**< what the back end sees: ot_claim_text() of the value */
    apr_size_t value_len;
    char type;            /**< ot_claim_type_t */
} ot_claim_t;

/**
 * Fill c from the JSON value v of claim `name`. APR_EINVAL when it cannot be kept as a claim
 * (a string holding NUL, which jansson does not let through as we parse): the answer is refused.
 */
apr_status_t ot_claim_from_json(ot_claim_t *c, const char *name, const json_t *v, apr_pool_t *p);

/** The claim's value as JSON again (a new reference), or NULL when it does not parse. */
json_t *ot_claim_json(const ot_claim_t *c);

/** "OFFTOK_CLAIM_" + name with every character outside A-Za-z0-9_ turned into '_'. */
const char *ot_claim_env_name(const char *name, apr_pool_t *p);

/**
 * ot_claim_env_name of each of the n claims' names, names[i] for claims[i], rendered into one
 * allocation from p. Returns 1 when no two of the names are equal as an apr table compares
 * keys (strcasecmp: "a-b", "a.b" and "A_B" meet), 0 when two are.
 */
int ot_claim_env_names(const char **names, const ot_claim_t *claims, int n, apr_pool_t *p);

/**
 * A claim's value as text: strings as they are; numbers as JSON writes them; true/false; null
 * as ""; arrays of scalars joined with ','; objects and nested arrays as compact JSON. Control
 * characters become spaces.
 */
const char *ot_claim_text(const json_t *v, apr_pool_t *p);

/** A copy of s with every control character replaced by a space. */
const char *ot_sanitize(const char *s, apr_pool_t *p);

/**
 * Find a claim: the top-level key `name` first; if there is none, `name` as a dotted path into
 * objects (realm_access.roles). NULL when absent.
 */
const json_t *ot_claim_lookup(const json_t *answer, const char *name);

/** v equals value, or v is an array holding an element equal to value (compared as text). */
int ot_claim_matches(const json_t *v, const char *value, apr_pool_t *p);

/** 1 when the space-separated scope list holds `want`. */
int ot_scope_has(const char *scope, const char *want);

/** Header name comparison of the contract: case-insensitive, '-' and '_' alike. */
int ot_header_name_eq(const char *a, const char *b);

#endif
