/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Authorization providers: `Require offtok-scope s1 [s2 ...]` and
 * `Require offtok-claim name value [value ...]`.
 *
 * mod_authz_core asks every provider twice: first without a user, before authentication, then
 * after it. These providers check the token themselves in the first pass, so a token that lacks
 * a scope is refused there, which mod_authz_core answers with 403. A token that cannot be
 * accepted at all gives AUTHZ_DENIED_NO_USER, and the authentication hook answers 401, 400 or
 * 503 for it.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_claims.h"
#include "ot_json.h"

APLOG_USE_MODULE(offtok);

/** The words of a Require line, split once when the configuration is read. */
typedef struct {
    apr_array_header_t *words;
    const char *line;
} offtok_require_t;

static const char *parse_words(cmd_parms *cmd, const char *line, const void **parsed, int min)
{
    offtok_require_t *req = apr_pcalloc(cmd->pool, sizeof(*req));
    const char *s = line;
    char *w;

    req->words = apr_array_make(cmd->pool, 4, sizeof(char *));
    req->line = line;
    while (*s && *(w = ap_getword_conf(cmd->pool, &s))) {
        APR_ARRAY_PUSH(req->words, char *) = w;
    }
    if (req->words->nelts < min) {
        return apr_psprintf(cmd->pool, "Require %s needs at least %d argument%s",
                            (const char *)cmd->info, min, min > 1 ? "s" : "");
    }
    *parsed = req;
    return NULL;
}

static const char *parse_scope(cmd_parms *cmd, const char *line, const void **parsed)
{
    const char *err;

    cmd->info = "offtok-scope";
    err = parse_words(cmd, line, parsed, 1);
    if (err == NULL) {
        offtok_local_note_require(cmd, NULL);   /* local validation needs the scope claim */
    }
    return err;
}

static const char *parse_claim(cmd_parms *cmd, const char *line, const void **parsed)
{
    const char *err;

    cmd->info = "offtok-claim";
    err = parse_words(cmd, line, parsed, 2);
    if (err == NULL) {
        offtok_local_note_require(cmd, APR_ARRAY_IDX(((const offtok_require_t *)*parsed)->words,
                                                     0, const char *));
    }
    return err;
}

/** The request's accepted answer, or NULL with *status telling the provider's answer. */
static ot_answer_t *accepted_answer(request_rec *r, const char *provider, authz_status *status,
                                     offtok_req_t **pst)
{
    offtok_req_t *st;

    if (!offtok_is_ours(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0040: Require %s works only with "
                      "AuthType offtok; denying", provider);
        *status = AUTHZ_DENIED;
        return NULL;
    }
    st = offtok_check(r);
    *pst = st;
    if (st->status != OK) {
        *status = AUTHZ_DENIED_NO_USER;    /* authentication will answer 401/400/503 */
        return NULL;
    }
    return st->answer;
}

/**
 * Remember the denial; the challenge is written only if the request ends in an error (another
 * Require line may still grant access, and err_headers_out would reach a 200 too).
 */
static authz_status deny_scope(request_rec *r, offtok_req_t *st, const char *scope)
{
    st->error = "insufficient_scope";
    st->scope_needed = scope;
    return AUTHZ_DENIED;
}

static authz_status scope_check(request_rec *r, const char *line, const void *parsed)
{
    const offtok_require_t *req = parsed;
    offtok_req_t *st = NULL;
    authz_status status;
    const ot_answer_t *answer = accepted_answer(r, "offtok-scope", &status, &st);
    const char *scope;
    int i;

    if (answer == NULL) {
        return status;
    }
    scope = answer->scope;
    for (i = 0; i < req->words->nelts; i++) {
        if (scope == NULL || !ot_scope_has(scope, APR_ARRAY_IDX(req->words, i, const char *))) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0041: the token lacks scope %s",
                          APR_ARRAY_IDX(req->words, i, const char *));
            return deny_scope(r, st, apr_array_pstrcat(r->pool, req->words, ' '));
        }
    }
    return AUTHZ_GRANTED;
}

static authz_status claim_check(request_rec *r, const char *line, const void *parsed)
{
    const offtok_require_t *req = parsed;
    offtok_req_t *st = NULL;
    authz_status status;
    ot_answer_t *answer = accepted_answer(r, "offtok-claim", &status, &st);
    const char *name;
    const json_t *v;
    int i;

    if (answer == NULL) {
        return status;
    }
    name = APR_ARRAY_IDX(req->words, 0, const char *);
    v = ot_claim_lookup(ot_answer_json(answer), name);
    for (i = 1; v && i < req->words->nelts; i++) {
        if (ot_claim_matches(v, APR_ARRAY_IDX(req->words, i, const char *), r->pool)) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0042: claim %s has none of the required "
                  "values", name);
    return deny_scope(r, st, "");
}

const authz_provider offtok_scope_provider = { scope_check, parse_scope };
const authz_provider offtok_claim_provider = { claim_check, parse_claim };
