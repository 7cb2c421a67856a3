/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Discovery and local validation in httpd (OfftokIssuer alone; OfftokAccessTokens Local).
 *
 *   offtok_local_resolve  a location without OfftokIntrospectionURL gets the issuer's metadata's
 *                         introspection_endpoint (and jwks_uri when OfftokJWKSURL is unset)
 *   offtok_local_check    a JWT access token judged here: the shared cache of verified tokens,
 *                         else its signature with the issuer's JWKS, then times, iss, aud,
 *                         the claims this location needs, and pushed revocations
 *
 * Metadata and keys are cached per process (ot_discovery.h, ot_jose.h; both per TLS trust
 * settings, as the shared copies of ot_docs.h are), each process fetching
 * them once and again at most once per 10 s; a token's verdict and claims are kept in the shared
 * segment, so a token's signature is checked once for the whole server.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "mod_offtok_redis.h"
#include "ot_claims.h"
#include "ot_discovery.h"
#include "ot_docs.h"
#include "ot_http.h"
#include "ot_jose.h"
#include "ot_json.h"
#include "ot_jwt_verify.h"
#include "ot_stats.h"
#include "ot_util.h"

APLOG_USE_MODULE(offtok);

/** Prefix of the cache keys of locally verified tokens: no introspection URL looks like it. */
#define LOCAL_KEY_PREFIX "offtok-local\n"

static const char *section(request_rec *r)
{
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);

    return core->d ? core->d : "server";
}

/** The offtok_answers_total reason of each ot_local_fail_t. */
static const char *const answer_reason[OT_LOCAL_FAIL_KINDS] = {
    "signature", "expired", "not_yet", "issuer", "audience", "revoked", "keys"
};

/** st answers status (with the RFC 6750 error), counted under reason. */
static void set_fail(request_rec *r, offtok_req_t *st, int status, const char *error,
                     const char *reason)
{
    st->status = status;
    st->error = error;
    st->answer = NULL;
    offtok_count_answer(r, status, reason);
}

static void count_fail(ot_local_fail_t why)
{
    OT_STAT_ADD(offtok_proc()->stats->local_failures[why], 1);
}

/**
 * The TLS trust settings of c, in pieces: the CA file ("" when unset) and "|1" when the issuer
 * is verified, else "|0". The resolved setting: unset and an explicit default are the same
 * trust, the same key.
 */
static void trust_pieces(const char *piece[2], const offtok_dir_conf *c)
{
    piece[0] = c->ca_file ? c->ca_file : "";
    piece[1] = offtok_ssl_verify(c) ? "|1" : "|0";
}

/** The TLS trust settings of c, as a string: keys fetched under others are other keys. */
static const char *trust_scope(const offtok_dir_conf *c, apr_pool_t *p)
{
    const char *piece[2];

    trust_pieces(piece, c);
    return apr_pstrcat(p, piece[0], piece[1], NULL);
}

/* ---- fetching metadata and keys ------------------------------------------------------------ */

/** One GET's settings. */
typedef struct {
    const offtok_dir_conf *c;
    const char *accept;
    apr_size_t max;
} get_t;

/** ot_docs_get_fn: a GET with the location's TLS settings and timeouts, without proxies. */
static apr_status_t raw_get(void *baton, const char *url, int *status, const char **body,
                            apr_size_t *len, const char **why, apr_pool_t *p)
{
    const get_t *g = baton;
    ot_http_req_t req;
    ot_http_resp_t resp;

    offtok_http_req(&req, g->c);
    req.url = url;
    req.accept = g->accept;
    req.max_body = g->max;
    offtok_flood_fetched();             /* counts against OfftokIssuerMaxRate */
    ot_http_get(offtok_proc()->http, &req, &resp, p);
    if (resp.err != OT_HTTP_OK) {
        *why = apr_psprintf(p, "GET %s: %s (%s)", url, ot_http_err_name(resp.err),
                            resp.errmsg ? resp.errmsg : "");
        return APR_EGENERAL;
    }
    *status = resp.status;
    *body = resp.body;
    *len = resp.body_len;
    return APR_SUCCESS;
}

/** GET url once for all processes (ot_docs.h); *fetched: this call went to the network. */
static apr_status_t shared_get(const offtok_dir_conf *c, const char *url, const char *accept,
                               apr_size_t max, int *status, const char **body, apr_size_t *len,
                               const char **why, int *fetched, apr_pool_t *p)
{
    get_t g = { c, accept, max };

    return ot_docs_fetch(offtok_proc()->shm, url, trust_scope(c, p), apr_time_now(),
                         offtok_longest_timeout() + apr_time_from_sec(1), raw_get, &g, status,
                         body, len, why, fetched, p);
}

