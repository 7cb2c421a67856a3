/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Several nodes, one Redis (OfftokRedis): the glue around ot_redis*.c. Built only with hiredis.
 *
 *   directives       OfftokRedis, OfftokRedisUser, OfftokRedisPassword, OfftokRedisKey (server
 *                    config only); redis-sentinel:// finds and follows the master
 *                    (ot_redis_sentinel.c)
 *   check_config     OfftokRedisKey is required with OfftokRedis (so `apachectl -t` says so)
 *   child_init       this process's client (a pool of connections with a breaker) and its
 *                    subscriber thread; signals are blocked in that thread, and it allocates
 *                    only from a root pool on an allocator of its own (prefork's are unlocked)
 *   child_stopping   (httpd 2.4.49+) stop the subscriber: flag, wake-up pipe, socket shut down;
 *                    a pre-cleanup of the child pool does the same on older httpd
 *   authn            offtok_redis_get after a local miss, offtok_redis_put for fresh answers,
 *                    offtok_redis_trusts before reusing a positive answer
 *   handlers         offtok_revoke / offtok_not_before: apply here, then publish;
 *                    offtok_redis_once: an id accepted once across all nodes (SET NX)
 *
 * "Caught up": each process keeps down_since, 0 while its subscription is complete. While it is
 * not (before the first catch-up, and after a loss until the next one), positive answers fetched
 * before down_since are not reused, from either tier: a revocation published meanwhile may not
 * have arrived. Answers fetched later are, as on a node without Redis. Key tombstones (another
 * node found a token inactive) are not stored, so after a loss the node's answers fetched before
 * it stay stale for good (forget_before_loss). A revocation from another
 * node is recorded as of max(its time, min(now, its time + OT_REDIS_SKEW)), so that clocks a few
 * seconds apart cannot let an answer fetched just before it slip through.
 *
 * Redis never decides alone: an unreachable Redis is a miss, a value failing its MAC is a miss,
 * and nothing here answers a request. "Redis unreachable" (OT0200) is logged by the subscriber
 * once per loss and process, "reachable again" (OT0201) when it has caught up.
 */
#include <signal.h>
#include <string.h>
#include <pthread.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_thread_proc.h>

#include "mod_offtok.h"
#include "mod_offtok_redis.h"
#include "ot_redis.h"
#include "ot_stats.h"
#include "ot_util.h"

APLOG_USE_MODULE(offtok);

/** Revocations are kept (here and in Redis) this long beyond the longest TTL. */
#define OT_REDIS_MARGIN apr_time_from_sec(60)
/** Request-path warnings (errors Redis answered, values failing their MAC): one per period. */
#define OT_REDIS_WARN_EVERY apr_time_from_sec(60)

/** This process's side of the Redis tier. */
struct offtok_redis_t {
    server_rec *s;
    ot_redis_t *client;
    ot_redis_sub_t *sub;
    apr_thread_t *thread;
    apr_pool_t *pool;            /**< the subscriber thread's, on an allocator of its own */
    int stopped;                 /**< the subscriber was stopped and joined */
    apr_time_t down_since;       /**< atomic: 0 while caught up */
    int lost;                    /**< subscriber thread: down() since the last up() */
    int complained;              /**< atomic: OT0200 logged, OT0201 not yet */
    apr_time_t warned;           /**< atomic: last request-path warning */
    char master[300];            /**< Sentinel: the master last logged (subscriber thread) */
    const char *where_master;    /**< Sentinel: the master's name */
};

static offtok_srv_conf *main_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &offtok_module);
}

