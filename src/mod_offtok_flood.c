/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Floods of made-up tokens (docs/flood.md): what keeps them from becoming floods of issuer calls.
 *
 *   offtok_flood_certain   a JWT certain to fail here is refused (401) without an issuer call:
 *                          expired payload, another iss than OfftokIssuer, a refused typ, a
 *                          signature that fails with a cached key of the issuer
 *   offtok_flood_admit     the admission ot_flight_run asks before a request starts a call for a
 *                          token with no cached answer: OfftokMissRate for the client address,
 *                          OfftokIssuerMaxRate for the server (ot_rate.c, in the shared segment)
 *   offtok_flood_refused   the 429 for a request the budgets refused
 *   offtok_flood_fetched   a key or metadata fetch counts against OfftokIssuerMaxRate
 *
 * Nothing here is stored in the cache: these refusals depend on the location and on the moment.
 */
#include <string.h>
#include <time.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_shm.h"
#include "ot_jose.h"
#include "ot_json.h"
#include "ot_stats.h"
#include "ot_util.h"

APLOG_USE_MODULE(offtok);

/** The payload's typ values the contract accepts (any other is refused after introspection). */
static int typ_accepted(const char *typ)
{
    return strcmp(typ, "Bearer") == 0 || strcmp(typ, "DPoP") == 0 || strcmp(typ, "Offline") == 0;
}

/** The unverified payload's members the check reads. */
typedef struct {
    int has_exp;
    double exp;
    const char *iss;
    const char *typ;
} seen_t;

/** Why a JWT whose payload holds these is certain to be refused here, or NULL. */
static const char *payload_fails(const offtok_dir_conf *c, const seen_t *v, apr_time_t now)
{
    /* exp has no leeway (the contract's OfftokClockSkew); 0 or nonsense is the issuer's call. */
    if (v->has_exp && v->exp >= 1 && v->exp <= (double)apr_time_sec(now)) {
        return "its payload has expired";
    }
    if (c->issuer && v->iss && strcmp(v->iss, c->issuer) != 0) {
        return "its payload names another iss than OfftokIssuer";
    }
    if (v->typ && !typ_accepted(v->typ)) {
        return "its payload's typ is one the module refuses";
    }
    return NULL;
}

/** What the peek found (0 when it cannot tell: an exp that is not an integer). */
static int seen_of_peek(seen_t *v, const ot_jwt_peek_t *pk)
{
    v->has_exp = pk->exp_kind == OT_PEEK_EXP_INT;
    v->exp = (double)pk->exp;
    v->iss = pk->iss;
    v->typ = pk->typ;
    return pk->exp_kind != OT_PEEK_EXP_OTHER;
}

/**
 * Why the payload makes the token certain to fail, or NULL. The request's peek (one scan of the
 * payload, made anyway for the cache key) tells most tokens, made-up ones included, that they
 * are not; a refusal is decided on jansson's reading, as a peek may read a payload that jansson
 * refuses (a name twice in an inner object), and for an exp that is not an integer.
 */
static const char *payload_why(request_rec *r, const offtok_dir_conf *c, const char *token,
                               const ot_jwt_peek_t *peek, apr_time_t now)
{
    json_t *payload, *exp;
    seen_t v;

    if (!peek->is_jwt || (seen_of_peek(&v, peek) && payload_fails(c, &v, now) == NULL)) {
        return NULL;
    }
    if ((payload = ot_jwt_payload(token, r->pool)) == NULL) {
        return NULL;                /* not JSON jansson reads: only the issuer can tell */
    }
    exp = json_object_get(payload, "exp");
    v.has_exp = json_is_number(exp);
    v.exp = v.has_exp ? json_number_value(exp) : 0;
    v.iss = ot_json_string(payload, "iss");
    v.typ = ot_json_string(payload, "typ");
    return payload_fails(c, &v, now);
}

