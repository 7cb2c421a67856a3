/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_flight_int.h
 * @brief What ot_flight.c (the calls, coalescing, the bound on waiting) and ot_flight_issuer.c
 *        (the table of issuers, their latencies, whether one is slow) share; nothing else
 *        includes it. Every function here expects f->mutex held.
 */
#ifndef OT_FLIGHT_INT_H
#define OT_FLIGHT_INT_H

#include <apr_hash.h>
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

/** FNV-1a of the URL: entries are compared by it before their bytes. */
apr_uint64_t ot_flight_issuer_hash(const char *url);

/**
 * The entry of the issuer at url (hash h), held for the caller until it leaves (users): the one
 * it had, else a free one or the least recently used of those no request uses now, else the
 * shared one. A recycled entry starts without history, as a new process does.
 */
ot_flight_issuer_t *ot_flight_issuer_pin(ot_flight_t *f, const char *url, apr_uint64_t h);

/** A call to e took d (monotonic): its latency moves towards d. */
void ot_flight_note_latency(ot_flight_issuer_t *e, apr_interval_time_t d);

/** What e's recent latency explains: eight times its average and 50 ms, at most 1 s. */
apr_interval_time_t ot_flight_patience(const ot_flight_issuer_t *e);

/**
 * 1 when a request to e over the bound gets no place to wait for: e is slow now (limit: what its
 * latency explains, ot_flight_patience), or requests to slow issuers hold every place. now is on
 * the monotonic clock.
 */
int ot_flight_no_room_soon(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now,
                           apr_interval_time_t limit);

#endif