/** ot_disc_fetch_fn with this location's settings, shared by every process. */
static apr_status_t fetch_metadata(void *baton, const char *url, int *status,
                                   const char **body, apr_size_t *len, const char **why,
                                   apr_pool_t *p)
{
    int fetched = 0;
    apr_status_t rv = shared_get(baton, url, "application/json", OT_META_MAX, status, body, len,
                                 why, &fetched, p);

    if (fetched) {
        OT_STAT_ADD(offtok_proc()->stats->metadata_fetches, 1);
    }
    return rv;
}

apr_status_t offtok_fetch_jwks(void *baton, const char *url, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p)
{
    int status = 0, fetched = 0;
    const char *fragment = strchr(url, '#');
    apr_status_t rv;

    /* An offtok_jwks_key names the trust settings after a '#': never part of what is fetched. */
    if (fragment != NULL) {
        url = apr_pstrmemdup(p, url, (apr_size_t)(fragment - url));
    }
    rv = shared_get(baton, url, "application/jwk-set+json, application/json", OT_JWKS_MAX,
                    &status, body, len, why, &fetched, p);

    if (rv == APR_SUCCESS && status != HTTP_OK) {
        *why = apr_psprintf(p, "GET %s: HTTP status %d", url, status);
        return APR_EGENERAL;
    }
    return rv;
}

/** The issuer's metadata, or a 503 set on st (when not NULL; logged as OT0601). */
static apr_status_t metadata(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                             ot_metadata_t *m)
{
    offtok_proc_t *proc = offtok_proc();
    const char *why = "";
    int fetched = 0;
    apr_status_t rv = APR_EGENERAL;

    if (proc->disc != NULL && proc->http != NULL) {
        /* Per trust scope: metadata fetched without verification never serves a location
         * that verifies (it names where tokens and credentials go, and where the keys are). */
        rv = ot_disc_get_scoped(m, &why, &fetched, proc->disc, c->issuer,
                                trust_scope(c, r->pool), fetch_metadata, (void *)c,
                                apr_time_now(), r->pool);
    }
    else {
        why = "this process has no link to the issuer (see OT0053 or OT0721 at its start)";
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, fetched ? APLOG_ERR : APLOG_DEBUG, 0, r, "OT0601: the "
                      "metadata of issuer %s cannot be had: %s; answering 503",
                      ap_escape_logitem(r->pool, c->issuer), why);
        if (st != NULL) {
            set_fail(r, st, HTTP_SERVICE_UNAVAILABLE, NULL, "metadata");
        }
    }
    return rv;
}

const char *offtok_local_jwks_url(request_rec *r, const offtok_dir_conf *c)
{
    ot_metadata_t m;

    if (c->jwks_url != NULL || c->issuer == NULL) {
        return c->jwks_url;
    }
    return metadata(r, NULL, c, &m) == APR_SUCCESS ? m.jwks_uri : NULL;
}

/* ---- discovery ----------------------------------------------------------------------------- */

