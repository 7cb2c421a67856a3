/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The Redis tier (ot_redis*.c) against a real redis-server that the tests start on a loopback
 * port, with a temporary directory and nothing saved. Without redis-server in PATH the tests
 * that need one say so and pass; the encodings are tested anyway.
 */
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <hiredis/hiredis.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_stats.h"
#include "redis_srv.h"

#define ISS "https://sso.example.org/realms/test"
#define HOUR apr_time_from_sec(3600)

/* ---- helpers ------------------------------------------------------------------------------ */

static ot_stats_t stats;

/** A client for the encodings: no server is ever asked. */
static ot_redis_t *client(const char *test)
{
    return redis_client(test, 1, NULL, &stats, ot_test_pool);
}

static ot_cache_entry_t entry(const char *sub, apr_time_t now, apr_pool_t *p)
{
    ot_cache_entry_t e;

    memset(&e, 0, sizeof(e));
    e.fetched = now - apr_time_from_sec(1);
    e.drop_after = now + apr_time_from_sec(60);
    e.exp = now + HOUR;
    e.iat = now - apr_time_from_sec(2);
    e.active = 1;
    e.iss = ISS;
    e.sub = sub;
    e.sid = "session-1";
    e.claims = apr_psprintf(p, "{\"active\":true,\"sub\":\"%s\"}", sub);
    e.claims_len = strlen(e.claims);
    return e;
}

static void key_of(unsigned char key[OT_KEY_LEN], int i)
{
    memset(key, 0, OT_KEY_LEN);
    key[0] = (unsigned char)i;
    key[31] = 0x5a;
}

static ot_redis_rev_t rev(ot_redis_rev_kind_t kind, const char *value, apr_time_t at)
{
    ot_redis_rev_t v;

    memset(&v, 0, sizeof(v));
    v.kind = kind;
    v.iss = ISS;
    v.value = value;
    v.at = at;
    v.until = at + apr_time_from_sec(120);
    v.not_before = kind == OT_REDIS_REV_NOT_BEFORE ? apr_time_sec(at) : 0;
    return v;
}

/* ---- encodings, no server ------------------------------------------------------------------ */

START_TEST(test_parse_url)
{
    ot_redis_conf_t c;

    memset(&c, 0, sizeof(c));
    ck_assert_ptr_null(ot_redis_parse_url(&c, "redis://10.0.0.7", ot_test_pool));
    ck_assert_str_eq(c.host, "10.0.0.7");
    ck_assert_int_eq(c.port, 6379);
    ck_assert_int_eq(c.db, 0);
    ck_assert_ptr_null(ot_redis_parse_url(&c, "redis://cache.example.org:6380/3", ot_test_pool));
    ck_assert_str_eq(c.host, "cache.example.org");
    ck_assert_int_eq(c.port, 6380);
    ck_assert_int_eq(c.db, 3);
    ck_assert_ptr_null(ot_redis_parse_url(&c, "redis://[::1]:7000/", ot_test_pool));
    ck_assert_str_eq(c.host, "::1");
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "http://10.0.0.7", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://h/x", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://h/-1", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://h:0", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://h:99999", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://h:65536", ot_test_pool));
    ck_assert_ptr_null(ot_redis_parse_url(&c, "redis://h:65535", ot_test_pool));
    ck_assert_ptr_nonnull(ot_redis_parse_url(&c, "redis://:secret@h", ot_test_pool));
    ck_assert(strstr(ot_redis_parse_url(&c, "redis://u:secret@h", ot_test_pool), "secret")
              == NULL);
}
END_TEST

