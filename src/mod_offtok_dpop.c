/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705 §3).
 *
 *   post_config    the replay table of proofs (ot_replay.c, a shared segment of its own) and the
 *                  nonce key, made once in the parent and kept across restarts (ap_retained_data),
 *                  so every child of every generation sees the same ones (a new size waits for
 *                  a full restart: OT0810)
 *   credentials    which schemes this location takes (OfftokDPoP), and Bearer with a DPoP
 *                  header (400)
 *   prove          the proof checked before the token is looked up (ot_dpop.c)
 *   bound          what the request proved, for ot_answer_judge_bound (cnf.jkt, x5t#S256)
 *   accept         the proof's jti recorded once every check passed: here, then in Redis
 *   DPoP-Nonce     the nonce header (the challenges are written by mod_offtok_outcome.c)
 *
 * The URL a proof's htu must name is the initial request's: scheme, host and port as
 * ap_construct_url builds them (UseCanonicalName), and the path the client sent, before any
 * rewrite, Alias or internal redirect.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_optional.h>
#include <apr_random.h>
#include <apr_strings.h>
#include <mod_ssl.h>
#include <unixd.h>

#include "mod_offtok.h"
#include "mod_offtok_redis.h"
#include "ot_dpop.h"
#include "ot_replay.h"

APLOG_USE_MODULE(offtok);

#define RETAINED_KEY "mod_offtok-dpop-retained"
/* A block of its own, not a field more in dpop_retained_t: a module loaded over an older build
 * at a restart finds the older, smaller block under RETAINED_KEY. */
#define RETAINED_LIFE_KEY "mod_offtok-dpop-life"

/** What lives across configuration generations: the table and the random nonce secret. */
typedef struct {
    apr_pool_t *pool;                          /**< no parent: not destroyed at restarts */
    ot_replay_t *replay;
    unsigned char secret[OT_DPOP_KEY_LEN];     /**< made at the first start */
} dpop_retained_t;

/** This process's view: the retained table and the nonce key of this generation. */
static struct {
    ot_replay_t *replay;
    unsigned char nonce_key[OT_DPOP_KEY_LEN];
    int life;               /**< seconds a proof's record lasts after its iat (longest_life) */
} dpop;

static APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *ssl_lookup;

/**
 * Make the table of proofs (at the first start, or at a full restart that changes
 * OfftokDPoPReplaySize, or at a restart that loads this module over an older one whose table
 * had no secret seed: then the old table's live entries are copied into the new one, so that a
 * proof seen before the restart stays refused, and the old segment is unmapped here; children
 * of the old generation, after a graceful restart, keep their own mapping until they exit).
 * A keyed table whose live entries do not all fit in the new one is kept instead (OT0812): a
 * proof dropped from the table could be used once more as soon as others lapse and leave room.
 */
static apr_status_t make_table(dpop_retained_t *ret, apr_uint32_t slots, server_rec *s)
{
    apr_pool_t *pool;
    ot_replay_t *table;
    apr_uint32_t lost;
    apr_status_t rv;

    apr_pool_create(&pool, NULL);
    apr_pool_tag(pool, "offtok-dpop");
    if ((rv = ot_replay_create(&table, slots, pool)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "OT0708: cannot create the shared table "
                     "of DPoP proofs (%u slots)", (unsigned)ot_replay_round(slots));
        apr_pool_destroy(pool);
        return rv;
    }
    if (ret->replay != NULL) {
        lost = ot_replay_copy(table, ret->replay, apr_time_now());
        if (lost && ot_replay_keyed(ret->replay)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OT0812: OfftokDPoPReplaySize %u "
                         "cannot hold the proofs seen before the restart (%u did not fit); the "
                         "table of DPoP proofs keeps its %u slots, so that none of them is "
                         "accepted again (a later full restart applies the size once they fit)",
                         (unsigned)ot_replay_slots(table), (unsigned)lost,
                         (unsigned)ot_replay_slots(ret->replay));
            apr_pool_destroy(pool);
            return APR_SUCCESS;
        }
        ap_log_error(APLOG_MARK, lost ? APLOG_WARNING : APLOG_INFO, 0, s, "OT0800: the table of "
                     "DPoP proofs now has %u slots (was %u)%s", (unsigned)ot_replay_slots(table),
                     (unsigned)ot_replay_slots(ret->replay),
                     lost ? "; some proofs seen before did not fit and may be used again" : "");
        apr_pool_destroy(ret->pool);
    }
    ret->pool = pool;
    ret->replay = table;
    return APR_SUCCESS;
}

