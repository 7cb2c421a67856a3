/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_flight.c. The fetch function stands in for the issuer: it sleeps, counts its
 * calls and answers with the time it started, so a caller can check that the answer it got came
 * from a call that started after it arrived.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
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

static ot_stats_t stats;

/** Two issuers' introspection endpoints. */
#define URL_A "https://a.example/realms/r/protocol/openid-connect/token/introspect"
#define URL_B "https://b.example/realms/r/protocol/openid-connect/token/introspect"

/** Calls under way at once, whichever the issuer, and the most seen (make_flight resets). */
static int in_fetch, most_in_fetch;

/** While it points to an issuer (atomic), that issuer's fetches wait before their delay. */
static issuer_t *held;

static void fake_fetch(void *baton, ot_http_resp_t *resp, apr_pool_t *p)
{
    issuer_t *iss = baton;
    apr_time_t started = apr_time_now();
    int now = __atomic_add_fetch(&in_fetch, 1, __ATOMIC_SEQ_CST);
    int most = __atomic_load_n(&most_in_fetch, __ATOMIC_SEQ_CST);

    while (now > most && !__atomic_compare_exchange_n(&most_in_fetch, &most, now, 0,
                                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    ck_assert_ptr_ne(p, iss->leader_pool);
    __atomic_add_fetch(&iss->fetches, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&held, __ATOMIC_SEQ_CST) == iss) {
        apr_sleep(apr_time_from_msec(1));
    }
    apr_sleep(iss->delay);
    __atomic_sub_fetch(&in_fetch, 1, __ATOMIC_SEQ_CST);
    resp->err = OT_HTTP_OK;
    resp->status = 200;
    resp->body = apr_psprintf(p, "%" APR_TIME_T_FMT, started);
    resp->body_len = strlen(resp->body);
    resp->content_type = apr_pstrdup(p, "application/json");
    resp->errmsg = NULL;
}

static void *APR_THREAD_FUNC caller_run(apr_thread_t *t, void *baton)
{
    caller_t *c = baton;
    apr_pool_t *p;
    ot_http_resp_t resp;
    apr_time_t not_before;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    apr_sleep(c->start_after);
    c->arrival = apr_time_now();
    not_before = c->always_validate ? c->arrival : 0;
    if (c->destroy_pool_at_once) {
        c->iss->leader_pool = p;
    }
    c->rv = ot_flight_run(c->f, c->url, (const unsigned char *)c->key, strlen(c->key),
                          not_before, c->wait_limit, fake_fetch, c->iss, c->admit, &resp,
                          &c->joined, p);
    c->returned = apr_time_now();
    if (c->rv == APR_SUCCESS) {
        c->answer_started = apr_atoi64(resp.body);
        apr_cpystrn(c->body, resp.body, sizeof(c->body));
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/** Run n callers in threads and wait for all of them. */
static void run_callers(caller_t *c, int n)
{
    apr_thread_t **t = apr_pcalloc(ot_test_pool, sizeof(*t) * (apr_size_t)n);
    apr_status_t rv;
    int i;

    for (i = 0; i < n; ++i) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, caller_run, &c[i], ot_test_pool), 0);
    }
    for (i = 0; i < n; ++i) {
        apr_thread_join(&rv, t[i]);
    }
}

static caller_t *make_callers(ot_flight_t *f, issuer_t *iss, int n)
{
    caller_t *c = apr_pcalloc(ot_test_pool, sizeof(*c) * (apr_size_t)n);
    int i;

    for (i = 0; i < n; ++i) {
        c[i].f = f;
        c[i].iss = iss;
        c[i].key = "token-key";
        c[i].url = URL_A;
        c[i].wait_limit = apr_time_from_sec(5);
    }
    return c;
}

static ot_flight_t *make_flight(int max_pending)
{
    ot_flight_t *f;

    memset(&stats, 0, sizeof(stats));
    in_fetch = most_in_fetch = 0;
    held = NULL;
    ck_assert_int_eq(ot_flight_create(&f, max_pending, ot_test_pool), APR_SUCCESS);
    ot_flight_set_stats(f, &stats);
    return f;
}

