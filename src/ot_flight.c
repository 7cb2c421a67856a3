/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_flight.c
 * @brief Singleflight: one issuer call answers every thread that needs the same key meanwhile.
 *
 * A hash (key bytes -> newest call for that key), a counter of pending requests and a small table
 * of issuers (introspection URL -> latency; a call points to its issuer's entry: kept and judged
 * in ot_flight_issuer.c), all under one mutex. Each call lives in a pool of its own (unmanaged,
 * with its own allocator, so making and destroying it from any thread touches no shared
 * allocator) that holds the call, its condition variable and the answer. The pool is destroyed
 * by whoever drops the last reference, leader or waiter, so the answer outlives the leader's
 * request. Callers copy the answer into their own pool.
 *
 * A call is joinable while it is in the hash: by anyone before it starts, afterwards by callers
 * whose not_before is not later than its start. A caller that may not join the running call leads
 * a new one, which replaces the running one in the hash and waits for it to end before it starts
 * (so it collects every request that arrives meanwhile). One key has at most one call running and
 * one queued, or two running when the older one outlasts wait_limit. The older call still answers
 * those already waiting on it.
 */
#include <string.h>
#include <time.h>
#include <apr_strings.h>
#include "ot_flight_int.h"

/**
 * The clock of durations and deadlines: monotonic, so that a step of the wall clock neither
 * makes a call look overdue or negative in length nor cuts a wait short. Start times that are
 * compared with a request's arrival (not_before) stay on the wall clock (f->wall).
 */
static apr_time_t mono_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return apr_time_now();
    }
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static apr_status_t hash_pool_destroy(void *baton)
{
    apr_pool_destroy(baton);
    return APR_SUCCESS;
}

static apr_status_t spares_destroy(void *baton)
{
    ot_flight_t *f = baton;

    while (f->n_spare > 0) {
        apr_pool_destroy(f->spare[--f->n_spare]);
    }
    return APR_SUCCESS;
}

/** A finished call's pool (no lock held): cleared and kept for the next call, or destroyed. */
static void call_free(ot_flight_t *f, apr_pool_t *pool)
{
    apr_pool_clear(pool);
    apr_thread_mutex_lock(f->mutex);
    if (f->n_spare < OT_FLIGHT_SPARE) {
        f->spare[f->n_spare++] = pool;
        pool = NULL;
    }
    apr_thread_mutex_unlock(f->mutex);
    if (pool) {
        apr_pool_destroy(pool);
    }
}

apr_status_t ot_flight_create(ot_flight_t **pf, int max_pending, apr_pool_t *p)
{
    ot_flight_t *f;
    apr_status_t rv;

    *pf = NULL;
    if (max_pending < 1) {
        return APR_EINVAL;
    }
    f = apr_pcalloc(p, sizeof(*f));
    f->max_pending = max_pending;
    f->wall = apr_time_now;
    f->abort_fn = apr_pool_abort_get(p);
    rv = apr_thread_mutex_create(&f->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&f->room, p);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create_unmanaged_ex(&f->hash_pool, f->abort_fn, NULL);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(p, f->hash_pool, hash_pool_destroy, apr_pool_cleanup_null);
    apr_pool_cleanup_register(p, f, spares_destroy, apr_pool_cleanup_null);
    f->calls = apr_hash_make(f->hash_pool);
    *pf = f;
    return APR_SUCCESS;
}

void ot_flight_set_stats(ot_flight_t *f, ot_stats_t *stats)
{
    f->stats = stats;
}

void ot_flight_set_wall_clock(ot_flight_t *f, apr_time_t (*wall)(void))
{
    f->wall = wall;
}

int ot_flight_pending(ot_flight_t *f)
{
    int n;

    apr_thread_mutex_lock(f->mutex);
    n = f->pending;
    apr_thread_mutex_unlock(f->mutex);
    return n;
}

