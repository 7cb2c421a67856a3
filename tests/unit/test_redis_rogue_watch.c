/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The connections read as messages arrive, from a Redis or Sentinel that is not ours: the
 * Sentinel watch (ot_redis_sentinel_heard) and the subscriber (ot_redis_sub). Whatever it sends,
 * a message is dropped once it has taken more than any message of ours, and the subscriber
 * keeps trying Redis. The rogue server is rogue_srv.c's; the replies to commands are
 * test_redis_rogue.c's.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_redis_int.h"
#include "ot_stats.h"
#include "redis_srv.h"
#include "rogue_srv.h"

static ot_stats_t stats;

START_TEST(test_endless_sentinel_message_not_read)
{
    redisContext *w;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_start(&rg);
    apr_size_t fed = 0;
    int moved = 0, i;

    r = redis_client("rogue-sentinel", rg.port, NULL, &stats, ot_test_pool);
    w = rogue_watch(r, rg.port);
    for (i = 0; i < 100000 && ot_redis_sentinel_heard(r, w, &fed, &moved); i++) {
        ck_assert_int_eq(moved, 0);
    }
    redisFree(w);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    ck_assert_msg(rg.sent < 16 * 1024 * 1024, "the watch read %zu bytes of a message", rg.sent);
}
END_TEST

