/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What the back end receives: REMOTE_USER, OFFTOK_CLAIM_* and OFFTOK_TOKEN_KIND in the
 * environment, the OfftokPassHeader headers, and the removal of client-sent copies of them.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_claims.h"
#include "ot_json.h"

APLOG_USE_MODULE(offtok);

/** r->pool userdata: the per-directory configuration r's headers were last scrubbed for. */
#define SCRUBBED_FOR "offtok-scrubbed-for"
/** r->pool userdata: the last subrequest of r that was accepted, and its configuration. */
#define SUB_ACCEPTED "offtok-sub-accepted"

/** A subrequest's accepted outcome, kept in its main request's pool while the subrequest lives. */
typedef struct {
    const void *dir;            /**< the subrequest's per_dir_config */
    offtok_req_t *st;           /**< its outcome (in the subrequest's pool) */
} sub_accepted_t;

/**
 * Claim `name` of the answer as the back end sees it; NULL when absent. A top-level claim is
 * read off the answer as it is; a dotted path (realm_access.roles) needs the JSON.
 */
static const char *claim_text(request_rec *r, ot_answer_t *a, const char *name, int *is_string)
{
    const ot_claim_t *cl = ot_answer_claim(a, name);
    const json_t *v;

    if (cl != NULL) {
        *is_string = cl->type == OT_CT_STRING;
        return cl->text;
    }
    if (strchr(name, '.') == NULL || (v = ot_claim_lookup(ot_answer_json(a), name)) == NULL) {
        return NULL;
    }
    *is_string = json_is_string(v);
    return ot_claim_text(v, r->pool);
}

int offtok_env_prepare(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c)
{
    const char *claim = c->user_claim ? c->user_claim : "sub";
    const char *text;
    int i, is_string = 0;
    apr_size_t len;

    text = claim_text(r, st->answer, claim, &is_string);
    if (text == NULL || !is_string || (len = strlen(text)) == 0 || len > OT_VALUE_MAX) {
        return 0;
    }
    st->user = text;
    st->headers = apr_array_make(r->pool, c->pass ? c->pass->nelts : 0, sizeof(offtok_pass_t));
    for (i = 0; c->pass && i < c->pass->nelts; i++) {
        const offtok_pass_t *ph = &APR_ARRAY_IDX(c->pass, i, offtok_pass_t);
        offtok_pass_t *out;

        text = claim_text(r, st->answer, ph->claim, &is_string);
        if (text == NULL) {
            continue;
        }
        if (strlen(text) > OT_VALUE_MAX) {
            return 0;
        }
        out = apr_array_push(st->headers);
        out->header = ph->header;
        out->claim = text;
    }
    return 1;
}

/** What a subrequest's cleanup forgets: its own outcome, if still the one kept. */
typedef struct {
    sub_accepted_t *sa;
    offtok_req_t *st;
} sub_forget_t;

/** The subrequest's cleanup: forget its outcome in the main request when it goes. */
static apr_status_t forget_sub(void *baton)
{
    sub_forget_t *f = baton;

    if (f->sa->st == f->st) {
        f->sa->dir = NULL;
        f->sa->st = NULL;
    }
    return APR_SUCCESS;
}

/**
 * Keep subrequest r's accepted outcome where its main request can find it: mod_dir and
 * mod_negotiation hand a subrequest's configuration to the main request
 * (ap_internal_fast_redirect) without its headers, user or module state.
 */
static void remember_sub(request_rec *r, offtok_req_t *st)
{
    sub_accepted_t *sa = NULL;
    sub_forget_t *f = apr_palloc(r->pool, sizeof(*f));

    apr_pool_userdata_get((void **)&sa, SUB_ACCEPTED, r->main->pool);
    if (sa == NULL) {
        sa = apr_pcalloc(r->main->pool, sizeof(*sa));
        apr_pool_userdata_setn(sa, SUB_ACCEPTED, NULL, r->main->pool);
    }
    sa->dir = r->per_dir_config;
    sa->st = st;
    f->sa = sa;
    f->st = st;
    apr_pool_cleanup_register(r->pool, f, forget_sub, apr_pool_cleanup_null);
}

