/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Issue 13, hole 3 across nodes: key tombstones. Sealing and opening the message, and the store
 * script that publishes one exactly when an inactive answer replaces a positive one in Redis
 * (against a real redis-server, see test_redis.c), and never for a token that was never active.
 */
#include <string.h>
#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "ot_unit.h"
#include "ot_redis_int.h"
#include "ot_stats.h"
#include "redis_srv.h"

#define ISS "https://sso.example.org/realms/test"
#define SEC(n) apr_time_from_sec(n)
#define NEED_REDIS() do { if (redis_shared.pid <= 0) return; } while (0)

static ot_stats_t stats;

static ot_redis_t *client(const char *key)
{
    ot_redis_conf_t conf;
    ot_redis_t *r;

    memset(&conf, 0, sizeof(conf));
    conf.host = "127.0.0.1";
    conf.port = 1;
    conf.key = key;
    conf.key_len = strlen(key);
    ck_assert_int_eq(ot_redis_create(&r, &conf, 1, NULL, ot_test_pool), APR_SUCCESS);
    return r;
}

static ot_redis_ktomb_t ktomb(void)
{
    ot_redis_ktomb_t k;
    int i;

    for (i = 0; i < OT_KEY_LEN; i++) {
        k.key[i] = (unsigned char)(0xa0 + i);
    }
    memset(k.nonce, 0x5c, sizeof(k.nonce));
    k.fetched = SEC(1700000000) + 123456;
    return k;
}

/* ---- the message ---------------------------------------------------------------------------- */

