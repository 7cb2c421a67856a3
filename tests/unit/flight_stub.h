/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * What the unit tests of the coalescer (test_flight.c, test_flight_issuers.c) share: a stand-in
 * issuer whose fetch sleeps, counts its calls and answers with the time it started (so a caller
 * can check that its answer came from a call that started after it arrived), callers run in
 * threads, and ways to wait (5 s at most) for the state a test needs instead of sleeping for it.
 */
#ifndef FLIGHT_STUB_H
#define FLIGHT_STUB_H

#include <apr_thread_proc.h>
#include "ot_flight.h"
#include "ot_flight_int.h"
#include "ot_stats.h"
#include "ot_unit.h"

/** The stand-in issuer. */
typedef struct {
    apr_interval_time_t delay;
    int fetches;                 /* atomic */
    apr_pool_t *leader_pool;     /* a pool the fetch must not be given */
} issuer_t;

/** One caller, run in its own thread. */
typedef struct {
    ot_flight_t *f;
    issuer_t *iss;
    apr_interval_time_t start_after;   /* sleep before arriving */
    apr_interval_time_t wait_limit;
    int always_validate;               /* not_before = arrival instead of 0 */
    const char *key;
    const char *url;                   /* the issuer's introspection URL */
    apr_time_t arrival;
    apr_time_t answer_started;         /* parsed from the answer */
    apr_time_t returned;
    apr_status_t rv;
    int joined;
    int destroy_pool_at_once;          /* the caller's pool ends as soon as it has its answer */
    const ot_flight_admit_t *admit;    /* asked before a new call (NULL: none) */
    char body[64];
} caller_t;

/** Two issuers' introspection endpoints. */
#define URL_A "https://a.example/realms/r/protocol/openid-connect/token/introspect"
#define URL_B "https://b.example/realms/r/protocol/openid-connect/token/introspect"

/** The statistics of the coalescer make_flight made last. */
extern ot_stats_t flight_stats;

/** Calls under way at once, whichever the issuer, and the most seen (make_flight resets). */
extern int in_fetch, most_in_fetch;

/** The fetch of the stand-in issuer (baton: its issuer_t). */
void fake_fetch(void *baton, ot_http_resp_t *resp, apr_pool_t *p);

/** Until release_issuer, iss's fetches wait (after counting themselves) before their delay. */
void hold_issuer(issuer_t *iss);
void release_issuer(issuer_t *iss);

void *APR_THREAD_FUNC caller_run(apr_thread_t *t, void *baton);

/** Run n callers in threads and wait for all of them. */
void run_callers(caller_t *c, int n);

/** Start caller c in a thread of its own (join it with join_caller). */
apr_thread_t *start_caller(caller_t *c);
void join_caller(apr_thread_t *t);

caller_t *make_callers(ot_flight_t *f, issuer_t *iss, int n);

/** A coalescer with the bound max_pending; statistics, in_fetch and holds reset. */
ot_flight_t *make_flight(int max_pending);

/** Wait (5 s at most) until n requests wait for a place; how many do. */
int until_room_waiters(ot_flight_t *f, int n);

/** Wait (5 s at most) until n requests are in ot_flight_run; how many are. */
int until_pending(ot_flight_t *f, int n);

/** Wait (5 s at most) until iss has had n fetches; how many it has had. */
int until_fetches(issuer_t *iss, int n);

/** Calls of c (warm-up): n times, one after the other, each must succeed. */
void warm_issuer(caller_t *c, int n);

/** An admission that counts its askings (baton: int) and refuses. */
apr_status_t refuse_all(void *baton);

#endif
