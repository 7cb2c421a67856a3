/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_http.c against a stub HTTP server that runs in the test process: a thread
 * accepting on 127.0.0.1 (port 0) and one thread per connection, answering as the test's mode
 * says and counting accepted connections and requests.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include "ot_http.h"
#include "ot_stats.h"
#include "ot_unit.h"

typedef enum {
    STUB_OK,           /* 200 with a small JSON body, connection kept */
    STUB_REDIRECT,     /* 302 with a Location */
    STUB_500,          /* 500 with a body, connection kept */
    STUB_HUGE,         /* 200 announcing and sending 4 MB */
    STUB_HUGE_CHUNKED, /* 200, 4 MB in chunks, no length announced */
    STUB_HANG,         /* read the request, never answer */
    STUB_CLOSE,        /* 200, then close the connection without announcing it */
    STUB_CUT_REUSED,   /* first request on a connection: 200; later ones: half an answer, close */
    STUB_CUT           /* every answer cut in half, then close */
} stub_mode_t;

#define STUB_BODY "{\"active\":true}"

/** The stub server. Counters are read and written with __atomic builtins. */
typedef struct {
    int fd;
    int port;
    int mode;
    int stop;
    int accepted;
    int requests;
    int active;        /* connection threads alive */
    pthread_t acceptor;
    char last[4096];   /* the last request received, headers and body */
    pthread_mutex_t last_lock;
} stub_t;

static stub_t stub;
static ot_http_t *http;
static ot_stats_t stats;

static int aget(int *v)
{
    return __atomic_load_n(v, __ATOMIC_SEQ_CST);
}

static void aadd(int *v, int n)
{
    __atomic_add_fetch(v, n, __ATOMIC_SEQ_CST);
}

/** Wait up to 50 ms for fd to be readable; -1 when the stub stops. */
static int stub_wait(int fd)
{
    struct pollfd pfd = { fd, POLLIN, 0 };

    while (!aget(&stub.stop)) {
        if (poll(&pfd, 1, 50) > 0) {
            return 0;
        }
    }
    return -1;
}

