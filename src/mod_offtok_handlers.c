/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The module's handlers:
 *
 *   offtok-backchannel-logout  OpenID Connect Back-Channel Logout 1.0: a POSTed logout_token
 *                              makes every cached answer of that sub or sid unusable
 *   offtok-keycloak-admin      Keycloak's admin actions at <Admin URL>/k_push_not_before,
 *                              /k_logout and /k_test_available
 *   offtok-status              the counters, as JSON or Prometheus text (mod_offtok_status.c)
 *
 * A push is judged completely (signature, claims, replay) before anything changes; what it
 * revokes goes into the shared segment, so every process sees it at once, and with OfftokRedis
 * to the other nodes too (offtok_revoke, offtok_not_before). Revocations are
 * recorded at `now`: answers of calls that started earlier are unusable, those in flight included.
 * See docs/pushed-revocation.md.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "mod_offtok_redis.h"
#include "ot_revoke.h"
#include "ot_http.h"
#include "ot_jose.h"
#include "ot_json.h"
#include "ot_logout.h"
#include "ot_stats.h"

APLOG_USE_MODULE(offtok);

/** Largest body of a push. */
#define PUSH_BODY_MAX (64 * 1024)
/** Seconds of clock difference allowed on a logout token's iat. */
#define PUSH_SKEW 60

/** What one push handler works with. */
typedef struct {
    request_rec *r;
    const offtok_dir_conf *c;
    offtok_proc_t *proc;
    ot_push_expect_t x;
    apr_time_t now;
    const char *what;       /**< "back-channel logout" or the admin action's path segment */
} push_t;

/* ---- answers ------------------------------------------------------------------------------- */

static void no_store(request_rec *r)
{
    /* err_headers_out goes with every answer, errors included. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Pragma", "no-cache");
}

/** A refused push: count it, log why, answer status with an OAuth-style JSON error. */
static int refuse(push_t *ps, int status, const char *why)
{
    request_rec *r = ps->r;
    json_t *body;

    OT_STAT_ADD(ps->proc->stats->pushes_refused, 1);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0102: %s not done, answering 503: %s",
                      ps->what, why);
        apr_table_setn(r->err_headers_out, "Retry-After", OFFTOK_RETRY_AFTER_PUSH);
        return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "OT0101: %s refused (%d): %s", ps->what,
                  status, why);
    if (status != HTTP_BAD_REQUEST) {
        return status;
    }
    body = ot_json_own(json_pack("{s:s,s:s}", "error", "invalid_request",
                                 "error_description", why), r->pool);
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_rputs(body ? ot_json_dump(body, NULL, r->pool) : "{}", r);
    return OK;
}

/* ---- the request body ---------------------------------------------------------------------- */

/** Read at most PUSH_BODY_MAX bytes of body: OK, or the HTTP status to answer. */
static int read_body(request_rec *r, const char **body, apr_size_t *len)
{
    char *buf;
    apr_size_t got = 0;
    long n = 0;
    int rv = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);

    if (rv != OK) {
        return rv;
    }
    if (r->remaining > PUSH_BODY_MAX) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    buf = apr_palloc(r->pool, PUSH_BODY_MAX + 1);
    if (ap_should_client_block(r)) {
        while ((n = ap_get_client_block(r, buf + got, PUSH_BODY_MAX + 1 - got)) > 0) {
            got += (apr_size_t)n;
            if (got > PUSH_BODY_MAX) {
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
        }
    }
    if (n < 0) {
        return HTTP_BAD_REQUEST;
    }
    buf[got] = '\0';
    *body = buf;
    *len = got;
    return OK;
}

/** The one logout_token of a form body; NULL (and *why) when absent, repeated or malformed. */
static const char *form_token(char *body, const char **why, apr_pool_t *p)
{
    const char *found = NULL;
    char *pair, *last, *eq;

    for (pair = apr_strtok(body, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        eq = strchr(pair, '=');
        if (eq) {
            *eq++ = '\0';
        }
        if (ap_unescape_urlencoded(pair) != OK) {
            continue;
        }
        if (strcmp(pair, "logout_token") != 0) {
            continue;
        }
        if (found != NULL || eq == NULL || ap_unescape_urlencoded(eq) != OK) {
            *why = "logout_token is repeated or malformed";
            return NULL;
        }
        found = eq;
    }
    *why = found ? NULL : "the body has no logout_token";
    return found;
}

/** 1 when the request's Content-Type is `type` (parameters allowed). */
static int content_type_is(request_rec *r, const char *type)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t n = strlen(type);

    return ct && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';'
                                                   || ct[n] == ' ' || ct[n] == '\t');
}

