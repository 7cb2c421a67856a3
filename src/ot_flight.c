/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_flight.c
 * @brief Singleflight: one issuer call answers every thread that needs the same key meanwhile.
 *
 * A hash (key bytes -> newest call for that key), a counter of pending requests and a small table
 * of issuers (introspection URL -> latency; a call points to its issuer's entry), all under one
 * mutex. Each call lives in a pool of its own (unmanaged, with its own allocator, so making and
 * destroying it from any thread touches no shared allocator) that holds the call, its condition
 * variable and the answer. The pool is destroyed by whoever drops the last reference, leader or
 * waiter, so the answer outlives the leader's request. Callers copy the answer into their own pool.
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
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include "ot_flight.h"
#include "ot_stats.h"

/**
 * Pools of finished calls kept for reuse. Each call's pool has an allocator of its own, and a new
 * allocator maps its memory afresh (an mmap, and a munmap that interrupts the other CPUs when it
 * goes): a cleared pool keeps its memory.
 */
#define OT_FLIGHT_SPARE 16

/**
 * Issuers whose latency is kept apart (told apart by introspection URL). One more entry, never
 * recycled, is shared by every issuer beyond them while all of them have requests under way.
 */
#define OT_FLIGHT_ISSUERS 32

/** One issuer's latency, and how many requests of this process use the entry now. */
typedef struct {
    char *url;                   /**< copy in hash_pool; NULL: free (or the shared entry) */
    apr_size_t url_cap;          /**< bytes of the copy's buffer, reused by the next issuer */
    apr_uint64_t hash;           /**< of the URL, to compare before the bytes */
    apr_interval_time_t latency; /**< moving average of its calls' durations (1/8 weight) */
    apr_uint64_t used;           /**< f->ticks when last looked up: the oldest is recycled */
    int users;                   /**< requests in ot_flight_run for it: not recycled meanwhile */
    int pending;                 /**< of those, leaders and waiters counted in f->pending */
} ot_flight_issuer_t;

struct ot_flight_t {
    apr_thread_mutex_t *mutex;   /**< guards everything below and the state of every call */
    apr_pool_t *hash_pool;       /**< private pool of the hash and the issuers' URLs (mutex) */
    apr_hash_t *calls;           /**< key -> newest joinable ot_flight_call_t */
    apr_abortfunc_t abort_fn;    /**< out-of-memory handler for the calls' pools */
    int pending;                 /**< leaders and waiters now in ot_flight_run */
    apr_pool_t *spare[OT_FLIGHT_SPARE]; /**< cleared pools of finished calls, for the next ones */
    int n_spare;
    int max_pending;
    int room_waiters;            /**< requests over max_pending waiting for a place */
    apr_thread_cond_t *room;     /**< signalled when a place frees up and someone waits */
    ot_flight_issuer_t issuers[OT_FLIGHT_ISSUERS + 1]; /**< the last is the shared one */
    apr_uint64_t ticks;          /**< lookups of issuers so far (their clock of use) */
    ot_stats_t *stats;
    apr_time_t (*wall)(void);    /**< the clock of calls' start times (apr_time_now; tests) */
};

static void note_latency(ot_flight_issuer_t *e, apr_interval_time_t d);

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

/** One issuer call and everyone waiting for it. */
typedef struct {
    apr_pool_t *pool;            /**< owns this struct, the key copy and the answer */
    const void *key;
    apr_size_t key_len;
    apr_time_t started;          /**< when the fetch began; 0 while queued behind an older call */
    apr_time_t began;            /**< the same on the monotonic clock (durations, overdue) */
    ot_flight_issuer_t *issuer;  /**< whom its leader asks: its duration goes to that latency */
    int refs;                    /**< leader and waiters still holding it */
    int done;                    /**< resp is final */
    apr_thread_cond_t *cond;     /**< broadcast when done */
    ot_http_resp_t resp;
} ot_flight_call_t;

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
    if (f->room_waiters > 0) {
        apr_thread_cond_signal(f->room);
    }
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
        apr_thread_mutex_unlock(f->mutex);
        return rv;
    }
    c->issuer = e;
    ++f->pending;
    ++e->pending;
    call_start(f, c, older, wait_limit);

    fetch(baton, &c->resp, c->pool);

    apr_thread_mutex_lock(f->mutex);
    note_latency(e, mono_now() - c->began);
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

