/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The authentication flow: bearer token → cache or issuer → verdict for this location.
 *
 * offtok_check() computes a request's outcome once, whichever hook asks first (the authz
 * providers in mod_authz_core's user-less pass, or the authentication hook), and keeps it in the
 * request's config. Subrequests and internal redirects reuse the initial request's answer only
 * where their own location would accept it by its own rules (same cache key, age within its TTL,
 * no fresh call required by its OfftokAlwaysValidate, no revocation since), and judge it by their
 * own policy; otherwise they check the token again.
 *
 * Nothing here logs a token: a short SHA-256 fingerprint stands in for it.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "mod_offtok_ask.h"
#include "ot_cache.h"
#include "ot_claims.h"
#include "ot_flight.h"
#include "ot_json.h"
#include "ot_stats.h"
#include "ot_util.h"

APLOG_USE_MODULE(offtok);

static void fail(offtok_req_t *st, int status, const char *error)
{
    st->status = status;
    st->error = error;
    st->answer = NULL;
}

/** Pick the credentials: an OfftokClientFor line for the token's azp, else the defaults. */
static void pick_client(offtok_ask_t *ask)
{
    const offtok_dir_conf *c = ask->conf;
    int i;

    ask->in.client_id = c->client_id ? c->client_id : "";
    ask->in.client_secret = c->client_secret ? c->client_secret : "";
    ask->secret_file = c->client_secret_file;
    if (c->client_for == NULL || ask->peek.azp == NULL) {
        return;
    }
    for (i = 0; i < c->client_for->nelts; i++) {
        const offtok_client_t *cl = &APR_ARRAY_IDX(c->client_for, i, offtok_client_t);
        if (strcmp(cl->azp, ask->peek.azp) == 0) {
            ask->in.client_id = cl->id;
            ask->in.client_secret = cl->secret;
            ask->secret_file = cl->secret_file;
            return;
        }
    }
}

/**
 * How an answer is obtained, beyond URL, client and hint: the TLS trust settings, and, where it
 * had to be signed (OfftokSignedAnswers), what its signature and claims were checked against
 * (unwrap_signed: the keys of OfftokJWKSURL, fetched under those TLS settings, iss equal to
 * OfftokIssuer, iat within OfftokClockSkew; its aud is the client id, already in the key). It
 * goes into the cache key, so that an answer fetched without verifying the issuer (or trusting
 * another CA file, or without a signature, or verified against another issuer's keys or iss)
 * never serves a location that would not have accepted it. ot_cache_key_how lays it out; buf
 * must outlive *how.
 */
static void answer_how(ot_key_part_t *how, char buf[OT_KEY_HOW_BUF], const offtok_dir_conf *c)
{
    ot_key_signed_t sig;

    sig.issuer = c->issuer;
    sig.jwks_url = c->jwks_url;
    sig.clock_skew = offtok_clock_skew(c);
    ot_cache_key_how(how, buf, offtok_ssl_verify(c), c->ca_file,
                     offtok_signed_answers(c) ? &sig : NULL);
}

/** The hint and credentials for this token: they need a look into the token (a JWT's payload). */
static void resolve_ask(request_rec *r, offtok_ask_t *ask)
{
    const offtok_dir_conf *c = ask->conf;

    ot_jwt_peek(&ask->peek, ask->in.token, r->pool);
    ask->in.hint = ot_token_hint(offtok_hint_mode(c),
                                 &ask->peek);
    pick_client(ask);
}

/**
 * The cache key is taken over what is sent: URL, the client id used, the hint sent and the
 * token (the contract's rule, so that locations asking alike share entries). Choosing the hint
 * and the client reads the token's payload on every request, hit or miss; ot_jwt_peek's scanner
 * does that in about a microsecond and a half for a Keycloak token.
 */
static void prepare_ask(request_rec *r, offtok_ask_t *ask, const offtok_dir_conf *c,
                        const char *token)
{
    ot_always_t always = offtok_always(c);
    char how[OT_KEY_HOW_BUF];
    ot_key_part_t parts[OT_KEY_PARTS] = {
        { { c->url } }, { { NULL } }, { { NULL } }, { { NULL } }, { { token } }
    };

    memset(ask, 0, sizeof(*ask));
    ask->conf = c;
    ask->in.url = c->url;
    ask->in.auth = offtok_client_auth(c);
    ask->in.token = token;
    ask->in.signed_answers = offtok_signed_answers(c);
    resolve_ask(r, ask);
    parts[1].piece[0] = ask->in.client_id;
    parts[2].piece[0] = ask->in.hint;
    answer_how(&parts[3], how, c);
    ot_cache_key_parts(ask->key, parts);
    /* With Offline, a token not known to be an access token must be treated as offline. */
    ask->fresh = always == OT_ALWAYS_ON
        || (always == OT_ALWAYS_OFFLINE
            && !(ask->peek.typ && (strcmp(ask->peek.typ, "Bearer") == 0
                                   || strcmp(ask->peek.typ, "DPoP") == 0)));
}