/**
 * The table this generation uses. A graceful restart keeps the table whatever
 * OfftokDPoPReplaySize says now: the children of the previous generation go on serving their
 * requests with it (they are not told of a new one), so two tables would each accept a proof
 * once, one in each generation, for as long as both serve. The new size takes effect at a
 * restart that ends every child first (apachectl restart, or stop and start), which is what
 * OT0810 tells the admin. A table without a seed (an older module, below) cannot be kept: its
 * keys are homed another way; it is made again, and OT0811 says what that leaves open.
 */
static apr_status_t keep_or_make_table(dpop_retained_t *ret, apr_uint32_t slots, server_rec *s)
{
    int graceful = ret->replay != NULL && ap_unixd_mpm_get_retained_data()->was_graceful;

    if (ret->replay != NULL && ot_replay_keyed(ret->replay)) {
        if (ot_replay_slots(ret->replay) == ot_replay_round(slots)) {
            return APR_SUCCESS;
        }
        if (graceful) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OT0810: OfftokDPoPReplaySize %u "
                         "takes effect at the next full restart; the table of DPoP proofs keeps "
                         "its %u slots across a graceful restart, because the children still "
                         "serving the previous generation use it (apachectl restart, or stop "
                         "and start httpd)", (unsigned)ot_replay_round(slots),
                         (unsigned)ot_replay_slots(ret->replay));
            return APR_SUCCESS;
        }
    }
    else if (graceful) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OT0811: a graceful restart loaded this "
                     "module over a version whose table of DPoP proofs cannot be kept; until "
                     "the children of the previous generation exit, a proof may be accepted "
                     "once by them and once by the new ones (a full restart avoids this)");
    }
    return make_table(ret, slots, s);
}

/**
 * The table's entries were recorded to lapse when their proofs stopped passing under the
 * previous generation's OfftokDPoPMaxAge and OfftokClockSkew. When this one lets proofs pass for
 * longer, every live entry is kept the difference longer (OT0813): else a proof recorded before
 * the restart could be used once more between its entry's end and its new one. The processes
 * of the previous generation, after a graceful restart, record the proofs they still accept
 * with the old length. When this one lets proofs pass for less, a graceful restart keeps the
 * old length in *life (OT0815) until a full restart: the processes of the previous generation
 * still accept a proof for that long, so one recorded here for less could be used there again.
 */
static apr_status_t lengthen_entries(ot_replay_t *replay, int *life, server_rec *s)
{
    int *was = ap_retained_data_get(RETAINED_LIFE_KEY);
    apr_uint32_t n = 0;
    apr_status_t rv;

    if (was == NULL) {
        was = ap_retained_data_create(RETAINED_LIFE_KEY, sizeof(*was));
        *was = *life;
    }
    if (*life < *was && ap_unixd_mpm_get_retained_data()->was_graceful) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "OT0815: a DPoP proof passes for up to %d "
                     "s now (OfftokDPoPMaxAge + OfftokClockSkew + 1, was %d s); the table of "
                     "DPoP proofs keeps every proof %d s until the next full restart, because the "
                     "children still serving the previous generation accept proofs that long "
                     "(apachectl restart, or stop and start httpd)", *life, *was, *was);
        *life = *was;
    }
    if (*life > *was) {
        rv = ot_replay_extend(replay, apr_time_from_sec(*life - *was), apr_time_now(), &n);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "OT0814: cannot keep the DPoP proofs "
                         "seen before the restart for the longer OfftokDPoPMaxAge + "
                         "OfftokClockSkew (the table's lock)");
            return rv;
        }
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "OT0813: a DPoP proof may now pass for up to "
                     "%d s (OfftokDPoPMaxAge + OfftokClockSkew + 1, was %d s): the %u proofs "
                     "seen before the restart are kept %d s longer", *life, *was, (unsigned)n,
                     *life - *was);
    }
    *was = *life;
    return APR_SUCCESS;
}