int offtok_redis_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    offtok_srv_conf *sc = main_conf(s);

    if (sc->redis_url != NULL && sc->redis_key == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL, "OT0208: OfftokRedis needs "
                     "OfftokRedisKey (env:VAR or file:PATH), the secret that keys and "
                     "authenticates what the nodes store in Redis");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (sc->redis_url == NULL && (sc->redis_key != NULL || sc->redis_password != NULL
                                  || sc->redis_user != NULL)) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL, "OT0209: "
                     "OfftokRedisKey, OfftokRedisUser or OfftokRedisPassword without "
                     "OfftokRedis: ignored");
    }
    if (sc->redis_url != NULL && sc->redis_user != NULL && sc->redis_password == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL, "OT0230: OfftokRedisUser "
                     "needs OfftokRedisPassword (Redis's AUTH takes a user and a password)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* ---- being caught up ---------------------------------------------------------------------- */

static struct offtok_redis_t *this_process(void)
{
    return offtok_proc()->redis;
}

int offtok_redis_trusts(apr_time_t fetched)
{
    struct offtok_redis_t *rp = this_process();
    apr_time_t since = rp ? __atomic_load_n(&rp->down_since, __ATOMIC_ACQUIRE) : 0;

    return since == 0 || fetched >= since;
}

int offtok_redis_caught_up(void)
{
    struct offtok_redis_t *rp = this_process();

    return rp == NULL || __atomic_load_n(&rp->down_since, __ATOMIC_ACQUIRE) == 0;
}

/**
 * The subscription is lost (or never was): answers fetched until now are not reused until it
 * is back and caught up; say so once.
 */
static void sub_down(void *baton, const char *why)
{
    struct offtok_redis_t *rp = baton;
    apr_time_t expected = 0;

    __atomic_compare_exchange_n(&rp->down_since, &expected, apr_time_now(), 0,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    rp->lost = 1;
    if (__atomic_exchange_n(&rp->complained, 1, __ATOMIC_ACQ_REL) == 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, rp->s, "OT0200: Redis at %s unreachable (%s): "
                     "answers come from the local cache and the issuer, and revocations pushed "
                     "here reach the other nodes once it is back", ot_redis_where(rp->client),
                     why);
    }
}

/** Sentinel: say which node is the master when it is another than last time (OT0232). */
static void log_master(struct offtok_redis_t *rp)
{
    apr_pool_t *p;
    const char *m;

    apr_pool_create(&p, NULL);
    m = ot_redis_master(rp->client, p);
    if (m != NULL && strcmp(m, rp->master) != 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, rp->s, "OT0232: Redis master %s is at %s "
                     "(found through Sentinel%s)", rp->where_master, m,
                     rp->master[0] ? apr_psprintf(p, "; it was at %s", rp->master) : "");
        apr_cpystrn(rp->master, m, sizeof(rp->master));
    }
    apr_pool_destroy(p);
}

/**
 * Caught up again after a loss: key tombstones are not stored, so those published while this
 * process was cut off are gone. Every positive answer of the node fetched before the loss is
 * made unusable for good (it goes to the issuer once more), so none of them outlives a key
 * tombstone that was missed. The revocations that are stored were handed over already.
 */
static void forget_before_loss(struct offtok_redis_t *rp)
{
    apr_time_t since = __atomic_load_n(&rp->down_since, __ATOMIC_ACQUIRE);
    apr_status_t rv;

    if (!rp->lost || since == 0) {
        return;
    }
    rp->lost = 0;
    rv = ot_revoke_stale_before(offtok_proc()->shm, since);
    ap_log_error(APLOG_MARK, rv == APR_SUCCESS ? APLOG_INFO : APLOG_WARNING, rv, rp->s,
                 "OT0241: positive answers cached before the loss of Redis %s", rv == APR_SUCCESS
                 ? "go to the issuer once more (a key tombstone published meanwhile may have "
                 "been missed)" : "could not be marked stale");
}

static void sub_up(void *baton)
{
    struct offtok_redis_t *rp = baton;

    log_master(rp);
    forget_before_loss(rp);
    __atomic_store_n(&rp->down_since, 0, __ATOMIC_RELEASE);
    if (__atomic_exchange_n(&rp->complained, 0, __ATOMIC_ACQ_REL)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, rp->s, "OT0201: Redis at %s reachable again; "
                     "caught up with the revocations published meanwhile",
                     ot_redis_where(rp->client));
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, rp->s, "OT0202: subscribed to revocations at "
                     "Redis %s and caught up", ot_redis_where(rp->client));
    }
}

