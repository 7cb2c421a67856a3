/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/** The stand-in issuer and callers of the coalescer's unit tests (flight_stub.h). */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include "flight_stub.h"

ot_stats_t flight_stats;
int in_fetch, most_in_fetch;

/** Issuers whose fetches wait (atomic pointers; NULL: a free slot). */
#define HELD_MAX 4
static issuer_t *held[HELD_MAX];

static int is_held(const issuer_t *iss)
{
    int i;

    for (i = 0; i < HELD_MAX; ++i) {
        if (__atomic_load_n(&held[i], __ATOMIC_SEQ_CST) == iss) {
            return 1;
        }
    }
    return 0;
}

void hold_issuer(issuer_t *iss)
{
    int i;

    for (i = 0; i < HELD_MAX; ++i) {
        if (__atomic_load_n(&held[i], __ATOMIC_SEQ_CST) == NULL) {
            __atomic_store_n(&held[i], iss, __ATOMIC_SEQ_CST);
            return;
        }
    }
    ck_abort_msg("more than %d issuers held", HELD_MAX);
}

void release_issuer(issuer_t *iss)
{
    int i;

    for (i = 0; i < HELD_MAX; ++i) {
        if (__atomic_load_n(&held[i], __ATOMIC_SEQ_CST) == iss) {
            __atomic_store_n(&held[i], NULL, __ATOMIC_SEQ_CST);
        }
    }
}

void fake_fetch(void *baton, ot_http_resp_t *resp, apr_pool_t *p)
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
    while (is_held(iss)) {
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

void *APR_THREAD_FUNC caller_run(apr_thread_t *t, void *baton)
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

apr_thread_t *start_caller(caller_t *c)
{
    apr_thread_t *t;

    ck_assert_int_eq(apr_thread_create(&t, NULL, caller_run, c, ot_test_pool), 0);
    return t;
}

void join_caller(apr_thread_t *t)
{
    apr_status_t rv;

    apr_thread_join(&rv, t);
}

void run_callers(caller_t *c, int n)
{
    apr_thread_t **t = apr_pcalloc(ot_test_pool, sizeof(*t) * (apr_size_t)n);
    int i;

    for (i = 0; i < n; ++i) {
        t[i] = start_caller(&c[i]);
    }
    for (i = 0; i < n; ++i) {
        join_caller(t[i]);
    }
}

caller_t *make_callers(ot_flight_t *f, issuer_t *iss, int n)
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

ot_flight_t *make_flight(int max_pending)
{
    ot_flight_t *f;
    int i;

    memset(&flight_stats, 0, sizeof(flight_stats));
    in_fetch = most_in_fetch = 0;
    for (i = 0; i < HELD_MAX; ++i) {
        __atomic_store_n(&held[i], NULL, __ATOMIC_SEQ_CST);
    }
    ck_assert_int_eq(ot_flight_create(&f, max_pending, ot_test_pool), APR_SUCCESS);
    ot_flight_set_stats(f, &flight_stats);
    return f;
}

/** Poll what() (5 s at most, every ms) until it is n; what it is then. */
#define UNTIL(expr, n) do { \
        apr_time_t until_ = apr_time_now() + apr_time_from_sec(5); \
        for (;;) { \
            now = (expr); \
            if (now == (n) || apr_time_now() > until_) { \
                break; \
            } \
            apr_sleep(apr_time_from_msec(1)); \
        } \
    } while (0)

static int room_waiters(ot_flight_t *f)
{
    int n;

    apr_thread_mutex_lock(f->mutex);
    n = f->room_waiters;
    apr_thread_mutex_unlock(f->mutex);
    return n;
}

int until_room_waiters(ot_flight_t *f, int n)
{
    int now;

    UNTIL(room_waiters(f), n);
    return now;
}

int until_pending(ot_flight_t *f, int n)
{
    int now;

    UNTIL(ot_flight_pending(f), n);
    return now;
}

int until_fetches(issuer_t *iss, int n)
{
    int now;

    UNTIL(__atomic_load_n(&iss->fetches, __ATOMIC_SEQ_CST), n);
    return now;
}

void warm_issuer(caller_t *c, int n)
{
    int i;

    for (i = 0; i < n; ++i) {
        run_callers(c, 1);
        ck_assert_int_eq(c->rv, APR_SUCCESS);
    }
}

apr_status_t refuse_all(void *baton)
{
    ++*(int *)baton;
    return APR_EAGAIN;
}