int offtok_dpop_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    offtok_srv_conf *sc = ap_get_module_config(s->module_config, &offtok_module);
    dpop_retained_t *ret = ap_retained_data_get(RETAINED_KEY);
    apr_status_t rv;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (ret == NULL) {
        ret = ap_retained_data_create(RETAINED_KEY, sizeof(*ret));
        if ((rv = apr_generate_random_bytes(ret->secret, sizeof(ret->secret))) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "OT0707: cannot make the DPoP nonce "
                         "secret");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if ((rv = keep_or_make_table(ret, sc->dpop_replay_size, s)) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    dpop.life = offtok_dpop_longest_life(s);
    if (lengthen_entries(ret->replay, &dpop.life, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    dpop.replay = ret->replay;
    /* With OfftokRedisKey every node derives the same key; else this server's own secret. */
    if (sc->redis_key) {
        ot_dpop_nonce_key(dpop.nonce_key, sc->redis_key, strlen(sc->redis_key));
    }
    else {
        memcpy(dpop.nonce_key, ret->secret, sizeof(dpop.nonce_key));
    }
    ssl_lookup = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
    return OK;
}

static void fail(offtok_req_t *st, int status, const char *error)
{
    st->status = status;
    st->error = error;
    st->answer = NULL;
}

static request_rec *initial_request(request_rec *r)
{
    while (r->main || r->prev) {
        r = r->main ? r->main : r->prev;
    }
    return r;
}

/* ---- credentials and the proof ------------------------------------------------------------ */

int offtok_dpop_credentials(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                            const char **token)
{
    ot_bind_mode_t mode = offtok_dpop_mode(c);
    const char *auth = apr_table_get(r->headers_in, "Authorization");

    switch (ot_credentials_parse(auth, mode != OT_BIND_REQUIRE, mode != OT_BIND_OFF,
                                 &st->scheme, token, r->pool)) {
    case OT_BEARER_NONE:
        fail(st, HTTP_UNAUTHORIZED, NULL);
        offtok_count_answer(r, HTTP_UNAUTHORIZED, "no_token");
        return 0;
    case OT_BEARER_MALFORMED:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0020: malformed %s credentials",
                      st->scheme == OT_SCHEME_DPOP ? "DPoP" : "Bearer");
        fail(st, HTTP_BAD_REQUEST, "invalid_request");
        offtok_count_answer(r, HTTP_BAD_REQUEST, "malformed");
        return 0;
    case OT_BEARER_OK:
        break;
    }
    if (st->scheme == OT_SCHEME_BEARER && mode != OT_BIND_OFF
        && apr_table_get(r->headers_in, "DPoP") != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0700: Bearer credentials with a DPoP "
                      "proof: Bearer and DPoP credentials in one request");
        fail(st, HTTP_BAD_REQUEST, "invalid_request");
        offtok_count_answer(r, HTTP_BAD_REQUEST, "dpop_and_bearer");
        return 0;
    }
    return 1;
}

/** The URL the client sent the initial request to, without its query. */
static const char *request_url(request_rec *r)
{
    request_rec *init = initial_request(r);
    const char *path = init->unparsed_uri;

    if (path == NULL || *path != '/') {
        path = init->parsed_uri.path ? init->parsed_uri.path : "/";
    }
    path = apr_pstrmemdup(r->pool, path, strcspn(path, "?#"));
    return ap_construct_url(r->pool, path, init);
}

/** Pool data of an initial request that this module did not check: a proof that a subrequest or
 * internal redirect of it accepted (and recorded), for the others to reuse. */
#define VERIFIED_KEY "mod_offtok-dpop-verified"

typedef struct {
    const char *token;
    const char *jkt;
} dpop_verified_t;

/**
 * The proof verified for this request's client request, when it was accepted (and recorded) with
 * this very token: on the initial request, or, where the initial request is not protected here,
 * on an earlier subrequest or internal redirect of it. A subrequest or internal redirect takes
 * its thumbprint: a proof is checked once per client request.
 */
static int reuse_proof(request_rec *r, offtok_req_t *st, const char *token)
{
    request_rec *init = initial_request(r);
    const offtok_req_t *ist;
    void *data = NULL;
    const dpop_verified_t *v;

    if (init == r) {
        return 0;
    }
    ist = ap_get_module_config(init->request_config, &offtok_module);
    if (ist != NULL && ist->status == OK && ist->scheme == OT_SCHEME_DPOP && ist->jkt != NULL
        && ist->token != NULL && strcmp(ist->token, token) == 0) {
        st->jkt = ist->jkt;
        return 1;
    }
    apr_pool_userdata_get(&data, VERIFIED_KEY, init->pool);
    if ((v = data) != NULL && strcmp(v->token, token) == 0) {
        st->jkt = v->jkt;
        return 1;
    }
    return 0;
}

/** After a subrequest or internal redirect accepted a proof: keep it for the others (above). */
static void keep_proof(request_rec *r, const offtok_req_t *st)
{
    request_rec *init = initial_request(r);
    dpop_verified_t *v;
    void *data = NULL;

    if (init == r || st->token == NULL || st->jkt == NULL) {
        return;
    }
    apr_pool_userdata_get(&data, VERIFIED_KEY, init->pool);
    if (data != NULL) {
        return;
    }
    /* In the initial request's pool: this request's pool goes before the others run. */
    v = apr_palloc(init->pool, sizeof(*v));
    v->token = apr_pstrdup(init->pool, st->token);
    v->jkt = apr_pstrdup(init->pool, st->jkt);
    apr_pool_userdata_setn(v, VERIFIED_KEY, NULL, init->pool);
}

int offtok_dpop_prove(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                      const char *token)
{
    ot_dpop_ask_t ask;
    ot_dpop_proof_t *proof;
    const char *why = "";

    if (st->scheme != OT_SCHEME_DPOP || reuse_proof(r, st, token)) {
        return 1;
    }
    memset(&ask, 0, sizeof(ask));
    ask.method = initial_request(r)->method;
    ask.url = request_url(r);
    ask.token = token;
    ask.now = apr_time_now();
    ask.max_age = offtok_dpop_max_age(c);
    ask.skew = offtok_clock_skew(c);
    ask.algs = offtok_dpop_algs(c);
    ask.nonce_key = offtok_dpop_nonce(c) ? dpop.nonce_key : NULL;
    proof = apr_pcalloc(r->pool, sizeof(*proof));
    switch (ot_dpop_verify(proof, &why, &ask, apr_table_get(r->headers_in, "DPoP"), r->pool)) {
    case OT_DPOP_OK:
        st->jkt = proof->jkt;
        st->proof = proof;
        return 1;
    case OT_DPOP_NONCE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0702: DPoP proof for %s without a "
                      "current nonce; answering use_dpop_nonce", ask.url);
        fail(st, HTTP_UNAUTHORIZED, "use_dpop_nonce");
        offtok_count_answer(r, HTTP_UNAUTHORIZED, "use_dpop_nonce");
        return 0;
    case OT_DPOP_INVALID:
    default:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0701: DPoP proof refused: %s", why);
        fail(st, HTTP_UNAUTHORIZED, "invalid_dpop_proof");
        offtok_count_answer(r, HTTP_UNAUTHORIZED, "invalid_dpop_proof");
        return 0;
    }
}