/** A new call for key in a pool of its own, held once (by its leader). */
static apr_status_t call_make(ot_flight_call_t **pc, ot_flight_t *f, const void *key,
                              apr_size_t key_len)
{
    apr_pool_t *pool;
    ot_flight_call_t *c;
    apr_status_t rv;

    *pc = NULL;
    if (f->n_spare > 0) {
        pool = f->spare[--f->n_spare];          /* the mutex is held */
    }
    else if ((rv = apr_pool_create_unmanaged_ex(&pool, f->abort_fn, NULL)) != APR_SUCCESS) {
        return rv;
    }
    c = apr_pcalloc(pool, sizeof(*c));
    c->pool = pool;
    c->key = apr_pmemdup(pool, key, key_len);
    c->key_len = key_len;
    c->refs = 1;
    rv = apr_thread_cond_create(&c->cond, pool);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(pool);
        return rv;
    }
    *pc = c;
    return APR_SUCCESS;
}

/** Drop one reference (mutex held); the pool to destroy, unlocked, when it was the last. */
static apr_pool_t *call_unref(ot_flight_call_t *c)
{
    return --c->refs == 0 ? c->pool : NULL;
}

/**
 * A place of the bound is free and requests wait for one (mutex held): wake one. Whoever frees a
 * place calls this, and so does a request woken in wait_for_room that leaves without taking the
 * free place (refused, or no call made): it took the signal with it, and another waiter would
 * sleep until its timed wait ran out.
 */
static void room_pass_on(ot_flight_t *f)
{
    if (f->room_waiters > 0 && f->pending < f->max_pending) {
        apr_thread_cond_signal(f->room);
    }
}

/**
 * Drop one reference, one pending request and its use of issuer e; the last reference frees the
 * call.
 */
static void call_leave(ot_flight_t *f, ot_flight_call_t *c, ot_flight_issuer_t *e)
{
    apr_pool_t *gone;

    apr_thread_mutex_lock(f->mutex);
    --f->pending;
    --e->pending;
    --e->users;
    room_pass_on(f);
    gone = call_unref(c);
    apr_thread_mutex_unlock(f->mutex);
    if (gone) {
        call_free(f, gone);
    }
}

static void resp_copy(ot_http_resp_t *to, const ot_http_resp_t *from, apr_pool_t *p)
{
    char *body = NULL;

    *to = *from;
    to->errmsg = from->errmsg ? apr_pstrdup(p, from->errmsg) : NULL;
    to->content_type = from->content_type ? apr_pstrdup(p, from->content_type) : NULL;
    to->location = from->location ? apr_pstrdup(p, from->location) : NULL;
    if (from->body) {
        body = apr_palloc(p, from->body_len + 1);
        memcpy(body, from->body, from->body_len);
        body[from->body_len] = '\0';
    }
    to->body = body;
}

/** Wait, holding the mutex, until c is done or wait_limit has passed. */
static apr_status_t call_wait(ot_flight_t *f, ot_flight_call_t *c, apr_interval_time_t wait_limit)
{
    apr_time_t until = mono_now() + wait_limit;
    apr_interval_time_t left;

    while (!c->done) {
        left = until - mono_now();
        if (left <= 0) {
            return APR_TIMEUP;
        }
        /* Spurious wake-ups and timeouts alike are judged by the loop. */
        apr_thread_cond_timedwait(c->cond, f->mutex, left);
    }
    return APR_SUCCESS;
}

/** Join c for issuer e (mutex held on entry, released on return) and copy its answer. */
static apr_status_t call_join(ot_flight_t *f, ot_flight_issuer_t *e, ot_flight_call_t *c,
                              apr_interval_time_t wait_limit, ot_http_resp_t *resp, apr_pool_t *p)
{
    apr_status_t rv;

    ++c->refs;
    ++f->pending;
    ++e->pending;
    rv = call_wait(f, c, wait_limit);
    apr_thread_mutex_unlock(f->mutex);
    if (rv == APR_SUCCESS) {
        resp_copy(resp, &c->resp, p);
        if (f->stats) {
            OT_STAT_ADD(f->stats->coalesced, 1);
        }
    }
    call_leave(f, c, e);
    return rv;
}

