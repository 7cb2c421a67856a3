/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>

#include "ot_assert.h"
#include "ot_introspect.h"
#include "ot_json.h"
#include "ot_signed.h"
#include "ot_util.h"

const char *ot_client_auth_name(ot_client_auth_t auth)
{
    static const char *const names[] = {
        "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt",
        "tls_client_auth"
    };
    return auth >= OT_AUTH_BASIC && auth <= OT_AUTH_TLS ? names[auth] : "client_secret_basic";
}

/** The form members that authenticate the client (all but client_secret_basic). */
static const char *auth_form(const ot_introspect_t *in, apr_pool_t *p)
{
    const char *id = apr_pstrcat(p, "&client_id=", ot_form_encode(in->client_id, p), NULL);

    switch (in->auth) {
    case OT_AUTH_POST:
        return apr_pstrcat(p, id, "&client_secret=", ot_form_encode(in->client_secret, p), NULL);
    case OT_AUTH_SECRET_JWT:
    case OT_AUTH_KEY_JWT:
        return apr_pstrcat(p, id, "&client_assertion_type=", ot_form_encode(OT_ASSERTION_TYPE, p),
                           "&client_assertion=", ot_form_encode(in->assertion ? in->assertion
                                                                : "", p), NULL);
    default:
        return id;
    }
}

void ot_introspect_request(ot_http_req_t *req, const ot_introspect_t *in, apr_pool_t *p)
{
    const char *body = apr_pstrcat(p, "token=", ot_form_encode(in->token, p), NULL);

    if (in->hint) {
        body = apr_pstrcat(p, body, "&token_type_hint=", ot_form_encode(in->hint, p), NULL);
    }
    req->authorization = NULL;
    if (in->auth != OT_AUTH_BASIC) {
        body = apr_pstrcat(p, body, auth_form(in, p), NULL);
    }
    else {
        const char *pair = apr_pstrcat(p, ot_form_encode(in->client_id, p), ":",
                                       ot_form_encode(in->client_secret, p), NULL);
        req->authorization = apr_pstrcat(p, "Basic ", ot_b64_encode(pair, strlen(pair), p), NULL);
    }
    req->url = in->url;
    req->body = body;
    req->body_len = strlen(body);
    req->content_type = "application/x-www-form-urlencoded";
    req->accept = in->signed_answers ? OT_SIGNED_TYPE : "application/json";
    req->max_body = OT_ANSWER_MAX;
}

static ot_err_kind_t transport_kind(ot_http_err_t err)
{
    switch (err) {
    case OT_HTTP_ECONNECT: return OT_ERR_CONNECT;
    case OT_HTTP_ETIMEOUT: return OT_ERR_TIMEOUT;
    case OT_HTTP_ETLS:     return OT_ERR_TLS;
    case OT_HTTP_ERECV:    return OT_ERR_RECV;
    case OT_HTTP_ETOOBIG:  return OT_ERR_TOOBIG;
    default:               return OT_ERR_INTERNAL;
    }
}

static apr_status_t status_error(ot_err_kind_t *kind, const char **why, const ot_http_resp_t *resp,
                                 apr_pool_t *p)
{
    if (resp->status >= 300 && resp->status < 400) {
        *kind = OT_ERR_REDIRECT;
        *why = apr_psprintf(p, "the issuer answered with a redirect (HTTP %d), which is not "
                            "followed; check OfftokIntrospectionURL", resp->status);
    }
    else if (resp->status == 401 || resp->status == 403
             || ot_introspect_invalid_client(resp, p)) {
        *kind = OT_ERR_CLIENT_AUTH;
        *why = apr_psprintf(p, "the issuer refused the client credentials (HTTP %d); check "
                            "OfftokClientID, OfftokClientAuth and the secret, key or certificate "
                            "it uses", resp->status);
    }
    else {
        *kind = OT_ERR_STATUS;
        *why = apr_psprintf(p, "the issuer answered HTTP %d", resp->status);
    }
    return APR_EGENERAL;
}

apr_status_t ot_introspect_result(ot_answer_t **answer, ot_err_kind_t *kind, const char **why,
                                  const ot_http_resp_t *resp, apr_pool_t *p)
{
    const char *err = NULL;

    *answer = NULL;
    if (resp->err != OT_HTTP_OK) {
        *kind = transport_kind(resp->err);
        *why = apr_psprintf(p, "the issuer could not be asked (%s): %s",
                            ot_http_err_name(resp->err), resp->errmsg ? resp->errmsg : "");
        return APR_EGENERAL;
    }
    if (resp->status != 200) {
        return status_error(kind, why, resp, p);
    }
    *answer = ot_answer_parse(resp->body, resp->body_len, &err, p);
    if (*answer == NULL) {
        *kind = OT_ERR_PARSE;
        *why = apr_pstrcat(p, "the issuer's answer is unusable: ", err, NULL);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

int ot_introspect_invalid_client(const ot_http_resp_t *resp, apr_pool_t *p)
{
    json_t *j;
    const char *error;

    if (resp->err != OT_HTTP_OK) {
        return 0;
    }
    if (resp->status == 401) {
        return 1;
    }
    if (resp->status != 400 || resp->body == NULL || resp->body_len > 64 * 1024) {
        return 0;
    }
    j = ot_json_parse(resp->body, resp->body_len, NULL, p);
    error = j && json_is_object(j) ? ot_json_string(j, "error") : NULL;
    return error && strcmp(error, "invalid_client") == 0;
}
