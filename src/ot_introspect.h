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

/** How the client proves itself (OfftokClientAuth; the order is the directive's). */
typedef enum {
    OT_AUTH_BASIC = 0,       /**< client_secret_basic */
    OT_AUTH_POST = 1,        /**< client_secret_post */
    OT_AUTH_SECRET_JWT = 2,  /**< client_secret_jwt (RFC 7523, HS256 with the secret) */
    OT_AUTH_KEY_JWT = 3,     /**< private_key_jwt (RFC 7523, signed with OfftokClientKey) */
    OT_AUTH_TLS = 4          /**< tls_client_auth (RFC 8705 §2: the TLS client certificate) */
} ot_client_auth_t;

/** The method's name as OfftokClientAuth and the issuers spell it. */
const char *ot_client_auth_name(ot_client_auth_t auth);

/** What to ask and as whom. */
typedef struct {
    const char *url;
    const char *client_id;
    const char *client_secret;
    ot_client_auth_t auth;
    const char *hint;        /**< token_type_hint, or NULL */
    const char *token;
    const char *assertion;   /**< the client assertion of the JWT methods (made per call) */
    int signed_answers;      /**< ask for an RFC 9701 signed answer */
} ot_introspect_t;

/**
 * Fill req (strings from p) for an introspection POST: form body `token` (+ `token_type_hint`),
 * client authentication by client_secret_basic (id and secret form-encoded before Base64, RFC 6749
 * §2.3.1), client_secret_post, a client assertion (`client_id`, `client_assertion_type`,
 * `client_assertion`) or, for tls_client_auth, `client_id` alone; `Accept: application/json`, or
 * `application/token-introspection+jwt` for signed answers. Transport settings (CA, timeouts, the
 * client certificate) are left to the caller.
 */
void ot_introspect_request(ot_http_req_t *req, const ot_introspect_t *in, apr_pool_t *p);

/**
 * Make an answer of an HTTP outcome. APR_SUCCESS with *answer set for HTTP 200 and a valid
 * answer; otherwise an error, with *kind saying which (for the log, counters and the 503) and
 * *why a sentence for the log that never contains the token or a secret.
 */
apr_status_t ot_introspect_result(ot_answer_t **answer, ot_err_kind_t *kind, const char **why,
                                  const ot_http_resp_t *resp, apr_pool_t *p);

/**
 * 1 when resp is the issuer refusing the client itself: HTTP 401, or HTTP 400 whose JSON `error`
 * is `invalid_client` (RFC 6749 §5.2).
 */
int ot_introspect_invalid_client(const ot_http_resp_t *resp, apr_pool_t *p);

#endif