/** A revocation from another node (or this one's, coming back): apply it here. */
static void sub_revoked(void *baton, const ot_redis_rev_t *rev, apr_pool_t *p)
{
    struct offtok_redis_t *rp = baton;
    apr_time_t now = apr_time_now(), late = rev->at + OT_REDIS_SKEW;
    apr_time_t at = late < now ? late : now, keep, until;
    apr_status_t rv;

    at = at > rev->at ? at : rev->at;
    keep = at + apr_time_from_sec(offtok_longest_ttl()) + OT_REDIS_MARGIN;
    /* At least as long as this node keeps its own: the sending node's configuration may keep
     * them for less (no OfftokAccessTokens Local there, a shorter TTL), and a token judged
     * locally here is trusted to be refused for as long as this node's keep. */
    if (keep < at + offtok_revocation_keep()) {
        keep = at + offtok_revocation_keep();
    }
    until = rev->until > keep ? rev->until : keep;
    if (rev->kind == OT_REDIS_REV_NOT_BEFORE) {
        rv = ot_revoke_set_not_before(offtok_proc()->shm, rev->iss, rev->value, rev->not_before,
                                      rev->order, at);
        rv = rv == APR_EEXIST ? APR_SUCCESS : rv;      /* as new or newer is in force here */
    }
    else {
        rv = ot_revoke_add(offtok_proc()->shm, (ot_revoke_kind_t)rev->kind, rev->iss,
                           rev->value, at, until);
    }
    if (!APLOG_IS_LEVEL(rp->s, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_WARNING)) {
        return;
    }
    /* Escaped as the handlers escape them: the issuer chose these bytes (a sub, a sid). */
    ap_log_error(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_WARNING, rv, rp->s,
                 "OT0204: revocation from Redis (%s %s of %s)%s",
                 rev->kind == OT_REDIS_REV_SUB ? "sub" : rev->kind == OT_REDIS_REV_SID ? "sid"
                 : "not-before for client", ap_escape_logitem(p, rev->value),
                 *rev->iss ? ap_escape_logitem(p, rev->iss) : "OfftokIssuer",
                 rv == APR_SUCCESS ? " applied" : ": could not be recorded");
}

/**
 * A key tombstone from another node (or this one's, coming back): that node's issuer call said
 * the token is inactive, and the answer replaced a positive one in Redis. Store it here as an
 * inactive answer, fetched at its time put on this node's clock (up to OT_REDIS_SKEW later, never
 * after now, as revocations are): ot_cache_put's newer-wins makes it replace every positive
 * answer for the key fetched before it, and keeps one fetched later.
 */
static void sub_key_dead(void *baton, const ot_redis_ktomb_t *k, apr_pool_t *p)
{
    struct offtok_redis_t *rp = baton;
    apr_time_t now = apr_time_now(), late = k->fetched + OT_REDIS_SKEW;
    ot_cache_entry_t e;
    apr_status_t rv;

    memset(&e, 0, sizeof(e));
    e.fetched = late < now ? late : now;
    e.drop_after = e.fetched + apr_time_from_sec(offtok_longest_ttl()) + OT_REDIS_MARGIN;
    rv = ot_cache_put(offtok_proc()->shm, k->key, &e, now);
    ap_log_error(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_WARNING, rv, rp->s,
                 "OT0240: key tombstone from Redis (another node found a cached token "
                 "inactive)%s", rv == APR_SUCCESS ? " applied" : ": could not be recorded");
}

/* ---- the subscriber thread ---------------------------------------------------------------- */

