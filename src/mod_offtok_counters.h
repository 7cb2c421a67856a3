/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file mod_offtok_counters.h
 * @brief What the status outputs share (mod_offtok_status.c: JSON and Prometheus text;
 *        mod_offtok_status_html.c: the HTML page and the server-status section): one reading of
 *        the counters and one table that names each of them once for every output
 *        (mod_offtok_counters.c).
 */
#ifndef MOD_OFFTOK_COUNTERS_H
#define MOD_OFFTOK_COUNTERS_H

#include <httpd.h>

#include "ot_cache.h"
#include "ot_stats.h"

/** Everything the status outputs show, read once. */
typedef struct {
    ot_cache_info_t cache;
    apr_uint64_t calls, errors[OT_ERR_KINDS], errors_total, coalesced, connections, retries;
    apr_uint64_t hist[OT_LAT_BUCKETS], lat_count, lat_sum_us, jwks_fetches, accepted, refused;
    apr_uint64_t redis_errors;
    apr_uint64_t refused_miss_rate, refused_issuer_rate, refused_certain, shed_slow, overflow;
    apr_uint64_t answers[OT_ANSWER_ROWS];
    apr_uint64_t local_verified, local_cached, local_introspected, metadata_fetches;
    apr_uint64_t local_failures[OT_LOCAL_FAIL_KINDS];
} offtok_status_t;

/** One plain counter: where it goes in the JSON, its Prometheus metric, and where it is read. */
typedef struct {
    const char *section;    /**< the JSON object that holds it ("cache", "issuer", ...) */
    const char *key;        /**< its name there */
    const char *metric;     /**< its Prometheus name, after "offtok_"; NULL: not exported */
    int gauge;              /**< 1: a gauge; 0: a counter (the metric ends in _total) */
    const char *help;       /**< Prometheus HELP, also the HTML page's description */
    apr_size_t off;         /**< offset of the apr_uint64_t in offtok_status_t */
} offtok_counter_t;

/** The plain counters, in the order every output shows them; ends with a NULL section. */
extern const offtok_counter_t offtok_counters[];

/** A counter's value in st. */
apr_uint64_t offtok_counter_value(const offtok_status_t *st, const offtok_counter_t *c);

/** Read every counter once (from the shared segment). */
void offtok_status_read(offtok_status_t *st);

/** The permille-quantile of the issuer latency in ms (interpolated in its bucket); -1 if none. */
double offtok_status_quantile_ms(const offtok_status_t *st, apr_uint64_t permille);

#endif