int offtok_flood_certain(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                         const char *token, const ot_jwt_peek_t *peek)
{
    offtok_proc_t *proc = offtok_proc();
    const char *why = payload_why(r, c, token, peek, apr_time_now());
    apr_uint32_t quieted;
    int level;

    /* st->held: a first sight under Local already checked it with the keys held (once is
     * enough: a flood of forgeries costs one check each) */
    if (why == NULL && c->jwks_url && st->held != 1
        && (st->held == 2
            || ot_jose_known_forgery(proc->keys, offtok_jwks_key(c, r->pool), token,
                                     strlen(token), r->pool))) {
        why = "its signature fails with the issuer's key of its kid";
    }
    if (why == NULL) {
        return 0;
    }
    OT_STAT_ADD(proc->stats->refused_certain, 1);
    level = offtok_quiet_level(r, OFFTOK_QUIET_OT0400, APLOG_INFO, &quieted);
    ap_log_rerror(APLOG_MARK, level, 0, r, "OT0400: token %s refused without asking the "
                  "issuer: %s%s", ot_token_fingerprint(token, r->pool), why,
                  offtok_quieted_text(r, quieted));
    st->status = HTTP_UNAUTHORIZED;
    st->error = "invalid_token";
    st->answer = NULL;
    offtok_count_answer(r, HTTP_UNAUTHORIZED, "certain");
    return 1;
}

/**
 * The buckets' clock: monotonic, and the same for every process of the machine, so that a step
 * of the wall clock (NTP) neither refills every bucket nor leaves them refusing until it has
 * caught up. Microseconds since boot; never 0 (a stamp of 0 is a full bucket).
 */
static apr_time_t rate_clock(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return apr_time_now();
    }
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000 + 1;
}

/** ot_flight_admit_fn: take from the budgets; remember which one refused. */
static apr_status_t admit(void *baton)
{
    offtok_flood_t *fl = baton;
    offtok_proc_t *proc = offtok_proc();

    fl->verdict = ot_rate_take(ot_shm_rate(proc->shm), fl->key, &proc->miss_rate,
                               &proc->issuer_rate, rate_clock(), &fl->retry);
    return fl->verdict == OT_RATE_OK ? APR_SUCCESS : APR_EAGAIN;
}

void offtok_flood_admit(request_rec *r, offtok_flood_t *fl, int known, ot_flight_admit_t *out)
{
    offtok_proc_t *proc = offtok_proc();

    memset(fl, 0, sizeof(*fl));
    memset(out, 0, sizeof(*out));
    /* A token with a cached positive answer of any age is not charged: made-up ones are. */
    if (known || proc->shm == NULL
        || (proc->miss_rate.rate <= 0 && proc->issuer_rate.rate <= 0)) {
        return;
    }
    ot_rate_addr_key(fl->key, r->useragent_ip);
    out->fn = admit;
    out->baton = fl;
}

int offtok_flood_refused(request_rec *r, offtok_req_t *st, const offtok_flood_t *fl)
{
    offtok_proc_t *proc = offtok_proc();
    int client = fl->verdict == OT_RATE_CLIENT, level;
    apr_uint32_t quieted;

    if (fl->verdict == OT_RATE_OK) {
        return 0;
    }
    /* One line at info per kind and process every few seconds: a flood must not fill the log. */
    if (client) {
        OT_STAT_ADD(proc->stats->refused_miss_rate, 1);
        level = offtok_quiet_level(r, OFFTOK_QUIET_OT0401, APLOG_INFO, &quieted);
        ap_log_rerror(APLOG_MARK, level, 0, r, "OT0401: this client address is over its "
                      "budget of issuer calls for unknown tokens (OfftokMissRate); answering "
                      "429 (Retry-After %" APR_TIME_T_FMT ")%s", apr_time_sec(fl->retry),
                      offtok_quieted_text(r, quieted));
    }
    else {
        OT_STAT_ADD(proc->stats->refused_issuer_rate, 1);
        level = offtok_quiet_level(r, OFFTOK_QUIET_OT0402, APLOG_INFO, &quieted);
        ap_log_rerror(APLOG_MARK, level, 0, r, "OT0402: the server is over its budget of "
                      "issuer calls (OfftokIssuerMaxRate); answering 429 (Retry-After %"
                      APR_TIME_T_FMT ")%s", apr_time_sec(fl->retry),
                      offtok_quieted_text(r, quieted));
    }
    st->status = HTTP_TOO_MANY_REQUESTS;
    offtok_count_answer(r, HTTP_TOO_MANY_REQUESTS, client ? "miss_rate" : "issuer_rate");
    st->error = NULL;
    st->answer = NULL;
    st->retry_after = (int)apr_time_sec(fl->retry);
    return 1;
}

void offtok_flood_fetched(void)
{
    offtok_proc_t *proc = offtok_proc();

    if (proc->shm != NULL) {
        ot_rate_charge_server(ot_shm_rate(proc->shm), &proc->issuer_rate, rate_clock());
    }
}
