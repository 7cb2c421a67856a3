/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A Redis that is not ours (a rogue Sentinel's master, or someone on the path): whatever it
 * answers a command with, a node reads no more than the replies it asks for can be, holds no
 * more than their elements, and waits no longer than the command timeout. The server is a thread
 * of the test (rogue_srv.c); the watch's and the subscriber's reads are test_redis_rogue_watch.c's.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_redis_int.h"
#include "ot_stats.h"
#include "redis_srv.h"
#include "rogue_srv.h"

static ot_stats_t stats;

START_TEST(test_endless_answer_not_read)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_start(&rg);

    memset(key, 7, sizeof(key));
    r = redis_client("rogue", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool), APR_EAGAIN);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    /* The socket buffers take a few megabytes more than the client read; never the stream. */
    ck_assert_msg(rg.sent < 16 * 1024 * 1024, "the client read %zu bytes of a reply", rg.sent);
}
END_TEST

START_TEST(test_endless_catch_up_not_read)
{
    apr_array_header_t *revs;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_start(&rg);

    r = redis_client("rogue-stored", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(r, &revs, apr_time_now(), ot_test_pool), APR_EAGAIN);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    ck_assert_msg(rg.sent < ROGUE_TOTAL, "the client read all %zu bytes", rg.sent);
}
END_TEST

/*
 * The command timeout bounds each read: a server that sends one byte of an answer every 100 ms
 * (for 20 s) kept the request all that time, where the command may take 300 ms (the tests'
 * timeout); now it fails once it has taken longer, and the request falls back.
 */
START_TEST(test_dripping_answer_not_waited_for)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    apr_time_t start;

    t = rogue_streaming(&rg, "$100000\r\n", "x", 1, 200);
    rg.drip = apr_time_from_msec(100);
    memset(key, 7, sizeof(key));
    r = redis_client("rogue-drip", rg.port, NULL, &stats, ot_test_pool);
    start = apr_time_now();
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool), APR_EAGAIN);
    ck_assert_msg(apr_time_now() - start < apr_time_from_sec(5), "waited %" APR_TIME_T_FMT " ms",
                  (apr_time_now() - start) / 1000);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "command: a reply slower than the command timeout");
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

/*
 * An array's count is read before any element: hiredis 0.14 then makes a table for all of them,
 * so "*1111111110" asked for 8.9 GB (found by fuzz_sentinel). No reply of ours has more than
 * OT_REDIS_ARRAY_MAX elements; a longer count fails the connection at once.
 */
static void assert_array_refused(const char *head)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_answering(&rg, head, strlen(head), 1);

    memset(key, 7, sizeof(key));
    r = redis_client("rogue-array", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool), APR_EAGAIN);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "command: an array longer than any reply this module asks for");
    ot_redis_close(r);
    rogue_stop(&rg, t);
}

START_TEST(test_huge_array_count_refused)
{
    assert_array_refused("*1111111110\r\n");
}
END_TEST

/* The largest count hiredis 0.14 takes itself (it refuses a negative or a larger one). */
START_TEST(test_int_max_array_count_refused)
{
    assert_array_refused("*2147483647\r\n");
}
END_TEST

/* Open arrays hold their tables: no deeper than a reply of ours (hiredis 0.14 would take 7). */
START_TEST(test_deep_nesting_refused)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    ot_redis_t *r;
    rogue_t rg;
    static const char head[] = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
    apr_thread_t *t = rogue_answering(&rg, head, sizeof(head) - 1, 1);

    memset(key, 7, sizeof(key));
    r = redis_client("rogue-deep", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool), APR_EAGAIN);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "command: a reply nested deeper than any this module asks for");
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

START_TEST(test_nested_array_count_refused)
{
    assert_array_refused("*2\r\n*1\r\n:1\r\n*65537\r\n");
}
END_TEST

/** The catch-up's reply: two arrays of n empty strings between them ({z, h} of the script). */
static char *stored_reply(int n, apr_size_t *len)
{
    char *b = apr_psprintf(ot_test_pool, "*2\r\n*%d\r\n", n), *out;
    apr_size_t head = strlen(b), i;

    out = apr_palloc(ot_test_pool, head + 6 * (apr_size_t)n + 5);
    memcpy(out, b, head);
    for (i = 0; i < (apr_size_t)n; i++) {
        memcpy(out + head + 6 * i, "$0\r\n\r\n", 6);
    }
    memcpy(out + head + 6 * (apr_size_t)n, "*0\r\n", 5);
    *len = head + 6 * (apr_size_t)n + 5;
    return out;
}