int offtok_local_resolve(request_rec *r, offtok_req_t *st, const offtok_dir_conf **pc)
{
    const offtok_dir_conf *c = *pc;
    offtok_dir_conf *copy;
    ot_metadata_t m;

    if (c->url == NULL && c->issuer == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0001: AuthType offtok in <%s> has no "
                      "OfftokIntrospectionURL (nor OfftokIssuer to discover it from); "
                      "answering 500", section(r));
        set_fail(r, st, HTTP_INTERNAL_SERVER_ERROR, NULL, "config");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (offtok_local(c) && (c->issuer == NULL || c->audience == NULL)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0608: OfftokAccessTokens Local in <%s> "
                      "needs OfftokIssuer and OfftokAudience; answering 500", section(r));
        set_fail(r, st, HTTP_INTERNAL_SERVER_ERROR, NULL, "config");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (c->url != NULL) {
        return OK;
    }
    if (metadata(r, st, c, &m) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (m.introspection_endpoint == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0609: the metadata of issuer %s has no "
                      "introspection_endpoint; answering 503",
                      ap_escape_logitem(r->pool, c->issuer));
        set_fail(r, st, HTTP_SERVICE_UNAVAILABLE, NULL, "metadata");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    copy = apr_pmemdup(r->pool, c, sizeof(*c));
    copy->url = m.introspection_endpoint;
    copy->jwks_url = c->jwks_url ? c->jwks_url : m.jwks_uri;
    *pc = copy;
    return OK;
}

/* ---- local validation ---------------------------------------------------------------------- */

/** 1 when a has every claim this location reads (otherwise the issuer is asked). */
static int has_needed_claims(ot_answer_t *a, const offtok_dir_conf *c)
{
    const char *user = c->user_claim ? c->user_claim : "sub";
    int i;

    if (ot_answer_claim(a, "aud") == NULL || ot_answer_claim(a, user) == NULL
        || (c->needs_scope && ot_answer_claim(a, "scope") == NULL)) {
        return 0;
    }
    for (i = 0; c->pass && i < c->pass->nelts; i++) {
        if (ot_answer_claim(a, APR_ARRAY_IDX(c->pass, i, offtok_pass_t).claim) == NULL) {
            return 0;
        }
    }
    for (i = 0; c->needed_claims && i < c->needed_claims->nelts; i++) {
        const char *name = APR_ARRAY_IDX(c->needed_claims, i, const char *);
        if (ot_answer_claim(a, name) == NULL
            && (strchr(name, '.') == NULL || ot_claim_lookup(ot_answer_json(a), name) == NULL)) {
            return 0;
        }
    }
    return 1;
}

/** The verified token from the shared cache, or NULL. */
static ot_answer_t *cached(request_rec *r, const offtok_dir_conf *c, const unsigned char *key,
                           apr_time_t now)
{
    offtok_proc_t *proc = offtok_proc();
    ot_cache_entry_t e;

    if (proc->shm == NULL || ot_cache_get(proc->shm, key, now, &e, r->pool) != APR_SUCCESS
        || !e.active || now - e.fetched >= apr_time_from_sec(offtok_cache_ttl(c))) {
        return NULL;
    }
    return ot_answer_from_jwt_digest(e.claims, e.claims_len, r->pool);
}

/**
 * Keep a verified token's claims for every process, until its exp or the longest TTL: the entry
 * is built as an introspection answer's is (ot_entry_of), azp included.
 */
static void keep(request_rec *r, const offtok_dir_conf *c, const unsigned char *key,
                 const ot_answer_t *a, apr_time_t now)
{
    offtok_proc_t *proc = offtok_proc();
    ot_cache_entry_t e;

    if (proc->shm == NULL) {
        return;
    }
    ot_entry_of(&e, a, c->issuer, now, apr_time_from_sec(offtok_longest_ttl()));
    e.claims = ot_answer_digest(a, &e.claims_len, r->pool);
    if (e.claims != NULL) {
        ot_cache_put(proc->shm, key, &e, now);
    }
}

/** One verification's outcome, before anything is logged or counted. */
typedef struct {
    ot_jose_result_t jr;
    const char *why;            /**< ot_jose's reason, when not verified */
    const char *err;            /**< the payload reader's, when verified and a is NULL */
    int unknown;                /**< no key for it, even after asking (the issuer judges it) */
    ot_answer_t *a;             /**< the verified payload read, or NULL */
} checked_t;

/** The payload of the verified jws read into chk->a, at once (no JSON tree where it can be). */
static void read_payload(checked_t *chk, const ot_jws_t *jws, apr_pool_t *p)
{
    chk->a = jws->payload_text
        ? ot_answer_from_jwt_text(jws->payload_text, jws->payload_len, &chk->err, p)
        : ot_answer_from_jwt(jws->payload, &chk->err, p);
}

/**
 * Verify the signature: an answer, or NULL with *res saying what to do instead. done: the
 * verdict first_sight() already had for this token, taken as it is (NULL: verified here).
 */
static ot_answer_t *verify(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                           const char *token, const ot_jose_header_t *h, const checked_t *done,
                           offtok_local_t *res)
{
    offtok_proc_t *proc = offtok_proc();
    const offtok_dir_conf *kc = c;
    const checked_t *chk = done;
    checked_t own;
    ot_metadata_t m;
    ot_jws_t jws;

    *res = OFFTOK_LOCAL_DONE;
    if (chk == NULL && c->jwks_url == NULL) {
        if (metadata(r, st, c, &m) != APR_SUCCESS) {
            count_fail(OT_LOCAL_FAIL_NO_KEYS);
            return NULL;
        }
        if (m.jwks_uri == NULL) {
            *res = OFFTOK_LOCAL_ASK;     /* no keys published: the issuer judges its tokens */
            return NULL;
        }
        kc = apr_pmemdup(r->pool, c, sizeof(*c));
        ((offtok_dir_conf *)kc)->jwks_url = m.jwks_uri;
    }
    if (chk == NULL) {
        memset(&own, 0, sizeof(own));
        own.why = "";
        if (proc->keys == NULL || proc->http == NULL) {
            own.jr = OT_JOSE_NO_KEYS;
            own.why = "this process has no link to the issuer (see OT0053 at its start)";
        }
        else {
            own.jr = ot_jose_verify_kid_text_h(&jws, &own.why, &own.unknown, proc->keys,
                                               offtok_jwks_key(kc, r->pool), token,
                                               strlen(token), h, offtok_fetch_jwks, (void *)kc,
                                               apr_time_now(), r->pool);
        }
        if (own.jr == OT_JOSE_OK) {
            read_payload(&own, &jws, r->pool);
        }
        chk = &own;
    }
    if (chk->jr == OT_JOSE_OK && chk->a != NULL) {
        OT_STAT_ADD(proc->stats->local_verified, 1);
        return chk->a;
    }
    if (chk->unknown) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0603: token %s: %s; asking the issuer",
                      ot_token_fingerprint(token, r->pool), chk->why);
        *res = OFFTOK_LOCAL_ASK;
        return NULL;
    }
    if (chk->jr == OT_JOSE_NO_KEYS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0602: %s; answering 503", chk->why);
        count_fail(OT_LOCAL_FAIL_NO_KEYS);
        set_fail(r, st, HTTP_SERVICE_UNAVAILABLE, NULL, "keys");
        return NULL;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0604: token %s refused: %s",
                  ot_token_fingerprint(token, r->pool),
                  chk->jr == OT_JOSE_OK ? chk->err : chk->why);
    count_fail(OT_LOCAL_FAIL_SIGNATURE);
    set_fail(r, st, HTTP_UNAUTHORIZED, "invalid_token", "signature");
    return NULL;
}

