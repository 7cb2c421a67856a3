/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_http.c
 * @brief libcurl behind ot_http.h: a per-process pool of links that keep their connections.
 *
 * Each pooled link is an easy handle driven by a multi handle of its own. The multi handle owns
 * the link's connection cache and (curl 7.87+) its parsed CA store, so a link taken from the pool
 * usually finds a kept-alive TLS connection to the issuer and never parses the CA file again.
 * Driving the multi handle ourselves, rather than through curl_easy_perform, saves a poll of
 * libcurl's wake-up socket on every exchange. The easy handle is reset after every attempt (its
 * connections stay in the multi handle) and the link is put back after every outcome but an
 * internal error: libcurl itself closes a connection that failed, and the parsed CA store is worth
 * keeping through an issuer outage. A CURLSH shares the DNS cache and TLS sessions between links,
 * so a link that must connect anew resumes a TLS session; it does not share connections (libcurl
 * 7.88 KNOWN_BUGS 11.11: not thread-safe).
 *
 * A call that fails at the connection level on a handle that had kept a connection is tried once
 * more on a fresh connection, within what is left of the total timeout. libcurl itself already
 * reconnects when a kept connection turns out dead before any byte of the answer arrived; the retry
 * here covers the rest (a connection that broke mid-answer, a reconnect that was refused).
 */
#include <string.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include "ot_http.h"
#include "ot_stats.h"

/** Bytes of a client identity: SHA-256 of the client certificate and key; zeros for none. */
#define OT_IDENT_LEN 32

/** Seconds a link keeps the parsed CA file before reading it again. */
#define OT_CA_CACHE_SECS 3600L

/**
 * Bytes of libcurl's upload buffer. Its default, 64 KiB, is allocated and freed on every exchange;
 * a chunk that large makes glibc consolidate and trim the thread's heap each time. We send forms of
 * a few KiB, and 16 KiB is libcurl's smallest.
 */
#define OT_UPLOAD_BUFFER 16384L

/** A pooled link to the issuers: an easy handle and the multi handle that keeps its connections. */
typedef struct {
    CURL *easy;
    CURLM *multi;
    unsigned char ident[OT_IDENT_LEN];  /**< the client identity its connections were made with */
} ot_link_t;

struct ot_http_t {
    apr_thread_mutex_t *mutex;       /**< guards idle and n_idle */
    ot_link_t *idle;                 /**< reset links with kept connections; last is newest */
    int n_idle;
    int max_idle;
    CURLSH *share;                   /**< DNS cache and TLS sessions, shared by all links */
    apr_thread_mutex_t *locks[CURL_LOCK_DATA_LAST];  /**< one per kind of shared data */
    ot_stats_t *stats;
};

/** The answer body as it arrives, bounded by max. */
typedef struct {
    apr_pool_t *p;
    char *data;
    apr_size_t len;
    apr_size_t cap;
    apr_size_t max;
    int too_big;
} ot_body_t;

/** One call: what every attempt needs, and what the last attempt left. */
typedef struct {
    const ot_http_req_t *req;
    int post;
    const char *out;                 /**< the body sent: req's, or req->rebody's for the retry */
    apr_size_t out_len;
    apr_time_t deadline;
    struct curl_slist *headers;
    long connects;                   /**< connections the last attempt opened */
    ot_body_t body;
    char errbuf[CURL_ERROR_SIZE];
} ot_call_t;

/** ot_http_err_t as counted in ot_stats_t. */
static const ot_err_kind_t err_kinds[] = {
    OT_ERR_INTERNAL, OT_ERR_CONNECT, OT_ERR_TIMEOUT, OT_ERR_TLS, OT_ERR_RECV, OT_ERR_TOOBIG,
    OT_ERR_INTERNAL
};

const char *ot_http_err_name(ot_http_err_t err)
{
    if (err == OT_HTTP_OK) {
        return "ok";
    }
    return ot_stats_error_names[err > OT_HTTP_OK && err <= OT_HTTP_EINTERNAL ? err_kinds[err]
                                                                               : OT_ERR_INTERNAL];
}

apr_status_t ot_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

static void share_lock(CURL *curl, curl_lock_data data, curl_lock_access access, void *baton)
{
    ot_http_t *h = baton;

    (void)curl;
    (void)access;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST) {
        apr_thread_mutex_lock(h->locks[data]);
    }
}