/* ---- the issuers, each with its latency ---------------------------------------------------- */

/** FNV-1a of the URL: entries are compared by it before their bytes. */
static apr_uint64_t issuer_hash(const char *url)
{
    apr_uint64_t h = 0xcbf29ce484222325ULL;

    for (; *url; ++url) {
        h = (h ^ (unsigned char)*url) * 0x100000001b3ULL;
    }
    return h;
}

/** Entry e now stands for url (mutex held): its copy, and no latency known yet. */
static void issuer_take(ot_flight_t *f, ot_flight_issuer_t *e, const char *url, apr_uint64_t h)
{
    apr_size_t len = strlen(url) + 1;

    if (e->url_cap < len) {
        /* URLs come from the configuration: a few, so the private pool grows by a few. */
        e->url_cap = len < 128 ? 128 : len;
        e->url = apr_palloc(f->hash_pool, e->url_cap);
    }
    memcpy(e->url, url, len);
    e->hash = h;
    e->latency = 0;
}

/**
 * The entry of the issuer at url (mutex held), held for the caller until it leaves (users): the
 * one it had, else a free one or the least recently used of those no request uses now, else the
 * shared one. A recycled entry starts without history, as a new process does.
 */
static ot_flight_issuer_t *issuer_pin(ot_flight_t *f, const char *url, apr_uint64_t h)
{
    ot_flight_issuer_t *e, *pick = NULL;
    int i;

    for (i = 0; i < OT_FLIGHT_ISSUERS; ++i) {
        e = &f->issuers[i];
        if (e->url != NULL && e->hash == h && strcmp(e->url, url) == 0) {
            pick = e;
            break;
        }
        if (e->users == 0 && (pick == NULL || (pick->url != NULL
                                               && (e->url == NULL || e->used < pick->used)))) {
            pick = e;
        }
    }
    if (pick == NULL) {
        pick = &f->issuers[OT_FLIGHT_ISSUERS];
    }
    else if (pick->url == NULL || pick->hash != h || strcmp(pick->url, url) != 0) {
        issuer_take(f, pick, url, h);
    }
    pick->used = ++f->ticks;
    ++pick->users;
    return pick;
}

/* ---- the bound on waiting, and shedding when the issuer is slow -------------------------- */

/** What the issuer's recent latency explains: eight times its average and 50 ms, at most 1 s. */
#define PATIENCE_FLOOR apr_time_from_msec(50)
#define PATIENCE_MAX apr_time_from_sec(1)
/**
 * An issuer whose calls take this long on average is slow, however steadily: requests over the
 * bound then get no place to wait for. (What its latency explains grows with it to the cap, so
 * without this its calls would never look overdue, and requests waiting up to a second each for
 * a place would take the threads the bound keeps free.)
 */
#define SLOW_LATENCY apr_time_from_msec(100)

/**
 * A call to e took d (mutex held): the first sets the average, later ones move it by an eighth.
 * A call longer than PATIENCE_MAX counts as PATIENCE_MAX: its whole length says no more about the
 * steady latency (what its patience is capped at), and one call hung until the timeout would
 * otherwise keep a healthy issuer "slow" (SLOW_LATENCY) for dozens of calls, shedding requests.
 */
static void note_latency(ot_flight_issuer_t *e, apr_interval_time_t d)
{
    if (d > PATIENCE_MAX) {
        d = PATIENCE_MAX;
    }
    e->latency = e->latency == 0 ? (d > 0 ? d : 1) : e->latency + (d - e->latency) / 8;
}

static apr_interval_time_t patience(const ot_flight_issuer_t *e)
{
    apr_interval_time_t t = 8 * e->latency + PATIENCE_FLOOR;

    return t < PATIENCE_MAX ? t : PATIENCE_MAX;
}