/* ---- verification and revocation ----------------------------------------------------------- */

/** Verify a compact JWS: OK with *jws, or the status to answer (400, 503) with *why. */
static int verify(push_t *ps, ot_jws_t *jws, const char *compact, const char **why)
{
    ot_jose_result_t res;
    offtok_dir_conf kc;
    const char *url;

    if (ps->proc->keys == NULL || ps->proc->http == NULL) {
        *why = "this process has no issuer link";
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if ((url = offtok_local_jwks_url(ps->r, ps->c)) == NULL) {
        *why = "the issuer's metadata names no keys or cannot be had (see OT0601)";
        return HTTP_SERVICE_UNAVAILABLE;
    }
    kc = *ps->c;            /* OfftokJWKSURL, or the metadata's jwks_uri */
    kc.jwks_url = url;
    res = ot_jose_verify(jws, why, ps->proc->keys, offtok_jwks_key(&kc, ps->r->pool),
                         compact, strlen(compact), offtok_fetch_jwks, &kc, ps->now,
                         ps->r->pool);
    return res == OT_JOSE_OK ? OK
        : res == OT_JOSE_NO_KEYS ? HTTP_SERVICE_UNAVAILABLE : HTTP_BAD_REQUEST;
}

/** One push to apply once (ot_revoke_once): the handler's apply function and its outcome. */
typedef struct {
    push_t *ps;
    const void *what;                   /**< the ot_logout_t or ot_admin_t */
    int (*apply)(push_t *ps, const void *what);
    int status;                         /**< what apply answered */
    const char *jti;
    apr_time_t until;
} push_job_t;

/**
 * Apply the push unless another node did (with OfftokRedis: SET NX, offtok_redis_once; when
 * Redis cannot be asked, this node's table alone decides, as a replay only revokes again). A
 * push that fails here is forgotten in Redis too, so that the issuer's retry is applied.
 */
static apr_status_t run_job(void *baton)
{
    push_job_t *job = baton;
    push_t *ps = job->ps;
    offtok_once_t once = offtok_redis_once(ps->r, "push", ps->c->issuer, job->jti, job->until);

    if (once == OFFTOK_ONCE_SEEN) {
        return APR_EEXIST;
    }
    job->status = job->apply(ps, job->what);
    if (job->status != OK && once == OFFTOK_ONCE_FIRST) {
        offtok_redis_once_forget(ps->r, "push", ps->c->issuer, job->jti);
    }
    return job->status == OK ? APR_SUCCESS : APR_EGENERAL;
}

/**
 * Apply a push unless its jti (or action id) is remembered from an earlier copy, and remember it
 * (until `until` seconds) only once applied, so that the issuer's retry of a push that failed
 * here is applied, not refused as a replay. APR_EEXIST for a replay (nothing applied);
 * otherwise APR_SUCCESS and *status: OK, or the status to answer.
 */
static apr_status_t apply_once(push_t *ps, const char *jti, apr_int64_t until,
                               int (*apply)(push_t *ps, const void *what), const void *what,
                               int *status)
{
    push_job_t job = { ps, what, apply, OK, jti, apr_time_from_sec(until) };
    apr_status_t rv = ot_revoke_once(ps->proc->shm, ps->c->issuer, jti,
                                     apr_time_from_sec(until), ps->now, run_job, &job);

    if (rv == APR_EEXIST) {
        return rv;
    }
    *status = job.status;
    if (rv != APR_SUCCESS && job.status == OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, ps->r, "OT0112: %s: cannot read the table of "
                      "pushes seen in shared memory", ps->what);
        OT_STAT_ADD(ps->proc->stats->pushes_refused, 1);
        *status = HTTP_INTERNAL_SERVER_ERROR;
    }
    return APR_SUCCESS;
}