static void share_unlock(CURL *curl, curl_lock_data data, void *baton)
{
    ot_http_t *h = baton;

    (void)curl;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST) {
        apr_thread_mutex_unlock(h->locks[data]);
    }
}

/** Close a link: the easy handle, then the multi handle with its connections. */
static void link_close(ot_link_t *l)
{
    if (l->easy) {
        curl_easy_cleanup(l->easy);
        l->easy = NULL;
    }
    if (l->multi) {
        curl_multi_cleanup(l->multi);
        l->multi = NULL;
    }
}

/** Pool cleanup: close the idle links (and their connections), then the share. */
static apr_status_t http_cleanup(void *baton)
{
    ot_http_t *h = baton;

    while (h->n_idle > 0) {
        link_close(&h->idle[--h->n_idle]);
    }
    if (h->share && curl_share_cleanup(h->share) == CURLSHE_OK) {
        h->share = NULL;
    }
    return APR_SUCCESS;
}

static apr_status_t share_create(ot_http_t *h)
{
    CURLSHcode rc;

    h->share = curl_share_init();
    if (!h->share) {
        return APR_ENOMEM;
    }
    rc = curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    if (rc == CURLSHE_OK) {
        rc = curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    }
    if (rc == CURLSHE_OK) {
        rc = curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    }
    if (rc == CURLSHE_OK) {
        rc = curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    if (rc == CURLSHE_OK) {
        rc = curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    if (rc != CURLSHE_OK) {
        curl_share_cleanup(h->share);
        h->share = NULL;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t ot_http_create(ot_http_t **ph, int max_handles, ot_stats_t *stats, apr_pool_t *p)
{
    ot_http_t *h;
    apr_status_t rv;
    int i;

    *ph = NULL;
    if (max_handles < 0) {
        return APR_EINVAL;
    }
    h = apr_pcalloc(p, sizeof(*h));
    h->max_idle = max_handles;
    h->idle = apr_pcalloc(p, sizeof(ot_link_t) * (apr_size_t)(max_handles + 1));
    h->stats = stats;
    rv = apr_thread_mutex_create(&h->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    for (i = 0; rv == APR_SUCCESS && i < CURL_LOCK_DATA_LAST; ++i) {
        rv = apr_thread_mutex_create(&h->locks[i], APR_THREAD_MUTEX_DEFAULT, p);
    }
    if (rv == APR_SUCCESS) {
        rv = share_create(h);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* Registered after the mutexes, so it runs before they are destroyed. */
    apr_pool_cleanup_register(p, h, http_cleanup, apr_pool_cleanup_null);
    *ph = h;
    return APR_SUCCESS;
}

/** Take idle link i out of the pool into *l (under h->mutex). */
static void idle_remove(ot_http_t *h, int i, ot_link_t *l)
{
    *l = h->idle[i];
    memmove(&h->idle[i], &h->idle[i + 1], sizeof(ot_link_t) * (apr_size_t)(h->n_idle - i - 1));
    h->n_idle--;
}

/**
 * Take the newest idle link of this client identity (*warm: it kept a connection) or make a new
 * one; APR_ENOMEM without memory.
 */
static apr_status_t link_take(ot_http_t *h, ot_link_t *l, const unsigned char *ident, int *warm)
{
    int found = 0, i;

    apr_thread_mutex_lock(h->mutex);
    for (i = h->n_idle - 1; i >= 0; i--) {
        if (memcmp(h->idle[i].ident, ident, OT_IDENT_LEN) == 0) {
            idle_remove(h, i, l);
            found = 1;
            break;
        }
    }
    apr_thread_mutex_unlock(h->mutex);
    *warm = found;
    if (found) {
        return APR_SUCCESS;
    }
    memcpy(l->ident, ident, OT_IDENT_LEN);
    l->easy = curl_easy_init();
    l->multi = curl_multi_init();
    if (!l->easy || !l->multi || curl_easy_setopt(l->easy, CURLOPT_SHARE, h->share) != CURLE_OK) {
        link_close(l);
        return APR_ENOMEM;
    }
    return APR_SUCCESS;
}

/**
 * Give a link back (keep: it may be used again), or close it. A full pool gives up its oldest
 * link of another identity for it (so a changed certificate does not leave the pool clogged
 * with links nobody takes any more).
 */
static void link_give(ot_http_t *h, ot_link_t *l, int keep)
{
    ot_link_t old = { NULL, NULL, { 0 } };
    int kept = 0, i;

    apr_thread_mutex_lock(h->mutex);
    if (keep && h->n_idle >= h->max_idle) {
        for (i = 0; i < h->n_idle; i++) {
            if (memcmp(h->idle[i].ident, l->ident, OT_IDENT_LEN) != 0) {
                idle_remove(h, i, &old);
                break;
            }
        }
    }
    if (keep && h->n_idle < h->max_idle) {
        h->idle[h->n_idle++] = *l;
        kept = 1;
    }
    apr_thread_mutex_unlock(h->mutex);
    if (!kept) {
        link_close(l);
    }
    link_close(&old);
}

/** The client identity of req: SHA-256 over its certificate and key, zeros without them. */
static void req_ident(unsigned char *ident, const ot_http_req_t *req)
{
    EVP_MD_CTX *ctx;

    memset(ident, 0, OT_IDENT_LEN);
    if (req->client_cert == NULL || (ctx = EVP_MD_CTX_new()) == NULL) {
        return;
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, req->client_cert, req->client_cert_len);
    EVP_DigestUpdate(ctx, "\n--\n", 4);
    EVP_DigestUpdate(ctx, req->client_key, req->client_key_len);
    EVP_DigestFinal_ex(ctx, ident, NULL);
    EVP_MD_CTX_free(ctx);
}

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
static apr_status_t make_headers(ot_call_t *c, apr_pool_t *p)
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
static void attempt(ot_call_t *c, ot_link_t *l, int fresh, ot_http_resp_t *resp, apr_pool_t *p)
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
static int worth_retry(const ot_call_t *c, const ot_http_resp_t *resp, int warm)
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
static int body_for_retry(ot_call_t *c, apr_pool_t *p)
{
    if (c->post && c->req->rebody) {
        c->out_len = 0;
        c->out = c->req->rebody(c->req->rebody_baton, &c->out_len, p);
        return c->out != NULL;
    }
    return 1;
}

static void count_call(ot_http_t *h, int post, const ot_http_resp_t *resp)
{
    ot_stats_t *s = h->stats;

    if (!s) {
        return;
    }
    if (post) {
        OT_STAT_ADD(s->issuer_calls, 1);
        ot_stats_latency(s, (apr_uint64_t)resp->elapsed);
        if (resp->err != OT_HTTP_OK) {
            OT_STAT_ADD(s->issuer_errors[err_kinds[resp->err]], 1);
        }
    }
    else {
        OT_STAT_ADD(s->jwks_fetches, 1);
    }
    OT_STAT_ADD(s->connections_opened, resp->new_connections);
    OT_STAT_ADD(s->retries, resp->retried);
}

static void http_call(ot_http_t *h, const ot_http_req_t *req, int post, ot_http_resp_t *resp,
                      apr_pool_t *p)
{
    ot_call_t c;
    ot_link_t link = { NULL, NULL, { 0 } };
    unsigned char ident[OT_IDENT_LEN];
    apr_time_t start = apr_time_now();
    int warm = 0;

    memset(resp, 0, sizeof(*resp));
    memset(&c, 0, sizeof(c));
    c.req = req;
    c.post = post;
    c.out = req->body;
    c.out_len = req->body_len;
    c.deadline = start + req->total_timeout;
    if (req->deadline && req->deadline < c.deadline) {
        c.deadline = req->deadline;
    }
    resp->err = OT_HTTP_EINTERNAL;
    if (make_headers(&c, p) != APR_SUCCESS) {
        resp->errmsg = "header value not allowed, or out of memory";
        goto out;
    }
    req_ident(ident, req);
    if (link_take(h, &link, ident, &warm) != APR_SUCCESS) {
        resp->errmsg = "cannot make a libcurl handle";
        goto out;
    }
    attempt(&c, &link, 0, resp, p);
    if (worth_retry(&c, resp, warm) && body_for_retry(&c, p)) {
        resp->retried = 1;
        attempt(&c, &link, 1, resp, p);
    }
    link_give(h, &link, resp->err != OT_HTTP_EINTERNAL);
out:
    curl_slist_free_all(c.headers);
    resp->elapsed = apr_time_now() - start;
    count_call(h, post, resp);
}

void ot_http_post(ot_http_t *h, const ot_http_req_t *req, ot_http_resp_t *resp, apr_pool_t *p)
{
    http_call(h, req, 1, resp, p);
}

void ot_http_get(ot_http_t *h, const ot_http_req_t *req, ot_http_resp_t *resp, apr_pool_t *p)
{
    http_call(h, req, 0, resp, p);
}
