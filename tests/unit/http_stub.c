/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * The stub HTTP server of the ot_http.c tests (http_stub.h): an acceptor thread and one thread
 * per connection, each reading requests (headers and a Content-Length body) and answering as
 * the stub's mode says until the mode or the client ends the connection.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ot_unit.h"
#include "http_stub.h"

/** What a connection thread is given: its stub and its socket. */
typedef struct {
    http_stub_t *st;
    int fd;
} stub_conn_t;

static int aget(int *v)
{
    return __atomic_load_n(v, __ATOMIC_SEQ_CST);
}

static void aadd(int *v, int n)
{
    __atomic_add_fetch(v, n, __ATOMIC_SEQ_CST);
}

/** Wait up to 50 ms at a time for fd to be readable; -1 when the stub stops. */
static int stub_wait(http_stub_t *st, int fd)
{
    struct pollfd pfd = { fd, POLLIN, 0 };

    while (!aget(&st->stop)) {
        if (poll(&pfd, 1, 50) > 0) {
            return 0;
        }
    }
    return -1;
}

/** Read one request into buf (kept across calls in *have); its length, 0 on EOF, -1 if not HTTP. */
static int stub_read(http_stub_t *st, int fd, char *buf, int size, int *have)
{
    char *end;
    const char *cl;
    int n, need;

    for (;;) {
        buf[*have] = '\0';
        if (*have > 0 && (buf[0] < 'A' || buf[0] > 'Z')) {
            return -1;
        }
        end = strstr(buf, "\r\n\r\n");
        if (end) {
            cl = strcasestr(buf, "Content-Length:");
            need = (int)(end + 4 - buf) + (cl && cl < end ? atoi(cl + 15) : 0);
            if (*have >= need) {
                return need;
            }
        }
        if (*have >= size - 1 || stub_wait(st, fd) < 0 || (n = (int)read(fd, buf + *have,
                                                          (size_t)(size - 1 - *have))) <= 0) {
            return 0;
        }
        *have += n;
    }
}

static void stub_send(int fd, const char *s, size_t len)
{
    ssize_t n;

    while (len > 0 && (n = send(fd, s, len, MSG_NOSIGNAL)) > 0) {
        s += n;
        len -= (size_t)n;
    }
}

static void stub_huge(http_stub_t *st, int fd, int chunked)
{
    char block[16384];
    const char *head = chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               : "HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n";
    int i;

    memset(block, 'x', sizeof(block));
    stub_send(fd, head, strlen(head));
    for (i = 0; i < 256 && !aget(&st->stop); ++i) {
        if (chunked) {
            stub_send(fd, "4000\r\n", 6);
        }
        stub_send(fd, block, sizeof(block));
        if (chunked) {
            stub_send(fd, "\r\n", 2);
        }
    }
    if (chunked) {
        stub_send(fd, "0\r\n\r\n", 5);
    }
}

/** Answer one request as the mode says; 1 to keep the connection. */
static int stub_answer(http_stub_t *st, int fd, int nth)
{
    char out[512];
    int mode = aget(&st->mode);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15"
                     "\r\n\r\n" STUB_BODY;

    if (mode == STUB_REDIRECT) {
        snprintf(out, sizeof(out), "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/else"
                 "\r\nContent-Length: 0\r\n\r\n", st->port);
        ok = out;
    }
    else if (mode == STUB_500) {
        ok = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n";
    }
    else if (mode == STUB_HUGE || mode == STUB_HUGE_CHUNKED) {
        stub_huge(st, fd, mode == STUB_HUGE_CHUNKED);
        return 0;
    }
    else if (mode == STUB_HANG) {
        stub_wait(st, -1);
        return 0;
    }
    else if (mode == STUB_CUT || (mode == STUB_CUT_REUSED && nth > 1)) {
        ok = "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"act";
        mode = STUB_CLOSE;
    }
    stub_send(fd, ok, strlen(ok));
    return mode != STUB_CLOSE;
}

static void *stub_conn(void *baton)
{
    stub_conn_t *c = baton;
    http_stub_t *st = c->st;
    int fd = c->fd;
    char buf[16384];
    int have = 0, len, nth = 0;

    free(c);
    while ((len = stub_read(st, fd, buf, sizeof(buf), &have)) != 0) {
        if (len < 0) {
            stub_send(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
            break;
        }
        aadd(&st->requests, 1);
        pthread_mutex_lock(&st->last_lock);
        snprintf(st->last, sizeof(st->last), "%.*s", len, buf);
        pthread_mutex_unlock(&st->last_lock);
        memmove(buf, buf + len, (size_t)(have - len));
        have -= len;
        if (!stub_answer(st, fd, ++nth)) {
            break;
        }
    }
    close(fd);
    aadd(&st->active, -1);
    return NULL;
}

static void *stub_accept(void *baton)
{
    http_stub_t *st = baton;
    stub_conn_t *c;
    pthread_t t;
    int fd;

    while (stub_wait(st, st->fd) == 0) {
        if ((fd = accept(st->fd, NULL, NULL)) < 0) {
            continue;
        }
        aadd(&st->accepted, 1);
        aadd(&st->active, 1);
        if ((c = malloc(sizeof(*c))) == NULL) {
            close(fd);
            aadd(&st->active, -1);
            continue;
        }
        c->st = st;
        c->fd = fd;
        if (pthread_create(&t, NULL, stub_conn, c) != 0) {
            free(c);
            close(fd);
            aadd(&st->active, -1);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/** A listening socket on 127.0.0.1 with a port of the kernel's choice. */
static int listen_any(int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

void http_stub_start(http_stub_t *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_init(&st->last_lock, NULL);
    st->fd = listen_any(&st->port);
    ck_assert_int_eq(pthread_create(&st->acceptor, NULL, stub_accept, st), 0);
}

void http_stub_stop(http_stub_t *st)
{
    int i;

    if (aget(&st->stop)) {
        return;
    }
    aadd(&st->stop, 1);
    pthread_join(st->acceptor, NULL);
    close(st->fd);
    for (i = 0; i < 200 && aget(&st->active) > 0; ++i) {
        usleep(10000);
    }
}

void http_stub_destroy(http_stub_t *st)
{
    http_stub_stop(st);
    pthread_mutex_destroy(&st->last_lock);
}

void http_stub_mode(http_stub_t *st, http_stub_mode_t mode)
{
    __atomic_store_n(&st->mode, (int)mode, __ATOMIC_SEQ_CST);
}

int http_stub_accepted(http_stub_t *st)
{
    return aget(&st->accepted);
}

int http_stub_requests(http_stub_t *st)
{
    return aget(&st->requests);
}
