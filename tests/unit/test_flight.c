/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_flight.c: coalescing, the bound on waiting, admission, the waiters' answers.
 * (How issuers are told apart and when one is slow: test_flight_issuers.c. The stand-in issuer
 * and callers: flight_stub.h.)
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "flight_stub.h"

/*
 * 32 requests for one key while its call is under way (held until all of them are in) share
 * that one call.
 */
START_TEST(test_coalesce)
{
    issuer_t iss = { 0, 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 32);
    apr_thread_t *t[32];
    int i, joined = 0, in;

    hold_issuer(&iss);
    for (i = 0; i < 32; ++i) {
        t[i] = start_caller(&c[i]);
    }
    in = until_pending(f, 32);
    release_issuer(&iss);
    for (i = 0; i < 32; ++i) {
        join_caller(t[i]);
    }
    ck_assert_int_eq(in, 32);
    for (i = 0; i < 32; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        joined += c[i].joined;
    }
    ck_assert_int_eq(iss.fetches, 1);
    ck_assert_int_eq(joined, 31);
    ck_assert_uint_eq(flight_stats.coalesced, (apr_uint64_t)joined);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * Always-validate: callers arrive every 5 ms while each call takes 40 ms. Nobody may be answered
 * by a call that started before it arrived, yet those arriving during one call share the next.
 * (Timing decides only how they group, so only a loose bound on the calls: 48 requests.)
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
    ck_assert_int_le(iss.fetches, 24);
    ck_assert_uint_eq(flight_stats.coalesced, (apr_uint64_t)joined);
}
END_TEST

/*
 * A caller arriving after a call started may not join it: it leads the next call, which starts
 * when the running one ends. Callers arriving meanwhile join that next call, bound or not. The
 * running call is held until all four are in.
 */
START_TEST(test_late_caller_leads_next)
{
    issuer_t iss = { 0, 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 4);
    apr_thread_t *t[4];
    apr_time_t released;
    int i, in[4];

    c[0].always_validate = c[1].always_validate = c[3].always_validate = 1;
    hold_issuer(&iss);
    t[0] = start_caller(&c[0]);
    in[0] = until_fetches(&iss, 1);   /* c[0]'s call has started */
    t[1] = start_caller(&c[1]);
    in[1] = until_pending(f, 2);
    t[2] = start_caller(&c[2]);
    t[3] = start_caller(&c[3]);
    in[2] = until_pending(f, 4);
    released = apr_time_now();
    release_issuer(&iss);
    for (i = 0; i < 4; ++i) {
        join_caller(t[i]);
    }
    ck_assert_int_eq(in[0], 1);
    ck_assert_int_eq(in[1], 2);
    ck_assert_int_eq(in[2], 4);
    ck_assert_int_eq(iss.fetches, 2);
    ck_assert_int_eq(c[0].joined, 0);
    ck_assert_int_eq(c[1].joined, 0);
    ck_assert_int_ge(c[1].answer_started, released);
    for (i = 0; i < 4; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_int_ge(c[i].answer_started, c[i].arrival);
    }
    for (i = 2; i < 4; ++i) {
        ck_assert_str_eq(c[i].body, c[1].body);
    }
    ck_assert_int_eq(c[2].joined, 1);
    ck_assert_int_eq(c[3].joined, 1);
    ck_assert_str_ne(c[0].body, c[1].body);
}
END_TEST

/*
 * The next call waits for a slow running one (3 s) no longer than its leader's wait_limit
 * (100 ms), then starts beside it.
 */
