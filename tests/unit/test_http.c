/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_http.c against the stub HTTP server of http_stub.c, which runs in the test
 * process and answers as each test sets its mode.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include "ot_http.h"
#include "ot_stats.h"
#include "ot_unit.h"
#include "http_stub.h"

static http_stub_t stub;
static ot_http_t *http;
static ot_stats_t stats;

static void http_setup(void)
{
    ot_test_setup();
    memset(&stats, 0, sizeof(stats));
    http_stub_start(&stub);
    ck_assert_int_eq(ot_http_global_init(), APR_SUCCESS);
    ck_assert_int_eq(ot_http_create(&http, 8, &stats, ot_test_pool), APR_SUCCESS);
}

static void http_teardown(void)
{
    http_stub_destroy(&stub);
    ot_test_teardown();
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
    ck_assert_int_eq(http_stub_accepted(&stub), 1);
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
    ck_assert_int_eq(http_stub_requests(&stub), 0);
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
    ck_assert_int_eq(http_stub_requests(&stub), 1);
}
END_TEST

START_TEST(test_retry_after_cut_on_reused)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    http_stub_mode(&stub, STUB_CUT_REUSED);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.retried, 0);
    /* The kept connection breaks mid-answer; the retry on a fresh one is answered. */
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_str_eq(resp.body, STUB_BODY);
    ck_assert_int_eq(resp.retried, 1);
    ck_assert_int_eq(resp.new_connections, 1);
    ck_assert_int_eq(http_stub_accepted(&stub), 2);
    ck_assert_int_eq(http_stub_requests(&stub), 3);
    ck_assert_uint_eq(stats.retries, 1);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_RECV], 0);
}
END_TEST

/** A body that must not be sent twice: each call of this gives a new one (or none, baton NULL). */
static const char *fresh_body(void *baton, apr_size_t *len, apr_pool_t *p)
{
    int *calls = baton;
    const char *body;

    if (calls == NULL) {
        return NULL;
    }
    body = apr_psprintf(p, "token=abc&client_assertion=fresh-%d", ++*calls);
    *len = strlen(body);
    return body;
}

/*
 * A client assertion's jti is refused the second time: the issuer may have read the request
 * before the answer broke, so the retry must carry a new body, never the same one again.
 */
START_TEST(test_retry_sends_a_fresh_body_when_asked)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;
    int calls = 0;

    http_stub_mode(&stub, STUB_CUT_REUSED);
    req.body = "token=abc&client_assertion=first";
    req.body_len = strlen(req.body);
    req.rebody = fresh_body;
    req.rebody_baton = &calls;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(calls, 0);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.retried, 1);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(http_stub_requests(&stub), 3);
    ck_assert_ptr_nonnull(strstr(stub.last, "\r\n\r\ntoken=abc&client_assertion=fresh-1"));
    ck_assert_ptr_nonnull(strstr(stub.last, "Content-Length: 34\r\n"));
    /* No new body to be had: no retry, the failure stands. */
    req.rebody_baton = NULL;
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ERECV);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_int_eq(http_stub_requests(&stub), 4);
}
END_TEST

START_TEST(test_no_retry_on_fresh_connection)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    http_stub_mode(&stub, STUB_CUT);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ERECV);
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_ptr_nonnull(resp.errmsg);
    ck_assert_int_eq(http_stub_requests(&stub), 1);
    ck_assert_uint_eq(stats.issuer_errors[OT_ERR_RECV], 1);
}
END_TEST

START_TEST(test_server_closes_each_time)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;
    int i;

    http_stub_mode(&stub, STUB_CLOSE);
    for (i = 0; i < 10; ++i) {
        ot_http_post(http, &req, &resp, ot_test_pool);
        ck_assert_int_eq(resp.err, OT_HTTP_OK);
        ck_assert_int_eq(resp.new_connections, 1);
    }
    ck_assert_int_eq(http_stub_accepted(&stub), 10);
    ck_assert_int_eq(http_stub_requests(&stub), 10);
}
END_TEST

START_TEST(test_no_retry_after_500)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    http_stub_mode(&stub, STUB_500);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.status, 500);
    ck_assert_str_eq(resp.body, "oops\n");
    ck_assert_int_eq(resp.retried, 0);
    ck_assert_int_eq(http_stub_requests(&stub), 2);
    ck_assert_int_eq(http_stub_accepted(&stub), 1);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
    ot_http_req_t req = req_to("http", ot_test_pool);
    ot_http_resp_t resp;

    http_stub_mode(&stub, STUB_REDIRECT);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_OK);
    ck_assert_int_eq(resp.status, 302);
    ck_assert_str_eq(resp.location,
                     apr_psprintf(ot_test_pool, "http://127.0.0.1:%d/else", stub.port));
    ck_assert_int_eq(http_stub_requests(&stub), 1);
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
    http_stub_mode(&stub, STUB_HUGE);
    ot_http_post(http, &req, &resp, ot_test_pool);
    ck_assert_int_eq(resp.err, OT_HTTP_ETOOBIG);
    http_stub_mode(&stub, STUB_HUGE_CHUNKED);
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

    http_stub_mode(&stub, STUB_HANG);
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

    http_stub_stop(&stub);
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
    http_stub_stop(&stub);
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
    ck_assert_int_eq(http_stub_accepted(&stub), 1);
    ck_assert_int_eq(http_stub_requests(&stub), 0);
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
            __atomic_add_fetch(failures, 1, __ATOMIC_SEQ_CST);
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
    ck_assert_int_eq(http_stub_requests(&stub), N_THREADS * N_CALLS);
    ck_assert_int_le(http_stub_accepted(&stub), N_THREADS);
    ck_assert_uint_eq(stats.issuer_calls, N_THREADS * N_CALLS);
    ck_assert_uint_eq(stats.connections_opened, (apr_uint64_t)http_stub_accepted(&stub));
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
    tcase_add_test(tc, test_retry_sends_a_fresh_body_when_asked);
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