/** Read one request into buf (kept across calls in *have); its length, 0 on EOF, -1 if not HTTP. */
static int stub_read(int fd, char *buf, int size, int *have)
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
        if (*have >= size - 1 || stub_wait(fd) < 0 || (n = (int)read(fd, buf + *have,
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

static void stub_huge(int fd, int chunked)
{
    char block[16384];
    const char *head = chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               : "HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n";
    int i;

    memset(block, 'x', sizeof(block));
    stub_send(fd, head, strlen(head));
    for (i = 0; i < 256 && !aget(&stub.stop); ++i) {
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
static int stub_answer(int fd, int nth)
{
    char out[512];
    int mode = aget(&stub.mode);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15"
                     "\r\n\r\n" STUB_BODY;

    if (mode == STUB_REDIRECT) {
        snprintf(out, sizeof(out), "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/else"
                 "\r\nContent-Length: 0\r\n\r\n", stub.port);
        ok = out;
    }
    else if (mode == STUB_500) {
        ok = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n";
    }
    else if (mode == STUB_HUGE || mode == STUB_HUGE_CHUNKED) {
        stub_huge(fd, mode == STUB_HUGE_CHUNKED);
        return 0;
    }
    else if (mode == STUB_HANG) {
        stub_wait(-1);
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
    int fd = (int)(intptr_t)baton;
    char buf[16384];
    int have = 0, len, nth = 0;

    while ((len = stub_read(fd, buf, sizeof(buf), &have)) != 0) {
        if (len < 0) {
            stub_send(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
            break;
        }
        aadd(&stub.requests, 1);
        pthread_mutex_lock(&stub.last_lock);
        snprintf(stub.last, sizeof(stub.last), "%.*s", len, buf);
        pthread_mutex_unlock(&stub.last_lock);
        memmove(buf, buf + len, (size_t)(have - len));
        have -= len;
        if (!stub_answer(fd, ++nth)) {
            break;
        }
    }
    close(fd);
    aadd(&stub.active, -1);
    return NULL;
}

static void *stub_accept(void *baton)
{
    pthread_t t;
    int fd;

    (void)baton;
    while (stub_wait(stub.fd) == 0) {
        if ((fd = accept(stub.fd, NULL, NULL)) < 0) {
            continue;
        }
        aadd(&stub.accepted, 1);
        aadd(&stub.active, 1);
        if (pthread_create(&t, NULL, stub_conn, (void *)(intptr_t)fd) != 0) {
            close(fd);
            aadd(&stub.active, -1);
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

static void stub_stop(void)
{
    int i;

    if (aget(&stub.stop)) {
        return;
    }
    aadd(&stub.stop, 1);
    pthread_join(stub.acceptor, NULL);
    close(stub.fd);
    for (i = 0; i < 200 && aget(&stub.active) > 0; ++i) {
        usleep(10000);
    }
}

static void http_setup(void)
{
    ot_test_setup();
    memset(&stub, 0, sizeof(stub));
    memset(&stats, 0, sizeof(stats));
    pthread_mutex_init(&stub.last_lock, NULL);
    stub.fd = listen_any(&stub.port);
    ck_assert_int_eq(pthread_create(&stub.acceptor, NULL, stub_accept, NULL), 0);
    ck_assert_int_eq(ot_http_global_init(), APR_SUCCESS);
    ck_assert_int_eq(ot_http_create(&http, 8, &stats, ot_test_pool), APR_SUCCESS);
}

static void http_teardown(void)
{
    stub_stop();
    ot_test_teardown();
    pthread_mutex_destroy(&stub.last_lock);
}

/** A request to the stub (scheme "http" or "https") with a 2 s connect and 3 s total timeout. */
static ot_http_req_t req_to(const char *scheme, apr_pool_t *p)
{
    ot_http_req_t req;

    memset(&req, 0, sizeof(req));
    req.url = apr_psprintf(p, "%s://127.0.0.1:%d/introspect", scheme, stub.port);
    req.body = "token=abc&token_type_hint=access_token";
    req.body_len = strlen(req.body);
    req.content_type = "application/x-www-form-urlencoded";
    req.authorization = "Basic Y2xpZW50OnNlY3JldA==";
    req.accept = "application/json";
    req.verify = 1;
    req.connect_timeout = apr_time_from_sec(2);
    req.total_timeout = apr_time_from_sec(3);
    req.max_body = 256 * 1024;
    return req;
}

START_TEST(test_reuse_and_request)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;
    int i, conns = 0;

    for (i = 0; i < 20; ++i) {
        ot_http_post(http, &req, &resp, ot_test_pool);
        ck_assert_int_eq(resp.err, OT_HTTP_OK);
        ck_assert_int_eq(resp.status, 200);
        ck_assert_str_eq(resp.body, STUB_BODY);
        ck_assert_uint_eq(resp.body_len, 15);
        ck_assert_str_eq(resp.content_type, "application/json");
        ck_assert_int_eq(resp.retried, 0);
        conns += resp.new_connections;
    }
    ck_assert_int_eq(aget(&stub.accepted), 1);
    ck_assert_int_eq(conns, 1);
    ck_assert_uint_eq(stats.connections_opened, 1);
    ck_assert_uint_eq(stats.issuer_calls, 20);
    ck_assert_str_eq(ot_http_err_name(OT_HTTP_ETOOBIG), "toobig");
    /* What went out: our headers, the body, no Expect. */
    ck_assert_ptr_nonnull(strstr(stub.last, "POST /introspect HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(stub.last, "Authorization: Basic Y2xpZW50OnNlY3JldA==\r\n"));
    ck_assert_ptr_nonnull(strstr(stub.last, "Content-Type: application/x-www-form-urlencoded\r\n"));
    ck_assert_ptr_nonnull(strstr(stub.last, "Accept: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(stub.last, "\r\n\r\ntoken=abc&token_type_hint=access_token"));
    ck_assert_ptr_null(strcasestr(stub.last, "Expect:"));
    ot_http_get(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_ptr_nonnull(strstr(stub.last, "GET /introspect HTTP/1.1\r\n"));
    ck_assert_uint_eq(stats.jwks_fetches, 1);
}
END_TEST

START_TEST(test_header_injection_refused)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    req.authorization = "Bearer x\r\nX-Evil: 1";
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_EINTERNAL);
    ck_assert_int_eq(aget(&stub.requests), 0);
}
END_TEST

START_TEST(test_proxy_env_ignored)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
    ot_http_post(http, &req, &resp, ot_test_pool);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(aget(&stub.requests), 1);
}
END_TEST

START_TEST(test_retry_after_cut_on_reused)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub.mode = STUB_CUT_REUSED;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.retried, 0);
    /* The kept connection breaks mid-answer; the retry on a fresh one is answered. */
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_str_eq(resp.body, STUB_BODY);
    ck_assert_int_eq(resp.retried, 1);
    ck_assert_int_eq(resp.new_connections, 1);
    ck_assert_int_eq(aget(&stub.accepted), 2);
    ck_assert_int_eq(aget(&stub.requests), 3);
    ck_assert_uint_eq(stats.retries, 1);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_RECV], 0);
}
END_TEST

START_TEST(test_no_retry_on_fresh_connection)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub.mode = STUB_CUT;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ERECV);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_ptr_nonnull(resp.errmsg);
    ck_assert_int_eq(aget(&stub.requests), 1);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_RECV], 1);
}
END_TEST

START_TEST(test_server_closes_each_time)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;
    int i;

    stub.mode = STUB_CLOSE;
    for (i = 0; i < 10; ++i) {
        ot_http_post(http, &req, &resp, ot_test_pool);
        ck_assert_int_eq(resp.err, OT_HTTP_OK);
        ck_assert_int_eq(resp.new_connections, 1);
    }
    ck_assert_int_eq(aget(&stub.accepted), 10);
    ck_assert_int_eq(aget(&stub.requests), 10);
}
END_TEST

START_TEST(test_no_retry_after_500)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub.mode = STUB_500;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.status, 500);
    ck_assert_str_eq(resp.body, "oops\n");
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_int_eq(aget(&stub.requests), 2);
    ck_assert_int_eq(aget(&stub.accepted), 1);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub.mode = STUB_REDIRECT;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.status, 302);
    ck_assert_str_eq(resp.location,
                     apr_psprintf(ot_test_pool, "http://127.0.0.1:%d/else", stub.port));
    ck_assert_int_eq(aget(&stub.requests), 1);
}
END_TEST

