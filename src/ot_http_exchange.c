/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * One attempt of an issuer call on a pooled link (ot_http.c): libcurl's options for the link and
 * the exchange (timeouts within the deadline, TLS trust, client certificate, the body limit), the
 * transfer driven through the link's multi handle, and its outcome as an ot_http_err_t and a
 * sentence for the log.
 */
#include <string.h>
#include <curl/curl.h>
#include <apr_strings.h>
#include "ot_http_int.h"

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *baton)
{
    ot_body_t *b = baton;
    apr_size_t n = size * nmemb;
    apr_size_t cap;
    char *data;

    if (n > b->max - b->len) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap * 2 : 4096;
        cap = cap < b->len + n + 1 ? b->len + n + 1 : cap;
        cap = cap > b->max + 1 ? b->max + 1 : cap;
        data = apr_palloc(b->p, cap);
        if (b->len) {
            memcpy(data, b->data, b->len);
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void opt_long(CURLcode *rc, CURL *curl, CURLoption opt, long v)
{
    if (*rc == CURLE_OK) {
        *rc = curl_easy_setopt(curl, opt, v);
    }
}

static void opt_ptr(CURLcode *rc, CURL *curl, CURLoption opt, const void *v)
{
    if (*rc == CURLE_OK) {
        *rc = curl_easy_setopt(curl, opt, v);
    }
}

static void opt_off(CURLcode *rc, CURL *curl, CURLoption opt, curl_off_t v)
{
    if (*rc == CURLE_OK) {
        *rc = curl_easy_setopt(curl, opt, v);
    }
}

/** Milliseconds left before the deadline, at least 1 (0 would mean "no limit" to libcurl). */
static long ms_left(apr_time_t deadline)
{
    apr_interval_time_t left = deadline - apr_time_now();

    return left > 1000 ? (long)((left + 999) / 1000) : 1L;
}

/**
 * The TLS client certificate (tls_client_auth), from memory: the files were read at start-up as
 * root, and the child may not be able to read them. No TLS session of the share is used or
 * left: a session resumed elsewhere would carry this identity to a call made without it.
 */
static void setup_client_cert(CURLcode *rc, CURL *curl, const ot_http_req_t *req)
{
    struct curl_blob cert, key;

    cert.data = (void *)req->client_cert;
    cert.len = req->client_cert_len;
    cert.flags = CURL_BLOB_COPY;
    key.data = (void *)req->client_key;
    key.len = req->client_key_len;
    key.flags = CURL_BLOB_COPY;
    opt_ptr(rc, curl, CURLOPT_SSLCERT_BLOB, &cert);
    opt_ptr(rc, curl, CURLOPT_SSLCERTTYPE, "PEM");
    opt_ptr(rc, curl, CURLOPT_SSLKEY_BLOB, &key);
    opt_ptr(rc, curl, CURLOPT_SSLKEYTYPE, "PEM");
    opt_long(rc, curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
}

/** Where and how to connect: protocols, proxy, keep-alive, TLS verification and CA store. */
static CURLcode setup_link(CURL *curl, const ot_call_t *c, int fresh)
{
    const ot_http_req_t *req = c->req;
    CURLcode rc = CURLE_OK;
    long total = ms_left(c->deadline);
    long conn = req->connect_timeout > 0 ? (long)((req->connect_timeout + 999) / 1000) : total;

    opt_ptr(&rc, curl, CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    opt_ptr(&rc, curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    opt_long(&rc, curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    opt_long(&rc, curl, CURLOPT_NOSIGNAL, 1L);
    opt_ptr(&rc, curl, CURLOPT_PROXY, "");
    opt_long(&rc, curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    opt_long(&rc, curl, CURLOPT_TCP_KEEPALIVE, 1L);
    opt_long(&rc, curl, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
    opt_long(&rc, curl, CURLOPT_TIMEOUT_MS, total);
    opt_long(&rc, curl, CURLOPT_CONNECTTIMEOUT_MS, conn < total ? conn : total);
    opt_long(&rc, curl, CURLOPT_SSL_VERIFYPEER, req->verify ? 1L : 0L);
    opt_long(&rc, curl, CURLOPT_SSL_VERIFYHOST, req->verify ? 2L : 0L);
    if (req->ca_file) {
        /* The CA cache is used only for a CA file alone; Debian sets a default CApath. */
        opt_ptr(&rc, curl, CURLOPT_CAINFO, req->ca_file);
        opt_ptr(&rc, curl, CURLOPT_CAPATH, NULL);
    }
#if LIBCURL_VERSION_NUM >= 0x075700
    opt_long(&rc, curl, CURLOPT_CA_CACHE_TIMEOUT, OT_CA_CACHE_SECS);
#endif
    if (req->client_cert) {
        setup_client_cert(&rc, curl, req);
    }
    return rc;
}

/** What to send and where the answer goes. */
static CURLcode setup_exchange(CURL *curl, ot_call_t *c)
{
    const ot_http_req_t *req = c->req;
    CURLcode rc = CURLE_OK;

    opt_ptr(&rc, curl, CURLOPT_USERAGENT, "mod_offtok");
    opt_ptr(&rc, curl, CURLOPT_HTTPHEADER, c->headers);
    if (c->post) {
        opt_off(&rc, curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->out_len);
        opt_ptr(&rc, curl, CURLOPT_POSTFIELDS, c->out ? c->out : "");
    }
    else {
        opt_long(&rc, curl, CURLOPT_HTTPGET, 1L);
    }
    opt_off(&rc, curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_body);
    opt_long(&rc, curl, CURLOPT_UPLOAD_BUFFERSIZE, OT_UPLOAD_BUFFER);
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
    }
    opt_ptr(&rc, curl, CURLOPT_WRITEDATA, &c->body);
    opt_ptr(&rc, curl, CURLOPT_ERRORBUFFER, c->errbuf);
    return rc;
}

/** Headers we send; APR_EINVAL when a value could split the header block. */
apr_status_t ot_http_make_headers(ot_call_t *c, apr_pool_t *p)
{
    const ot_http_req_t *req = c->req;
    const char *names[] = { "Content-Type", "Authorization", "Accept" };
    const char *values[] = { c->post ? req->content_type : NULL, req->authorization, req->accept };
    struct curl_slist *l;
    apr_size_t i;

    /* An empty Expect: keeps libcurl from waiting for "100 Continue". */
    c->headers = curl_slist_append(NULL, "Expect:");
    for (i = 0; c->headers && i < sizeof(names) / sizeof(names[0]); ++i) {
        if (!values[i]) {
            continue;
        }
        if (strpbrk(values[i], "\r\n")) {
            return APR_EINVAL;
        }
        l = curl_slist_append(c->headers, apr_pstrcat(p, names[i], ": ", values[i], NULL));
        if (!l) {
            return APR_ENOMEM;
        }
        c->headers = l;
    }
    return c->headers ? APR_SUCCESS : APR_ENOMEM;
}

static ot_http_err_t map_error(CURLcode rc, int too_big)
{
    switch (rc) {
    case CURLE_OK:
        return OT_HTTP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return OT_HTTP_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return OT_HTTP_ETIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return OT_HTTP_ETLS;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
        return OT_HTTP_ERECV;
    case CURLE_FILESIZE_EXCEEDED:
        return OT_HTTP_ETOOBIG;
    case CURLE_WRITE_ERROR:
        return too_big ? OT_HTTP_ETOOBIG : OT_HTTP_EINTERNAL;
    default:
        return OT_HTTP_EINTERNAL;
    }
}

/** curl's error text, unless it would show the credential we sent. */
static const char *error_text(const ot_call_t *c, CURLcode rc, apr_pool_t *p)
{
    const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    const char *cred = c->req->authorization;
    const char *sp;

    if (c->body.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        return apr_psprintf(p, "answer larger than %" APR_SIZE_T_FMT " bytes", c->req->max_body);
    }
    if (cred && (sp = strchr(cred, ' ')) != NULL && sp[1]) {
        cred = sp + 1;
    }
    if (cred && *cred && strstr(msg, cred)) {
        msg = curl_easy_strerror(rc);
    }
    return apr_pstrdup(p, msg);
}

/** Fill resp from a finished attempt. Strings owned by the handle are copied to p. */
static void attempt_result(ot_call_t *c, CURL *curl, CURLcode rc, ot_http_resp_t *resp,
                           apr_pool_t *p)
{
    long status = 0;
    char *ctype = NULL, *location = NULL;

    c->connects = 0;
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &c->connects);
    resp->new_connections += (int)c->connects;
    resp->err = map_error(rc, c->body.too_big);
    if (resp->err != OT_HTTP_OK) {
        resp->errmsg = error_text(c, rc, p);
        return;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ctype);
    curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location);
    resp->status = (int)status;
    resp->content_type = ctype ? apr_pstrdup(p, ctype) : NULL;
    resp->location = location ? apr_pstrdup(p, location) : NULL;
    resp->body = c->body.data ? c->body.data : "";
    resp->body_len = c->body.len;
    resp->errmsg = NULL;
}

/**
 * Run the transfer on l's multi handle until it is done: perform, and wait for its sockets only
 * while it is still running. CURLOPT_TIMEOUT_MS ends it; the deadline check is a backstop.
 */
static CURLcode perform(ot_link_t *l, apr_time_t deadline)
{
    CURLcode rc = CURLE_OPERATION_TIMEDOUT;
    CURLMcode mc;
    CURLMsg *msg;
    int running = 1, left;

    if (curl_multi_add_handle(l->multi, l->easy) != CURLM_OK) {
        return CURLE_FAILED_INIT;
    }
    for (;;) {
        mc = curl_multi_perform(l->multi, &running);
        if (mc != CURLM_OK || !running || apr_time_now() > deadline + apr_time_from_sec(1)) {
            break;
        }
        mc = curl_multi_wait(l->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            break;
        }
    }
    if (mc != CURLM_OK) {
        rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    }
    while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == l->easy) {
            rc = msg->data.result;
        }
    }
    curl_multi_remove_handle(l->multi, l->easy);
    return rc;
}

/** One transfer on l; the easy handle is reset afterwards (the connections stay in l's multi). */
void ot_http_attempt(ot_call_t *c, ot_link_t *l, int fresh, ot_http_resp_t *resp,
                     apr_pool_t *p)
{
    CURLcode rc;

    memset(&c->body, 0, sizeof(c->body));
    c->body.p = p;
    c->body.max = c->req->max_body;
    c->errbuf[0] = '\0';
    rc = setup_link(l->easy, c, fresh);
    if (rc == CURLE_OK) {
        rc = setup_exchange(l->easy, c);
    }
    if (rc == CURLE_OK) {
        rc = perform(l, c->deadline);
    }
    attempt_result(c, l->easy, rc, resp, p);
    curl_easy_reset(l->easy);
}

/**
 * Whether the failure broke a connection the handle had kept (warm): the answer was cut on a
 * reused connection, or the kept one was gone and reconnecting was refused. Never after an answer.
 */
int ot_http_worth_retry(const ot_call_t *c, const ot_http_resp_t *resp, int warm)
{
    if (!warm || apr_time_now() >= c->deadline) {
        return 0;
    }
    return (resp->err == OT_HTTP_ERECV && c->connects == 0) || resp->err == OT_HTTP_ECONNECT;
}

/**
 * The body of the retry: the same, unless it must not be sent twice (the issuer may have read
 * it before the answer broke); 0 when there is none to send.
 */
int ot_http_body_for_retry(ot_call_t *c, apr_pool_t *p)
{
    if (c->post && c->req->rebody) {
        c->out_len = 0;
        c->out = c->req->rebody(c->req->rebody_baton, &c->out_len, p);
        return c->out != NULL;
    }
    return 1;
}
