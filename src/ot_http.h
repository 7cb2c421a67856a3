/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_http.h
 * @brief The HTTP client that talks to the issuer: libcurl behind a small interface.
 *
 * One ot_http_t per process holds a bounded pool of links, each a libcurl easy handle with a multi
 * handle of its own. A link keeps its connections (HTTP/1.1 keep-alive) and its parsed CA store
 * between calls; a thread takes one, runs one transfer, resets it and gives it back. Only an
 * internal error drops a link. DNS and TLS sessions are shared between links through a CURLSH;
 * connections are not (libcurl 7.88 KNOWN_BUGS 11.11). A link belongs to one client identity
 * (no certificate, or one certificate and key, by their digest): a call takes only a link of
 * its own identity, so a connection made with one certificate never carries a call made with
 * another, and calls with a client certificate neither take nor leave TLS sessions in the share.
 *
 * No httpd headers here: the core links into the module, the unit tests and the fuzzers.
 */
#ifndef OT_HTTP_H
#define OT_HTTP_H

#include <apr_pools.h>
#include <apr_time.h>

/** What became of one exchange. Anything but OT_HTTP_OK means no HTTP answer was received. */
typedef enum {
    OT_HTTP_OK = 0,      /**< a complete answer arrived (any status code, 3xx included) */
    OT_HTTP_ECONNECT,    /**< could not connect: refused, unreachable, name not resolved */
    OT_HTTP_ETIMEOUT,    /**< connect or total timeout reached */
    OT_HTTP_ETLS,        /**< TLS handshake or certificate/host name verification failed */
    OT_HTTP_ERECV,       /**< the connection broke while sending or receiving */
    OT_HTTP_ETOOBIG,     /**< the answer was larger than max_body */
    OT_HTTP_EINTERNAL    /**< anything else (out of memory, bad URL, curl misuse) */
} ot_http_err_t;

/** One POST to the issuer. Every pointer must stay valid for the call. */
typedef struct {
    const char *url;
    const char *body;              /**< request body (form-encoded) */
    apr_size_t body_len;
    const char *content_type;      /**< e.g. "application/x-www-form-urlencoded" */
    const char *authorization;     /**< full Authorization header value, or NULL */
    const char *accept;            /**< Accept header value, or NULL */
    const char *ca_file;           /**< CA bundle; NULL: the system store */
    int verify;                    /**< verify peer certificate and host name */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t total_timeout;   /**< for the whole call, retry included */
    apr_size_t max_body;           /**< answers larger than this fail with OT_HTTP_ETOOBIG */
    apr_time_t deadline;           /**< if not 0, the call also ends by then (the request's own
                                        budget, for a call that waited before it started) */
    const char *client_cert;       /**< PEM certificate (chain) presented to the issuer, or NULL */
    apr_size_t client_cert_len;
    const char *client_key;        /**< its PEM private key */
    apr_size_t client_key_len;
    /**
     * When not NULL, a body that must not be sent twice (a client assertion, whose jti the
     * issuer refuses the second time): called before the retry for the body to send instead,
     * from p; NULL from it means no retry.
     */
    const char *(*rebody)(void *baton, apr_size_t *len, apr_pool_t *p);
    void *rebody_baton;
} ot_http_req_t;

/** The answer, allocated from the pool given to the call. */
typedef struct {
    ot_http_err_t err;
    const char *errmsg;            /**< human text for the log; never contains the request body */
    int status;                    /**< HTTP status when err == OT_HTTP_OK */
    const char *body;              /**< NUL-terminated copy of the body (may contain NULs) */
    apr_size_t body_len;
    const char *content_type;      /**< may be NULL */
    const char *location;          /**< Location header of a 3xx, may be NULL */
    apr_interval_time_t elapsed;   /**< wall time of the call */
    apr_time_t started;            /**< when the call began (set by whoever makes the call) */
    int retried;                   /**< 1 when the first attempt failed at the connection level */
    int new_connections;           /**< connections libcurl opened for this call */
} ot_http_resp_t;

typedef struct ot_http_t ot_http_t;
struct ot_stats_t;

/** Call once per process before any thread exists (httpd: post_config in the parent). */
apr_status_t ot_http_global_init(void);

/**
 * Make a per-process client that keeps at most max_handles idle links.
 * stats may be NULL; otherwise connection and call counters are added to it: every call adds to
 * connections_opened and retries; a POST also counts as one of issuer_calls, its latency in the
 * histogram, and its transport error (connect, timeout, tls, recv, toobig, internal) in
 * issuer_errors; a GET counts as one of jwks_fetches. Errors judged from an answer (status,
 * redirect, parse, client_auth) are the caller's to count.
 * Handles are cleaned up with p.
 */
apr_status_t ot_http_create(ot_http_t **ph, int max_handles, struct ot_stats_t *stats,
                            apr_pool_t *p);

/**
 * POST req and fill resp (allocated from p). Thread-safe. A connection-level failure on a reused
 * connection (ECONNECT on reuse, ERECV) is retried once on a fresh connection within the total
 * timeout (with req->rebody's body, when it is set); an HTTP answer, whatever its status, is never
 * retried. Redirects are never followed.
 */
void ot_http_post(ot_http_t *h, const ot_http_req_t *req, ot_http_resp_t *resp, apr_pool_t *p);

/** GET url (for JWKS); same rules as ot_http_post, with req->body ignored. */
void ot_http_get(ot_http_t *h, const ot_http_req_t *req, ot_http_resp_t *resp, apr_pool_t *p);

/** Short name of an error kind, for logs and counters ("connect", "timeout", ...). */
const char *ot_http_err_name(ot_http_err_t err);

#endif
