/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_http.c
 * @brief libcurl behind ot_http.h: a per-process pool of links that keep their connections, and
 * the call that takes a link, makes one or two attempts on it (ot_http_exchange.c) and counts it.
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
#include "ot_http_int.h"
#include "ot_stats.h"

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
    if (ot_http_make_headers(&c, p) != APR_SUCCESS) {
        resp->errmsg = "header value not allowed, or out of memory";
        goto out;
    }
    req_ident(ident, req);
    if (link_take(h, &link, ident, &warm) != APR_SUCCESS) {
        resp->errmsg = "cannot make a libcurl handle";
        goto out;
    }
    ot_http_attempt(&c, &link, 0, resp, p);
    if (ot_http_worth_retry(&c, resp, warm) && ot_http_body_for_retry(&c, p)) {
        resp->retried = 1;
        ot_http_attempt(&c, &link, 1, resp, p);
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