/** The largest array a reply of ours can have is still read; one more is not. */
START_TEST(test_array_bound_is_the_catch_ups)
{
    apr_array_header_t *revs = NULL;
    apr_size_t len;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    const char *head = stored_reply(OT_REDIS_ARRAY_MAX, &len);
    apr_time_t deadline;

    t = rogue_answering(&rg, head, len, 1);
    r = redis_client("rogue-stored-most", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(r, &revs, apr_time_now(), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(revs->nelts, 0);   /* empty strings: each noted as not ours */
    /* Nor is the connection kept idle with a buffer that large: closed at once. */
    for (deadline = apr_time_now() + apr_time_from_sec(5);
         !rg.hung_up && apr_time_now() < deadline;) {
        apr_sleep(apr_time_from_msec(10));
    }
    ck_assert_msg(rg.hung_up, "a connection that read a %zu-byte reply was kept", len);
    ot_redis_close(r);
    rogue_stop(&rg, t);

    head = stored_reply(OT_REDIS_ARRAY_MAX + 1, &len);
    t = rogue_answering(&rg, head, len, 1);
    r = redis_client("rogue-stored-more", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(r, &revs, apr_time_now(), ot_test_pool), APR_EAGAIN);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "command: an array longer than any reply this module asks for");
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

/*
 * Arrays each within the bound, but more elements in all than any reply of ours (the catch-up's
 * shape, two arrays of 40,000): with the 32 MiB the catch-up may read, such elements of a few
 * bytes each asked for some 800 MB of reply objects. Refused as the count that goes over is read.
 */
START_TEST(test_elements_in_all_bounded)
{
    apr_array_header_t *revs = NULL;
    apr_size_t len;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    const char *head = arrays_of_integers("*2\r\n", 2, 40000, &len);

    t = rogue_answering(&rg, head, len, 1);
    r = redis_client("rogue-stored-elements", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(r, &revs, apr_time_now(), ot_test_pool), APR_EAGAIN);
    ck_assert_str_eq(ot_redis_last_error(r, ot_test_pool),
                     "command: a reply with more elements than any this module asks for");
    ot_redis_close(r);
    rogue_stop(&rg, t);

    /* Two arrays that hold the most revocations between them are read. */
    head = arrays_of_integers("*2\r\n", 2, OT_REDIS_STORED_MAX / 2, &len);
    t = rogue_answering(&rg, head, len, 1);
    r = redis_client("rogue-stored-elements-most", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_stored(r, &revs, apr_time_now(), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(revs->nelts, 0);   /* integers: each noted as not ours */
    ot_redis_close(r);
    rogue_stop(&rg, t);
}
END_TEST

/** What ot_redis_get makes of a GETRANGE answered by an array of n integers (PTTL by :1). */
static apr_status_t answer_array(int n, const char **why)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    apr_size_t len;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    const char *arrays = arrays_of_integers("", 1, n, &len);
    char *head = apr_palloc(ot_test_pool, len + 4);
    apr_status_t rv;

    memcpy(head, arrays, len);
    memcpy(head + len, ":1\r\n", 4);
    t = rogue_answering(&rg, head, len + 4, 1);
    memset(key, 7, sizeof(key));
    r = redis_client("rogue-answer-elements", rg.port, NULL, &stats, ot_test_pool);
    rv = ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool);
    *why = ot_redis_last_error(r, ot_test_pool);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    return rv;
}

/*
 * Only a connection that read more than any answer (a catch-up) is closed after it: one that
 * read a large answer (here 100 KiB, which fails its MAC) is kept. Closing it made every request
 * for a token with such an answer open a connection to Redis, whose TIME_WAITs use up the
 * ports to Redis at some 470 requests a second.
 */
START_TEST(test_large_answer_connection_kept)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    apr_size_t n = 100 * 1024;
    const char *pre = apr_psprintf(ot_test_pool, "$%" APR_SIZE_T_FMT "\r\n", n);
    apr_size_t h = strlen(pre);
    char *head = apr_palloc(ot_test_pool, h + n + 6);

    memcpy(head, pre, h);
    memset(head + h, 'x', n);
    memcpy(head + h + n, "\r\n:1\r\n", 6);
    t = rogue_answering(&rg, head, h + n + 6, 1);
    memset(key, 7, sizeof(key));
    r = redis_client("rogue-large-answer", rg.port, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_get(r, key, apr_time_now(), &e, ot_test_pool), APR_EINVAL);
    ck_assert_int_eq(r->n_idle, 1);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    ck_assert(rg.hung_up);
}
END_TEST

/*
 * No reply but the catch-up's has many elements: an answer's budget (257 KiB) filled with
 * 4-byte integers made some 65,000 reply objects (~5 MB, for each request a Redis not ours
 * answers so). Within any budget but the catch-up's, OT_REDIS_ELEMENTS_SMALL in all.
 */
START_TEST(test_answer_elements_bounded)
{
    const char *why;

    ck_assert_int_eq(answer_array(OT_REDIS_ELEMENTS_SMALL + 1, &why), APR_EAGAIN);
    ck_assert_str_eq(why, "command: a reply with more elements than any this module asks for");
    /* As many as a ROLE could have, twice over: read (and not an answer). */
    ck_assert_int_eq(answer_array(OT_REDIS_ELEMENTS_SMALL - 1, &why), APR_NOTFOUND);
}
END_TEST

/**
 * What ot_redis_get makes of a valid answer (fetched 1 s ago, to be dropped in 60 s) that a
 * server sends with the PTTL line pttl (":<ms>\r\n"); *got the answer.
 */
static apr_status_t answer_with_pttl(const char *pttl, ot_cache_entry_t *got)
{
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    apr_time_t now = apr_time_now();
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t;
    char *val, *head;
    const char *pre;
    apr_size_t len, n;
    apr_status_t rv;

    memset(key, 7, sizeof(key));
    memset(&e, 0, sizeof(e));
    e.fetched = now - apr_time_from_sec(1);
    e.drop_after = now + apr_time_from_sec(60);
    e.exp = now + apr_time_from_sec(3600);
    e.active = 1;
    e.iss = "https://sso.example.org/realms/test";
    e.sub = "alice";
    e.claims = "{\"active\":true,\"sub\":\"alice\"}";
    e.claims_len = strlen(e.claims);
    /* The key is the test name's: the same for the client that seals and the one that reads. */
    r = redis_client("rogue-pttl", 1, NULL, &stats, ot_test_pool);
    ck_assert_int_eq(ot_redis_seal_answer(r, ot_redis_answer_name(r, key, ot_test_pool), &e,
                                          &val, &len, ot_test_pool), APR_SUCCESS);
    ot_redis_close(r);
    /* The value is binary (its MAC): put together by length, not as a C string. */
    pre = apr_psprintf(ot_test_pool, "$%" APR_SIZE_T_FMT "\r\n", len);
    n = strlen(pre);
    head = apr_palloc(ot_test_pool, n + len + 2 + strlen(pttl));
    memcpy(head, pre, n);
    memcpy(head + n, val, len);
    memcpy(head + n + len, "\r\n", 2);
    memcpy(head + n + len + 2, pttl, strlen(pttl));
    t = rogue_answering(&rg, head, n + len + 2 + strlen(pttl), 1);
    r = redis_client("rogue-pttl", rg.port, NULL, &stats, ot_test_pool);
    rv = ot_redis_get(r, key, now, got, ot_test_pool);
    ck_assert_msg(rv == APR_SUCCESS || rv == APR_NOTFOUND, "%s",
                  ot_redis_last_error(r, ot_test_pool));
    ot_redis_close(r);
    rogue_stop(&rg, t);
    return rv;
}

/*
 * The answer's time to live is the server's to say: PTTL 2^63-1 ms (a Redis not ours, or an
 * expiry at the end of time) overflowed apr_time_from_msec (signed: undefined), which here
 * wrapped to -1 ms and made a valid answer look expired. A time to live longer than any
 * answer's is as good as none said.
 */
START_TEST(test_huge_pttl_not_overflowed)
{
    ot_cache_entry_t got;
    apr_time_t dropped;

    ck_assert_int_eq(answer_with_pttl(":59000\r\n", &got), APR_SUCCESS);
    dropped = got.drop_after;
    ck_assert_int_eq(answer_with_pttl(":9223372036854775807\r\n", &got), APR_SUCCESS);
    ck_assert_str_eq(got.sub, "alice");
    ck_assert(got.drop_after >= dropped);
    ck_assert_int_eq(answer_with_pttl(":-1\r\n", &got), APR_SUCCESS);
}
END_TEST

Suite *suite_redis_rogue(void)
{
    Suite *s = suite_create("redis_rogue");
    TCase *tc = tcase_create("rogue");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_endless_answer_not_read);
    tcase_add_test(tc, test_endless_catch_up_not_read);
    tcase_add_test(tc, test_huge_array_count_refused);
    tcase_add_test(tc, test_int_max_array_count_refused);
    tcase_add_test(tc, test_nested_array_count_refused);
    tcase_add_test(tc, test_deep_nesting_refused);
    tcase_add_test(tc, test_array_bound_is_the_catch_ups);
    tcase_add_test(tc, test_elements_in_all_bounded);
    tcase_add_test(tc, test_answer_elements_bounded);
    tcase_add_test(tc, test_dripping_answer_not_waited_for);
    tcase_add_test(tc, test_large_answer_connection_kept);
    tcase_add_test(tc, test_huge_pttl_not_overflowed);
    suite_add_tcase(s, tc);
    return s;
}