static void *APR_THREAD_FUNC sub_main(apr_thread_t *t, void *baton)
{
    struct offtok_redis_t *rp = baton;

    ot_redis_sub_run(rp->sub);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/** Start the thread with every asynchronous signal blocked: they are the MPM's to take. */
static apr_status_t start_thread(struct offtok_redis_t *rp, apr_pool_t *pchild)
{
    sigset_t all, old;
    apr_status_t rv;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rv = apr_thread_create(&rp->thread, NULL, sub_main, rp, rp->pool);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rv;
}

static apr_status_t stop_subscriber(void *baton)
{
    struct offtok_redis_t *rp = baton;
    apr_status_t rv;
    apr_time_t expected = 0;

    if (rp->thread != NULL && !rp->stopped) {
        rp->stopped = 1;
        __atomic_compare_exchange_n(&rp->down_since, &expected, apr_time_now(), 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        ot_redis_sub_stop(rp->sub);
        apr_thread_join(&rv, rp->thread);
        ot_redis_close(rp->client);
    }
    if (rp->pool != NULL && (rp->thread == NULL || rp->stopped)) {
        apr_pool_destroy(rp->pool);
        rp->pool = NULL;
    }
    return APR_SUCCESS;
}

/**
 * The subscriber thread's pool: a root pool on an allocator of its own. Under prefork the
 * child's pools have allocators without a mutex, which the request thread uses all the time;
 * a subpool of pchild would share it, and the two threads would corrupt its free lists. The
 * thread's own pool (apr_thread_create) and everything the subscriber allocates come from here.
 */
static apr_status_t subscriber_pool(apr_pool_t **pp)
{
    apr_allocator_t *alloc;
    apr_status_t rv = apr_allocator_create(&alloc);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_max_free_set(alloc, 1024 * 1024);
    rv = apr_pool_create_ex(pp, NULL, NULL, alloc);
    if (rv != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, *pp);
    return APR_SUCCESS;
}

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
void offtok_redis_child_stopping(apr_pool_t *pchild, int graceful)
{
    struct offtok_redis_t *rp = this_process();

    if (rp != NULL) {
        stop_subscriber(rp);
    }
}
#endif

/** The client's settings from the (already checked) server configuration. */
static void client_conf(ot_redis_conf_t *conf, const offtok_srv_conf *sc, apr_pool_t *p)
{
    memset(conf, 0, sizeof(*conf));
    ot_redis_parse_url(conf, sc->redis_url, p);
    conf->password = sc->redis_password;
    conf->user = sc->redis_user;
    conf->key = sc->redis_key;
    conf->key_len = strlen(sc->redis_key);
}

void offtok_redis_child_init(apr_pool_t *pchild, server_rec *s)
{
    static const ot_redis_sub_fns_t fns = { sub_revoked, sub_up, sub_down, sub_key_dead };
    offtok_srv_conf *sc = main_conf(s);
    struct offtok_redis_t *rp;
    ot_redis_conf_t conf;
    int threads = 1;
    apr_status_t rv;

    if (sc->redis_url == NULL || sc->redis_key == NULL || offtok_proc()->shm == NULL) {
        return;
    }
    rp = apr_pcalloc(pchild, sizeof(*rp));
    rp->s = s;
    rp->down_since = apr_time_now();          /* not caught up yet */
    client_conf(&conf, sc, pchild);
    rp->where_master = conf.master;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    rv = ot_redis_create(&rp->client, &conf, threads < 16 ? threads : 16, offtok_proc()->stats,
                         pchild);
    if (rv == APR_SUCCESS) {
        rv = subscriber_pool(&rp->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = ot_redis_sub_create(&rp->sub, rp->client, &fns, rp, rp->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = start_thread(rp, pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "OT0210: cannot start the Redis client of "
                     "this process; it shares nothing with the other nodes");
        if (rp->pool != NULL) {
            apr_pool_destroy(rp->pool);
        }
        return;
    }
    apr_pool_pre_cleanup_register(pchild, rp, stop_subscriber);
    offtok_proc()->redis = rp;
}

/* ---- the request path --------------------------------------------------------------------- */

/** A warning from the request path, at most once per OT_REDIS_WARN_EVERY in this process. */
static void warn(request_rec *r, struct offtok_redis_t *rp, const char *what)
{
    apr_time_t now = apr_time_now(), last = __atomic_load_n(&rp->warned, __ATOMIC_RELAXED);

    if (now - last >= OT_REDIS_WARN_EVERY
        && __atomic_compare_exchange_n(&rp->warned, &last, now, 0, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "OT0203: %s (%s); going on without it%s",
                      what, ot_redis_last_error(rp->client, r->pool),
                      " (said at most once a minute)");
    }
}

apr_status_t offtok_redis_get(request_rec *r, const unsigned char *key, apr_time_t now,
                              ot_cache_entry_t *e)
{
    struct offtok_redis_t *rp = this_process();
    apr_status_t rv;

    if (rp == NULL) {
        return APR_NOTFOUND;
    }
    rv = ot_redis_get(rp->client, key, now, e, r->pool);
    if (rv == APR_EINVAL) {
        warn(r, rp, "an answer in Redis failed its MAC check or was too long (written "
             "without OfftokRedisKey, or with another key) and was ignored");
    }
    else if (rv == APR_EGENERAL) {
        warn(r, rp, "Redis refused to give an answer");
    }
    else if (rv == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0205: answer found in Redis");
    }
    return rv;
}

void offtok_redis_put(request_rec *r, const unsigned char *key, const ot_cache_entry_t *e)
{
    struct offtok_redis_t *rp = this_process();
    apr_status_t rv;
    int told = 0;

    if (rp == NULL) {
        return;
    }
    rv = ot_redis_put(rp->client, key, e, apr_time_now(), &told, r->pool);
    if (rv == APR_EGENERAL) {
        warn(r, rp, "Redis refused to store an answer");
    }
    else if (told) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "OT0242: inactive answer replaced a "
                      "positive one in Redis: key tombstone published to the other nodes");
    }
}

/* ---- pushed revocations ------------------------------------------------------------------- */

/** Send a revocation applied here to the other nodes. */
static void publish(request_rec *r, const ot_redis_rev_t *rev)
{
    struct offtok_redis_t *rp = this_process();

    if (rp != NULL && ot_redis_publish(rp->client, rev, apr_time_now(), r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0206: revocation not published to Redis "
                      "yet (%s): it applies on this node now, and on the others once Redis "
                      "is back", ot_redis_last_error(rp->client, r->pool));
    }
}

apr_status_t offtok_revoke(request_rec *r, ot_revoke_kind_t kind, const char *iss,
                           const char *value, apr_time_t at, apr_time_t until)
{
    apr_status_t rv = ot_revoke_add(offtok_proc()->shm, kind, iss, value, at, until);
    apr_time_t keep = at + apr_time_from_sec(offtok_longest_ttl()) + OT_REDIS_MARGIN;
    ot_redis_rev_t rev;

    if (rv == APR_SUCCESS) {
        memset(&rev, 0, sizeof(rev));
        rev.kind = (ot_redis_rev_kind_t)kind;
        rev.iss = iss;
        rev.value = value;
        rev.at = at;
        rev.until = until > keep ? until : keep;
        publish(r, &rev);
    }
    return rv;
}

apr_status_t offtok_not_before(request_rec *r, const char *iss, const char *client,
                               apr_int64_t not_before, apr_int64_t order, apr_time_t at)
{
    apr_status_t rv = ot_revoke_set_not_before(offtok_proc()->shm, iss, client, not_before,
                                               order, at);
    ot_redis_rev_t rev;

    if (rv == APR_SUCCESS || rv == APR_ENOSPC) {
        memset(&rev, 0, sizeof(rev));
        rev.kind = OT_REDIS_REV_NOT_BEFORE;
        rev.iss = iss;
        rev.value = client ? client : "";
        rev.at = at;
        rev.until = at + apr_time_from_sec(offtok_longest_ttl()) + OT_REDIS_MARGIN;
        rev.not_before = not_before;
        rev.order = order;
        publish(r, &rev);
    }
    /* As new or newer is in force: a delayed or replayed action, which changes nothing. */
    return rv == APR_EEXIST ? APR_SUCCESS : rv;
}

/* ---- once across all nodes ---------------------------------------------------------------- */

offtok_once_t offtok_redis_once(request_rec *r, const char *table, const char *iss,
                                const char *id, apr_time_t until)
{
    struct offtok_redis_t *rp = this_process();
    apr_status_t rv;

    if (rp == NULL) {
        return OFFTOK_ONCE_UNAVAILABLE;
    }
    rv = ot_redis_once(rp->client, table, iss, id, until, apr_time_now(), r->pool);
    if (rv == APR_EEXIST) {
        return OFFTOK_ONCE_SEEN;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "OT0231: Redis could not say whether this "
                      "%s id was used on another node (%s)", table,
                      ot_redis_last_error(rp->client, r->pool));
        return OFFTOK_ONCE_UNAVAILABLE;
    }
    return OFFTOK_ONCE_FIRST;
}

void offtok_redis_once_forget(request_rec *r, const char *table, const char *iss,
                              const char *id)
{
    struct offtok_redis_t *rp = this_process();

    if (rp != NULL) {
        ot_redis_once_forget(rp->client, table, iss, id, r->pool);
    }
}
