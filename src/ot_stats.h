/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_stats.h
 * @brief Server-wide counters, kept in shared memory and read by the status handler.
 *
 * Plain 64-bit counters updated with atomic adds, so any process and thread can bump them
 * without a lock. The struct lives inside the retained shared segment (see ot_shm.h); a process
 * that has no segment (unit tests) may point at a private instance.
 */
#ifndef OT_STATS_H
#define OT_STATS_H

#include <apr.h>

#include "ot_jwt_verify.h"

/** Upper bounds (microseconds) of the latency histogram buckets; the last bucket is open. */
#define OT_LAT_BUCKETS 12
extern const apr_uint64_t ot_lat_bounds_us[OT_LAT_BUCKETS - 1];

/** Kinds of issuer errors counted separately. Keep in sync with ot_stats_error_names. */
typedef enum {
    OT_ERR_CONNECT = 0, OT_ERR_TIMEOUT, OT_ERR_TLS, OT_ERR_RECV, OT_ERR_TOOBIG,
    OT_ERR_STATUS, OT_ERR_REDIRECT, OT_ERR_PARSE, OT_ERR_CLIENT_AUTH, OT_ERR_BUSY, OT_ERR_INTERNAL,
    OT_ERR_KINDS
} ot_err_kind_t;
extern const char *const ot_stats_error_names[OT_ERR_KINDS];

/**
 * The answers the module decides, by HTTP status and a short reason: one row per pair, counted
 * in ot_stats_t.answers and shown as offtok_answers_total{status,reason}. Each status has an
 * "other" row, so a reason missing from the table is still counted. Keep in sync with
 * ot_stats_answer_rows (ot_stats.c) and docs/status.md.
 */
typedef struct {
    int status;
    const char *reason;
} ot_stats_answer_row_t;
#define OT_ANSWER_ROWS 49
extern const ot_stats_answer_row_t ot_stats_answer_rows[OT_ANSWER_ROWS];

/** The row of (status, reason): its own, else that status's "other", else -1 (not counted). */
int ot_stats_answer_index(int status, const char *reason);

typedef struct ot_stats_t {
    apr_uint64_t issuer_calls;        /**< introspection calls made */
    apr_uint64_t issuer_errors[OT_ERR_KINDS];
    apr_uint64_t connections_opened;  /**< TCP connections libcurl opened */
    apr_uint64_t retries;             /**< calls retried on a fresh connection */
    apr_uint64_t coalesced;           /**< requests answered by another thread's call */
    apr_uint64_t latency_hist[OT_LAT_BUCKETS];
    apr_uint64_t latency_sum_us;
    apr_uint64_t jwks_fetches;
    apr_uint64_t pushes_accepted;
    apr_uint64_t pushes_refused;
    apr_uint64_t redis_errors;
    apr_uint64_t refused_miss_rate;   /**< 429: the client address was over OfftokMissRate */
    apr_uint64_t refused_issuer_rate; /**< 429: the server was over OfftokIssuerMaxRate */
    apr_uint64_t refused_certain;     /**< 401 without an issuer call: certain to fail */
    apr_uint64_t shed_slow;           /**< 503: over OfftokIssuerMaxPending while the issuer is slow */
    apr_uint64_t answers[OT_ANSWER_ROWS];   /**< answers decided, by ot_stats_answer_rows */
    apr_uint64_t local_verified;      /**< signatures verified for OfftokAccessTokens Local */
    apr_uint64_t local_cached;        /**< locally judged tokens answered from the cache */
    apr_uint64_t local_introspected;  /**< tokens that went to the issuer under Local */
    apr_uint64_t local_failures[OT_LOCAL_FAIL_KINDS];
    apr_uint64_t metadata_fetches;    /**< issuer metadata fetches (discovery), failed or not */
} ot_stats_t;

/** Add n to a counter; safe from any process or thread. */
#define OT_STAT_ADD(ctr, n) __atomic_add_fetch(&(ctr), (apr_uint64_t)(n), __ATOMIC_RELAXED)
/** Read a counter. */
#define OT_STAT_GET(ctr) __atomic_load_n(&(ctr), __ATOMIC_RELAXED)

/** Count one issuer call that took us microseconds. stats may be NULL. */
void ot_stats_latency(ot_stats_t *stats, apr_uint64_t us);

#endif
