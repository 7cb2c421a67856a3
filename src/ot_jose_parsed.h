/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_parsed.h
 * @brief Internal to ot_jose.c: each thread's parsed key sets, once per JWKS version.
 */
#ifndef OT_JOSE_PARSED_H
#define OT_JOSE_PARSED_H

#include <apr_pools.h>
#include <jansson.h>
#include <cjose/cjose.h>

typedef struct ot_jose_parsed_t ot_jose_parsed_t;

/** Import one JWKS member as a cjose key the caller releases, or NULL; scratch for the work. */
typedef cjose_jwk_t *ot_jose_import_fn(json_t *key, apr_pool_t *scratch);

/**
 * This thread's parsed copy of the key set of (owner, url) at generation gen, parsed from
 * jwks[0..len) when the thread has none for that generation (an older one is freed). NULL when
 * no copy can be kept (the caller then parses for itself). Valid until this thread's next call.
 */
ot_jose_parsed_t *ot_jose_parsed(const void *owner, const char *url, apr_uint64_t gen,
                                 const char *jwks, apr_size_t len);

/** The parsed JWKS (NULL when it was not JSON). */
json_t *ot_jose_parsed_set(const ot_jose_parsed_t *ps);

/**
 * Member i of "keys" imported with import (scratch: a pool for its work), once per parsed set;
 * NULL when it does not import. The key is the set's: the caller never releases it.
 */
cjose_jwk_t *ot_jose_parsed_jwk(ot_jose_parsed_t *ps, size_t i, ot_jose_import_fn *import,
                                apr_pool_t *scratch);

#endif