/** Whether table t has a key that begins with "OFFTOK_" (in any case). */
static int has_offtok_key(const apr_table_t *t)
{
    const apr_array_header_t *arr = apr_table_elts(t);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key && (e[i].key[0] == 'O' || e[i].key[0] == 'o')
            && strncasecmp(e[i].key, "OFFTOK_", 7) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The environment the answer gives. apr_table_setn looks for an earlier entry of the name with
 * strcasecmp wherever the first four letters match, and every name here begins "OFFT": n claims
 * cost n*n/2 caseless compares (the cached path's __strcasecmp). When r has no OFFTOK_ variable
 * yet and the names are distinct, setn would only ever append: addn does that, in the same order.
 * The names are rendered in one allocation, their distinctness found by hash (ot_claims.c).
 */
static void set_answer_env(request_rec *r, const offtok_req_t *st, const ot_answer_t *a)
{
    const char **names = apr_palloc(r->pool, sizeof(*names) * (a->nclaims + 1));
    void (*set)(apr_table_t *, const char *, const char *) = apr_table_setn;
    int distinct = ot_claim_env_names(names, a->claims, a->nclaims, r->pool);
    int i;

    if (distinct && !has_offtok_key(r->subprocess_env)) {
        set = apr_table_addn;
    }
    for (i = 0; i < a->nclaims; i++) {
        set(r->subprocess_env, names[i], a->claims[i].text);
    }
    set(r->subprocess_env, "OFFTOK_TOKEN_KIND", ot_kind_name(a->kind));
    set(r->subprocess_env, "OFFTOK_TOKEN_BINDING", st->binding ? st->binding : "none");
    set(r->subprocess_env, "OFFTOK_CHECK", st->local ? "local" : "introspection");
}

void offtok_env_apply(request_rec *r, offtok_req_t *st)
{
    const offtok_dir_conf *c = ap_get_module_config(r->per_dir_config, &offtok_module);
    const ot_answer_t *a = st->answer;
    int i;

    if (st->applied || st->status != OK) {
        return;
    }
    st->applied = 1;
    r->user = (char *)st->user;
    r->ap_auth_type = "offtok";
    set_answer_env(r, st, a);
    for (i = 0; i < st->headers->nelts; i++) {
        const offtok_pass_t *h = &APR_ARRAY_IDX(st->headers, i, offtok_pass_t);
        apr_table_setn(r->headers_in, h->header, h->claim);
    }
    if (!offtok_forward_token(c)) {
        /* The DPoP proof goes too: it holds the token's hash (ath) and the client's key. */
        apr_table_unset(r->headers_in, "Authorization");
        apr_table_unset(r->headers_in, "DPoP");
    }
    if (r->main != NULL) {
        remember_sub(r, st);
    }
}

typedef struct {
    const apr_array_header_t *pass;
    apr_array_header_t *doomed;
} strip_ctx_t;

static int collect_spoofed(void *baton, const char *name, const char *value)
{
    strip_ctx_t *ctx = baton;
    int i;

    for (i = 0; i < ctx->pass->nelts; i++) {
        if (ot_header_name_eq(name, APR_ARRAY_IDX(ctx->pass, i, offtok_pass_t).header)) {
            APR_ARRAY_PUSH(ctx->doomed, const char *) = name;
            break;
        }
    }
    return 1;
}

int offtok_strip_headers(request_rec *r)
{
    const offtok_dir_conf *c = ap_get_module_config(r->per_dir_config, &offtok_module);
    strip_ctx_t ctx;
    int i;

    apr_pool_userdata_setn(r->per_dir_config, SCRUBBED_FOR, NULL, r->pool);
    if (c == NULL || c->pass == NULL) {
        return DECLINED;
    }
    ctx.pass = c->pass;
    ctx.doomed = apr_array_make(r->pool, 2, sizeof(const char *));
    apr_table_do(collect_spoofed, &ctx, r->headers_in, NULL);
    for (i = 0; i < ctx.doomed->nelts; i++) {
        const char *name = APR_ARRAY_IDX(ctx.doomed, i, const char *);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0030: removed client-sent header %s",
                      name);
        apr_table_unset(r->headers_in, name);
    }
    return DECLINED;
}

int offtok_fast_redirected(request_rec *r)
{
    const void *scrubbed = NULL;
    sub_accepted_t *sa = NULL;
    offtok_req_t *st;

    apr_pool_userdata_get((void **)&scrubbed, SCRUBBED_FOR, r->pool);
    if (scrubbed == NULL || scrubbed == r->per_dir_config) {
        return DECLINED;
    }
    /* The configuration changed after the scrub, without a new request: scrub for this one. */
    offtok_strip_headers(r);
    apr_pool_userdata_get((void **)&sa, SUB_ACCEPTED, r->pool);
    if (!offtok_is_ours(r) || sa == NULL || sa->dir != r->per_dir_config || sa->st == NULL
        || sa->st->status != OK) {
        return DECLINED;
    }
    /* What the subrequest accepted under this very configuration: the back end gets it. */
    st = apr_pmemdup(r->pool, sa->st, sizeof(*st));
    st->applied = 0;
    ap_set_module_config(r->request_config, &offtok_module, st);
    offtok_env_apply(r, st);
    return DECLINED;
}