START_TEST(test_too_big)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    req.max_body = 15;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    req.max_body = 14;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETOOBIG);
    ck_assert_str_eq(resp.errmsg, "answer larger than 14 bytes");
    req.max_body = 64 * 1024;
    stub.mode = STUB_HUGE;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETOOBIG);
    stub.mode = STUB_HUGE_CHUNKED;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETOOBIG);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_TOOBIG], 3);
}
END_TEST

START_TEST(test_timeout)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub.mode = STUB_HANG;
    req.total_timeout = apr_time_from_msec(300);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETIMEOUT);
    ck_assert_int_ge(resp.elapsed, apr_time_from_msec(290));
    ck_assert_int_lt(resp.elapsed, apr_time_from_msec(800));
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_TIMEOUT], 1);
    /* A request's own deadline, sooner than the total timeout, wins. */
    req.total_timeout = apr_time_from_sec(3);
    req.deadline = apr_time_now() + apr_time_from_msec(200);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETIMEOUT);
    ck_assert_int_lt(resp.elapsed, apr_time_from_msec(700));
}
END_TEST

START_TEST(test_connect_refused)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    stub_stop();
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ECONNECT);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_CONNECT], 1);
}
END_TEST

START_TEST(test_issuer_gone_after_reuse)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    stub_stop();
    /* The kept connection is gone and reconnecting is refused: tried twice, still refused. */
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ECONNECT);
    ck_assert_int_eq(resp.retried, 1);
}
END_TEST