START_TEST(test_queued_call_bounded)
{
    issuer_t iss = { apr_time_from_msec(3000), 0, NULL }, next = { 0, 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 2);
    apr_thread_t *t;
    int in;

    c[1].iss = &next;
    c[1].always_validate = 1;
    c[1].wait_limit = apr_time_from_msec(100);
    t = start_caller(&c[0]);
    in = until_fetches(&iss, 1);
    run_callers(c + 1, 1);
    join_caller(t);
    ck_assert_int_eq(in, 1);
    ck_assert_int_eq(next.fetches, 1);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_int_ge(c[1].answer_started - c[1].arrival, apr_time_from_msec(100));
    ck_assert_int_lt(c[1].answer_started - c[1].arrival, apr_time_from_msec(1500));
    ck_assert_int_lt(c[1].answer_started, c[0].returned);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * The bound full with two calls of an issuer without history (50 ms explained) that are overdue
 * by then: a third request gets APR_EBUSY; once they end, a fourth is answered.
 */
START_TEST(test_busy)
{
    issuer_t iss = { 0, 0, NULL };
    ot_flight_t *f = make_flight(2);
    caller_t *c = make_callers(f, &iss, 4);
    apr_thread_t *t[2];
    int in;

    c[1].key = "other-key";
    hold_issuer(&iss);
    t[0] = start_caller(&c[0]);
    t[1] = start_caller(&c[1]);
    in = until_fetches(&iss, 2);
    apr_sleep(apr_time_from_msec(100));     /* both calls overdue: more than 50 ms old */
    run_callers(c + 2, 1);
    release_issuer(&iss);
    join_caller(t[0]);
    join_caller(t[1]);
    run_callers(c + 3, 1);
    ck_assert_int_eq(in, 2);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_int_eq(c[2].rv, APR_EBUSY);
    ck_assert_int_eq(c[3].rv, APR_SUCCESS);
    ck_assert_uint_eq(flight_stats.issuer_errors[OT_ERR_BUSY], 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/* An admission that refuses stops a new call, but never a request joining one. */
START_TEST(test_admission)
{
    issuer_t iss = { apr_time_from_msec(1000), 0, NULL };
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
    ck_assert_int_eq(until_fetches(&iss, 1), 1);   /* it runs a second */
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
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
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
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    apr_thread_join(&rv, t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
}
END_TEST

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
    hold_issuer(&h);
    ck_assert_int_eq(apr_thread_create(&t[0], NULL, caller_run, &c[0], ot_test_pool), 0);
    while (ot_flight_pending(f) == 0) {
        apr_sleep(apr_time_from_msec(1));
    }
    for (i = 1; i < 3; ++i) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, caller_run, &c[i], ot_test_pool), 0);
        waiting[i] = until_room_waiters(f, i);
    }
    freed = apr_time_now();
    release_issuer(&h);
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
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
    ck_assert_int_eq(h.fetches, 1);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * The leader's pool is gone as soon as it has its answer; the waiters' answers are intact. The
 * call is held until all eight are in.
 */
START_TEST(test_answer_outlives_leader)
{
    issuer_t iss = { 0, 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 8);
    apr_thread_t *t[8];
    int i, in;

    c[0].destroy_pool_at_once = 1;
    hold_issuer(&iss);
    t[0] = start_caller(&c[0]);
    ck_assert_int_eq(until_fetches(&iss, 1), 1);
    for (i = 1; i < 8; ++i) {
        t[i] = start_caller(&c[i]);
    }
    in = until_pending(f, 8);
    release_issuer(&iss);
    for (i = 0; i < 8; ++i) {
        join_caller(t[i]);
    }
    ck_assert_int_eq(in, 8);
    ck_assert_int_eq(iss.fetches, 1);
    for (i = 1; i < 8; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
        ck_assert_int_eq(c[i].joined, 1);
        ck_assert_str_eq(c[i].body, c[0].body);
    }
}
END_TEST

/* A request joining a call (3 s) gives up after its wait_limit (100 ms): APR_TIMEUP. */
START_TEST(test_wait_limit)
{
    issuer_t iss = { apr_time_from_msec(3000), 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 2);
    apr_thread_t *t;
    int in;

    c[1].wait_limit = apr_time_from_msec(100);
    t = start_caller(&c[0]);
    in = until_fetches(&iss, 1);
    run_callers(c + 1, 1);
    join_caller(t);
    ck_assert_int_eq(in, 1);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_TIMEUP);
    ck_assert_int_ge(c[1].returned - c[1].arrival, apr_time_from_msec(100));
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(1500));
    ck_assert_int_lt(c[1].returned, c[0].returned);
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
    tcase_add_test(tc, test_admission);
    tcase_add_test(tc, test_admission_before_waiting);
    tcase_add_test(tc, test_shed_spends_no_admission);
    tcase_add_test(tc, test_refused_waiter_passes_place_on);
    tcase_add_test(tc, test_answer_outlives_leader);
    tcase_add_test(tc, test_wait_limit);
    suite_add_tcase(s, tc);
    return s;
}
