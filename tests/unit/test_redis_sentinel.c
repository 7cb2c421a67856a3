/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Redis as production runs it, the parts a unit test reaches: redis-sentinel:// and rediss://
 * URLs, the ACL user's AUTH, and ids accepted once across nodes (ot_redis_once) against a real
 * redis-server (skipped, passing, without one). Failover itself needs redis-sentinel processes:
 * tests/integration/test_redis_sentinel.py.
 */
#include <string.h>
#include <apr_strings.h>
#include <hiredis/hiredis.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_stats.h"
#include "redis_srv.h"

#define ISS "https://sso.example.org/realms/test"
#define NEED_REDIS() do { if (redis_shared.pid <= 0) return; } while (0)

static ot_stats_t stats;

static const char *parse(ot_redis_conf_t *c, const char *url)
{
    memset(c, 0, sizeof(*c));
    return ot_redis_parse_url(c, url, ot_test_pool);
}

START_TEST(test_sentinel_url)
{
    ot_redis_conf_t c;

    ck_assert_ptr_null(parse(&c, "redis-sentinel://10.0.0.1,s2.example.org:26380,[::1]:7/m-1"));
    ck_assert_int_eq(c.n_sentinels, 3);
    ck_assert_str_eq(c.sentinels[0].host, "10.0.0.1");
    ck_assert_int_eq(c.sentinels[0].port, OT_REDIS_SENTINEL_PORT);
    ck_assert_str_eq(c.sentinels[1].host, "s2.example.org");
    ck_assert_int_eq(c.sentinels[1].port, 26380);
    ck_assert_str_eq(c.sentinels[2].host, "::1");
    ck_assert_int_eq(c.sentinels[2].port, 7);
    ck_assert_str_eq(c.master, "m-1");
    ck_assert_int_eq(c.db, 0);
    ck_assert_ptr_null(c.host);
    ck_assert_ptr_null(parse(&c, "REDIS-SENTINEL://h:1/mymaster/5"));
    ck_assert_int_eq(c.db, 5);
    ck_assert_ptr_null(parse(&c, "redis-sentinel://h/mymaster/"));
    ck_assert_int_eq(c.db, 0);
}
END_TEST

START_TEST(test_bad_sentinel_urls)
{
    static const char *const bad[] = {
        "redis-sentinel://h", "redis-sentinel://h/", "redis-sentinel:///m",
        "redis-sentinel://h,/m", "redis-sentinel://,h/m", "redis-sentinel://h:0/m",
        "redis-sentinel://h:65536/m", "redis-sentinel://h:x/m", "redis-sentinel://h:/m",
        "redis-sentinel://[::1/m", "redis-sentinel://[::1]x/m", "redis-sentinel://[]/m",
        "redis-sentinel://h/m/x", "redis-sentinel://h/m/-1", "redis-sentinel://h/m?x",
        "redis-sentinel://h/m#x", "redis-sentinel://h/m n", "redis-sentinel://h%20/m",
        "redis-sentinel://u:p@h/m",
    };
    ot_redis_conf_t c;
    apr_size_t i;
    const char *err;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = parse(&c, bad[i]);
        ck_assert_msg(err != NULL, "%s accepted", bad[i]);
    }
    err = parse(&c, "redis-sentinel://u:s3cret@h/m");
    ck_assert_ptr_null(strstr(err, "s3cret"));
    err = parse(&c, apr_pstrcat(ot_test_pool, "redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,",
                                "o,p,q/m", NULL));
    ck_assert_ptr_nonnull(strstr(err, "at most 16"));
}
END_TEST

START_TEST(test_rediss)
{
    ot_redis_conf_t c;
    const char *err = parse(&c, "rediss://cache.example.org:6380/2");

    if (ot_redis_have_tls()) {
        ck_assert_ptr_null(err);
        ck_assert_int_eq(c.tls, 1);
        ck_assert_int_eq(c.port, 6380);
    }
    else {
        ck_assert_ptr_nonnull(strstr(err, "hiredis_ssl"));
    }
    ck_assert_ptr_null(parse(&c, "redis://cache.example.org"));
    ck_assert_int_eq(c.tls, 0);
}
END_TEST