/* ---- the issuer --------------------------------------------------------------------------- */

/** Count an error judged from the answer; the HTTP client counts transport errors itself. */
static void count_error(ot_err_kind_t kind, int joined)
{
    switch (kind) {
    case OT_ERR_STATUS: case OT_ERR_REDIRECT: case OT_ERR_PARSE: case OT_ERR_CLIENT_AUTH:
        if (!joined) {
            OT_STAT_ADD(offtok_proc()->stats->issuer_errors[kind], 1);
        }
        break;
    default:
        break;
    }
}

/**
 * Ask the issuer (or join a call already asking) in a call that starts at or after `after` (0:
 * any, unless the request must be answered freshly). APR_SUCCESS with *pa set, and *pjoined
 * when the call was another request's (which stores the answer); otherwise st is set to the 503
 * and the reason is logged.
 */
static apr_status_t ask_issuer(request_rec *r, offtok_req_t *st, const offtok_ask_t *ask,
                               ot_answer_t **pa, apr_time_t *started, apr_time_t after,
                               int *pjoined)
{
    offtok_proc_t *proc = offtok_proc();
    const offtok_dir_conf *c = ask->conf;
    ot_http_req_t req;
    ot_http_resp_t resp;
    offtok_call_t call;
    ot_err_kind_t kind;
    offtok_flood_t flood;
    ot_flight_admit_t admit;
    const char *why;
    int joined = 0, level;
    apr_uint32_t quieted;
    apr_status_t rv;

    offtok_http_req(&req, c);
    req.deadline = r->request_time + req.total_timeout;
    offtok_call_init(&call, r, c, &ask->in, ask->secret_file, &req);

    if (ask->fresh && r->request_time > after) {
        after = r->request_time;
    }
    if (proc->http == NULL || proc->flight == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0006: this process has no link to the "
                      "issuer (see OT0053 at its start); answering 503");
        fail(st, HTTP_SERVICE_UNAVAILABLE, NULL);
        offtok_count_answer(r, HTTP_SERVICE_UNAVAILABLE, "no_link");
        return APR_EGENERAL;
    }
    /* Floods of made-up tokens: a new call for an unknown token is charged (mod_offtok_flood.c). */
    offtok_flood_admit(r, &flood, ask->known, &admit);
    rv = ot_flight_run(proc->flight, ask->in.url, ask->key, OT_KEY_LEN, after,
                       req.total_timeout + apr_time_from_sec(1), offtok_call_fetch, &call,
                       &admit, &resp, &joined, r->pool);
    if (rv != APR_SUCCESS && offtok_flood_refused(r, st, &flood)) {
        return rv;
    }
    if (rv != APR_SUCCESS) {
        level = offtok_quiet_level(r, OFFTOK_QUIET_OT0004, APLOG_ERR, &quieted);
        ap_log_rerror(APLOG_MARK, level, 0, r, "OT0004: %s; answering 503%s",
                      rv == APR_EBUSY ? "too many requests are waiting for the issuer, which "
                      "is slow (OfftokIssuerMaxPending)" : "the issuer call did not finish in time",
                      offtok_quieted_text(r, quieted));
        fail(st, HTTP_SERVICE_UNAVAILABLE, NULL);
        offtok_count_answer(r, HTTP_SERVICE_UNAVAILABLE,
                            rv == APR_EBUSY ? "busy" : "wait_timeout");
        return rv;
    }
    *started = resp.started;
    *pjoined = joined;
    if (offtok_call_result(&call, pa, &kind, &why, &resp) != APR_SUCCESS) {
        count_error(kind, joined);
        if (kind == OT_ERR_CLIENT_AUTH) {
            level = offtok_quiet_level(r, OFFTOK_QUIET_OT0003, APLOG_ERR, &quieted);
            ap_log_rerror(APLOG_MARK, level, 0, r, "OT0003: introspection at %s failed: %s; "
                          "answering 503%s", c->url, why, offtok_quieted_text(r, quieted));
        }
        else {
            level = offtok_quiet_level(r, OFFTOK_QUIET_OT0002, APLOG_ERR, &quieted);
            ap_log_rerror(APLOG_MARK, level, 0, r, "OT0002: introspection at %s failed: %s; "
                          "answering 503%s", c->url, why, offtok_quieted_text(r, quieted));
        }
        fail(st, HTTP_SERVICE_UNAVAILABLE, NULL);
        offtok_count_answer(r, HTTP_SERVICE_UNAVAILABLE, ot_stats_error_names[kind]);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/** What the log shows of a token: its fingerprint (only computed when something is logged). */
static const char *shown(request_rec *r, const char *token)
{
    return token ? ot_token_fingerprint(token, r->pool) : "(as for the initial request)";
}

/**
 * 1 when a fresh positive answer is unusable because of a revocation pushed after its call
 * started (a logout that arrived while the call was under way). *permanent: no newer answer can
 * help either (its iat predates a not-before policy).
 */
static int fresh_revoked(const offtok_ask_t *ask, const ot_answer_t *a, apr_time_t started,
                         int *permanent)
{
    offtok_proc_t *proc = offtok_proc();
    const offtok_dir_conf *c = ask->conf;
    const char *iss = offtok_revoke_iss(c, a->iss);
    ot_cache_entry_t e;

    if (proc->shm == NULL || !a->active) {
        return 0;
    }
    offtok_entry_of(&e, ask, a, started);
    if (!ot_revoke_applies(proc->shm, iss, c->client_id, &e)) {
        return 0;
    }
    e.fetched = apr_time_now();
    *permanent = ot_revoke_applies(proc->shm, iss, c->client_id, &e);
    return 1;
}

/**
 * Ask the issuer; when a revocation arrived while the call was under way, ask once more in a
 * call that starts now. APR_SUCCESS with *pa; otherwise st is set.
 */
static apr_status_t from_issuer(request_rec *r, offtok_req_t *st, const offtok_ask_t *ask,
                                ot_answer_t **pa, apr_time_t *fetched, const char *token)
{
    apr_time_t started, after = 0;
    int round, permanent = 0, joined = 0;
    offtok_ask_t again;

    for (round = 0; round < 2; round++) {
        if (ask_issuer(r, st, ask, pa, &started, after, &joined) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (!joined) {
            offtok_to_cache(r, ask, *pa, started);     /* the leader stores it for everyone */
        }
        if (!fresh_revoked(ask, *pa, started, &permanent)) {
            *fetched = started;
            return APR_SUCCESS;
        }
        if (permanent) {
            break;
        }
        after = apr_time_now();
        /* The issuer has just called it active: asking again is not charged as a made-up one. */
        again = *ask;
        again.known = 1;
        ask = &again;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0110: token %s: a revocation arrived "
                      "while the issuer was being asked; asking again", shown(r, token));
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0111: token %s refused: revoked by a "
                  "pushed logout or not-before policy", shown(r, token));
    fail(st, HTTP_UNAUTHORIZED, "invalid_token");
    offtok_count_answer(r, HTTP_UNAUTHORIZED, "revoked");
    return APR_EGENERAL;
}

/* ---- the verdict -------------------------------------------------------------------------- */

static void judge(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c, ot_answer_t *a,
                  const char *token)
{
    ot_policy_t policy;
    ot_bound_t bound;
    ot_verdict_t v;

    offtok_dpop_bound(r, st, c, a, &bound);               /* DPoP and certificate binding */
    policy.issuer = c->issuer;
    policy.audience = c->audience;
    policy.allow_offline = offtok_allow_offline(c);
    policy.offline_clients = c->offline_clients;
    policy.skew = offtok_clock_skew(c);
    v = ot_answer_judge_bound(a, &policy, &bound, (apr_int64_t)apr_time_sec(apr_time_now()));
    if (v != OT_VERDICT_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0010: token %s refused: %s",
                      shown(r, token), ot_verdict_text(v));
        fail(st, HTTP_UNAUTHORIZED, "invalid_token");
        offtok_count_answer(r, HTTP_UNAUTHORIZED, offtok_verdict_reason(v));
        return;
    }
    st->answer = a;
    st->status = OK;
    st->binding = ot_answer_binding(a, &bound);
    if (!offtok_env_prepare(r, st, c)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0011: token %s refused: the claim for "
                      "REMOTE_USER is missing, not a string, or a value is over %d bytes",
                      shown(r, token), OT_VALUE_MAX);
        fail(st, HTTP_UNAUTHORIZED, "invalid_token");
        offtok_count_answer(r, HTTP_UNAUTHORIZED, "claim_limit");
        return;
    }
    offtok_dpop_accept(r, st, c);                         /* the proof's jti, last of all */
}