/**
 * A first look at a token with a kid whose header leaves its kind to its typ claim: verified
 * with the keys held, then the claim read from the verified payload, not peeked at first. The
 * answer when it is an access token; else NULL, st->held saying whether done holds a verdict
 * that needed no fetch, taken by verify() once the peek says the token is a candidate, or by
 * the flood check if not: a forgery costs one check. Nothing is logged, fetched or kept here.
 */
static ot_answer_t *first_sight(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                                const char *token, const ot_jose_header_t *h, checked_t *done)
{
    offtok_proc_t *proc = offtok_proc();
    ot_jws_t jws;
    int need_fetch = 1;

    st->held = 0;           /* no kid: a failure would decide nothing (verify() checks again) */
    if (c->jwks_url == NULL || h->kid == NULL || proc->keys == NULL || proc->http == NULL) {
        return NULL;                /* no URL: it is in the metadata, which verify() reads */
    }
    memset(done, 0, sizeof(*done));
    done->why = "";
    done->jr = ot_jose_verify_held(&jws, &done->why, &need_fetch, proc->keys,
                                   offtok_jwks_key(c, r->pool), token, strlen(token), h,
                                   apr_time_now(), r->pool);
    if (need_fetch) {
        return NULL;                /* verify() asks for the keys, if the peek says so */
    }
    st->held = done->jr == OT_JOSE_INVALID && done->why == ot_jose_sig_fails ? 2 : 1;
    if (done->jr == OT_JOSE_OK) {
        read_payload(done, &jws, r->pool);
    }
    return done->a != NULL && ot_local_access_claim(done->a) ? done->a : NULL;
}

/** The location's rules on a verified token's claims; OT_LOCAL_REFUSE sets *fail. */
static ot_local_verdict_t rules(ot_answer_t *a, const offtok_dir_conf *c, apr_time_t now,
                                ot_local_fail_t *fail)
{
    offtok_proc_t *proc = offtok_proc();
    apr_int64_t secs = (apr_int64_t)apr_time_sec(now);
    ot_local_verdict_t v;
    ot_policy_t policy;

    if (ot_local_times(a, secs, offtok_clock_skew(c), fail) != OT_LOCAL_ACCEPT) {
        return OT_LOCAL_REFUSE;
    }
    if (a->iss == NULL || strcmp(a->iss, c->issuer) != 0) {
        *fail = OT_LOCAL_FAIL_ISSUER;
        return OT_LOCAL_REFUSE;
    }
    if (!has_needed_claims(a, c)) {
        return OT_LOCAL_ASK;
    }
    policy.issuer = c->issuer;
    policy.audience = c->audience;
    policy.allow_offline = 1;
    policy.skew = offtok_clock_skew(c);
    if (ot_answer_judge(a, &policy, secs) == OT_VERDICT_AUDIENCE) {
        *fail = OT_LOCAL_FAIL_AUDIENCE;
        return OT_LOCAL_REFUSE;
    }
    v = ot_local_revocation(proc->shm, a, c->issuer, c->client_id, offtok_revocation_keep(),
                            a->pool);
    *fail = OT_LOCAL_FAIL_REVOKED;
    return v;
}