START_TEST(test_once_names)
{
    ot_redis_t *r = redis_client("once-names", 1, NULL, &stats, ot_test_pool);
    const char *a = ot_redis_once_name(r, "push", ISS, "jti-1", ot_test_pool);

    ck_assert_str_eq(a, ot_redis_once_name(r, "push", ISS, "jti-1", ot_test_pool));
    ck_assert_str_ne(a, ot_redis_once_name(r, "dpop", ISS, "jti-1", ot_test_pool));
    ck_assert_str_ne(a, ot_redis_once_name(r, "push", "https://other", "jti-1", ot_test_pool));
    ck_assert_str_ne(a, ot_redis_once_name(r, "push", ISS, "jti-2", ot_test_pool));
    /* The NUL after each part: ("ab", "c") and ("a", "bc") differ. */
    ck_assert_str_ne(ot_redis_once_name(r, "push", "ab", "c", ot_test_pool),
                     ot_redis_once_name(r, "push", "a", "bc", ot_test_pool));
    ck_assert_ptr_null(strstr(a, "jti"));
    ck_assert_int_eq(strncmp(a, "offtok:", 7), 0);
    ck_assert_ptr_nonnull(strstr(a, ":once:"));
}
END_TEST

START_TEST(test_once_across_clients)
{
    ot_redis_t *a, *b;
    apr_time_t now = apr_time_now(), until = now + apr_time_from_sec(30);
    redisContext *c;
    redisReply *reply;

    NEED_REDIS();
    a = redis_client("once", redis_shared.port, NULL, &stats, ot_test_pool);
    b = redis_client("once", redis_shared.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_once(a, "push", ISS, "jti-x", until, now, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(ot_redis_once(b, "push", ISS, "jti-x", until, now, ot_test_pool),
                     APR_EEXIST);
    ck_assert_int_eq(ot_redis_once(a, "push", ISS, "jti-x", until, now, ot_test_pool),
                     APR_EEXIST);
    ck_assert_int_eq(ot_redis_once(b, "dpop", ISS, "jti-x", until, now, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(ot_redis_once(b, "push", ISS, "", until, now, ot_test_pool), APR_EINVAL);
    /* A push that failed is forgotten, and its retry is a first use again. */
    ck_assert_int_eq(ot_redis_once(a, "push", ISS, "failed", until, now, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(ot_redis_once_forget(a, "push", ISS, "failed", ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_once(b, "push", ISS, "failed", until, now, ot_test_pool),
                     APR_SUCCESS);
    c = redis_raw(redis_shared.port);
    reply = redisCommand(c, "TTL %s", ot_redis_once_name(a, "push", ISS, "jti-x", ot_test_pool));
    ck_assert_int_gt(reply->integer, 25);
    ck_assert_int_le(reply->integer, 30);
    freeReplyObject(reply);
    /* Already past: kept a second, never forever. */
    ck_assert_int_eq(ot_redis_once(a, "push", ISS, "old", now - 1, now, ot_test_pool),
                     APR_SUCCESS);
    reply = redisCommand(c, "TTL %s", ot_redis_once_name(a, "push", ISS, "old", ot_test_pool));
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);
    /* Someone who can write to Redis, without the key, marks an id before it arrives: not seen. */
    freeReplyObject(redisCommand(c, "SET %s 1 EX 30",
                                 ot_redis_once_name(a, "push", ISS, "early", ot_test_pool)));
    ck_assert_int_eq(ot_redis_once(b, "push", ISS, "early", until, now, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(ot_redis_last_error(b, ot_test_pool), "not our marker"));
    /* ... but a marker copied from another id does not move either. */
    reply = redisCommand(c, "GET %s", ot_redis_once_name(a, "push", ISS, "jti-x", ot_test_pool));
    freeReplyObject(redisCommand(c, "SET %s %b EX 30",
                                 ot_redis_once_name(a, "push", ISS, "moved", ot_test_pool),
                                 reply->str, reply->len));
    freeReplyObject(reply);
    ck_assert_int_eq(ot_redis_once(b, "push", ISS, "moved", until, now, ot_test_pool),
                     APR_SUCCESS);
    redisFree(c);
    ot_redis_close(a);
    ot_redis_close(b);
}
END_TEST

START_TEST(test_once_unreachable)
{
    ot_redis_t *r = redis_client("once-down", redis_free_port(), NULL, &stats, ot_test_pool);
    apr_time_t now = apr_time_now();

    ck_assert_int_eq(ot_redis_once(r, "push", ISS, "jti", now + apr_time_from_sec(5), now,
                                   ot_test_pool), APR_EAGAIN);
}
END_TEST

/** A client of the shared server that AUTHs as user with password. */
static ot_redis_t *acl_client(const char *user, const char *password)
{
    ot_redis_conf_t conf;
    ot_redis_t *r;

    memset(&conf, 0, sizeof(conf));
    conf.host = "127.0.0.1";
    conf.port = redis_shared.port;
    conf.user = user;
    conf.password = password;
    conf.key = "unit-test-key-acl-user";
    conf.key_len = strlen(conf.key);
    ck_assert_int_eq(ot_redis_create(&r, &conf, 2, &stats, ot_test_pool), APR_SUCCESS);
    return r;
}

START_TEST(test_acl_user)
{
    ot_redis_t *good, *bad, *other;
    apr_time_t now = apr_time_now(), until = now + apr_time_from_sec(30);
    redisContext *c;
    const char *err;

    NEED_REDIS();
    c = redis_raw(redis_shared.port);
    freeReplyObject(redisCommand(c, "ACL SETUSER unit-offtok on >pw-right ~offtok:* &offtok:* "
                                 "+@all -@dangerous"));
    freeReplyObject(redisCommand(c, "ACL SETUSER unit-other on >pw-other ~other:* +@all"));
    good = acl_client("unit-offtok", "pw-right");
    ck_assert_int_eq(ot_redis_once(good, "push", ISS, "acl", until, now, ot_test_pool),
                     APR_SUCCESS);
    bad = acl_client("unit-offtok", "pw-wrong");
    ck_assert_int_eq(ot_redis_once(bad, "push", ISS, "acl-2", until, now, ot_test_pool),
                     APR_EAGAIN);
    err = ot_redis_last_error(bad, ot_test_pool);
    ck_assert_ptr_nonnull(strstr(err, "WRONGPASS"));
    ck_assert_ptr_null(strstr(err, "pw-wrong"));
    /* A user without the offtok:* keys: Redis refuses, and that is not "seen". */
    other = acl_client("unit-other", "pw-other");
    ck_assert_int_eq(ot_redis_once(other, "push", ISS, "acl-3", until, now, ot_test_pool),
                     APR_EAGAIN);
    ck_assert_ptr_nonnull(strstr(ot_redis_last_error(other, ot_test_pool), "NOPERM"));
    freeReplyObject(redisCommand(c, "ACL DELUSER unit-offtok unit-other"));
    redisFree(c);
    ot_redis_close(good);
    ot_redis_close(bad);
    ot_redis_close(other);
}
END_TEST

Suite *suite_redis_sentinel(void)
{
    Suite *s = suite_create("redis_sentinel");
    TCase *tc = tcase_create("urls");
    TCase *live = tcase_create("live");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, test_sentinel_url);
    tcase_add_test(tc, test_bad_sentinel_urls);
    tcase_add_test(tc, test_rediss);
    tcase_add_test(tc, test_once_names);
    tcase_add_test(tc, test_once_unreachable);
    suite_add_tcase(s, tc);
    tcase_add_unchecked_fixture(live, redis_shared_start, redis_shared_stop);
    tcase_add_checked_fixture(live, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(live, 60);
    tcase_add_test(live, test_once_across_clients);
    tcase_add_test(live, test_acl_user);
    suite_add_tcase(s, live);
    return s;
}
