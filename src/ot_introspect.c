/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>

#include "ot_introspect.h"
#include "ot_util.h"

void ot_introspect_request(ot_http_req_t *req, const ot_introspect_t *in, apr_pool_t *p)
{
    const char *body = apr_pstrcat(p, "token=", ot_form_encode(in->token, p), NULL);

    if (in->hint) {
        body = apr_pstrcat(p, body, "&token_type_hint=", ot_form_encode(in->hint, p), NULL);
    }
    req->authorization = NULL;
    if (in->auth == OT_AUTH_POST) {
        body = apr_pstrcat(p, body, "&client_id=", ot_form_encode(in->client_id, p),
                           "&client_secret=", ot_form_encode(in->client_secret, p), NULL);
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
    req->accept = "application/json";
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
    else if (resp->status == 401 || resp->status == 403) {
        *kind = OT_ERR_CLIENT_AUTH;
        *why = apr_psprintf(p, "the issuer refused the client credentials (HTTP %d); check "
                            "OfftokClientID, OfftokClientSecret and OfftokClientAuth", resp->status);
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
