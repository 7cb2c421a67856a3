/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Issue 13, in the Redis tier, against a real redis-server (see test_redis.c): the newer answer
 * and the newer not-before policy win whatever order they arrive in; answers are never taken as
 * fetched later than the local clock; nothing longer than the module writes is read whole.
 */
#include <string.h>
#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_stats.h"
#include "redis_srv.h"

#define ISS "https://sso.example.org/realms/test"
#define SEC(n) apr_time_from_sec(n)
#define NEED_REDIS() do { if (redis_shared.pid <= 0) return; } while (0)

static ot_stats_t stats;

static void key_of(unsigned char key[OT_KEY_LEN], int i)
{
    memset(key, 0x33, OT_KEY_LEN);
    key[0] = (unsigned char)i;
}

static ot_redis_rev_t policy(apr_int64_t not_before, apr_int64_t order, apr_time_t at)
{
    ot_redis_rev_t v;

    memset(&v, 0, sizeof(v));
    v.kind = OT_REDIS_REV_NOT_BEFORE;
    v.iss = ISS;
    v.value = "rs-client";
    v.at = at;
    v.until = at + SEC(120);
    v.not_before = not_before;
    v.order = order;
    return v;
}

/** The not-before of the one policy stored. */
static apr_int64_t stored_policy(ot_redis_t *r, apr_time_t now)
{
    apr_array_header_t *got;

    ck_assert_int_eq(ot_redis_stored(r, &got, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 1);
    return APR_ARRAY_IDX(got, 0, ot_redis_rev_t).not_before;
}

static void raw(const char *fmt, const char *a, const char *b, apr_size_t blen)
{
    redisContext *c = redis_raw(redis_shared.port);
    redisReply *reply = redisCommand(c, fmt, a, b, blen);

    ck_assert(reply != NULL && reply->type != REDIS_REPLY_ERROR);
    freeReplyObject(reply);
    redisFree(c);
}

/** 1 when t is within 100 ms of want (the round trips of a test). */
static int near(apr_time_t t, apr_time_t want)
{
    return t > want - apr_time_from_msec(100) && t < want + apr_time_from_msec(100);
}

/* ---- hole 3: a slow node's older answer never replaces a newer one -------------------------- */

START_TEST(test_older_answer_never_replaces_newer)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t inactive = redis_test_answer(0, now - SEC(2)), older = redis_test_answer(1, now - SEC(3)), got;
    ot_cache_entry_t newer = redis_test_answer(1, now - SEC(1));

    NEED_REDIS();
    r = redis_client("newer-answer", redis_shared.port, NULL, &stats, ot_test_pool);
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_put(r, key, &inactive, now, NULL, ot_test_pool), APR_SUCCESS);
    /* A node whose call started before the inactive answer's ends after it. */
    ck_assert_int_eq(ot_redis_put(r, key, &older, now, NULL, ot_test_pool), APR_EEXIST);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got.active, 0);
    ck_assert_int_eq(ot_redis_put(r, key, &newer, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got.active, 1);
    ck_assert(near(got.fetched, newer.fetched));
    /* Junk under the name (Redis cannot check a MAC) claiming a time past the writer's clock
     * does not hold the name. */
    raw("SET %s %b", ot_redis_answer_name(r, key, ot_test_pool), "\x01zzzzzzzzzzzzzzzzzzzzzzzzzzzz"
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 80);
    ck_assert_int_eq(ot_redis_put(r, key, &newer, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert(near(got.fetched, newer.fetched));
    ot_redis_close(r);
}
END_TEST

/* ---- hole 4: an older not-before policy never replaces a newer one ------------------------ */

START_TEST(test_older_policy_never_replaces_newer)
{
    ot_redis_t *r;
    apr_time_t now = apr_time_now();
    ot_redis_rev_t newer = policy(1700000100, 2000, now - 1000);

    NEED_REDIS();
    r = redis_client("newer-policy", redis_shared.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    /* An older action (earlier expiration) queued during an outage, flushed afterwards. */
    newer = policy(1700000050, 1999, now - 500);
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(stored_policy(r, now), 1700000100);
    newer = policy(0, 1999, now - 400);                 /* an older clear */
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(stored_policy(r, now), 1700000100);
    newer = policy(1700000090, 2000, now - 300);        /* same action time, lower not-before */
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(stored_policy(r, now), 1700000100);
    newer = policy(1700000110, 2000, now - 200);        /* same action time, higher */
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(stored_policy(r, now), 1700000110);
    newer = policy(0, 2001, now - 100);                 /* a newer clear */
    ck_assert_int_eq(ot_redis_publish(r, &newer, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(stored_policy(r, now), 0);
    ot_redis_close(r);
}
END_TEST

/* ---- hole 5: never fetched later than the local clock --------------------------------------- */

START_TEST(test_fetched_on_the_readers_clock)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now(), ahead = now + SEC(3600);
    ot_cache_entry_t e = redis_test_answer(1, ahead - SEC(1)), got;
    redisContext *c;

    NEED_REDIS();
    r = redis_client("clamp", redis_shared.port, NULL, &stats, ot_test_pool);
    /* Stored by a node whose clock runs an hour ahead, a second after its call started: taken
     * as fetched a second ago here, not now (which every new read would move on). */
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_put(r, key, &e, ahead, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_msg(near(got.fetched, now - SEC(1)), "fetched %" APR_TIME_T_FMT " s from now",
                  apr_time_sec(got.fetched - now));
    ck_assert_int_eq(got.drop_after - got.fetched, SEC(300));
    /* Whoever can write to Redis lengthens its life there: the authentic time still holds. */
    key_of(key, 2);
    e = redis_test_answer(1, now - SEC(10));
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    c = redis_raw(redis_shared.port);
    freeReplyObject(redisCommand(c, "PEXPIRE %s 100000000",
                                 ot_redis_answer_name(r, key, ot_test_pool)));
    redisFree(c);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got.fetched, now - SEC(10));
    /* Inactive answers are tombstones: taken as late as a revocation from another node. */
    key_of(key, 3);
    e = redis_test_answer(0, now - SEC(60));
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert(near(got.fetched, now - SEC(60) + OT_REDIS_SKEW));
    key_of(key, 4);
    e = redis_test_answer(0, now - SEC(2));
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got.fetched, now);
    ot_redis_close(r);
}
END_TEST

/* ---- hole 9: nothing longer than the module writes is read whole ----------------------------- */

START_TEST(test_long_values_not_read)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e = redis_test_answer(1, now), got;
    apr_size_t big = 8 * 1024 * 1024;
    char *junk = apr_palloc(ot_test_pool, big);
    apr_uint64_t before = OT_STAT_GET(stats.redis_errors);

    NEED_REDIS();
    r = redis_client("long", redis_shared.port, NULL, &stats, ot_test_pool);
    memset(junk, 'x', big);
    key_of(key, 1);
    raw("SET %s %b", ot_redis_answer_name(r, key, ot_test_pool), junk, big);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_EINVAL);
    ck_assert_uint_gt(OT_STAT_GET(stats.redis_errors), before);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "GET: a value is longer than any answer this module stores");
    /* An answer as long as the module accepts is still shared; a longer one is not stored. */
    e.claims = junk;
    e.claims_len = OT_REDIS_ANSWER_CAP - 1000;
    key_of(key, 2);
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(got.claims_len, e.claims_len);
    e.claims_len = OT_REDIS_ANSWER_CAP;
    key_of(key, 3);
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_ENOSPC);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_catch_up_read_is_bounded)
{
    ot_redis_t *r;
    apr_time_t now = apr_time_now();
    ot_redis_rev_t p = policy(1700000100, 2000, now);
    apr_array_header_t *got;
    char *junk = apr_palloc(ot_test_pool, 100000);
    char script[200];

    NEED_REDIS();
    r = redis_client("bounded", redis_shared.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_publish(r, &p, now, ot_test_pool), APR_SUCCESS);
    /* One member longer than any message: skipped, not read. */
    memset(junk, 'x', 100000);
    raw("ZADD %s 99999999999999 %b", ot_redis_rev_name(r), junk, 100000);
    ck_assert_int_eq(ot_redis_stored(r, &got, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 1);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool), "catching up: a stored revocation "
                     "failed its MAC check or was longer than any this module writes");
    /* More members than a node reads: refused whole (the node stays "not caught up"). */
    apr_snprintf(script, sizeof(script), "for i = 1, %d do redis.call('ZADD', KEYS[1], "
                 "99999999999999, i) end", OT_REDIS_STORED_MAX);
    raw("EVAL %s 1 %b", script, ot_redis_rev_name(r), strlen(ot_redis_rev_name(r)));
    ck_assert_int_eq(ot_redis_stored(r, &got, now, ot_test_pool), APR_EGENERAL);
    ck_assert_ptr_nonnull(strstr(ot_redis_last_error(r, ot_test_pool), "more revocations"));
    ot_redis_close(r);
}
END_TEST

Suite *suite_redis_newer(void)
{
    const TTest *tests[] = {
        test_older_answer_never_replaces_newer, test_older_policy_never_replaces_newer,
        test_fetched_on_the_readers_clock, test_long_values_not_read, test_catch_up_read_is_bounded,
    };
    Suite *s = suite_create("redis_newer");
    TCase *live = tcase_create("live");
    apr_size_t i;

    tcase_add_unchecked_fixture(live, redis_shared_start, redis_shared_stop);
    tcase_add_checked_fixture(live, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(live, 60);
    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        tcase_add_test(live, tests[i]);
    }
    suite_add_tcase(s, live);
    return s;
}