/** A Sentinel's watch connection (made by ot_redis_open, as the subscriber's is) is bounded too. */
START_TEST(test_huge_array_sentinel_message_refused)
{
    static const char head[] = "*1111111110\r\n";
    redisContext *w;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_answering(&rg, head, sizeof(head) - 1, 1);
    apr_size_t fed = 0;
    int moved = 0, i;

    r = redis_client("rogue-sentinel-array", rg.port, NULL, &stats, ot_test_pool);
    w = rogue_watch(r, rg.port);
    for (i = 0; i < 1000 && ot_redis_sentinel_heard(r, w, &fed, &moved); i++) {
        ck_assert_int_eq(moved, 0);
    }
    ck_assert_int_lt(i, 1000);
    ck_assert_str_eq(w->errstr, "an array longer than any reply this module asks for");
    redisFree(w);
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

/*
 * Arrays nested within the bound, their elements a few bytes each, without end: hiredis parses
 * an unfinished array's elements as they come and keeps only the unparsed bytes, so a check of
 * those never saw the message grow (each element of 4 bytes takes a reply object of ~60). The
 * watch gives up once the unfinished message has taken more than any +switch-master.
 */
START_TEST(test_endless_nested_sentinel_message_dropped)
{
    static const char head[] = "*65536\r\n";
    redisContext *w;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    apr_size_t fed = 0;
    int moved = 0, i;
    apr_size_t n;
    const char *body = arrays_of_integers("", 1, 65536, &n);

    t = rogue_streaming(&rg, head, body, n, 2 * 1024 * 1024);
    r = redis_client("rogue-sentinel-nested", rg.port, NULL, &stats, ot_test_pool);
    w = rogue_watch(r, rg.port);
    for (i = 0; i < 100000 && ot_redis_sentinel_heard(r, w, &fed, &moved); i++) {
        ck_assert_int_eq(moved, 0);
    }
    /* Not the end of the stream (then the failure is the closed connection, noted nowhere). */
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "Sentinel: a message longer than any +switch-master");
    redisFree(w);
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

/** What a subscriber told: its first downs' reasons. */
typedef struct {
    apr_thread_mutex_t *mutex;
    int downs;
    char why[4][160];
} sub_seen_t;

static void sub_revoked(void *baton, const ot_redis_rev_t *rev, apr_pool_t *p)
{
    (void)baton, (void)rev, (void)p;
}

static void sub_up(void *baton)
{
    (void)baton;
}

static void sub_down(void *baton, const char *why)
{
    sub_seen_t *s = baton;

    apr_thread_mutex_lock(s->mutex);
    if (s->downs < 4) {
        apr_cpystrn(s->why[s->downs], why, sizeof(s->why[0]));
    }
    s->downs++;
    apr_thread_mutex_unlock(s->mutex);
}

static void *APR_THREAD_FUNC sub_main(apr_thread_t *t, void *baton)
{
    (void)t;
    ot_redis_sub_run(baton);
    return NULL;
}

/** 1 when one of the subscriber's first downs (within secs) said why. */
static int sub_said(sub_seen_t *s, const char *why, int secs)
{
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(secs);
    int i, found = 0;

    while (!found && apr_time_now() < deadline) {
        apr_thread_mutex_lock(s->mutex);
        for (i = 0; i < s->downs && i < 4; i++) {
            found |= strcmp(s->why[i], why) == 0;
        }
        apr_thread_mutex_unlock(s->mutex);
        apr_sleep(apr_time_from_msec(20));
    }
    return found;
}

/*
 * The same on the subscription: confirmed, then a message of nested arrays without end. (The
 * catch-up's connection waits unanswered, and fails after the 300 ms command timeout.)
 */
START_TEST(test_endless_nested_channel_message_dropped)
{
    static const char head[] = "*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n*65536\r\n";
    static const ot_redis_sub_fns_t fns = { sub_revoked, sub_up, sub_down, NULL };
    sub_seen_t seen;
    ot_redis_sub_t *sub;
    apr_thread_t *t, *st;
    apr_pool_t *p;
    apr_status_t rv;
    ot_redis_t *r;
    rogue_t rg;
    apr_size_t n;
    const char *body = arrays_of_integers("", 1, 65536, &n);

    memset(&seen, 0, sizeof(seen));
    apr_thread_mutex_create(&seen.mutex, APR_THREAD_MUTEX_DEFAULT, ot_test_pool);
    t = rogue_streaming(&rg, head, body, n, 2 * 1024 * 1024);
    r = redis_client("rogue-sub-nested", rg.port, NULL, &stats, ot_test_pool);
    apr_pool_create(&p, NULL);
    ck_assert_int_eq(ot_redis_sub_create(&sub, r, &fns, &seen, p), APR_SUCCESS);
    ck_assert_int_eq(apr_thread_create(&st, NULL, sub_main, sub, ot_test_pool), APR_SUCCESS);
    /* Not "Server closed the connection" once the whole stream was read. */
    ck_assert(sub_said(&seen, "a message on the channel is longer than any revocation", 10));
    ot_redis_sub_stop(sub);
    apr_thread_join(&rv, st);
    ot_redis_close(r);
    apr_pool_destroy(p);
    rogue_stop(&rg, t);
}
END_TEST

/*
 * A Sentinel (not ours, or the path to it) that never stops sending +switch-master messages
 * about other masters kept the subscriber's pause after a failure from ever ending: its wait
 * went back to poll() past its time for as long as the watch had something to read, so the
 * subscriber never tried Redis again. Here the first connection (asking where the master is)
 * gets the flood instead of an address and fails: the first down. The second is the watch,
 * flooded. A third, after the pause, waits in the listener's backlog unanswered: its timeout
 * is the second down, which never came.
 */
START_TEST(test_flooding_sentinel_does_not_stall_subscriber)
{
    static const char head[] = "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n";
    static const char msg[] = "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$5\r\nother\r\n";
    static const ot_redis_sub_fns_t fns = { sub_revoked, sub_up, sub_down, NULL };
    apr_size_t one = sizeof(msg) - 1, i, n = 300 * one;
    char *body = apr_palloc(ot_test_pool, n);
    sub_seen_t seen;
    ot_redis_conf_t conf;
    ot_redis_sub_t *sub;
    apr_thread_t *t, *t2, *st;
    apr_time_t deadline;
    apr_pool_t *p;
    apr_status_t rv;
    ot_redis_t *r;
    rogue_t rg, rg2;
    int downs = 0;

    for (i = 0; i < 300; i++) {
        memcpy(body + i * one, msg, one);
    }
    memset(&seen, 0, sizeof(seen));
    apr_thread_mutex_create(&seen.mutex, APR_THREAD_MUTEX_DEFAULT, ot_test_pool);
    t = rogue_streaming(&rg, head, body, n, (apr_size_t)1 << 40);
    rg2 = rg;                       /* a second server on the same listener, for the watch */
    ck_assert_int_eq(apr_thread_create(&t2, NULL, rogue_main, &rg2, ot_test_pool), APR_SUCCESS);
    memset(&conf, 0, sizeof(conf));
    conf.master = "mymaster";
    conf.sentinels[0].host = "127.0.0.1";
    conf.sentinels[0].port = rg.port;
    conf.n_sentinels = 1;
    conf.key = "unit-test-key-rogue-sentinel-flood";
    conf.key_len = strlen(conf.key);
    conf.command_timeout = apr_time_from_msec(300);
    ck_assert_int_eq(ot_redis_create(&r, &conf, 4, &stats, ot_test_pool), APR_SUCCESS);
    apr_pool_create(&p, NULL);
    ck_assert_int_eq(ot_redis_sub_create(&sub, r, &fns, &seen, p), APR_SUCCESS);
    ck_assert_int_eq(apr_thread_create(&st, NULL, sub_main, sub, ot_test_pool), APR_SUCCESS);
    for (deadline = apr_time_now() + apr_time_from_sec(5); downs < 2 && apr_time_now() < deadline;) {
        apr_sleep(apr_time_from_msec(20));
        apr_thread_mutex_lock(seen.mutex);
        downs = seen.downs;
        apr_thread_mutex_unlock(seen.mutex);
    }
    ot_redis_sub_stop(sub);
    apr_thread_join(&rv, st);
    ot_redis_close(r);
    apr_pool_destroy(p);
    apr_thread_join(&rv, t2);
    rogue_stop(&rg, t);
    ck_assert_msg(downs >= 2, "the subscriber tried once in 5 s (%d down)", downs);
}
END_TEST

Suite *suite_redis_rogue_watch(void)
{
    Suite *s = suite_create("redis_rogue_watch");
    TCase *tc = tcase_create("watch");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_endless_sentinel_message_not_read);
    tcase_add_test(tc, test_huge_array_sentinel_message_refused);
    tcase_add_test(tc, test_endless_nested_sentinel_message_dropped);
    tcase_add_test(tc, test_endless_nested_channel_message_dropped);
    tcase_add_test(tc, test_flooding_sentinel_does_not_stall_subscriber);
    suite_add_tcase(s, tc);
    return s;
}