/** The request this one descends from (through subrequests and internal redirects). */
static request_rec *initial_request(request_rec *r)
{
    for (;;) {
        if (r->main) {
            r = r->main;
        }
        else if (r->prev) {
            r = r->prev;
        }
        else {
            return r;
        }
    }
}

/**
 * The initial request's outcome, when this subrequest or internal redirect may take it as its
 * own: the same cache key (URL, client, hint, TLS trust, token), and either an answer this
 * location accepts by its own rules (judged here by its own policy) or an issuer failure for
 * that same key. 0 when the token must be checked again here.
 */
static int reuse_initial(request_rec *r, offtok_req_t *st, const offtok_ask_t *ask,
                         const offtok_req_t *ist, request_rec *init)
{
    ot_cache_entry_t e;

    if (ist == NULL || ist->token == NULL || memcmp(ask->key, ist->key, OT_KEY_LEN) != 0) {
        return 0;
    }
    if (ist->seen == NULL) {
        if (ist->status != HTTP_SERVICE_UNAVAILABLE) {
            return 0;
        }
        fail(st, ist->status, NULL);   /* the same issuer just failed for the same question */
        return 1;
    }
    offtok_entry_of(&e, ask, ist->seen, ist->fetched);
    if (!offtok_acceptable(ask, &e, apr_time_now(), init->request_time)) {
        return 0;
    }
    st->seen = ist->seen;
    st->fetched = ist->fetched;
    return 1;
}

