/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The rogue Redis of test_redis_rogue.c and test_redis_rogue_watch.c (rogue_srv.h). */
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "ot_redis_int.h"
#include "rogue_srv.h"

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

void *APR_THREAD_FUNC rogue_main(apr_thread_t *t, void *baton)
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

apr_thread_t *rogue_run(rogue_t *rg)
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

apr_thread_t *rogue_answering(rogue_t *rg, const char *head, apr_size_t head_len, int hold)
{
    memset(rg, 0, sizeof(*rg));
    rg->head = head;
    rg->head_len = head_len;
    rg->hold = hold;
    return rogue_run(rg);
}

apr_thread_t *rogue_streaming(rogue_t *rg, const char *head, const char *body,
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

apr_thread_t *rogue_start(rogue_t *rg)
{
    static const char head[] = "$1000000000\r\n";

    return rogue_answering(rg, head, sizeof(head) - 1, 0);
}

void rogue_stop(rogue_t *rg, apr_thread_t *t)
{
    apr_status_t rv;

    apr_thread_join(&rv, t);
    close(rg->listener);
}


char *arrays_of_integers(const char *head, int arrays, int n, apr_size_t *len)
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

redisContext *rogue_watch(struct ot_redis_t *r, int port)
{
    redisContext *w = ot_redis_open(r, "127.0.0.1", port, 0);
    int done = 0;

    ck_assert_ptr_nonnull(w);
    redisAppendCommand(w, "SUBSCRIBE +switch-master");
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(w, &done), REDIS_OK);
    }
    return w;
}