START_TEST(test_seal_answer)
{
    ot_redis_t *r = client("seal"), *other = client("seal-other");
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e = entry("alice", apr_time_now(), ot_test_pool), got;
    const char *name, *name2;
    char *val, *bad;
    apr_size_t len, i;

    key_of(key, 1);
    name = ot_redis_answer_name(r, key, ot_test_pool);
    ck_assert_uint_eq(strlen(name), strlen("offtok::a2:") + 16 + 64);
    ck_assert_str_ne(name, ot_redis_answer_name(other, key, ot_test_pool));
    key_of(key, 2);
    name2 = ot_redis_answer_name(r, key, ot_test_pool);
    ck_assert_int_eq(ot_redis_seal_answer(r, name, &e, &val, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(val[0], OT_REDIS_VERSION);
    ck_assert_int_eq(ot_redis_open_answer(r, name, val, len, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(got.sub, "alice");
    ck_assert_int_eq(got.fetched, e.fetched);
    ck_assert_mem_eq(got.claims, e.claims, e.claims_len);
    /* Under another name, with another key, or with any bit changed: refused. */
    ck_assert_int_eq(ot_redis_open_answer(r, name2, val, len, &got, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(ot_redis_open_answer(other, name, val, len, &got, ot_test_pool),
                     APR_EINVAL);
    bad = apr_pmemdup(ot_test_pool, val, len);
    for (i = 0; i < len; i++) {
        bad[i] ^= 0x01;
        ck_assert_int_eq(ot_redis_open_answer(r, name, bad, len, &got, ot_test_pool),
                         APR_EINVAL);
        bad[i] ^= 0x01;
    }
    for (i = 0; i < len; i++) {
        ck_assert_int_eq(ot_redis_open_answer(r, name, val, i, &got, ot_test_pool), APR_EINVAL);
    }
}
END_TEST

START_TEST(test_seal_revocation)
{
    ot_redis_t *r = client("rev"), *other = client("rev-other");
    ot_redis_rev_t v = rev(OT_REDIS_REV_SID, "sid-42", apr_time_now()), got;
    char *msg, *bad;
    apr_size_t len, i;
    char *big = apr_palloc(ot_test_pool, OT_REDIS_VALUE_MAX + 2);

    ck_assert_int_eq(ot_redis_rev_seal(r, &v, &msg, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_rev_open(r, msg, len, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got.kind, OT_REDIS_REV_SID);
    ck_assert_str_eq(got.iss, ISS);
    ck_assert_str_eq(got.value, "sid-42");
    ck_assert_int_eq(got.at, v.at);
    ck_assert_int_eq(got.until, v.until);
    ck_assert_int_eq(ot_redis_rev_open(other, msg, len, &got, ot_test_pool), APR_EINVAL);
    bad = apr_pmemdup(ot_test_pool, msg, len);
    for (i = 0; i < len; i++) {
        bad[i] ^= 0x80;
        ck_assert_int_eq(ot_redis_rev_open(r, bad, len, &got, ot_test_pool), APR_EINVAL);
        bad[i] ^= 0x80;
        ck_assert_int_eq(ot_redis_rev_open(r, msg, i, &got, ot_test_pool), APR_EINVAL);
    }
    v = rev(OT_REDIS_REV_NOT_BEFORE, "rs-client", apr_time_now());
    v.iss = NULL;
    ck_assert_int_eq(ot_redis_rev_seal(r, &v, &msg, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_rev_open(r, msg, len, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(got.iss, "");
    ck_assert_int_eq(got.not_before, v.not_before);
    memset(big, 'x', OT_REDIS_VALUE_MAX + 1);
    big[OT_REDIS_VALUE_MAX + 1] = '\0';
    v.value = big;
    ck_assert_int_eq(ot_redis_rev_seal(r, &v, &msg, &len, ot_test_pool), APR_EINVAL);
    v = rev(7, "x", apr_time_now());
    ck_assert_int_eq(ot_redis_rev_seal(r, &v, &msg, &len, ot_test_pool), APR_EINVAL);
}
END_TEST

/* ---- against a live redis-server ------------------------------------------------------------ */

/** Skip (pass) when there is no server; else the shared one's port. */
#define NEED_REDIS() do { if (redis_shared.pid <= 0) return; } while (0)

static apr_uint64_t errors(void)
{
    return OT_STAT_GET(stats.redis_errors);
}

START_TEST(test_get_put)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e = entry("alice", now, ot_test_pool), got;
    redisContext *c;
    redisReply *reply;

    NEED_REDIS();
    r = redis_client("get-put", redis_shared.port, NULL, &stats, ot_test_pool);
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_NOTFOUND);
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(got.sub, "alice");
    ck_assert_str_eq(got.sid, "session-1");
    /* On this clock through its lifetime left in Redis: the same, less the round trip. */
    ck_assert(got.fetched <= e.fetched && got.fetched > e.fetched - apr_time_from_msec(100));
    ck_assert_int_eq(got.drop_after - got.fetched, e.drop_after - e.fetched);
    ck_assert_mem_eq(got.claims, e.claims, e.claims_len);
    /* Kept as long as the entry lives, and no longer; past drop_after it is a miss. */
    c = redis_raw(redis_shared.port);
    reply = redisCommand(c, "TTL %s", ot_redis_answer_name(r, key, ot_test_pool));
    ck_assert(reply->integer >= 59 && reply->integer <= 60);
    freeReplyObject(reply);
    redisFree(c);
    ck_assert_int_eq(ot_redis_get(r, key, e.drop_after, &got, ot_test_pool), APR_NOTFOUND);
    e.drop_after = now;
    key_of(key, 2);
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_NOTFOUND);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_forged_values_ignored)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN], key2[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e = entry("mallory", now, ot_test_pool), got;
    const char *name, *name2;
    redisContext *c;
    redisReply *reply;
    apr_uint64_t before = errors();

    NEED_REDIS();
    r = redis_client("forged", redis_shared.port, NULL, &stats, ot_test_pool);
    key_of(key, 1);
    key_of(key2, 2);
    name = ot_redis_answer_name(r, key, ot_test_pool);
    name2 = ot_redis_answer_name(r, key2, ot_test_pool);
    c = redis_raw(redis_shared.port);
    /* Garbage, and a value sealed for another name, written by someone with access to Redis. */
    freeReplyObject(redisCommand(c, "SET %s %s", name, "\x01{\"active\":true,\"sub\":\"root\"}"));
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(ot_redis_put(r, key2, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    reply = redisCommand(c, "GET %s", name2);
    freeReplyObject(redisCommand(c, "SET %s %b", name, reply->str, reply->len));
    freeReplyObject(reply);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(ot_redis_get(r, key2, now, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(errors(), before + 2);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "GET: a value failed its MAC check or did not decode");
    redisFree(c);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_unreachable_then_back)
{
    redis_srv_t sv = { 0 };
    int port = redis_free_port();
    ot_redis_t *r = redis_client("breaker", port, NULL, &stats, ot_test_pool);
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t got;
    apr_uint64_t before = errors();
    apr_time_t t0;

    NEED_REDIS();
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_EAGAIN);
    ck_assert_ptr_nonnull(strstr(ot_redis_last_error(r, ot_test_pool), "connect"));
    /* The breaker is closed: nobody tries (or waits) again until the backoff has passed. */
    t0 = apr_time_now();
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_EAGAIN);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(5));
    ck_assert_uint_eq(errors(), before + 1);
    ck_assert(redis_srv_start(&sv, port, NULL));
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_EAGAIN);
    ot_redis_mark_up(r);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_NOTFOUND);
    /* Restarted under a kept connection: the command is tried again on a new one. */
    redis_srv_stop(&sv);
    ck_assert(redis_srv_start(&sv, port, NULL));
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_NOTFOUND);
    redis_srv_stop(&sv);
    rmdir(sv.dir);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_slow_redis_times_out)
{
    ot_redis_t *r;
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t got;
    redisContext *c;
    apr_time_t t0;

    NEED_REDIS();
    r = redis_client("slow", redis_shared.port, NULL, &stats, ot_test_pool);
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_NOTFOUND);
    c = redis_raw(redis_shared.port);
    freeReplyObject(redisCommand(c, "CLIENT PAUSE 1500 ALL"));
    t0 = apr_time_now();
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_EAGAIN);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(1200));
    ck_assert_ptr_nonnull(strstr(ot_redis_last_error(r, ot_test_pool), "command"));
    freeReplyObject(redisCommand(c, "CLIENT UNPAUSE"));
    redisFree(c);
    ot_redis_mark_up(r);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &got, ot_test_pool), APR_NOTFOUND);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_auth_and_select)
{
    redis_srv_t sv = { 0 };
    ot_redis_t *r, *wrong;
    ot_redis_conf_t conf;
    unsigned char key[OT_KEY_LEN];
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e = entry("alice", now, ot_test_pool), got;
    redisContext *c;
    redisReply *reply;
    const char *err;

    NEED_REDIS();
    ck_assert(redis_srv_start(&sv, 0, "s3cret-pass"));
    memset(&conf, 0, sizeof(conf));
    ck_assert_ptr_null(ot_redis_parse_url(&conf, apr_psprintf(ot_test_pool,
                       "redis://127.0.0.1:%d/3", sv.port), ot_test_pool));
    conf.password = "s3cret-pass";
    conf.key = "a key of at least sixteen bytes";
    conf.key_len = strlen(conf.key);
    ck_assert_int_eq(ot_redis_create(&r, &conf, 2, &stats, ot_test_pool), APR_SUCCESS);
    key_of(key, 1);
    ck_assert_int_eq(ot_redis_put(r, key, &e, now, NULL, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(r, key, now, &got, ot_test_pool), APR_SUCCESS);
    c = redis_raw(sv.port);
    freeReplyObject(redisCommand(c, "AUTH s3cret-pass"));
    freeReplyObject(redisCommand(c, "SELECT 3"));
    reply = redisCommand(c, "EXISTS %s", ot_redis_answer_name(r, key, ot_test_pool));
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);
    redisFree(c);
    conf.password = "wrong-pass";
    ck_assert_int_eq(ot_redis_create(&wrong, &conf, 2, &stats, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_get(wrong, key, now, &got, ot_test_pool), APR_EAGAIN);
    err = ot_redis_last_error(wrong, ot_test_pool);
    ck_assert_ptr_nonnull(strstr(err, "AUTH"));
    ck_assert_ptr_null(strstr(err, "wrong-pass"));
    conf.key_len = 15;
    ck_assert_int_eq(ot_redis_create(&wrong, &conf, 2, &stats, ot_test_pool), APR_EINVAL);
    ot_redis_close(r);
    redis_srv_stop(&sv);
    rmdir(sv.dir);
}
END_TEST

START_TEST(test_publish_and_stored)
{
    ot_redis_t *r;
    apr_time_t now = apr_time_now();
    ot_redis_rev_t a = rev(OT_REDIS_REV_SUB, "alice", now - 3000);
    ot_redis_rev_t b = rev(OT_REDIS_REV_SID, "sid-7", now - 2000);
    ot_redis_rev_t n = rev(OT_REDIS_REV_NOT_BEFORE, "rs-client", now - 1000);
    ot_redis_rev_t old = rev(OT_REDIS_REV_SUB, "bob", now - apr_time_from_sec(200));
    apr_array_header_t *got;
    redisContext *c;
    redisReply *reply;

    NEED_REDIS();
    r = redis_client("publish", redis_shared.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_publish(r, &n, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_publish(r, &old, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_publish(r, &a, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_publish(r, &b, now, ot_test_pool), APR_SUCCESS);
    c = redis_raw(redis_shared.port);
    reply = redisCommand(c, "ZADD %s %lld %s", ot_redis_rev_name(r), 1LL << 50, "forged");
    freeReplyObject(reply);
    redisFree(c);
    ck_assert_int_eq(ot_redis_stored(r, &got, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 3);     /* bob's had expired; in order of application */
    ck_assert_str_eq(APR_ARRAY_IDX(got, 0, ot_redis_rev_t).value, "alice");
    ck_assert_str_eq(APR_ARRAY_IDX(got, 1, ot_redis_rev_t).value, "sid-7");
    ck_assert_str_eq(APR_ARRAY_IDX(got, 2, ot_redis_rev_t).value, "rs-client");
    ck_assert_int_eq(APR_ARRAY_IDX(got, 2, ot_redis_rev_t).not_before, n.not_before);
    /* Tombstones expire; a not-before policy stays until the next one replaces it. */
    ck_assert_int_eq(ot_redis_stored(r, &got, now + apr_time_from_sec(121), ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(got, 0, ot_redis_rev_t).value, "rs-client");
    n.at = now;
    n.not_before = 0;
    n.order++;                          /* a clear replaces it only when its action is newer */
    ck_assert_int_eq(ot_redis_publish(r, &n, now, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_stored(r, &got, now + apr_time_from_sec(121), ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(got, 0, ot_redis_rev_t).not_before, 0);
    ot_redis_close(r);
}
END_TEST

START_TEST(test_pending_until_back)
{
    redis_srv_t sv = { 0 };
    int port = redis_free_port();
    ot_redis_t *r = redis_client("pending", port, NULL, &stats, ot_test_pool);
    apr_time_t now = apr_time_now();
    ot_redis_rev_t a = rev(OT_REDIS_REV_SUB, "alice", now - 2000);
    ot_redis_rev_t b = rev(OT_REDIS_REV_SID, "sid-9", now - 1000);
    apr_array_header_t *got;

    NEED_REDIS();
    ck_assert_int_eq(ot_redis_publish(r, &a, now, ot_test_pool), APR_EAGAIN);
    ck_assert_int_eq(ot_redis_publish(r, &b, now, ot_test_pool), APR_EAGAIN);
    ck_assert_int_eq(ot_redis_pending(r), 2);
    ck_assert_int_eq(ot_redis_flush_pending(r, now), APR_EAGAIN);
    ck_assert_int_eq(ot_redis_pending(r), 2);
    ck_assert(redis_srv_start(&sv, port, NULL));
    ot_redis_mark_up(r);
    ck_assert_int_eq(ot_redis_flush_pending(r, apr_time_now()), APR_SUCCESS);
    ck_assert_int_eq(ot_redis_pending(r), 0);
    ck_assert_int_eq(ot_redis_stored(r, &got, apr_time_now(), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(got->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(got, 0, ot_redis_rev_t).value, "alice");
    ot_redis_close(r);
    redis_srv_stop(&sv);
    rmdir(sv.dir);
}
END_TEST

/** One of the threads of test_threads_share_a_client: put and get its own keys. */
static void *APR_THREAD_FUNC hammer(apr_thread_t *t, void *baton)
{
    ot_redis_t *r = baton;
    apr_pool_t *p;
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e, got;
    apr_status_t rv = APR_SUCCESS;
    int i;

    apr_pool_create(&p, NULL);
    memset(&e, 0, sizeof(e));
    for (i = 0; i < 200 && rv == APR_SUCCESS; i++) {
        apr_time_t now = apr_time_now();

        e = entry("alice", now, p);
        key_of(key, i % 50);
        rv = ot_redis_put(r, key, &e, now, NULL, p);
        rv = rv == APR_EEXIST ? APR_SUCCESS : rv;   /* another thread's was newer */
        if (rv == APR_SUCCESS) {
            rv = ot_redis_get(r, key, now, &got, p);
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, rv);
    return NULL;
}

START_TEST(test_threads_share_a_client)
{
    apr_thread_t *threads[8];
    apr_status_t rv;
    ot_redis_t *r;
    int i;

    NEED_REDIS();
    r = redis_client("threads", redis_shared.port, NULL, &stats, ot_test_pool);
    for (i = 0; i < 8; i++) {
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, hammer, r, ot_test_pool),
                         APR_SUCCESS);
    }
    for (i = 0; i < 8; i++) {
        apr_thread_join(&rv, threads[i]);
        ck_assert_int_eq(rv, APR_SUCCESS);
    }
    ot_redis_close(r);
}
END_TEST

static void redis_live_tests(TCase *tc)
{
    tcase_add_test(tc, test_get_put);
    tcase_add_test(tc, test_forged_values_ignored);
    tcase_add_test(tc, test_unreachable_then_back);
    tcase_add_test(tc, test_slow_redis_times_out);
    tcase_add_test(tc, test_auth_and_select);
    tcase_add_test(tc, test_publish_and_stored);
    tcase_add_test(tc, test_pending_until_back);
    tcase_add_test(tc, test_threads_share_a_client);
}

Suite *suite_redis(void)
{
    const TTest *offline[] = { test_parse_url, test_seal_answer, test_seal_revocation };
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("encodings");
    TCase *live = tcase_create("live");
    apr_size_t i;

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    for (i = 0; i < sizeof(offline) / sizeof(offline[0]); i++) {
        tcase_add_test(tc, offline[i]);
    }
    suite_add_tcase(s, tc);
    tcase_add_unchecked_fixture(live, redis_shared_start, redis_shared_stop);
    tcase_add_checked_fixture(live, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(live, 60);
    redis_live_tests(live);
    suite_add_tcase(s, live);
    return s;
}