/** How long the oldest call this process is running to e has been running (mutex held). */
static apr_interval_time_t oldest_call(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now)
{
    apr_interval_time_t oldest = 0;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, f->calls); hi; hi = apr_hash_next(hi)) {
        const ot_flight_call_t *c = apr_hash_this_val(hi);
        if (c->issuer == e && c->started != 0 && !c->done && now - c->began > oldest) {
            oldest = now - c->began;
        }
    }
    return oldest;
}

/**
 * 1 when issuer e is slow now (mutex held): slow on average, or a call of this process to it has
 * been running longer than its latency explains (limit: patience(e)). Another issuer's calls
 * have no say.
 */
static int issuer_slow(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now,
                       apr_interval_time_t limit)
{
    return e->latency >= SLOW_LATENCY || oldest_call(f, e, now) > limit;
}

/**
 * 1 when some place of the bound is held by a request whose issuer is not slow now (mutex held):
 * only such a place can free up within what a healthy issuer's latency explains. When every place
 * is held by requests to slow issuers, a request of a healthy one waiting for a place would only
 * hold its thread until its wait ran out, and a burst of them every thread the bound keeps free.
 */
static int room_can_free(ot_flight_t *f, apr_time_t now)
{
    unsigned char overdue[OT_FLIGHT_ISSUERS + 1];
    apr_hash_index_t *hi;
    int i;

    memset(overdue, 0, sizeof(overdue));
    for (hi = apr_hash_first(NULL, f->calls); hi; hi = apr_hash_next(hi)) {
        const ot_flight_call_t *c = apr_hash_this_val(hi);
        if (c->started != 0 && !c->done && now - c->began > patience(c->issuer)) {
            overdue[c->issuer - f->issuers] = 1;
        }
    }
    for (i = 0; i <= OT_FLIGHT_ISSUERS; ++i) {
        const ot_flight_issuer_t *e = &f->issuers[i];
        if (e->pending > 0 && !overdue[i] && e->latency < SLOW_LATENCY) {
            return 1;
        }
    }
    return 0;
}

/** 1 when a request to e over the bound gets no place to wait for (mutex held). */
static int no_room_soon(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now,
                        apr_interval_time_t limit)
{
    return issuer_slow(f, e, now, limit) || !room_can_free(f, now);
}

/**
 * max_pending requests already wait (mutex held, and held again on return). A healthy issuer
 * frees a place within what its latency explains, and one more for every max_pending requests
 * queued ahead: wait that long (no longer than wait_limit) for one, as long as the issuer e is
 * not slow and some place is held by a request to an issuer that is not slow (no_room_soon).
 * Otherwise APR_EBUSY at once, as when no place freed up in time.
 */
static apr_status_t wait_for_room(ot_flight_t *f, ot_flight_issuer_t *e,
                                  apr_interval_time_t wait_limit)
{
    apr_time_t now = mono_now(), until;
    apr_interval_time_t limit = patience(e), queued;

    if (no_room_soon(f, e, now, limit)) {
        return APR_EBUSY;
    }
    queued = limit * (1 + (apr_interval_time_t)(f->room_waiters / f->max_pending));
    until = now + (queued < wait_limit ? queued : wait_limit);
    while (f->pending >= f->max_pending) {
        if ((now = mono_now()) >= until || no_room_soon(f, e, now, limit)) {
            /* Woken for a place it does not take: pass it on to a request of another issuer. */
            if (f->pending < f->max_pending && f->room_waiters > 0) {
                apr_thread_cond_signal(f->room);
            }
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

/** Refused admission rv (mutex held on entry, released on return). */
static apr_status_t refuse(ot_flight_t *f, ot_flight_issuer_t *e, apr_status_t rv)
{
    --e->users;
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
    apr_uint64_t h = issuer_hash(issuer ? issuer : "");
    apr_status_t rv;
    int admitted = admit == NULL || admit->fn == NULL;

    *joined = 0;
    memset(resp, 0, sizeof(*resp));
    apr_thread_mutex_lock(f->mutex);
    e = issuer_pin(f, issuer ? issuer : "", h);
    /* The bound is full, and this request's issuer is slow or slow ones hold every place: no
     * wait, no budget spent. */
    if (f->pending >= f->max_pending && no_room_soon(f, e, mono_now(), patience(e))) {
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
