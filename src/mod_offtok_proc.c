/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What lives once per server process, at the bottom of the glue: every other mod_offtok*.c file
 * reaches it through offtok_proc(), and it calls none of them.
 *
 *   post_config (parent)  make or reuse the shared segment (cache, revocations, counters); it
 *                         lives in a pool with no parent, remembered with ap_retained_data, so
 *                         entries survive graceful restarts; curl_global_init
 *   child_init            the issuer link of this process: libcurl handle pool, coalescer,
 *                         the cache of the issuers' keys (JWKS), credential files, discovery
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_cred.h"
#include "ot_discovery.h"
#include "ot_flight.h"
#include "ot_http.h"
#include "ot_jose.h"
#include "ot_shm.h"
#include "ot_stats.h"

APLOG_USE_MODULE(offtok);

#define RETAINED_KEY "mod_offtok-retained"
/** A JWKS URL is fetched at most this often by one process (unknown kids cannot force more). */
#define OFFTOK_JWKS_MIN_REFRESH apr_time_from_sec(10)
/** A credential file is read again at most this often per process (after invalid_client). */
#define OFFTOK_CRED_MIN_REREAD apr_time_from_sec(5)

/** What survives from one configuration generation to the next in the parent. */
typedef struct {
    apr_pool_t *pool;          /**< no parent: not destroyed at restarts */
    ot_shm_t *shm;
} offtok_retained_t;

/** This process's context; filled in post_config (inherited by children) and child_init. */
static offtok_proc_t proc;
/** Counters for a process that has no segment (never the case once post_config ran). */
static ot_stats_t fallback_stats;

offtok_proc_t *offtok_proc(void)
{
    if (proc.stats == NULL) {
        proc.stats = &fallback_stats;
    }
    return &proc;
}

/** Seconds during which further lines of one kind are logged at debug level only. */
#define QUIET_SECONDS 10

int offtok_quiet_level(request_rec *r, offtok_quiet_t which, int level, apr_uint32_t *quieted)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t until = __atomic_load_n(&proc.quiet_until[which], __ATOMIC_RELAXED);

    *quieted = 0;
    /*
     * A line this request's LogLevel drops takes no window: else a flood where nothing is logged
     * (another vhost or location) would send the lines of one that logs them to debug level.
     */
    if (!APLOG_R_IS_LEVEL(r, level)) {
        return level;
    }
    if (now < until
        || !__atomic_compare_exchange_n(&proc.quiet_until[which], &until, now + QUIET_SECONDS,
                                        0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&proc.quieted[which], 1, __ATOMIC_RELAXED);
        return APLOG_DEBUG;
    }
    *quieted = __atomic_exchange_n(&proc.quieted[which], 0, __ATOMIC_RELAXED);
    return level;
}

const char *offtok_quieted_text(request_rec *r, apr_uint32_t quieted)
{
    return quieted ? apr_psprintf(r->pool, " (and %u more like it at debug level since the "
                                  "last such line)", quieted) : "";
}

static apr_status_t attach_segment(server_rec *s, apr_size_t size, int *reused)
{
    offtok_retained_t *ret = ap_retained_data_get(RETAINED_KEY);
    apr_status_t rv;

    if (ret == NULL) {
        ret = ap_retained_data_create(RETAINED_KEY, sizeof(*ret));
    }
    *reused = ret->shm != NULL && ot_shm_reusable(ret->shm, size);
    if (!*reused) {
        /* The old segment stays mapped in the old generation's children until they exit. */
        if (ret->pool) {
            apr_pool_destroy(ret->pool);
        }
        ret->shm = NULL;
        apr_pool_create(&ret->pool, NULL);
        apr_pool_tag(ret->pool, "offtok-shm");
        rv = ot_shm_create(&ret->shm, size, ret->pool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "OT0050: cannot create the shared "
                         "cache of %" APR_SIZE_T_FMT " bytes (OfftokCacheSize)", size);
            return rv;
        }
    }
    proc.shm = ret->shm;
    proc.stats = ot_shm_stats(ret->shm);
    return APR_SUCCESS;
}

int offtok_proc_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    offtok_srv_conf *sc = ap_get_module_config(s->module_config, &offtok_module);
    apr_size_t size = sc->cache_size ? sc->cache_size : OT_DEFAULT_CACHE_SIZE;
    int reused = 0;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (ot_http_global_init() != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OT0051: libcurl could not be initialised");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (attach_segment(s, size, &reused) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "OT0052: mod_offtok/%s ready: shared cache of "
                 "%" APR_SIZE_T_FMT " bytes (%s)", OT_VERSION, size,
                 reused ? "kept from the previous generation" : "new");
    return OK;
}

/**
 * Requests that may wait on the issuer in one process: all its threads but an eighth (at least
 * one) kept for everything else. Under OfftokAlwaysValidate On every request waits on the
 * issuer, so a smaller default (three quarters, at first) answered 503 to a healthy server whose
 * connections happened to gather in one process.
 */
static int pending_bound(const offtok_srv_conf *sc)
{
    int threads = 1;

    if (sc->max_pending > 0) {
        return sc->max_pending;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) {
        threads = 1;
    }
    if (threads < 4) {
        return threads;
    }
    return threads - (threads / 8 > 1 ? threads / 8 : 1);
}

void offtok_proc_child_init(apr_pool_t *pchild, server_rec *s)
{
    offtok_srv_conf *sc = ap_get_module_config(s->module_config, &offtok_module);
    int bound = pending_bound(sc);
    apr_status_t rv;

    offtok_proc();
    proc.miss_rate = sc->miss_rate;
    proc.issuer_rate = sc->issuer_rate;
    rv = ot_http_create(&proc.http, bound < 64 ? bound : 64, proc.stats, pchild);
    if (rv == APR_SUCCESS) {
        rv = ot_flight_create(&proc.flight, bound, pchild);
    }
    if (rv == APR_SUCCESS) {
        ot_flight_set_stats(proc.flight, proc.stats);
        rv = ot_jose_keys_create(&proc.keys, OFFTOK_JWKS_MIN_REFRESH, pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "OT0053: cannot set up the issuer link in "
                     "this process");
        return;
    }
    rv = ot_cred_store_create(&proc.creds, OFFTOK_CRED_MIN_REREAD, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "OT0720: cannot set up the store of "
                     "credential files in this process");
    }
    rv = ot_disc_create(&proc.disc, OFFTOK_JWKS_MIN_REFRESH, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "OT0721: cannot set up the cache of issuer "
                     "metadata in this process");
    }
}