static void check_token(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                        const char *token)
{
    request_rec *init = initial_request(r);
    const offtok_req_t *ist = NULL;
    offtok_ask_t ask;
    ot_answer_t *a = NULL;

    /* OfftokAccessTokens Local (mod_offtok_local.c): a JWT access token verified here. */
    switch (offtok_local_check(r, st, c, token, &a)) {
    case OFFTOK_LOCAL_ANSWER:
        st->local = 1;
        judge(r, st, c, a, token);
        return;
    case OFFTOK_LOCAL_DONE:
        return;
    case OFFTOK_LOCAL_ASK:
        break;
    }
    prepare_ask(r, &ask, c, token);
    st->token = token;
    memcpy(st->key, ask.key, OT_KEY_LEN);
    if (init != r) {
        ist = ap_get_module_config(init->request_config, &offtok_module);
        if (reuse_initial(r, st, &ask, ist, init)) {
            if (st->seen != NULL) {
                judge(r, st, c, st->seen, token);
            }
            return;
        }
    }
    a = offtok_from_cache(r, &ask, &st->fetched);
    /* Floods of made-up tokens: what is certain to fail costs no call (mod_offtok_flood.c). */
    if (a == NULL && offtok_flood_certain(r, st, c, token, &ask.peek)) {
        return;
    }
    if (a == NULL && from_issuer(r, st, &ask, &a, &st->fetched, token) != APR_SUCCESS) {
        return;
    }
    st->seen = a;
    judge(r, st, c, a, token);
}

offtok_req_t *offtok_check(request_rec *r)
{
    offtok_req_t *st = ap_get_module_config(r->request_config, &offtok_module);
    const offtok_dir_conf *c;
    const char *token = NULL, *missing;

    if (st != NULL) {
        return st;
    }
    st = apr_pcalloc(r->pool, sizeof(*st));
    ap_set_module_config(r->request_config, &offtok_module, st);
    c = ap_get_module_config(r->per_dir_config, &offtok_module);
    /* Discovery (mod_offtok_local.c): c may become a copy with the issuer's endpoints. */
    if (offtok_local_resolve(r, st, &c) != OK) {
        return st;
    }
    if ((missing = offtok_client_missing(c)) != NULL) {
        core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0005: AuthType offtok in <%s> has no "
                      "%s; answering 500", core->d ? core->d : "server", missing);
        fail(st, HTTP_INTERNAL_SERVER_ERROR, NULL);
        offtok_count_answer(r, HTTP_INTERNAL_SERVER_ERROR, "config");
        return st;
    }
    if (!offtok_dpop_credentials(r, st, c, &token)) {      /* Bearer or DPoP (OT0020) */
        return st;
    }
    if (r->args && ot_query_has_param(r->args, "access_token")) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0021: a token in the Authorization header "
                      "and another in the query string");
        fail(st, HTTP_BAD_REQUEST, "invalid_request");
        offtok_count_answer(r, HTTP_BAD_REQUEST, "query_token");
        return st;
    }
    if (!offtok_dpop_prove(r, st, c, token)) {             /* before the token is looked up */
        return st;
    }
    check_token(r, st, c, token);
    return st;
}
