/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The subscriber (ot_redis_sub.c) in a thread of its own, against a real redis-server: catching
 * up, live messages, forged messages, losing Redis and finding it again, a silent Redis, and
 * stopping from another thread.
 */
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <hiredis/hiredis.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_stats.h"
#include "redis_srv.h"

#define ISS "https://sso.example.org/realms/test"

/**
 * What the callbacks saw, in order: "u" up, "d" down, each revocation's value, and "k" and the
 * first byte of the key (hex) for each key tombstone.
 */
typedef struct {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    char log[4096];
    int ups, downs, revs, kts;
    char why[160];
} seen_t;

typedef struct {
    seen_t seen;
    ot_redis_t *r;
    ot_redis_sub_t *sub;
    apr_thread_t *thread;
    apr_pool_t *pool;              /**< the subscriber's alone */
} harness_t;

static ot_stats_t stats;

static void note(seen_t *s, const char *what)
{
    apr_size_t n = strlen(s->log);

    apr_snprintf(s->log + n, sizeof(s->log) - n, "%s%s", n ? " " : "", what);
    apr_thread_cond_broadcast(s->cond);
}

static void on_revoked(void *baton, const ot_redis_rev_t *rev, apr_pool_t *p)
{
    seen_t *s = baton;

    apr_thread_mutex_lock(s->mutex);
    s->revs++;
    note(s, rev->value);
    apr_thread_mutex_unlock(s->mutex);
}

static void on_up(void *baton)
{
    seen_t *s = baton;

    apr_thread_mutex_lock(s->mutex);
    s->ups++;
    note(s, "u");
    apr_thread_mutex_unlock(s->mutex);
}

static void on_down(void *baton, const char *why)
{
    seen_t *s = baton;

    apr_thread_mutex_lock(s->mutex);
    s->downs++;
    apr_cpystrn(s->why, why, sizeof(s->why));
    note(s, "d");
    apr_thread_mutex_unlock(s->mutex);
}

static void on_key_dead(void *baton, const ot_redis_ktomb_t *k, apr_pool_t *p)
{
    seen_t *s = baton;

    apr_thread_mutex_lock(s->mutex);
    s->kts++;
    note(s, apr_psprintf(p, "k%02x", k->key[0]));
    apr_thread_mutex_unlock(s->mutex);
}

static void *APR_THREAD_FUNC run(apr_thread_t *t, void *baton)
{
    ot_redis_sub_run(baton);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void start(harness_t *h, const char *test, int port)
{
    static const ot_redis_sub_fns_t fns = { on_revoked, on_up, on_down, on_key_dead };

    memset(&h->seen, 0, sizeof(h->seen));
    apr_thread_mutex_create(&h->seen.mutex, APR_THREAD_MUTEX_DEFAULT, ot_test_pool);
    apr_thread_cond_create(&h->seen.cond, ot_test_pool);
    h->r = redis_client(test, port, NULL, &stats, ot_test_pool);
    apr_pool_create(&h->pool, NULL);
    ck_assert_int_eq(ot_redis_sub_create(&h->sub, h->r, &fns, &h->seen, h->pool), APR_SUCCESS);
    ck_assert_int_eq(apr_thread_create(&h->thread, NULL, run, h->sub, ot_test_pool),
                     APR_SUCCESS);
}

/** Stop the subscriber; it must be gone within a second. */
static void stop(harness_t *h)
{
    apr_status_t rv;
    apr_time_t t0 = apr_time_now();

    ot_redis_sub_stop(h->sub);
    apr_thread_join(&rv, h->thread);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_sec(1));
    ot_redis_close(h->r);
    apr_pool_destroy(h->pool);
}

/** Wait until *counter reaches n (up to secs); 1 when it did. */
static int wait_count(seen_t *s, const int *counter, int n, int secs)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(secs);
    int ok;

    apr_thread_mutex_lock(s->mutex);
    while (*counter < n && apr_time_now() < deadline) {
        apr_thread_cond_timedwait(s->cond, s->mutex, apr_time_from_msec(50));
    }
    ok = *counter >= n;
    apr_thread_mutex_unlock(s->mutex);
    return ok;
}

static const char *log_of(seen_t *s)
{
    const char *copy;

    apr_thread_mutex_lock(s->mutex);
    copy = apr_pstrdup(ot_test_pool, s->log);
    apr_thread_mutex_unlock(s->mutex);
    return copy;
}

static ot_redis_rev_t rev(ot_redis_rev_kind_t kind, const char *value)
{
    ot_redis_rev_t v;

    memset(&v, 0, sizeof(v));
    v.kind = kind;
    v.iss = ISS;
    v.value = value;
    v.at = apr_time_now();
    v.until = v.at + apr_time_from_sec(120);
    return v;
}