/*
 * TLS to a plain-HTTP port. The stub takes the ClientHello for a request that is not HTTP and
 * answers "HTTP/1.1 400" in clear text; OpenSSL reads that as a TLS record with an impossible
 * version and fails the handshake (CURLE_SSL_CONNECT_ERROR, "wrong version number"): ETLS, on a
 * fresh connection, so not retried. TCP connected fine, so it is not ECONNECT; bytes did arrive,
 * and the failure is in the TLS layer, so it is not ERECV either.
 */
START_TEST(test_tls_to_plain_port)
{
    ot_http_req_t req = req_to("https", ot_test_pool);
    ot_http_resp_t resp;

    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETLS);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_int_eq(aget(&stub.accepted), 1);
    ck_assert_int_eq(aget(&stub.requests), 0);
}
END_TEST

/** An error text that would name the credential is replaced by curl's generic text. */
START_TEST(test_errmsg_hides_credential)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    req.url = "http://s3cr3tcred.invalid/introspect";
    req.authorization = "Bearer s3cr3tcred";
    req.total_timeout = apr_time_from_sec(2);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_ne(resp.err, OT_HTTP_OK);
    ck_assert_ptr_nonnull(resp.errmsg);
    ck_assert_ptr_null(strstr(resp.errmsg, "s3cr3tcred"));
}
END_TEST

#define N_THREADS 8
#define N_CALLS 200

static void *APR_THREAD_FUNC hammer(apr_thread_t *t, void *baton)
{
    int *failures = baton;
    apr_pool_t *p;
    ot_http_req_t req;
    ot_http_resp_t resp;
    int i;

    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    req = req_to("http", p);
    for (i = 0; i < N_CALLS; ++i) {
        ot_http_post(http, &req, &resp, p);
        if (resp.err != OT_HTTP_OK || resp.status != 200 || strcmp(resp.body, STUB_BODY)) {
            aadd(failures, 1);
        }
        apr_pool_clear(p);
        req = req_to("http", p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(test_threads)
{
    apr_thread_t *t[N_THREADS];
    apr_status_t rv;
    int i, failures = 0;

    for (i = 0; i < N_THREADS; ++i) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, hammer, &failures, ot_test_pool), 0);
    }
    for (i = 0; i < N_THREADS; ++i) {
        apr_thread_join(&rv, t[i]);
    }
    ck_assert_int_eq(failures, 0);
    ck_assert_int_eq(aget(&stub.requests), N_THREADS * N_CALLS);
    ck_assert_int_le(aget(&stub.accepted), N_THREADS);
    ck_assert_uint_eq(stats.issuer_calls, N_THREADS * N_CALLS);
    ck_assert_uint_eq(stats.connections_opened, (apr_uint64_t)aget(&stub.accepted));
}
END_TEST

Suite *suite_http(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");

    tcase_add_checked_fixture(tc, http_setup, http_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reuse_and_request);
    tcase_add_test(tc, test_header_injection_refused);
    tcase_add_test(tc, test_proxy_env_ignored);
    tcase_add_test(tc, test_retry_after_cut_on_reused);
    tcase_add_test(tc, test_no_retry_on_fresh_connection);
    tcase_add_test(tc, test_server_closes_each_time);
    tcase_add_test(tc, test_no_retry_after_500);
    tcase_add_test(tc, test_redirect_not_followed);
    tcase_add_test(tc, test_too_big);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_issuer_gone_after_reuse);
    tcase_add_test(tc, test_tls_to_plain_port);
    tcase_add_test(tc, test_errmsg_hides_credential);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}