/**
 * Make c the joinable call for its key and start it (mutex held on entry, released on return).
 * With an older call still running, c stays queued, joinable by anyone, until that one ends or
 * wait_limit has passed: requests arriving during a call then share the next one.
 */
static void call_start(ot_flight_t *f, ot_flight_call_t *c, ot_flight_call_t *older,
                       apr_interval_time_t wait_limit)
{
    apr_pool_t *gone = NULL;

    /* apr_hash_set keeps the old key pointer when it replaces a value: remove, then add. */
    apr_hash_set(f->calls, c->key, (apr_ssize_t)c->key_len, NULL);
    apr_hash_set(f->calls, c->key, (apr_ssize_t)c->key_len, c);
    if (older) {
        ++older->refs;
        /* Done or not within wait_limit, c starts now. */
        (void)call_wait(f, older, wait_limit);
        gone = call_unref(older);
    }
    c->started = f->wall();
    c->began = mono_now();
    apr_thread_mutex_unlock(f->mutex);
    if (gone) {
        call_free(f, gone);
    }
}

/**
 * Lead a new call to issuer e (mutex held on entry, released on return): fetch unlocked, then
 * wake waiters.
 */
static apr_status_t call_lead(ot_flight_t *f, ot_flight_issuer_t *e, ot_flight_call_t *older,
                              const void *key, apr_size_t key_len, apr_interval_time_t wait_limit,
                              ot_flight_fetch_fn *fetch, void *baton,
                              ot_http_resp_t *resp, apr_pool_t *p)
{
    ot_flight_call_t *c;
    apr_status_t rv;

    rv = call_make(&c, f, key, key_len);
    if (rv != APR_SUCCESS) {
        --e->users;
        room_pass_on(f);
        apr_thread_mutex_unlock(f->mutex);
        return rv;
    }
    c->issuer = e;
    ++f->pending;
    ++e->pending;
    call_start(f, c, older, wait_limit);

    fetch(baton, &c->resp, c->pool);

    apr_thread_mutex_lock(f->mutex);
    ot_flight_note_latency(e, mono_now() - c->began);
    c->done = 1;
    if (apr_hash_get(f->calls, c->key, (apr_ssize_t)c->key_len) == c) {
        apr_hash_set(f->calls, c->key, (apr_ssize_t)c->key_len, NULL);
    }
    apr_thread_cond_broadcast(c->cond);
    apr_thread_mutex_unlock(f->mutex);
    resp_copy(resp, &c->resp, p);
    call_leave(f, c, e);
    return APR_SUCCESS;
}

/* ---- the bound on waiting ------------------------------------------------------------------ */

/**
 * max_pending requests already wait (mutex held, and held again on return). A healthy issuer
 * frees a place within what its latency explains, and one more for every max_pending requests
 * queued ahead: wait that long (no longer than wait_limit) for one, as long as the issuer e is
 * not slow and some place is held by a request to an issuer that is not slow
 * (ot_flight_no_room_soon). APR_SUCCESS as soon as a place is free. APR_EBUSY at once when e is
 * slow or slow issuers hold every place, and when that becomes so or the wait runs out while
 * every place is still taken: then no place is free, and there is none to pass on. (A request
 * woken by a place's signal whose place another took first waits again, or gives up as above.)
 * On APR_SUCCESS the caller takes the place (leads or joins a call) or, leaving without it, passes
 * it on (room_pass_on): the signal that woke it was meant for the place.
 */