static void publish(ot_redis_t *r, const char *sub)
{
    ot_redis_rev_t v = rev(OT_REDIS_REV_SUB, sub);

    ck_assert_int_eq(ot_redis_publish(r, &v, apr_time_now(), ot_test_pool), APR_SUCCESS);
}

#define NEED_REDIS() do { if (redis_shared.pid <= 0) return; } while (0)

START_TEST(test_catch_up_then_live)
{
    harness_t h;
    ot_redis_t *other;
    apr_time_t t0;

    NEED_REDIS();
    other = redis_client("sub-live", redis_shared.port, NULL, &stats, ot_test_pool);
    publish(other, "before-1");
    publish(other, "before-2");
    start(&h, "sub-live", redis_shared.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    ck_assert_str_eq(log_of(&h.seen), "before-1 before-2 u");
    t0 = apr_time_now();
    publish(other, "live-1");
    ck_assert(wait_count(&h.seen, &h.seen.revs, 3, 2));
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(100));
    ck_assert_str_eq(log_of(&h.seen), "before-1 before-2 u live-1");
    stop(&h);
    ot_redis_close(other);
}
END_TEST

START_TEST(test_forged_messages_ignored)
{
    harness_t h;
    ot_redis_t *other, *stranger;
    redisContext *c;
    apr_uint64_t before = OT_STAT_GET(stats.redis_errors);

    NEED_REDIS();
    start(&h, "sub-forged", redis_shared.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    c = redis_raw(redis_shared.port);
    freeReplyObject(redisCommand(c, "PUBLISH %s %s", ot_redis_rev_name(h.r), "forged"));
    redisFree(c);
    /* Signed with another key: another cluster's names, so it never even arrives. */
    stranger = redis_client("sub-forged-stranger", redis_shared.port, NULL, &stats,
                            ot_test_pool);
    publish(stranger, "stranger");
    other = redis_client("sub-forged", redis_shared.port, NULL, &stats, ot_test_pool);
    publish(other, "genuine");
    ck_assert(wait_count(&h.seen, &h.seen.revs, 1, 2));
    usleep(100000);
    ck_assert_str_eq(log_of(&h.seen), "u genuine");
    ck_assert_uint_eq(OT_STAT_GET(stats.redis_errors), before + 1);
    stop(&h);
    ot_redis_close(other);
    ot_redis_close(stranger);
}
END_TEST

/* A key tombstone (an inactive answer replaced a positive one) is handed over live. */
START_TEST(test_key_tombstone_handed_over)
{
    harness_t h;
    ot_redis_t *other;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e;
    int told = 0;

    NEED_REDIS();
    start(&h, "sub-ktomb", redis_shared.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    other = redis_client("sub-ktomb", redis_shared.port, NULL, &stats, ot_test_pool);
    memset(key, 0x7e, sizeof(key));
    memset(&e, 0, sizeof(e));
    e.fetched = now - apr_time_from_sec(2);
    e.drop_after = now + apr_time_from_sec(60);
    e.active = 1;
    e.claims = "{}";
    e.claims_len = 2;
    ck_assert_int_eq(ot_redis_put(other, key, &e, now, &told, ot_test_pool), APR_SUCCESS);
    e.fetched = now - apr_time_from_sec(1);
    e.active = 0;
    e.claims = NULL;
    e.claims_len = 0;
    ck_assert_int_eq(ot_redis_put(other, key, &e, now, &told, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(told, 1);
    publish(other, "after");
    ck_assert(wait_count(&h.seen, &h.seen.revs, 1, 2));
    ck_assert_str_eq(log_of(&h.seen), "u k7e after");
    stop(&h);
    ot_redis_close(other);
}
END_TEST

START_TEST(test_outage_and_recovery)
{
    harness_t h;
    redis_srv_t sv = { 0 };
    ot_redis_t *other;
    ot_redis_rev_t v = rev(OT_REDIS_REV_SID, "during-outage");
    apr_time_t t0;
    apr_array_header_t *stored;

    NEED_REDIS();
    ck_assert(redis_srv_start(&sv, 0, NULL));
    start(&h, "sub-outage", sv.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    usleep(1200000);                 /* one PING answered */
    t0 = apr_time_now();
    redis_srv_stop(&sv);
    ck_assert(wait_count(&h.seen, &h.seen.downs, 1, 3));
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(500));   /* noticed at once */
    /* Applied here while Redis is away: queued, and published by the subscriber once back. */
    ck_assert_int_eq(ot_redis_publish(h.r, &v, apr_time_now(), ot_test_pool), APR_EAGAIN);
    ck_assert(redis_srv_start(&sv, sv.port, NULL));
    ck_assert(wait_count(&h.seen, &h.seen.ups, 2, 8));
    other = redis_client("sub-outage", sv.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(other, &stored, apr_time_now(), ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(stored->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(stored, 0, ot_redis_rev_t).value, "during-outage");
    ck_assert_int_eq(ot_redis_pending(h.r), 0);
    stop(&h);
    ot_redis_close(other);
    redis_srv_stop(&sv);
    rmdir(sv.dir);
}
END_TEST

START_TEST(test_silent_redis_detected)
{
    harness_t h;
    redis_srv_t sv = { 0 };
    redisContext *c;
    apr_time_t t0;

    NEED_REDIS();
    ck_assert(redis_srv_start(&sv, 0, NULL));
    start(&h, "sub-silent", sv.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    c = redis_raw(sv.port);
    t0 = apr_time_now();
    freeReplyObject(redisCommand(c, "CLIENT PAUSE 4000 ALL"));
    ck_assert(wait_count(&h.seen, &h.seen.downs, 1, 5));
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(3500));
    ck_assert_str_eq(h.seen.why, "no answer to PING");
    freeReplyObject(redisCommand(c, "CLIENT UNPAUSE"));
    redisFree(c);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 2, 8));
    stop(&h);
    redis_srv_stop(&sv);
    rmdir(sv.dir);
}
END_TEST

START_TEST(test_stop_while_unreachable)
{
    harness_t h;

    NEED_REDIS();
    start(&h, "sub-stop", redis_free_port());
    ck_assert(wait_count(&h.seen, &h.seen.downs, 1, 3));
    ck_assert_ptr_nonnull(strstr(h.seen.why, "connect"));
    stop(&h);
    ck_assert_int_eq(h.seen.ups, 0);
}
END_TEST

START_TEST(test_oversized_message_not_read_whole)
{
    harness_t h;
    redisContext *c;
    apr_size_t big = 4 * 1024 * 1024;
    char *junk = apr_palloc(ot_test_pool, big);

    NEED_REDIS();
    start(&h, "sub-oversized", redis_shared.port);
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 5));
    /* Whoever can write to Redis publishes megabytes: the connection goes, and comes back. */
    memset(junk, 'x', big);
    c = redis_raw(redis_shared.port);
    freeReplyObject(redisCommand(c, "PUBLISH %s %b", ot_redis_rev_name(h.r), junk, big));
    redisFree(c);
    ck_assert(wait_count(&h.seen, &h.seen.downs, 1, 3));
    ck_assert_str_eq(h.seen.why, "a message on the channel is longer than any revocation");
    ck_assert(wait_count(&h.seen, &h.seen.ups, 2, 5));
    stop(&h);
}
END_TEST

START_TEST(test_flooded_store_still_listens)
{
    harness_t h;
    redisContext *c;
    ot_redis_t *w;
    char script[160];

    NEED_REDIS();
    /* Whoever can write to Redis stores more than a node reads: catching up is refused... */
    w = redis_client("sub-flooded", redis_shared.port, NULL, &stats, ot_test_pool);
    c = redis_raw(redis_shared.port);
    apr_snprintf(script, sizeof(script), "for i = 0, %d do redis.call('ZADD', KEYS[1], "
                 "99999999999999, i) end", OT_REDIS_STORED_MAX);
    freeReplyObject(redisCommand(c, "EVAL %s 1 %s", script, ot_redis_rev_name(w)));
    start(&h, "sub-flooded", redis_shared.port);
    ck_assert(wait_count(&h.seen, &h.seen.downs, 1, 5));
    /* ... but the subscription stays, and what other nodes publish still arrives. */
    publish(w, "live-after-flood");
    ck_assert_msg(wait_count(&h.seen, &h.seen.revs, 1, 3), "nothing arrived: %s",
                  log_of(&h.seen));
    ck_assert_int_eq(h.seen.ups, 0);
    /* Once the junk is gone, the store is read again and the node is caught up. */
    freeReplyObject(redisCommand(c, "DEL %s", ot_redis_rev_name(w)));
    ck_assert(wait_count(&h.seen, &h.seen.ups, 1, 10));
    redisFree(c);
    ot_redis_close(w);
    stop(&h);
}
END_TEST

Suite *suite_redis_sub(void)
{
    Suite *s = suite_create("redis_sub");
    TCase *tc = tcase_create("subscriber");

    tcase_add_unchecked_fixture(tc, redis_shared_start, redis_shared_stop);
    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_catch_up_then_live);
    tcase_add_test(tc, test_forged_messages_ignored);
    tcase_add_test(tc, test_key_tombstone_handed_over);
    tcase_add_test(tc, test_outage_and_recovery);
    tcase_add_test(tc, test_silent_redis_detected);
    tcase_add_test(tc, test_stop_while_unreachable);
    tcase_add_test(tc, test_oversized_message_not_read_whole);
    tcase_add_test(tc, test_flooded_store_still_listens);
    suite_add_tcase(s, tc);
    return s;
}