START_TEST(test_ktomb_seal_open)
{
    ot_redis_t *r = client("ktomb-key-of-at-least-16-bytes");
    ot_redis_t *other = client("another-cluster-key-16-bytes");
    ot_redis_ktomb_t k = ktomb(), got, k2 = ktomb();
    ot_redis_rev_t rev;
    char *msg, *msg2, *bad;
    apr_size_t len, len2, i;

    ck_assert_int_eq(ot_redis_ktomb_seal(r, &k, &msg, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(len, OT_REDIS_KTOMB_LEN);
    ck_assert_int_eq((unsigned char)msg[0], OT_REDIS_KTOMB_VERSION);
    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(ot_redis_ktomb_open(r, msg, len, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(memcmp(got.key, k.key, OT_KEY_LEN), 0);
    ck_assert(got.fetched == k.fetched);
    /* The cache key is masked: not in the message, not even half of it. */
    for (i = 0; i + 16 <= len; i++) {
        ck_assert(memcmp(msg + i, k.key, 16) != 0 && memcmp(msg + i, k.key + 16, 16) != 0);
    }
    /* Another nonce, another mask: two tombstones of one key do not show that they are. */
    k2.nonce[0] ^= 1;
    ck_assert_int_eq(ot_redis_ktomb_seal(r, &k2, &msg2, &len2, ot_test_pool), APR_SUCCESS);
    ck_assert(memcmp(msg + len - OT_KEY_LEN, msg2 + len2 - OT_KEY_LEN, OT_KEY_LEN) != 0);
    /* Another cluster's key, any flipped bit, any other length: refused. */
    ck_assert_int_eq(ot_redis_ktomb_open(other, msg, len, &got, ot_test_pool), APR_EINVAL);
    bad = apr_pmemdup(ot_test_pool, msg, len);
    for (i = 0; i < len; i++) {
        bad[i] ^= 0x01;
        ck_assert_int_eq(ot_redis_ktomb_open(r, bad, len, &got, ot_test_pool), APR_EINVAL);
        bad[i] ^= 0x01;
    }
    for (i = 0; i < len; i++) {
        ck_assert_int_eq(ot_redis_ktomb_open(r, msg, i, &got, ot_test_pool), APR_EINVAL);
    }
    ck_assert_int_eq(ot_redis_ktomb_open(r, NULL, len, &got, ot_test_pool), APR_EINVAL);
    /* Neither kind of message passes for the other. */
    ck_assert_int_eq(ot_redis_rev_open(r, msg, len, &rev, ot_test_pool), APR_EINVAL);
    memset(&rev, 0, sizeof(rev));
    rev.kind = OT_REDIS_REV_SUB;
    rev.iss = ISS;
    rev.value = "alice";
    ck_assert_int_eq(ot_redis_rev_seal(r, &rev, &msg2, &len2, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_ktomb_open(r, msg2, len2, &got, ot_test_pool), APR_EINVAL);
    k.fetched = -1;
    ck_assert_int_eq(ot_redis_ktomb_seal(r, &k, &msg, &len, ot_test_pool), APR_EINVAL);
}
END_TEST

/* ---- the store script ------------------------------------------------------------------------ */

/** A raw connection SUBSCRIBEd to r's channel. */
static redisContext *listener(ot_redis_t *r)
{
    redisContext *c = redis_raw(redis_shared.port);
    struct timeval tv = { 2, 0 };
    redisReply *reply;

    ck_assert_ptr_nonnull(c);
    redisSetTimeout(c, tv);
    reply = redisCommand(c, "SUBSCRIBE %s", ot_redis_rev_name(r));
    ck_assert(reply != NULL && reply->type == REDIS_REPLY_ARRAY);
    freeReplyObject(reply);
    return c;
}

/** The next message on the channel (from ot_test_pool), its length in *len. */
static const char *next_message(redisContext *c, apr_size_t *len)
{
    redisReply *reply = NULL;
    const char *m;

    ck_assert_int_eq(redisGetReply(c, (void **)&reply), REDIS_OK);
    ck_assert(reply->type == REDIS_REPLY_ARRAY && reply->elements == 3);
    m = apr_pmemdup(ot_test_pool, reply->element[2]->str, reply->element[2]->len);
    *len = reply->element[2]->len;
    freeReplyObject(reply);
    return m;
}

/** Publish a marker, and say whether it is the next message (nothing was published before). */
static int nothing_before_marker(ot_redis_t *r, redisContext *sub)
{
    redisContext *c = redis_raw(redis_shared.port);
    const char *m;
    apr_size_t len;

    freeReplyObject(redisCommand(c, "PUBLISH %s %s", ot_redis_rev_name(r), "marker"));
    redisFree(c);
    m = next_message(sub, &len);
    return len == 6 && memcmp(m, "marker", 6) == 0;
}

static void key_of(unsigned char key[OT_KEY_LEN], int i)
{
    memset(key, 0x44, OT_KEY_LEN);
    key[0] = (unsigned char)i;
}

START_TEST(test_inactive_replacing_positive_is_published)
{
    ot_redis_t *r;
    redisContext *sub;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t positive = redis_test_answer(1, now - SEC(3)), inactive = redis_test_answer(0, now - SEC(1));
    ot_redis_ktomb_t got;
    const char *m;
    apr_size_t len;
    int told = -1;

    NEED_REDIS();
    r = redis_client("ktomb-script", redis_shared.port, NULL, &stats, ot_test_pool);
    sub = listener(r);
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_put(r, key, &positive, now, &told, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(told, 0);
    ck_assert_int_eq(ot_redis_put(r, key, &inactive, now, &told, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(told, 1);
    m = next_message(sub, &len);
    ck_assert_int_eq(ot_redis_ktomb_open(r, m, len, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(memcmp(got.key, key, OT_KEY_LEN), 0);
    ck_assert(got.fetched == inactive.fetched);
    /* Once inactive in Redis, another inactive answer (a replay, a second node) says nothing. */
    inactive.fetched += SEC(1);
    ck_assert_int_eq(ot_redis_put(r, key, &inactive, now, &told, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(told, 0);
    ck_assert(nothing_before_marker(r, sub));
    redisFree(sub);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_never_active_publishes_nothing)
{
    ot_redis_t *r;
    redisContext *sub;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t inactive = redis_test_answer(0, now - SEC(2)), newer = redis_test_answer(1, now - SEC(1));
    int i, told = -1;

    NEED_REDIS();
    r = redis_client("ktomb-flood", redis_shared.port, NULL, &stats, ot_test_pool);
    sub = listener(r);
    /* A flood of made-up tokens: every one inactive, none ever positive. */
    for (i = 0; i < 200; i++) {
        key_of(key, 10 + i);
        ck_assert_int_eq(ot_redis_put(r, key, &inactive, now, &told, ot_test_pool),
                         APR_SUCCESS);
        ck_assert_int_eq(told, 0);
    }
    /* An inactive answer older than the positive one there loses, and says nothing. */
    key_of(key, 2);
    ck_assert_int_eq(ot_redis_put(r, key, &newer, now, &told, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_put(r, key, &inactive, now, &told, ot_test_pool), APR_EEXIST);
    ck_assert_int_eq(told, 0);
    ck_assert(nothing_before_marker(r, sub));
    redisFree(sub);
    ot_redis_close(r);
}
END_TEST

Suite *suite_redis_ktomb(void)
{
    Suite *s = suite_create("redis_ktomb");
    TCase *msg = tcase_create("message"), *live = tcase_create("live");

    tcase_add_checked_fixture(msg, ot_test_setup, ot_test_teardown);
    tcase_add_test(msg, test_ktomb_seal_open);
    suite_add_tcase(s, msg);
    tcase_add_unchecked_fixture(live, redis_shared_start, redis_shared_stop);
    tcase_add_checked_fixture(live, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(live, 60);
    tcase_add_test(live, test_inactive_replacing_positive_is_published);
    tcase_add_test(live, test_never_active_publishes_nothing);
    suite_add_tcase(s, live);
    return s;
}