/** Tombstone one sub or sid; 0 on success, else logged. */
static int tombstone(push_t *ps, ot_revoke_kind_t kind, const char *value)
{
    apr_time_t until = ps->now + offtok_revocation_keep();
    apr_status_t rv = offtok_revoke(ps->r, kind, ps->c->issuer, value, ps->now, until);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, ps->r, "OT0106: %s: cannot record the "
                      "revocation in shared memory", ps->what);
        return 1;
    }
    return 0;
}

/**
 * The not-before policy of the client an action names (its resource), ordered by the action's
 * expiration: an older action than the one in force changes nothing.
 */
static int set_not_before(push_t *ps, const ot_admin_t *act)
{
    apr_status_t rv = offtok_not_before(ps->r, ps->c->issuer, act->resource, act->not_before,
                                        act->expiration, ps->now);

    if (rv == APR_ENOSPC) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, ps->r, "OT0107: %s: the table of not-before "
                      "policies is full; every cached answer goes back to the issuer instead",
                      ps->what);
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, ps->r, "OT0108: %s: cannot record the "
                      "not-before policy in shared memory", ps->what);
        return 1;
    }
    return 0;
}

/* ---- offtok-backchannel-logout ------------------------------------------------------------- */

static int backchannel_apply(push_t *ps, const void *what)
{
    const ot_logout_t *lt = what;
    request_rec *r = ps->r;

    if ((lt->sub && tombstone(ps, OT_REVOKE_SUB, lt->sub))
        || (lt->sid && tombstone(ps, OT_REVOKE_SID, lt->sid))
        || (lt->sub && !lt->sid && tombstone(ps, OT_REVOKE_SID,
                                             apr_pstrcat(r->pool, OT_REVOKE_ALL_SESSIONS,
                                                         lt->sub, NULL)))) {
        OT_STAT_ADD(ps->proc->stats->pushes_refused, 1);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    OT_STAT_ADD(ps->proc->stats->pushes_accepted, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0103: back-channel logout accepted: sub %s, "
                  "sid %s", lt->sub ? ap_escape_logitem(r->pool, lt->sub) : "-",
                  lt->sid ? ap_escape_logitem(r->pool, lt->sid) : "-");
    return OK;
}

static int backchannel(push_t *ps)
{
    request_rec *r = ps->r;
    const char *body = NULL, *token, *why;
    apr_size_t len = 0;
    ot_logout_t lt;
    ot_jws_t jws;
    int rv;

    ps->what = "back-channel logout";
    if ((rv = read_body(r, &body, &len)) != OK) {
        return refuse(ps, rv, rv == HTTP_REQUEST_ENTITY_TOO_LARGE ? "the body is over 64 KiB"
                      : "the body could not be read");
    }
    if (!content_type_is(r, "application/x-www-form-urlencoded")) {
        return refuse(ps, HTTP_BAD_REQUEST, "the body is not application/x-www-form-urlencoded");
    }
    if ((token = form_token(apr_pstrmemdup(r->pool, body, len), &why, r->pool)) == NULL) {
        return refuse(ps, HTTP_BAD_REQUEST, why);
    }
    if ((rv = verify(ps, &jws, token, &why)) != OK) {
        return refuse(ps, rv, apr_pstrcat(r->pool, "the logout token: ", why, NULL));
    }
    if ((why = ot_logout_check(&lt, jws.header, jws.payload, &ps->x, r->pool)) != NULL) {
        return refuse(ps, HTTP_BAD_REQUEST, apr_pstrcat(r->pool, "the logout token: ", why,
                                                        NULL));
    }
    if (apply_once(ps, lt.jti, ot_logout_replay_until(&lt, &ps->x), backchannel_apply, &lt,
                   &rv) == APR_EEXIST) {
        return refuse(ps, HTTP_BAD_REQUEST, "the logout token's jti was seen before (a replay)");
    }
    if (rv != OK) {
        return rv;
    }
    ap_set_content_type(r, "text/plain");
    return OK;
}

/* ---- offtok-keycloak-admin ----------------------------------------------------------------- */

static int admin_apply(push_t *ps, const void *what)
{
    const ot_admin_t *act = what;
    request_rec *r = ps->r;
    int i, failed = 0;

    if (act->kind == OT_ADMIN_PUSH_NOT_BEFORE
        || (act->kind == OT_ADMIN_LOGOUT && act->not_before > 0)) {
        failed = set_not_before(ps, act);
    }
    for (i = 0; act->sids && i < act->sids->nelts && !failed; i++) {
        failed = tombstone(ps, OT_REVOKE_SID, APR_ARRAY_IDX(act->sids, i, const char *));
    }
    if (failed) {
        OT_STAT_ADD(ps->proc->stats->pushes_refused, 1);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    OT_STAT_ADD(ps->proc->stats->pushes_accepted, 1);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0105: Keycloak %s accepted: notBefore %"
                  APR_INT64_T_FMT ", %d session id(s)", ps->what, act->not_before,
                  act->sids ? act->sids->nelts : 0);
    return OK;
}

/** The last segment of the request's path. */
static const char *last_segment(request_rec *r)
{
    const char *slash = strrchr(r->uri, '/');

    return slash ? slash + 1 : r->uri;
}

static int keycloak_admin(push_t *ps)
{
    request_rec *r = ps->r;
    const char *body = NULL, *why;
    apr_size_t len = 0;
    ot_admin_t act;
    ot_jws_t jws;
    int kind, rv;

    ps->what = ap_escape_logitem(r->pool, last_segment(r));
    if ((kind = ot_admin_kind(last_segment(r))) < 0) {
        return refuse(ps, HTTP_NOT_FOUND, "not a Keycloak admin action this module knows");
    }
    if ((rv = read_body(r, &body, &len)) != OK) {
        return refuse(ps, rv, rv == HTTP_REQUEST_ENTITY_TOO_LARGE ? "the body is over 64 KiB"
                      : "the body could not be read");
    }
    while (len > 0 && apr_isspace(body[len - 1])) {
        len--;
    }
    if ((rv = verify(ps, &jws, apr_pstrmemdup(r->pool, body, len), &why)) != OK) {
        return refuse(ps, rv, why);
    }
    if ((why = ot_admin_check(&act, jws.payload, (ot_admin_kind_t)kind, &ps->x,
                              r->pool)) != NULL) {
        return refuse(ps, HTTP_BAD_REQUEST, why);
    }
    if (apply_once(ps, act.id, act.expiration + 1, admin_apply, &act, &rv) == APR_EEXIST) {
        return refuse(ps, HTTP_BAD_REQUEST, "its id was seen before (a replay)");
    }
    if (rv != OK) {
        return rv;
    }
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/** The location's settings a push needs; NULL when complete, else what is missing. */
static const char *push_misconfigured(const offtok_dir_conf *c)
{
    /* Without OfftokJWKSURL the keys are found through OfftokIssuer's metadata. */
    return c->jwks_url == NULL && c->issuer == NULL ? "OfftokJWKSURL or OfftokIssuer"
        : c->issuer == NULL ? "OfftokIssuer"
        : c->client_id == NULL ? "OfftokClientID" : NULL;
}

static int push(request_rec *r, int admin)
{
    push_t ps;
    const char *missing;
    int rv;

    memset(&ps, 0, sizeof(ps));
    ps.r = r;
    ps.c = ap_get_module_config(r->per_dir_config, &offtok_module);
    ps.proc = offtok_proc();
    ps.now = apr_time_now();
    ps.x.issuer = ps.c->issuer;
    ps.x.client_id = ps.c->client_id;
    ps.x.audiences = ps.c->logout_aud;
    ps.x.now = apr_time_sec(ps.now);
    ps.x.skew = PUSH_SKEW;
    ps.what = admin ? "Keycloak admin action" : "back-channel logout";
    no_store(r);
    if ((missing = push_misconfigured(ps.c)) != NULL || ps.proc->shm == NULL) {
        core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "OT0100: %s in <%s> needs %s; answering 500",
                      r->handler, core->d ? core->d : "server",
                      missing ? missing : "the shared cache");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->method_number != M_POST) {
        ap_allow_methods(r, REPLACE_ALLOW, "POST", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    rv = admin ? keycloak_admin(&ps) : backchannel(&ps);
    return rv;
}

int offtok_handler(request_rec *r)
{
    if (r->handler == NULL) {
        return DECLINED;
    }
    if (strcmp(r->handler, "offtok-backchannel-logout") == 0) {
        return push(r, 0);
    }
    if (strcmp(r->handler, "offtok-keycloak-admin") == 0) {
        return push(r, 1);
    }
    if (strcmp(r->handler, "offtok-status") == 0) {
        return offtok_status(r);
    }
    return DECLINED;
}