/* ---- the binding ---------------------------------------------------------------------------- */

/** x5t#S256 of this connection's client certificate, or NULL (none, or no mod_ssl). */
static const char *client_cert_x5t(request_rec *r)
{
    char *pem;

    if (ssl_lookup == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0709: a certificate-bound token, and "
                      "mod_ssl is not loaded: no client certificate to check it against");
        return NULL;
    }
    pem = ssl_lookup(r->pool, r->server, r->connection, r, "SSL_CLIENT_CERT");
    return (pem && *pem) ? ot_cert_thumbprint(pem, r->pool) : NULL;
}

void offtok_dpop_bound(request_rec *r, const offtok_req_t *st, const offtok_dir_conf *c,
                       const ot_answer_t *a, ot_bound_t *bound)
{
    bound->dpop = offtok_dpop_mode(c);
    bound->mtls = offtok_mtls_mode(c);
    bound->scheme_dpop = st->scheme == OT_SCHEME_DPOP;
    bound->jkt = st->jkt;
    bound->x5t = (a->cnf_x5t && bound->mtls != OT_BIND_OFF) ? client_cert_x5t(r) : NULL;
}

void offtok_dpop_send_nonce(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "DPoP-Nonce",
                   ot_dpop_nonce(dpop.nonce_key, apr_time_now(), r->pool));
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