/** The header read once into *h, and what it says of the token (ot_local_candidate_hdr). */
static int header_kind(const char *token, ot_jose_header_t *h, const char **why, apr_pool_t *p)
{
    const char *dot = strchr(token, '.');

    ot_jose_header_read(h, token, dot ? (apr_size_t)(dot - token) : 0, p);
    return ot_local_candidate_hdr(token, h, why);
}

offtok_local_t offtok_local_check(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                                  const char *token, ot_answer_t **pa)
{
    offtok_proc_t *proc = offtok_proc();
    apr_time_t now = apr_time_now();
    unsigned char key[OT_KEY_LEN];
    ot_key_part_t parts[OT_KEY_PARTS] = { { { NULL } } };
    const char *why;
    ot_answer_t *a;
    ot_local_fail_t fail = OT_LOCAL_FAIL_SIGNATURE;
    ot_local_verdict_t v;
    offtok_local_t res;
    ot_jose_header_t h;
    checked_t done;

    if (!offtok_local(c) || offtok_always(c) == OT_ALWAYS_ON) {
        return OFFTOK_LOCAL_ASK;
    }
    /*
     * Pushed revocations are this check's deny rules: while this process may have missed some
     * published by other nodes (OfftokRedis, subscription lost or not caught up yet), neither a
     * kept verdict nor a new verification can say the token was not logged out. The issuer can,
     * as it does for the introspection path's answers from before the loss.
     */
    why = offtok_redis_caught_up() ? NULL : "this process is not caught up with the revocations "
                                            "pushed through Redis";
    /*
     * The kept verdict first, before any parsing: only a verified candidate was ever kept under
     * this key (keep() below), and LOCAL_KEY_PREFIX keeps it apart from introspection answers.
     * Keys fetched under other TLS trust settings are other keys: those are in the key too.
     */
    parts[0].piece[0] = LOCAL_KEY_PREFIX;
    parts[0].piece[1] = c->jwks_url;
    parts[1].piece[0] = c->issuer;
    trust_pieces(parts[3].piece, c);
    parts[4].piece[0] = token;
    ot_cache_key_parts(key, parts);
    if (why == NULL && (a = cached(r, c, key, now)) != NULL) {
        OT_STAT_ADD(proc->stats->local_cached, 1);
    }
    else if (why == NULL && header_kind(token, &h, &why, r->pool) < 0
             && (a = first_sight(r, st, c, token, &h, &done)) != NULL) {
        OT_STAT_ADD(proc->stats->local_verified, 1);
        keep(r, c, key, a, now);
    }
    else if (why != NULL || !ot_local_candidate_h(token, &h, &why, r->pool)) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "OT0605: token %s is introspected: %s",
                      ot_token_fingerprint(token, r->pool), why);
        OT_STAT_ADD(proc->stats->local_introspected, 1);
        return OFFTOK_LOCAL_ASK;
    }
    else if ((a = verify(r, st, c, token, &h, st->held ? &done : NULL, &res)) == NULL) {
        if (res == OFFTOK_LOCAL_ASK) {
            OT_STAT_ADD(proc->stats->local_introspected, 1);
        }
        return res;
    }
    else {
        keep(r, c, key, a, now);
    }
    v = rules(a, c, now, &fail);
    if (v == OT_LOCAL_ASK) {
        OT_STAT_ADD(proc->stats->local_introspected, 1);
        return OFFTOK_LOCAL_ASK;
    }
    if (v == OT_LOCAL_REFUSE) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0606: token %s refused: %s",
                      ot_token_fingerprint(token, r->pool), ot_local_fail_names[fail]);
        count_fail(fail);
        set_fail(r, st, HTTP_UNAUTHORIZED, "invalid_token", answer_reason[fail]);
        return OFFTOK_LOCAL_DONE;
    }
    *pa = a;
    return OFFTOK_LOCAL_ANSWER;
}
