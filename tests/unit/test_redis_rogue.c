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
    apr_size_t sent;            /**< bytes the client took before it hung up */
} rogue_t;

static void *APR_THREAD_FUNC rogue_main(apr_thread_t *t, void *baton)
{
    rogue_t *rg = baton;
    static char chunk[64 * 1024];
    const char *head = "$1000000000\r\n";
    char req[4096];
    int fd = accept(rg->listener, NULL, NULL);
    ssize_t n;

    memset(chunk, 'x', sizeof(chunk));
    if (fd >= 0 && read(fd, req, sizeof(req)) > 0
        && send(fd, head, strlen(head), MSG_NOSIGNAL) > 0) {
        while (rg->sent < ROGUE_TOTAL
               && (n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL)) > 0) {
            rg->sent += (apr_size_t)n;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    /* A plain return, not apr_thread_exit: pthread_exit's forced unwinding leaves this frame's
     * redzones poisoned, and ASan's own thread teardown then reports a write into them. */
    return NULL;
}

static apr_thread_t *rogue_start(rogue_t *rg)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    apr_thread_t *t;
    int one = 1;

    memset(rg, 0, sizeof(*rg));
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
    int done = 0, moved = 0, i;

    r = redis_client("rogue-sentinel", rg.port, NULL, &stats, ot_test_pool);
    w = redisConnect("127.0.0.1", rg.port);
    ck_assert_ptr_nonnull(w);
    redisAppendCommand(w, "SUBSCRIBE +switch-master");
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(w, &done), REDIS_OK);
    }
    for (i = 0; i < 100000 && ot_redis_sentinel_heard(r, w, &moved); i++) {
        ck_assert_int_eq(moved, 0);
    }
    redisFree(w);
    ot_redis_close(r);
    rogue_stop(&rg, t);
    ck_assert_msg(rg.sent < 16 * 1024 * 1024, "the watch read %zu bytes of a message", rg.sent);
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
    suite_add_tcase(s, tc);
    return s;
}
