/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_introspect.h
 * @brief One RFC 7662 introspection exchange: the request we send and what we make of the reply.
 */
#ifndef OT_INTROSPECT_H
#define OT_INTROSPECT_H

#include <apr_pools.h>
#include "ot_http.h"
#include "ot_answer.h"
#include "ot_stats.h"

typedef enum { OT_AUTH_BASIC = 0, OT_AUTH_POST = 1 } ot_client_auth_t;

/** What to ask and as whom. */
typedef struct {
    const char *url;
    const char *client_id;
    const char *client_secret;
    ot_client_auth_t auth;
    const char *hint;        /**< token_type_hint, or NULL */
    const char *token;
} ot_introspect_t;

/**
 * Fill req (strings from p) for an introspection POST: form body `token` (+ `token_type_hint`),
 * client authentication by client_secret_basic (id and secret form-encoded before Base64, RFC 6749
 * §2.3.1) or client_secret_post, `Accept: application/json`. Transport settings (CA, timeouts)
 * are left to the caller.
 */
void ot_introspect_request(ot_http_req_t *req, const ot_introspect_t *in, apr_pool_t *p);

/**
 * Make an answer of an HTTP outcome. APR_SUCCESS with *answer set for HTTP 200 and a valid
 * answer; otherwise an error, with *kind saying which (for the log, counters and the 503) and
 * *why a sentence for the log that never contains the token or a secret.
 */
apr_status_t ot_introspect_result(ot_answer_t **answer, ot_err_kind_t *kind, const char **why,
                                  const ot_http_resp_t *resp, apr_pool_t *p);

#endif