static apr_status_t wait_for_room(ot_flight_t *f, ot_flight_issuer_t *e,
                                  apr_interval_time_t wait_limit)
{
    apr_time_t now = mono_now(), until;
    apr_interval_time_t limit = ot_flight_patience(e), queued;

    if (ot_flight_no_room_soon(f, e, now, limit)) {
        return APR_EBUSY;
    }
    queued = limit * (1 + (apr_interval_time_t)(f->room_waiters / f->max_pending));
    until = now + (queued < wait_limit ? queued : wait_limit);
    while (f->pending >= f->max_pending) {
        if ((now = mono_now()) >= until || ot_flight_no_room_soon(f, e, now, limit)) {
            return APR_EBUSY;
        }
        f->room_waiters++;
        apr_thread_cond_timedwait(f->room, f->mutex, until - now < limit ? until - now : limit);
        f->room_waiters--;
    }
    return APR_SUCCESS;
}

/** 1 when a caller whose answer must come from a call started at or after not_before may join c. */
static int joinable(const ot_flight_call_t *c, apr_time_t not_before)
{
    return c != NULL && (c->started == 0 || c->started >= not_before);
}

/** Turn a request away for a slow issuer e (mutex held on entry, released on return). */
static apr_status_t shed(ot_flight_t *f, ot_flight_issuer_t *e)
{
    --e->users;
    apr_thread_mutex_unlock(f->mutex);
    if (f->stats) {
        OT_STAT_ADD(f->stats->issuer_errors[OT_ERR_BUSY], 1);
        OT_STAT_ADD(f->stats->shed_slow, 1);
    }
    return APR_EBUSY;
}

/**
 * Refused admission rv (mutex held on entry, released on return). A request refused after
 * waiting for a place passes it on.
 */
static apr_status_t refuse(ot_flight_t *f, ot_flight_issuer_t *e, apr_status_t rv)
{
    --e->users;
    room_pass_on(f);
    apr_thread_mutex_unlock(f->mutex);
    return rv;
}

apr_status_t ot_flight_run(ot_flight_t *f, const char *issuer,
                           const unsigned char *key, apr_size_t key_len,
                           apr_time_t not_before, apr_interval_time_t wait_limit,
                           ot_flight_fetch_fn *fetch, void *baton,
                           const ot_flight_admit_t *admit,
                           ot_http_resp_t *resp, int *joined, apr_pool_t *p)
{
    ot_flight_call_t *c;
    ot_flight_issuer_t *e;
    apr_uint64_t h = ot_flight_issuer_hash(issuer ? issuer : "");
    apr_status_t rv;
    int admitted = admit == NULL || admit->fn == NULL;

    *joined = 0;
    memset(resp, 0, sizeof(*resp));
    apr_thread_mutex_lock(f->mutex);
    e = ot_flight_issuer_pin(f, issuer ? issuer : "", h);
    /* The bound is full, and this request's issuer is slow or slow ones hold every place: no
     * wait, no budget spent. */
    if (f->pending >= f->max_pending
        && ot_flight_no_room_soon(f, e, mono_now(), ot_flight_patience(e))) {
        return shed(f, e);
    }
    /*
     * A request that would lead is asked its admission before it waits for a place: a flood
     * over its budget gets its refusal at once, rather than holding a thread for as long as the
     * issuer's latency explains.
     */
    c = apr_hash_get(f->calls, key, (apr_ssize_t)key_len);
    if (!admitted && !joinable(c, not_before)) {
        if ((rv = admit->fn(admit->baton)) != APR_SUCCESS) {
            return refuse(f, e, rv);
        }
        admitted = 1;
    }
    if (f->pending >= f->max_pending) {
        if (wait_for_room(f, e, wait_limit) != APR_SUCCESS) {
            return shed(f, e);
        }
        c = apr_hash_get(f->calls, key, (apr_ssize_t)key_len);   /* the lock was let go */
    }
    if (joinable(c, not_before)) {
        *joined = 1;
        return call_join(f, e, c, wait_limit, resp, p);
    }
    if (!admitted && (rv = admit->fn(admit->baton)) != APR_SUCCESS) {
        return refuse(f, e, rv);
    }
    return call_lead(f, e, c, key, key_len, wait_limit, fetch, baton, resp, p);
}
