/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_http_int.h
 * @brief What ot_http.c (the pool of links and the call) and ot_http_exchange.c (one attempt on
 * a link: libcurl's options, the transfer, its outcome) share; nothing else includes it.
 */
#ifndef OT_HTTP_INT_H
#define OT_HTTP_INT_H

#include <curl/curl.h>
#include <apr_pools.h>
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

/**
 * The headers of c (Content-Type, Authorization, Accept) into c->headers; APR_EINVAL when a
 * value could split the header block.
 */
apr_status_t ot_http_make_headers(ot_call_t *c, apr_pool_t *p);

/** One transfer on l; the easy handle is reset afterwards (the connections stay in l's multi). */
void ot_http_attempt(ot_call_t *c, ot_link_t *l, int fresh, ot_http_resp_t *resp,
                     apr_pool_t *p);

/**
 * Whether the failure broke a connection the handle had kept (warm): the answer was cut on a
 * reused connection, or the kept one was gone and reconnecting was refused. Never after an answer.
 */
int ot_http_worth_retry(const ot_call_t *c, const ot_http_resp_t *resp, int warm);

/**
 * The body of the retry: the same, unless it must not be sent twice (the issuer may have read
 * it before the answer broke); 0 when there is none to send.
 */
int ot_http_body_for_retry(ot_call_t *c, apr_pool_t *p);

#endif
