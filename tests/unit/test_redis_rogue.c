/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A Redis that is not ours (a rogue Sentinel's master, or someone on the path): whatever it
 * sends, a node reads no more than the replies it asks for can be. The server here is a thread
 * of the test that answers every request with a bulk string it says is a gigabyte long and
 * streams as fast as the socket takes it: the client must give up long before the end.
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

/** What the rogue server streams at most before it stops on its own. */
#define ROGUE_TOTAL (64 * 1024 * 1024)

static ot_stats_t stats;

typedef struct {
    int listener;
    int port;
    const char *head;           /**< what it answers first (NULL: a gigabyte's bulk header) */
    apr_size_t head_len;
    int hold;                   /**< after head: wait for the client to hang up, not stream */
    const char *body;           /**< streamed after head, again and again (NULL: 'x's) */
    apr_size_t body_len;
    apr_size_t total;           /**< the body is streamed until this many bytes went */
    apr_size_t sent;            /**< bytes the client took before it hung up */
    volatile int hung_up;       /**< hold: the client closed the connection */
    apr_interval_time_t drip;   /**< between two sends of body (0: none) */
} rogue_t;

/** Send all of b (1), or 0 once the client has gone. */
static int send_all(int fd, const char *b, apr_size_t n)
{
    ssize_t k;

    for (; n > 0; b += k, n -= (apr_size_t)k) {
        if ((k = send(fd, b, n, MSG_NOSIGNAL)) <= 0) {
            return 0;
        }
    }
    return 1;
}

static void *APR_THREAD_FUNC rogue_main(apr_thread_t *t, void *baton)
{
    rogue_t *rg = baton;
    static char chunk[64 * 1024];
    char req[4096];
    int fd = accept(rg->listener, NULL, NULL);
    ssize_t n;

    memset(chunk, 'x', sizeof(chunk));
    if (fd >= 0 && read(fd, req, sizeof(req)) > 0 && send_all(fd, rg->head, rg->head_len)) {
        while (rg->hold && read(fd, req, sizeof(req)) > 0) {
            /* whatever else it asks goes unanswered, until it hangs up */
        }
        rg->hung_up = rg->hold;
        while (!rg->hold && rg->body == NULL && rg->sent < ROGUE_TOTAL
               && (n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL)) > 0) {
            rg->sent += (apr_size_t)n;
        }
        while (!rg->hold && rg->body != NULL && rg->sent < rg->total
               && send_all(fd, rg->body, rg->body_len)) {
            rg->sent += rg->body_len;
            if (rg->drip) {
                apr_sleep(rg->drip);
            }
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    /* A plain return, not apr_thread_exit: pthread_exit's forced unwinding leaves this frame's
     * redzones poisoned, and ASan's own thread teardown then reports a write into them. */
    return NULL;
}

/** Start the rogue server set up in rg: listen on a free port, answer in a thread. */
static apr_thread_t *rogue_run(rogue_t *rg)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    apr_thread_t *t;
    int one = 1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rg->listener = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(rg->listener, 0);
    setsockopt(rg->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_int_eq(bind(rg->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(rg->listener, 4), 0);
    ck_assert_int_eq(getsockname(rg->listener, (struct sockaddr *)&sa, &len), 0);
    rg->port = ntohs(sa.sin_port);
    ck_assert_int_eq(apr_thread_create(&t, NULL, rogue_main, rg, ot_test_pool), APR_SUCCESS);
    return t;
}

/** A rogue server that answers head and then holds the connection (hold), or streams. */
static apr_thread_t *rogue_answering(rogue_t *rg, const char *head, apr_size_t head_len,
                                     int hold)
{
    memset(rg, 0, sizeof(*rg));
    rg->head = head;
    rg->head_len = head_len;
    rg->hold = hold;
    return rogue_run(rg);
}

/** A rogue server that answers head, then streams body again and again (total bytes). */
static apr_thread_t *rogue_streaming(rogue_t *rg, const char *head, const char *body,
                                     apr_size_t body_len, apr_size_t total)
{
    memset(rg, 0, sizeof(*rg));
    rg->head = head;
    rg->head_len = strlen(head);
    rg->body = body;
    rg->body_len = body_len;
    rg->total = total;
    return rogue_run(rg);
}

/** The rogue server of the first tests: a bulk string it says is a gigabyte long, streamed. */
static apr_thread_t *rogue_start(rogue_t *rg)
{
    static const char head[] = "$1000000000\r\n";

    return rogue_answering(rg, head, sizeof(head) - 1, 0);
}

static void rogue_stop(rogue_t *rg, apr_thread_t *t)
{
    apr_status_t rv;

    apr_thread_join(&rv, t);
    close(rg->listener);
}

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

START_TEST(test_endless_sentinel_message_not_read)
{
    redisContext *w;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_start(&rg);
    apr_size_t fed = 0;
    int done = 0, moved = 0, i;

    r = redis_client("rogue-sentinel", rg.port, NULL, &stats, ot_test_pool);
    w = redisConnect("127.0.0.1", rg.port);
    ck_assert_ptr_nonnull(w);
    redisAppendCommand(w, "SUBSCRIBE +switch-master");
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(w, &done), REDIS_OK);
    }
    for (i = 0; i < 100000 && ot_redis_sentinel_heard(r, w, &fed, &moved); i++) {
        ck_assert_int_eq(moved, 0);
    }
    redisFree(w);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    ck_assert_msg(rg.sent < 16 * 1024 * 1024, "the watch read %zu bytes of a message", rg.sent);
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

/** A Sentinel's watch connection (made by ot_redis_open, as the subscriber's is) is bounded too. */
START_TEST(test_huge_array_sentinel_message_refused)
{
    static const char head[] = "*1111111110\r\n";
    redisContext *w;
    ot_redis_t *r;
    rogue_t rg;
    apr_thread_t *t = rogue_answering(&rg, head, sizeof(head) - 1, 1);
    apr_size_t fed = 0;
    int done = 0, moved = 0, i;

    r = redis_client("rogue-sentinel-array", rg.port, NULL, &stats, ot_test_pool);
    w = ot_redis_open(r, "127.0.0.1", rg.port, 0);
    ck_assert_ptr_nonnull(w);
    redisAppendCommand(w, "SUBSCRIBE +switch-master");
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(w, &done), REDIS_OK);
    }
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

/** n arrays of n small integers each, after a head: elements without end, each array in bound. */
static char *arrays_of_integers(const char *head, int arrays, int n, apr_size_t *len)
{
    apr_size_t h = strlen(head), one = strlen("*65536\r\n") + 4 * (apr_size_t)n, i, k;
    char *out = apr_palloc(ot_test_pool, h + one * (apr_size_t)arrays + 1), *at = out + h;

    memcpy(out, head, h);
    for (k = 0; k < (apr_size_t)arrays; k++) {
        at += apr_snprintf(at, 16, "*%d\r\n", n);
        for (i = 0; i < (apr_size_t)n; i++, at += 4) {
            memcpy(at, ":1\r\n", 4);
        }
    }
    *len = (apr_size_t)(at - out);
    return out;
}

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
    int done = 0, moved = 0, i;
    apr_size_t n;
    const char *body = arrays_of_integers("", 1, 65536, &n);

    t = rogue_streaming(&rg, head, body, n, 2 * 1024 * 1024);
    r = redis_client("rogue-sentinel-nested", rg.port, NULL, &stats, ot_test_pool);
    w = ot_redis_open(r, "127.0.0.1", rg.port, 0);
    ck_assert_ptr_nonnull(w);
    redisAppendCommand(w, "SUBSCRIBE +switch-master");
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(w, &done), REDIS_OK);
    }
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
    tcase_add_test(tc, test_endless_sentinel_message_not_read);
    tcase_add_test(tc, test_huge_array_count_refused);
    tcase_add_test(tc, test_int_max_array_count_refused);
    tcase_add_test(tc, test_nested_array_count_refused);
    tcase_add_test(tc, test_deep_nesting_refused);
    tcase_add_test(tc, test_array_bound_is_the_catch_ups);
    tcase_add_test(tc, test_huge_array_sentinel_message_refused);
    tcase_add_test(tc, test_endless_nested_sentinel_message_dropped);
    tcase_add_test(tc, test_endless_nested_channel_message_dropped);
    tcase_add_test(tc, test_elements_in_all_bounded);
    tcase_add_test(tc, test_answer_elements_bounded);
    tcase_add_test(tc, test_dripping_answer_not_waited_for);
    tcase_add_test(tc, test_flooding_sentinel_does_not_stall_subscriber);
    tcase_add_test(tc, test_large_answer_connection_kept);
    tcase_add_test(tc, test_huge_pttl_not_overflowed);
    suite_add_tcase(s, tc);
    return s;
}
