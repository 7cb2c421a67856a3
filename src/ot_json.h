/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_json.h
 * @brief jansson objects owned by APR pools: one owner per object, no hand-counted decrefs.
 */
#ifndef OT_JSON_H
#define OT_JSON_H

#include <apr_pools.h>
#include <jansson.h>

/**
 * Parse len bytes of JSON (any value; duplicate object keys refused). The result is released
 * with p. NULL on failure, with *err (if err is not NULL) set to a short reason from p.
 */
json_t *ot_json_parse(const char *buf, apr_size_t len, const char **err, apr_pool_t *p);

/** Hand j (a new reference) to p: json_decref runs when p is cleared. Returns j. */
json_t *ot_json_own(json_t *j, apr_pool_t *p);

/** obj[key] when it is a string, else NULL. */
const char *ot_json_string(const json_t *obj, const char *key);

/** 1 when aud (a string or an array of strings) names who. */
int ot_json_aud_has(const json_t *aud, const char *who);

/** Compact serialisation of j (any value) from p, or NULL. */
const char *ot_json_dump(const json_t *j, apr_size_t *len, apr_pool_t *p);

#endif