/**
 * With OfftokRedis, the proof on every node (offtok_redis_once, table "dpop", the replay key in
 * hex as id): APR_SUCCESS when no node had it, APR_EEXIST for a replay, APR_EAGAIN when Redis
 * cannot say (or this process has no Redis client although OfftokRedis is set). Without
 * OfftokRedis, APR_SUCCESS: the shared table has said all there is to say.
 */
static apr_status_t redis_once(request_rec *r, const unsigned char key[32], apr_time_t until)
{
    const offtok_srv_conf *sc = ap_get_module_config(r->server->module_config, &offtok_module);
    char hex[65];
    int i;

    if (sc->redis_url == NULL) {
        return APR_SUCCESS;
    }
    for (i = 0; i < 32; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", key[i]);
    }
    switch (offtok_redis_once(r, "dpop", NULL, hex, until)) {
    case OFFTOK_ONCE_FIRST:
        return APR_SUCCESS;
    case OFFTOK_ONCE_SEEN:
        return APR_EEXIST;
    default:
        return APR_EAGAIN;
    }
}

int offtok_dpop_accept(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c)
{
    const ot_dpop_proof_t *proof = st->proof;
    unsigned char key[32];
    apr_time_t now = apr_time_now(), until;
    apr_status_t rv;
    int life;

    if (proof == NULL) {
        return 1;
    }
    st->proof = NULL;
    /*
     * The proof passes while the whole second of now is at most iat + max age: until the end of
     * that second, so a table entry never lapses while its proof still passes (OfftokClockSkew
     * may be 0). Under the longest max age and skew of any section, not this one's: the same
     * URL may be served under two sections (an <If>, IP vhosts of one name), and a proof
     * recorded under the shorter one must stay refused under the longer.
     */
    life = offtok_dpop_max_age(c) + offtok_clock_skew(c) + 1;
    until = apr_time_from_sec(proof->iat + (life > dpop.life ? life : dpop.life));
    if (!ot_dpop_replay_key(key, proof)) {
        rv = APR_ENOMEM;                /* no digest (out of memory): refused, never unrecorded */
    }
    else {
        rv = dpop.replay ? ot_replay_once(dpop.replay, key, until, now) : APR_ENOSPC;
    }
    if (rv == APR_SUCCESS) {
        rv = redis_once(r, key, until);
    }
    if (rv == APR_EEXIST) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0703: DPoP proof refused: its jti was "
                      "used before (a replay)");
        fail(st, HTTP_UNAUTHORIZED, "invalid_dpop_proof");
        offtok_count_answer(r, HTTP_UNAUTHORIZED, "invalid_dpop_proof");
        return 0;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "OT0704: cannot record a DPoP proof (%s); "
                      "answering 503", rv == APR_ENOSPC ? "the table of proofs is full"
                      : "Redis does not answer");
        fail(st, HTTP_SERVICE_UNAVAILABLE, NULL);
        offtok_count_answer(r, HTTP_SERVICE_UNAVAILABLE, rv == APR_ENOSPC ? "other" : "redis");
        return 0;
    }
    ot_dpop_proof_accepted(proof);                      /* its key joins the key cache */
    if (proof->nonce_old) {
        offtok_dpop_send_nonce(r);
    }
    keep_proof(r, st);
    return 1;
}
