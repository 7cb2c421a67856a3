/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_flight.h
 * @brief Coalescing of identical issuer calls between the threads of one process.
 *
 * When several threads need the same key checked at the same moment, one of them (the leader)
 * calls the issuer and the others wait for its answer. A caller may only join a call that started
 * at or after its own not_before; with OfftokAlwaysValidate that is the request's arrival, so no
 * request is ever answered by a call that began before it arrived. The leader holds no lock while
 * it calls. The number of requests waiting on issuers in this process is bounded, for all issuers
 * together; the bound turns a request away only when the issuer it would ask is slow, not when a
 * burst of a healthy one fills it, nor when another issuer is slow.
 */
#ifndef OT_FLIGHT_H
#define OT_FLIGHT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "ot_http.h"

typedef struct ot_flight_t ot_flight_t;

/** Make the call; fill resp from pool p (which outlives the waiters' copies). */
typedef void ot_flight_fetch_fn(void *baton, ot_http_resp_t *resp, apr_pool_t *p);

/**
 * Asked, with the coalescer's lock held, before a request starts a new call (never when it joins
 * one): APR_SUCCESS lets it; anything else is what ot_flight_run then returns, with no call made.
 * Keep it short.
 */
typedef apr_status_t ot_flight_admit_fn(void *baton);

typedef struct {
    ot_flight_admit_fn *fn;
    void *baton;
} ot_flight_admit_t;

/** Create a coalescer that lets at most max_pending requests wait on calls at once. */
apr_status_t ot_flight_create(ot_flight_t **pf, int max_pending, apr_pool_t *p);

/**
 * Answer key: join a call for key that started at or after not_before, or lead a new one.
 * A call that has not started yet is joinable by anyone: a new call for a key whose running call
 * it may not join waits for that call to end (at most wait_limit) before it starts, and every
 * request arriving meanwhile shares it. A fetch may thus start up to wait_limit after its leader
 * entered: bound the fetch by the leading request's own deadline (ot_http_req_t.deadline).
 * On APR_SUCCESS *resp is a deep copy from p and *joined says whether another thread's call
 * answered. A request that would start a call asks admit first (may be NULL), before it waits
 * for a place below: a refusal is returned at once. One shed at once for an overdue call is not
 * asked; one admitted whose wait then runs out, or that finds a call to join once it has a
 * place, has spent its admission for nothing.
 * Slowness is the issuer's own: issuer names the endpoint the request's call goes to (the
 * introspection URL; NULL is one more name), and each has its own latency average and overdue
 * calls. When max_pending requests already wait, a request waits for a place as long as its
 * issuer's recent latency explains (eight times its moving average plus 50 ms, at most a second,
 * at most wait_limit), and not at all while its issuer is slow: that issuer's calls take 100 ms or
 * more on average, or a call of this process to it has been running longer than its latency
 * explains. Another issuer's slowness does not shed it, unless requests to slow issuers hold
 * every place (none can free up in time: it is shed at once too). A slow issuer thus holds at
 * most max_pending threads (the bound counts all issuers' requests together), and a request to a
 * healthy one waits for a place rather than being shed. The latencies of 32 issuers are kept
 * apart (the least recently asked one is forgotten for a new one); beyond that, issuers with
 * requests under way in all 32 share one more entry, and each other's slowness.
 * APR_EBUSY: no place (the issuer is slow; answer 503). APR_TIMEUP: the leader did not finish
 * within wait_limit. Otherwise what admit returned.
 */
apr_status_t ot_flight_run(ot_flight_t *f, const char *issuer,
                           const unsigned char *key, apr_size_t key_len,
                           apr_time_t not_before, apr_interval_time_t wait_limit,
                           ot_flight_fetch_fn *fetch, void *baton,
                           const ot_flight_admit_t *admit,
                           ot_http_resp_t *resp, int *joined, apr_pool_t *p);

/**
 * Count into stats (may be NULL; call before any thread uses f): coalesced gets one for each
 * request answered by another thread's call, issuer_errors[OT_ERR_BUSY] and shed_slow one for each
 * APR_EBUSY.
 */
struct ot_stats_t;
void ot_flight_set_stats(ot_flight_t *f, struct ot_stats_t *stats);

/**
 * Tests: the wall clock calls' start times are read from (compared with not_before, which is on
 * the same clock). apr_time_now unless set.
 */
void ot_flight_set_wall_clock(ot_flight_t *f, apr_time_t (*wall)(void));

/** Requests currently waiting or leading in this process. Tests only. */
int ot_flight_pending(ot_flight_t *f);

#endif