START_TEST(test_coalesce)
{
    issuer_t iss = { apr_time_from_msec(200), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 32);
    int i, joined = 0;

    for (i = 0; i < 32; ++i) {
        c[i].start_after = i * 2000;
    }
    run_callers(c, 32);
    for (i = 0; i < 32; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        joined += c[i].joined;
    }
    ck_assert_int_le(iss.fetches, 2);
    ck_assert_int_eq(joined, 32 - iss.fetches);
    ck_assert_uint_eq(stats.coalesced, (apr_uint64_t)joined);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * Always-validate: callers arrive every 5 ms while each call takes 40 ms. Nobody may be answered
 * by a call that started before it arrived, yet those arriving during one call share the next.
 */
START_TEST(test_never_older_than_arrival)
{
    issuer_t iss = { apr_time_from_msec(40), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 48);
    int i, joined = 0;

    for (i = 0; i < 48; ++i) {
        c[i].start_after = i * 5000;
        c[i].always_validate = 1;
    }
    run_callers(c, 48);
    for (i = 0; i < 48; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_int_ge(c[i].answer_started, c[i].arrival);
        joined += c[i].joined;
    }
    ck_assert_int_eq(iss.fetches, 48 - joined);
    ck_assert_int_le(iss.fetches, 12);
    ck_assert_uint_eq(stats.coalesced, (apr_uint64_t)joined);
}
END_TEST

/*
 * A caller arriving after a call started may not join it: it leads the next call, which starts
 * when the running one ends. Callers arriving meanwhile join that next call, bound or not.
 */
START_TEST(test_late_caller_leads_next)
{
    issuer_t iss = { apr_time_from_msec(300), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 4);
    int i;

    c[0].always_validate = c[1].always_validate = c[3].always_validate = 1;
    c[1].start_after = apr_time_from_msec(100);
    c[2].start_after = c[3].start_after = apr_time_from_msec(200);
    run_callers(c, 4);
    ck_assert_int_eq(iss.fetches, 2);
    ck_assert_int_eq(c[0].joined, 0);
    ck_assert_int_eq(c[1].joined, 0);
    ck_assert_int_ge(c[1].answer_started, c[0].answer_started + apr_time_from_msec(300));
    for (i = 1; i < 4; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_int_ge(c[i].answer_started, c[i].arrival);
        ck_assert_str_eq(c[i].body, c[1].body);
    }
    ck_assert_int_eq(c[2].joined, 1);
    ck_assert_int_eq(c[3].joined, 1);
    ck_assert_str_ne(c[0].body, c[1].body);
}
END_TEST

/* The next call waits for a slow running one no longer than its leader's wait_limit. */
START_TEST(test_queued_call_bounded)
{
    issuer_t iss = { apr_time_from_msec(500), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 2);

    c[1].always_validate = 1;
    c[1].start_after = apr_time_from_msec(50);
    c[1].wait_limit = apr_time_from_msec(100);
    run_callers(c, 2);
    ck_assert_int_eq(iss.fetches, 2);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_int_ge(c[1].answer_started - c[1].arrival, apr_time_from_msec(100));
    ck_assert_int_lt(c[1].answer_started - c[1].arrival, apr_time_from_msec(300));
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

START_TEST(test_busy)
{
    issuer_t iss = { apr_time_from_msec(300), 0, NULL };
    ot_flight_t *f = make_flight(2);
    caller_t *c = make_callers(f, &iss, 4);

    c[1].key = "other-key";
    c[2].start_after = apr_time_from_msec(100);
    c[3].start_after = apr_time_from_msec(500);
    run_callers(c, 4);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_int_eq(c[2].rv, APR_EBUSY);
    ck_assert_int_eq(c[3].rv, APR_SUCCESS);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_BUSY], 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * A burst over the bound while the issuer is healthy waits for places instead of failing: the
 * issuer answers in 50 ms, and six requests for six keys meet a bound of three.
 */
START_TEST(test_healthy_burst_waits)
{
    issuer_t iss = { apr_time_from_msec(50), 0, NULL };
    ot_flight_t *f = make_flight(3);
    caller_t *warm = make_callers(f, &iss, 1);
    caller_t *c = make_callers(f, &iss, 6);
    static const char *keys[] = { "k0", "k1", "k2", "k3", "k4", "k5" };
    int i;

    run_callers(warm, 1);           /* the issuer's latency is known: 100 ms */
    for (i = 0; i < 6; ++i) {
        c[i].key = keys[i];
    }
    run_callers(c, 6);
    for (i = 0; i < 6; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(iss.fetches, 7);
    ck_assert_uint_eq(stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * However good its history, an issuer with a call overdue now is slow: a request over the bound
 * gets APR_EBUSY at once instead of waiting for a place.
 */
START_TEST(test_overdue_call_sheds_at_once)
{
    issuer_t fast = { apr_time_from_msec(20), 0, NULL }, slow = { apr_time_from_sec(1), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 1);
    caller_t *c = make_callers(f, &slow, 2);

    run_callers(warm, 1);           /* latency 20 ms: 210 ms explained */
    c[1].iss = &fast;
    c[1].key = "other-key";
    c[1].start_after = apr_time_from_msec(400);
    run_callers(c, 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_EBUSY);
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(150));
    ck_assert_uint_eq(stats.shed_slow, 1);
    ck_assert_int_eq(fast.fetches, 1);
}
END_TEST

/*
 * An issuer that is slow steadily (every call 300 ms) never has a call overdue by what its
 * latency explains (a second, the cap), yet a request over the bound gets APR_EBUSY at once:
 * waiting up to a second for a place, such requests took the threads the bound keeps free.
 */
START_TEST(test_steadily_slow_sheds_at_once)
{
    issuer_t slow = { apr_time_from_msec(300), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &slow, 1);
    caller_t *c = make_callers(f, &slow, 2);

    run_callers(warm, 1);           /* latency 300 ms: slow, though it explains a second */
    c[1].key = "other-key";
    c[1].start_after = apr_time_from_msec(100);
    run_callers(c, 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_EBUSY);
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(100));
    ck_assert_uint_eq(stats.shed_slow, 1);
    ck_assert_int_eq(slow.fetches, 2);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * One call that ran far past what any latency explains (an issuer that hung until the timeout
 * once) does not make a healthy issuer look steadily slow for dozens of calls: a few fast calls
 * later, a request over the bound waits for a place again instead of getting APR_EBUSY. (Counted
 * at its full 2.5 s, the one call kept the average over 100 ms through the eight fast ones.)
 */
START_TEST(test_one_hung_call_is_soon_forgotten)
{
    issuer_t fast = { apr_time_from_msec(10), 0, NULL }, hung = { apr_time_from_msec(2500), 0,
                                                                   NULL };
    issuer_t busy = { apr_time_from_msec(150), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *one = make_callers(f, &fast, 1), *c = make_callers(f, &busy, 2);
    int i;

    run_callers(one, 1);            /* latency 10 ms */
    one->iss = &hung;
    run_callers(one, 1);            /* once: 2.5 s */
    one->iss = &fast;
    for (i = 0; i < 8; ++i) {
        run_callers(one, 1);
    }
    c[1].iss = &fast;
    c[1].key = "other-key";
    c[1].start_after = apr_time_from_msec(50);
    run_callers(c, 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_uint_eq(stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * Two issuers, one steadily slow (A: 300 ms calls, one now hung for a second) and one healthy (B:
 * 60 ms). A burst to B over the bound waits for places and is answered: it was shed with A's
 * slowness (one latency per process: 270 ms after B's first call). A request to A over the bound
 * is still shed at once, and the bound holds for both together.
 */
START_TEST(test_slow_issuer_does_not_shed_another)
{
    issuer_t slow = { apr_time_from_msec(300), 0, NULL }, fast = { apr_time_from_msec(60), 0,
                                                                   NULL };
    issuer_t hung = { apr_time_from_sec(1), 0, NULL };
    ot_flight_t *f = make_flight(3);
    caller_t *warm = make_callers(f, &slow, 2);
    caller_t *c = make_callers(f, &fast, 8);
    static const char *keys[] = { "a-hung", "b0", "b1", "b2", "b3", "b4", "b5", "a-new" };
    int i;

    warm[1].iss = &fast;
    warm[1].url = URL_B;
    warm[1].key = "b-warm";
    run_callers(warm, 1);           /* A: 300 ms, slow steadily */
    run_callers(warm + 1, 1);       /* B: 60 ms, healthy */
    for (i = 0; i < 8; ++i) {
        c[i].key = keys[i];
        c[i].url = URL_B;
        c[i].start_after = apr_time_from_msec(100);
    }
    c[0].url = c[7].url = URL_A;
    c[0].iss = &hung;
    c[0].start_after = 0;
    c[7].iss = &slow;
    c[7].start_after = apr_time_from_msec(150);  /* B's calls fill the bound until 280 ms */
    run_callers(c, 8);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    for (i = 1; i < 7; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(c[7].rv, APR_EBUSY);
    ck_assert_int_lt(c[7].returned - c[7].arrival, apr_time_from_msec(100));
    ck_assert_uint_eq(stats.shed_slow, 1);
    ck_assert_int_eq(fast.fetches, 7);
    ck_assert_int_eq(slow.fetches, 1);
    ck_assert_int_le(most_in_fetch, 3);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * A call to issuer A overdue now (hung for a second, 20 ms explained 210) makes A slow, not B: a
 * request to B over the bound waits for a place and is answered (it was shed at once), while one
 * to A over the bound is shed at once. The bound holds for both together.
 */
START_TEST(test_overdue_call_to_one_issuer_spares_another)
{
    issuer_t fast = { apr_time_from_msec(20), 0, NULL }, hung = { apr_time_from_sec(1), 0, NULL };
    issuer_t b = { apr_time_from_msec(60), 0, NULL };
    ot_flight_t *f = make_flight(2);
    caller_t *warm = make_callers(f, &fast, 2);
    caller_t *c = make_callers(f, &b, 4);

    warm[1].url = URL_B;
    warm[1].key = "b-warm";
    run_callers(warm, 2);           /* both issuers: 20 ms, 210 ms explained */
    c[0].iss = &hung;
    c[0].key = "a-hung";
    c[1].url = c[2].url = URL_B;
    c[1].key = "b0";
    c[2].key = "b1";
    c[1].start_after = c[2].start_after = apr_time_from_msec(400);   /* A's call overdue */
    c[3].iss = &fast;
    c[3].key = "a-new";
    c[3].start_after = apr_time_from_msec(430);  /* B's calls fill the bound until 520 ms */
    run_callers(c, 4);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_int_eq(c[2].rv, APR_SUCCESS);
    ck_assert_int_eq(c[3].rv, APR_EBUSY);
    ck_assert_int_lt(c[3].returned - c[3].arrival, apr_time_from_msec(100));
    ck_assert_uint_eq(stats.shed_slow, 1);
    ck_assert_int_eq(b.fetches, 2);
    ck_assert_int_eq(fast.fetches, 2);
    ck_assert_int_le(most_in_fetch, 2);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * Every place of the bound held by a call to a slow issuer (A: hung for 3 s, overdue after 50 ms):
 * a burst to a healthy issuer (B, 20 ms) gets APR_EBUSY at once, as before issuers were told
 * apart, since no place can free up within what B's latency explains. (It waited for a place A
 * held, each request 210 ms more than the one ahead of it, up to its wait limit: twelve requests
 * held threads for up to 2.5 s over the bound, however many; the bound kept no thread free.)
 */
START_TEST(test_bound_held_by_slow_issuer_sheds_all)
{
    issuer_t hung = { apr_time_from_sec(3), 0, NULL }, fast = { apr_time_from_msec(20), 0,
                                                                NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 1);
    caller_t *c = make_callers(f, &fast, 13);
    int i;

    warm[0].url = URL_B;
    warm[0].key = "b-warm";
    run_callers(warm, 1);           /* B: 20 ms, 210 ms explained */
    c[0].iss = &hung;
    c[0].key = "a-hung";
    for (i = 1; i < 13; ++i) {
        c[i].url = URL_B;
        c[i].key = apr_psprintf(ot_test_pool, "b%d", i);
        c[i].start_after = apr_time_from_msec(200);     /* A's call overdue */
    }
    run_callers(c, 13);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    for (i = 1; i < 13; ++i) {
        ck_assert_int_eq(c[i].rv, APR_EBUSY);
        ck_assert_int_lt(c[i].returned - c[i].arrival, apr_time_from_sec(1));
    }
    ck_assert_uint_eq(stats.shed_slow, 12);
    ck_assert_int_eq(fast.fetches, 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/* Callers c[0..n) ask n issuers never seen before (numbered from *next on), a key each. */
static void new_issuers(caller_t *c, int n, int *next)
{
    int i;

    for (i = 0; i < n; ++i) {
        c[i].url = apr_psprintf(ot_test_pool, "https://i%d.example/introspect", (*next)++);
        c[i].key = c[i].url;        /* as in the module, whose keys cover the URL */
    }
}

/*
 * More issuers with requests under way at once than the table keeps apart (40: the last ones
 * share one entry) are all answered, none shed. Then, with a bound of two, 80 issuers more, two
 * at a time, recycle every entry, and in the recycled table a slow issuer (A, 300 ms) is still
 * told from a healthy one (B, 60 ms): with A's call under way, two requests to B are answered and
 * one to A is shed.
 */
START_TEST(test_many_issuers)
{
    issuer_t iss = { apr_time_from_msec(100), 0, NULL }, quick = { apr_time_from_msec(5), 0,
                                                                   NULL };
    issuer_t slow = { apr_time_from_msec(300), 0, NULL }, fast = { apr_time_from_msec(60), 0,
                                                                   NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 40), *d;
    int i, next = 0;

    new_issuers(c, 40, &next);
    run_callers(c, 40);
    for (i = 0; i < 40; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(iss.fetches, 40);
    ck_assert_uint_eq(stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);

    f = make_flight(2);
    d = make_callers(f, &slow, 4);
    d[1].iss = &fast;
    d[1].url = URL_B;
    c = make_callers(f, &quick, 2);
    for (i = 0; i < 40; ++i) {
        new_issuers(c, 2, &next);
        run_callers(c, 2);
        ck_assert_int_eq(c[0].rv, APR_SUCCESS);
        ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    }
    run_callers(d, 1);              /* A: 300 ms, slow steadily */
    run_callers(d + 1, 1);          /* B: 60 ms, healthy */
    d[0].key = "a-long";
    d[1].key = "b0";
    d[2].key = "b1";
    d[2].iss = &fast;
    d[2].url = URL_B;
    d[3].key = "a-new";
    d[1].start_after = d[2].start_after = apr_time_from_msec(50);
    d[3].start_after = apr_time_from_msec(80);     /* B's calls fill the bound until 170 ms */
    run_callers(d, 4);
    ck_assert_int_eq(d[0].rv, APR_SUCCESS);
    ck_assert_int_eq(d[1].rv, APR_SUCCESS);
    ck_assert_int_eq(d[2].rv, APR_SUCCESS);
    ck_assert_int_eq(d[3].rv, APR_EBUSY);
    ck_assert_uint_eq(stats.shed_slow, 1);
    ck_assert_int_le(most_in_fetch, 2);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/* An admission that refuses stops a new call, but never a request joining one. */
static apr_status_t refuse_all(void *baton)
{
    ++*(int *)baton;
    return APR_EAGAIN;
}

START_TEST(test_admission)
{
    issuer_t iss = { apr_time_from_msec(300), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 1);
    ot_flight_admit_t admit = { refuse_all, NULL };
    ot_http_resp_t resp;
    apr_thread_t *t;
    apr_status_t rv;
    int asked = 0, joined = 0;

    admit.baton = &asked;
    ck_assert_int_eq(ot_flight_run(f, URL_A, (const unsigned char *)"new", 3, 0,
                                   apr_time_from_sec(5), fake_fetch, &iss, &admit, &resp,
                                   &joined, ot_test_pool),
                     APR_EAGAIN);
    ck_assert_int_eq(asked, 1);
    ck_assert_int_eq(iss.fetches, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);
    /* A call for token-key is under way: joining it asks nothing. */
    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_run, &c[0], ot_test_pool), 0);
    apr_sleep(apr_time_from_msec(100));
    ck_assert_int_eq(ot_flight_run(f, URL_A, (const unsigned char *)"token-key", 9, 0,
                                   apr_time_from_sec(5), fake_fetch, &iss, &admit, &resp,
                                   &joined, ot_test_pool), APR_SUCCESS);
    apr_thread_join(&rv, t);
    ck_assert_int_eq(joined, 1);
    ck_assert_int_eq(asked, 1);
    ck_assert_int_eq(iss.fetches, 1);
}
END_TEST

/*
 * A request that would lead a call is asked its admission before it waits for a place: over its
 * budget it is refused at once (APR_EAGAIN, the 429), not held for a place and then shed as if
 * the issuer were slow (it got APR_EBUSY, the 503, after waiting).
 */
START_TEST(test_admission_before_waiting)
{
    issuer_t slow = { apr_time_from_sec(1), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *c = make_callers(f, &slow, 1);
    ot_flight_admit_t admit = { refuse_all, NULL };
    ot_http_resp_t resp;
    apr_thread_t *t;
    apr_status_t rv;
    int asked = 0, joined = 0;

    admit.baton = &asked;
    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_run, &c[0], ot_test_pool), 0);
    while (ot_flight_pending(f) == 0) {
        apr_sleep(apr_time_from_msec(5));
    }
    ck_assert_int_eq(ot_flight_run(f, URL_A, (const unsigned char *)"new", 3, 0,
                                   apr_time_from_sec(5), fake_fetch, &slow, &admit, &resp,
                                   &joined, ot_test_pool),
                     APR_EAGAIN);
    ck_assert_int_eq(asked, 1);
    ck_assert_uint_eq(stats.shed_slow, 0);
    apr_thread_join(&rv, t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(slow.fetches, 1);
}
END_TEST

/*
 * With the bound full and a call overdue, a request is shed before its admission is asked: a
 * 503 for a slow issuer spends no budget (or every client retrying through an outage would
 * find its budget gone, and the server's ceiling, when the issuer came back).
 */
static apr_status_t admit_all(void *baton)
{
    ++*(int *)baton;
    return APR_SUCCESS;
}

START_TEST(test_shed_spends_no_admission)
{
    issuer_t slow = { apr_time_from_sec(1), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *c = make_callers(f, &slow, 1);
    ot_flight_admit_t admit = { admit_all, NULL };
    ot_http_resp_t resp;
    apr_thread_t *t;
    apr_status_t rv;
    int asked = 0, joined = 0;

    admit.baton = &asked;
    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_run, &c[0], ot_test_pool), 0);
    while (ot_flight_pending(f) == 0) {
        apr_sleep(apr_time_from_msec(5));
    }
    apr_sleep(apr_time_from_msec(300));     /* no history: 50 ms explained, so overdue now */
    ck_assert_int_eq(ot_flight_run(f, URL_A, (const unsigned char *)"new", 3, 0,
                                   apr_time_from_sec(5), fake_fetch, &slow, &admit, &resp,
                                   &joined, ot_test_pool),
                     APR_EBUSY);
    ck_assert_int_eq(asked, 0);
    ck_assert_uint_eq(stats.shed_slow, 1);
    apr_thread_join(&rv, t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
}
END_TEST

/* Wait (5 s at most) until n requests wait in wait_for_room for a place; how many do. */
static int until_room_waiters(ot_flight_t *f, int n)
{
    apr_time_t until = apr_time_now() + apr_time_from_sec(5);
    int now;

    for (;;) {
        apr_thread_mutex_lock(f->mutex);
        now = f->room_waiters;
        apr_thread_mutex_unlock(f->mutex);
        if (now == n || apr_time_now() > until) {
            break;
        }
        apr_sleep(apr_time_from_msec(1));
    }
    return now;
}

/*
 * A request woken for a free place that leaves without taking it passes the place on. Bound of
 * one, held by a call H to issuer A (held until the test lets it end). Request R, for H's key,
 * waits for a place to join H; then request B, to issuer B, waits behind it. H ends: R is woken
 * first, finds H gone, and its admission refuses the new call it would lead. B must then start at
 * once: R took the signal of the free place with it, and B slept until its timed wait ran out
 * (what B's 30 ms latency explains, 290 ms after it began to wait). The arrivals are ordered by
 * polling, not by sleeps, and the latencies stay far below 100 ms (slow) on a loaded machine.
 */
START_TEST(test_refused_waiter_passes_place_on)
{
    issuer_t h = { 0, 0, NULL }, fast = { apr_time_from_msec(30), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 2);
    caller_t *c = make_callers(f, &h, 3);
    ot_flight_admit_t admit = { refuse_all, NULL };
    apr_thread_t *t[3];
    apr_time_t freed;
    apr_status_t rv;
    int asked = 0, i, waiting[3];

    warm[1].url = URL_B;
    warm[1].key = "b-warm";
    for (i = 0; i < 4; ++i) {       /* both issuers: 30 ms, 290 ms explained (one late wake-up */
        run_callers(warm, 1);       /* of a loaded machine moves it by an eighth) */
        run_callers(warm + 1, 1);
    }
    ck_assert_int_eq(warm[1].rv, APR_SUCCESS);
    admit.baton = &asked;
    c[1].admit = &admit;            /* R: joins H once it has a place */
    c[2].iss = &fast;               /* B */
    c[2].url = URL_B;
    c[2].key = "b-key";
    __atomic_store_n(&held, &h, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(apr_thread_create(&t[0], NULL, caller_run, &c[0], ot_test_pool), 0);
    while (ot_flight_pending(f) == 0) {
        apr_sleep(apr_time_from_msec(1));
    }
    for (i = 1; i < 3; ++i) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, caller_run, &c[i], ot_test_pool), 0);
        waiting[i] = until_room_waiters(f, i);
    }
    freed = apr_time_now();
    __atomic_store_n(&held, NULL, __ATOMIC_SEQ_CST);
    for (i = 0; i < 3; ++i) {
        apr_thread_join(&rv, t[i]);
    }
    ck_assert_int_eq(waiting[1], 1);   /* R waited, then B too, when H ended */
    ck_assert_int_eq(waiting[2], 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_EAGAIN);
    ck_assert_int_eq(asked, 1);
    ck_assert_int_eq(c[2].rv, APR_SUCCESS);
    ck_assert_int_eq(c[2].joined, 0);
    /* B started once H had ended, and well before its timed wait ran out. */
    ck_assert_int_ge(c[2].answer_started, freed);
    ck_assert_int_lt(c[2].answer_started - freed, apr_time_from_msec(150));
    ck_assert_uint_eq(stats.shed_slow, 0);
    ck_assert_int_eq(h.fetches, 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/* A wall clock the test can step. */
static apr_interval_time_t wall_shift;

static apr_time_t stepped_wall(void)
{
    return apr_time_now() + __atomic_load_n(&wall_shift, __ATOMIC_SEQ_CST);
}

/*
 * A step of the wall clock (NTP) during a call does not change what the issuer's latency is
 * taken to be: a call measured as lasting minus an hour made the latency negative, so that
 * nothing was explained any more and, for the next hundred calls or so, every request over the
 * bound was shed at once although the issuer answered in a fraction of a second.
 */
START_TEST(test_wall_clock_step)
{
    issuer_t fast = { apr_time_from_msec(20), 0, NULL }, a = { apr_time_from_msec(400), 0, NULL };
    issuer_t b = { apr_time_from_msec(200), 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 1);
    caller_t *c = make_callers(f, &a, 1);
    caller_t *d = make_callers(f, &b, 2);
    apr_thread_t *t;
    apr_status_t rv;

    wall_shift = 0;
    ot_flight_set_wall_clock(f, stepped_wall);
    run_callers(warm, 1);
    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_run, &c[0], ot_test_pool), 0);
    while (ot_flight_pending(f) == 0) {
        apr_sleep(apr_time_from_msec(5));
    }
    __atomic_store_n(&wall_shift, -apr_time_from_sec(3600), __ATOMIC_SEQ_CST);
    apr_thread_join(&rv, t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    /* A healthy issuer (200 ms calls after 20 and 400): the second request waits for a place. */
    d[1].key = "other-key";
    d[1].start_after = apr_time_from_msec(50);
    run_callers(d, 2);
    ck_assert_int_eq(d[0].rv, APR_SUCCESS);
    ck_assert_int_eq(d[1].rv, APR_SUCCESS);
    ck_assert_uint_eq(stats.shed_slow, 0);
}
END_TEST

/* The leader's pool is gone as soon as it has its answer; the waiters' answers are intact. */
START_TEST(test_answer_outlives_leader)
{
    issuer_t iss = { apr_time_from_msec(200), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 8);
    int i;

    c[0].destroy_pool_at_once = 1;
    for (i = 1; i < 8; ++i) {
        c[i].start_after = apr_time_from_msec(50);
    }
    run_callers(c, 8);
    ck_assert_int_eq(iss.fetches, 1);
    for (i = 1; i < 8; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_int_eq(c[i].joined, 1);
        ck_assert_str_eq(c[i].body, c[0].body);
    }
}
END_TEST

START_TEST(test_wait_limit)
{
    issuer_t iss = { apr_time_from_msec(500), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 2);
    apr_time_t t0 = apr_time_now();

    c[1].start_after = apr_time_from_msec(50);
    c[1].wait_limit = apr_time_from_msec(100);
    run_callers(c, 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_TIMEUP);
    ck_assert_int_ge(c[1].returned - c[1].arrival, apr_time_from_msec(100));
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(300));
    ck_assert_int_ge(apr_time_now() - t0, apr_time_from_msec(500));
    ck_assert_int_eq(iss.fetches, 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

Suite *suite_flight(void)
{
    Suite *s = suite_create("flight");
    TCase *tc = tcase_create("flight");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_coalesce);
    tcase_add_test(tc, test_never_older_than_arrival);
    tcase_add_test(tc, test_late_caller_leads_next);
    tcase_add_test(tc, test_queued_call_bounded);
    tcase_add_test(tc, test_busy);
    tcase_add_test(tc, test_healthy_burst_waits);
    tcase_add_test(tc, test_overdue_call_sheds_at_once);
    tcase_add_test(tc, test_steadily_slow_sheds_at_once);
    tcase_add_test(tc, test_one_hung_call_is_soon_forgotten);
    tcase_add_test(tc, test_slow_issuer_does_not_shed_another);
    tcase_add_test(tc, test_overdue_call_to_one_issuer_spares_another);
    tcase_add_test(tc, test_bound_held_by_slow_issuer_sheds_all);
    tcase_add_test(tc, test_many_issuers);
    tcase_add_test(tc, test_admission);
    tcase_add_test(tc, test_admission_before_waiting);
    tcase_add_test(tc, test_shed_spends_no_admission);
    tcase_add_test(tc, test_refused_waiter_passes_place_on);
    tcase_add_test(tc, test_wall_clock_step);
    tcase_add_test(tc, test_answer_outlives_leader);
    tcase_add_test(tc, test_wait_limit);
    suite_add_tcase(s, tc);
    return s;
}
