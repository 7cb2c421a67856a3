/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_flight_issuer.c through ot_flight.c: each issuer's latency, when an issuer is
 * slow, and shedding requests over the bound for a slow issuer but not for a healthy one. Calls
 * are held (hold_issuer) until the test sees the requests it expects, and a healthy issuer is
 * warmed several times at a latency far below the 100 ms "slow" line, so that a late wake-up of
 * a loaded machine neither reorders the requests nor makes it slow. (flight_stub.h)
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "flight_stub.h"


/*
 * A burst over the bound while the issuer is healthy waits for places instead of failing: the
 * issuer answers in 30 ms (warmed four times: a late wake-up moves its latency by an eighth), and
 * six requests for six keys meet a bound of three.
 */
START_TEST(test_healthy_burst_waits)
{
    issuer_t iss = { apr_time_from_msec(30), 0, NULL };
    ot_flight_t *f = make_flight(3);
    caller_t *warm = make_callers(f, &iss, 1);
    caller_t *c = make_callers(f, &iss, 6);
    static const char *keys[] = { "k0", "k1", "k2", "k3", "k4", "k5" };
    int i;

    warm_issuer(warm, 4);           /* the issuer's latency is known: 290 ms explained */
    for (i = 0; i < 6; ++i) {
        c[i].key = keys[i];
    }
    run_callers(c, 6);
    for (i = 0; i < 6; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(iss.fetches, 4 + 6);
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * However good its history, an issuer with a call overdue now is slow: a request over the bound
 * gets APR_EBUSY at once instead of waiting (the 290 ms at least its 30 ms latency explains) for
 * a place. The call is held past the 1 s cap of what any latency explains.
 */
START_TEST(test_overdue_call_sheds_at_once)
{
    issuer_t fast = { apr_time_from_msec(30), 0, NULL }, hung = { 0, 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 1);
    caller_t *c = make_callers(f, &hung, 2);
    apr_thread_t *t;

    warm_issuer(warm, 4);           /* latency 30 ms: 290 ms explained */
    c[1].iss = &fast;
    c[1].key = "other-key";
    hold_issuer(&hung);
    t = start_caller(&c[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    apr_sleep(apr_time_from_msec(1100));  /* overdue, whatever the latency */
    run_callers(c + 1, 1);
    release_issuer(&hung);
    join_caller(t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_EBUSY);
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(200));
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    ck_assert_int_eq(fast.fetches, 4);
}
END_TEST

/*
 * An issuer that is slow steadily (every call 300 ms) never has a call overdue by what its
 * latency explains (a second, the cap), yet a request over the bound gets APR_EBUSY at once:
 * waiting up to a second for a place, such requests took the threads the bound keeps free.
 * The call holding the place is held until the request is shed.
 */
START_TEST(test_steadily_slow_sheds_at_once)
{
    issuer_t slow = { apr_time_from_msec(300), 0, NULL }, held = { 0, 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &slow, 1);
    caller_t *c = make_callers(f, &slow, 2);
    apr_thread_t *t;

    warm_issuer(warm, 1);           /* latency 300 ms: slow, though it explains a second */
    c[0].iss = &held;
    c[1].key = "other-key";
    hold_issuer(&held);
    t = start_caller(&c[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    run_callers(c + 1, 1);
    release_issuer(&held);
    join_caller(t);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_EBUSY);
    ck_assert_int_lt(c[1].returned - c[1].arrival, apr_time_from_msec(500));
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    ck_assert_int_eq(slow.fetches, 1);
    ck_assert_int_eq(held.fetches, 1);
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
    issuer_t busy = { 0, 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *one = make_callers(f, &fast, 1), *c = make_callers(f, &busy, 2);
    apr_thread_t *t[2];
    int i, waiting;

    run_callers(one, 1);            /* latency 10 ms */
    one->iss = &hung;
    run_callers(one, 1);            /* once: 2.5 s */
    one->iss = &fast;
    for (i = 0; i < 8; ++i) {
        run_callers(one, 1);
    }
    c[1].iss = &fast;
    c[1].key = "other-key";
    hold_issuer(&busy);             /* c[0]'s call holds the place until c[1] waits for it */
    t[0] = start_caller(&c[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    t[1] = start_caller(&c[1]);
    waiting = until_room_waiters(f, 1);
    release_issuer(&busy);
    join_caller(t[0]);
    join_caller(t[1]);
    ck_assert_int_eq(waiting, 1);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * Two issuers, one steadily slow (A: 300 ms calls, one now held) and one healthy (B: 30 ms,
 * warmed four times: 290 ms explained). A burst of six requests to B over the bound of three
 * waits for places and is answered: it was shed with A's slowness (one latency per process:
 * some 190 ms after B's warm-up). A request to A over the bound is still shed at once (not after
 * the second A's latency explains), and the bound holds for both together. B's calls are held
 * until the test has seen four of the burst wait and A's request shed.
 */
START_TEST(test_slow_issuer_does_not_shed_another)
{
    issuer_t slow = { apr_time_from_msec(300), 0, NULL }, fast = { apr_time_from_msec(30), 0,
                                                                   NULL };
    issuer_t hung = { 0, 0, NULL };
    ot_flight_t *f = make_flight(3);
    caller_t *warm = make_callers(f, &slow, 2);
    caller_t *c = make_callers(f, &fast, 8);
    static const char *keys[] = { "a-hung", "b0", "b1", "b2", "b3", "b4", "b5", "a-new" };
    apr_thread_t *t[8];
    int i, waiting;

    warm[1].iss = &fast;
    warm[1].url = URL_B;
    warm[1].key = "b-warm";
    warm_issuer(warm, 1);           /* A: 300 ms, slow steadily */
    warm_issuer(warm + 1, 4);       /* B: 30 ms (a late wake-up moves it by an eighth) */
    for (i = 0; i < 8; ++i) {
        c[i].key = keys[i];
        c[i].url = URL_B;
    }
    c[0].url = c[7].url = URL_A;
    c[0].iss = &hung;
    c[7].iss = &slow;
    hold_issuer(&hung);
    hold_issuer(&fast);
    t[0] = start_caller(&c[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    for (i = 1; i < 7; ++i) {
        t[i] = start_caller(&c[i]);
    }
    waiting = until_room_waiters(f, 4);  /* two of B's calls hold the places A's leaves */
    t[7] = start_caller(&c[7]);
    join_caller(t[7]);
    release_issuer(&fast);
    for (i = 1; i < 7; ++i) {
        join_caller(t[i]);
    }
    release_issuer(&hung);
    join_caller(t[0]);
    ck_assert_int_eq(waiting, 4);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    for (i = 1; i < 7; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(c[7].rv, APR_EBUSY);
    ck_assert_int_lt(c[7].returned - c[7].arrival, apr_time_from_msec(500));
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    ck_assert_int_eq(fast.fetches, 4 + 6);
    ck_assert_int_eq(slow.fetches, 1);
    ck_assert_int_le(most_in_fetch, 3);
    ck_assert_int_eq(ot_flight_pending(f), 0);
}
END_TEST

/*
 * A call to issuer A overdue now (held for over a second; A's 30 ms latency explains 290 ms, and
 * no latency more than a second) makes A slow, not B (30 ms too): a request to B over the bound
 * waits for a place and is answered (it was shed at once), while one to A over the bound is shed
 * at once (not after the 290 ms it could wait). The bound holds for both together. B's calls are
 * held until the test has seen one request to B wait and the one to A shed.
 */
START_TEST(test_overdue_call_to_one_issuer_spares_another)
{
    issuer_t fast = { apr_time_from_msec(30), 0, NULL }, hung = { 0, 0, NULL };
    issuer_t b = { apr_time_from_msec(30), 0, NULL };
    ot_flight_t *f = make_flight(2);
    caller_t *warm = make_callers(f, &fast, 2);
    caller_t *c = make_callers(f, &b, 4);
    apr_thread_t *t[4];
    int i, waiting;

    warm[1].url = URL_B;
    warm[1].key = "b-warm";
    warm_issuer(warm, 4);           /* both issuers: 30 ms, 290 ms explained (a late wake-up */
    warm_issuer(warm + 1, 4);       /* moves it by an eighth) */
    c[0].iss = &hung;
    c[0].key = "a-hung";
    c[1].url = c[2].url = URL_B;
    c[1].key = "b0";
    c[2].key = "b1";
    c[3].iss = &fast;
    c[3].key = "a-new";
    hold_issuer(&hung);
    hold_issuer(&b);
    t[0] = start_caller(&c[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    apr_sleep(apr_time_from_msec(1100));  /* A's call overdue, whatever A's latency */
    t[1] = start_caller(&c[1]);
    t[2] = start_caller(&c[2]);
    waiting = until_room_waiters(f, 1);   /* one of B's calls holds the other place */
    t[3] = start_caller(&c[3]);
    join_caller(t[3]);
    release_issuer(&b);
    join_caller(t[1]);
    join_caller(t[2]);
    release_issuer(&hung);
    join_caller(t[0]);
    ck_assert_int_eq(waiting, 1);
    for (i = 0; i < 3; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(c[3].rv, APR_EBUSY);
    ck_assert_int_lt(c[3].returned - c[3].arrival, apr_time_from_msec(200));
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    ck_assert_int_eq(b.fetches, 2);
    ck_assert_int_eq(fast.fetches, 8);
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
    ck_assert_uint_eq(flight_stats.shed_slow, 12);
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

/* 80 issuers never seen before (numbered from *next on) ask two at a time: every entry recycled. */
static void recycle_entries(ot_flight_t *f, issuer_t *quick, int *next)
{
    caller_t *c = make_callers(f, quick, 2);
    int i;

    for (i = 0; i < 40; ++i) {
        new_issuers(c, 2, next);
        run_callers(c, 2);
        ck_assert_int_eq(c[0].rv, APR_SUCCESS);
        ck_assert_int_eq(c[1].rv, APR_SUCCESS);
    }
}

/*
 * More issuers with requests under way at once than the table keeps apart (40: the last ones
 * share one entry) are all answered, none shed. Then, with a bound of two, 80 issuers more, two
 * at a time, recycle every entry, and in the recycled table a slow issuer (A, 300 ms) is still
 * told from a healthy one (B, 30 ms, warmed four times): with A's call under way (held), a
 * request to B over the bound waits and is answered, and one to A over the bound is shed.
 */
START_TEST(test_many_issuers)
{
    issuer_t iss = { apr_time_from_msec(100), 0, NULL }, quick = { apr_time_from_msec(5), 0,
                                                                   NULL };
    issuer_t slow = { apr_time_from_msec(300), 0, NULL }, fast = { apr_time_from_msec(30), 0,
                                                                   NULL };
    issuer_t hung = { 0, 0, NULL };
    ot_flight_t *f = make_flight(64);
    caller_t *c = make_callers(f, &iss, 40), *d;
    apr_thread_t *t[4];
    int i, next = 0, waiting;

    new_issuers(c, 40, &next);
    run_callers(c, 40);
    for (i = 0; i < 40; ++i) {
        ck_assert_int_eq(c[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(iss.fetches, 40);
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
    ck_assert_int_eq(ot_flight_pending(f), 0);

    f = make_flight(2);
    d = make_callers(f, &slow, 4);
    d[1].iss = &fast;
    d[1].url = URL_B;
    recycle_entries(f, &quick, &next);
    warm_issuer(d, 1);              /* A: 300 ms, slow steadily */
    warm_issuer(d + 1, 4);          /* B: 30 ms, healthy (a late wake-up moves it by an eighth) */
    d[0].iss = &hung;
    d[0].key = "a-long";
    d[1].key = "b0";
    d[2].key = "b1";
    d[2].iss = &fast;
    d[2].url = URL_B;
    d[3].key = "a-new";
    hold_issuer(&hung);
    hold_issuer(&fast);
    t[0] = start_caller(&d[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    t[1] = start_caller(&d[1]);
    t[2] = start_caller(&d[2]);
    waiting = until_room_waiters(f, 1);   /* one of B's calls holds the other place */
    t[3] = start_caller(&d[3]);
    join_caller(t[3]);
    release_issuer(&fast);
    join_caller(t[1]);
    join_caller(t[2]);
    release_issuer(&hung);
    join_caller(t[0]);
    ck_assert_int_eq(waiting, 1);
    ck_assert_int_eq(d[0].rv, APR_SUCCESS);
    ck_assert_int_eq(d[1].rv, APR_SUCCESS);
    ck_assert_int_eq(d[2].rv, APR_SUCCESS);
    ck_assert_int_eq(d[3].rv, APR_EBUSY);
    ck_assert_uint_eq(flight_stats.shed_slow, 1);
    ck_assert_int_eq(slow.fetches, 1);
    ck_assert_int_le(most_in_fetch, 2);
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
    issuer_t fast = { apr_time_from_msec(20), 0, NULL }, a = { 0, 0, NULL };
    issuer_t b = { 0, 0, NULL }, b2 = { 0, 0, NULL };
    ot_flight_t *f = make_flight(1);
    caller_t *warm = make_callers(f, &fast, 1);
    caller_t *c = make_callers(f, &a, 1);
    caller_t *d = make_callers(f, &b, 2);
    apr_thread_t *t[2];
    int waiting;

    wall_shift = 0;
    ot_flight_set_wall_clock(f, stepped_wall);
    warm_issuer(warm, 4);
    hold_issuer(&a);                /* the clock steps while a call is under way */
    t[0] = start_caller(&c[0]);
    ck_assert_int_eq(until_fetches(&a, 1), 1);
    __atomic_store_n(&wall_shift, -apr_time_from_sec(3600), __ATOMIC_SEQ_CST);
    release_issuer(&a);
    join_caller(t[0]);
    ck_assert_int_eq(c[0].rv, APR_SUCCESS);
    /* A healthy issuer (calls of 20 ms and a few): the second request waits for a place. */
    d[1].iss = &b2;
    d[1].key = "other-key";
    hold_issuer(&b);
    t[0] = start_caller(&d[0]);
    ck_assert_int_eq(until_pending(f, 1), 1);
    t[1] = start_caller(&d[1]);
    waiting = until_room_waiters(f, 1);
    release_issuer(&b);
    join_caller(t[0]);
    join_caller(t[1]);
    ck_assert_int_eq(waiting, 1);
    ck_assert_int_eq(d[0].rv, APR_SUCCESS);
    ck_assert_int_eq(d[1].rv, APR_SUCCESS);
    ck_assert_uint_eq(flight_stats.shed_slow, 0);
}
END_TEST

Suite *suite_flight_issuers(void)
{
    Suite *s = suite_create("flight_issuers");
    TCase *tc = tcase_create("flight_issuers");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_healthy_burst_waits);
    tcase_add_test(tc, test_overdue_call_sheds_at_once);
    tcase_add_test(tc, test_steadily_slow_sheds_at_once);
    tcase_add_test(tc, test_one_hung_call_is_soon_forgotten);
    tcase_add_test(tc, test_slow_issuer_does_not_shed_another);
    tcase_add_test(tc, test_overdue_call_to_one_issuer_spares_another);
    tcase_add_test(tc, test_bound_held_by_slow_issuer_sheds_all);
    tcase_add_test(tc, test_many_issuers);
    tcase_add_test(tc, test_wall_clock_step);
    suite_add_tcase(s, tc);
    return s;
}
