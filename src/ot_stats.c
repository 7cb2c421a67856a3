/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_stats.c
 * @brief The fixed parts of the server-wide counters: histogram bounds, error names, latency.
 */
#include "ot_stats.h"

/** Bucket upper bounds: a loopback issuer answers in the first buckets, a remote one in the middle. */
const apr_uint64_t ot_lat_bounds_us[OT_LAT_BUCKETS - 1] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000
};

/** Short names of ot_err_kind_t, in enum order: used in logs, JSON and Prometheus labels. */
const char *const ot_stats_error_names[OT_ERR_KINDS] = {
    "connect", "timeout", "tls", "recv", "toobig",
    "status", "redirect", "parse", "client_auth", "busy", "internal"
};

void ot_stats_latency(ot_stats_t *stats, apr_uint64_t us)
{
    int i = 0;

    if (!stats) {
        return;
    }
    while (i < OT_LAT_BUCKETS - 1 && us > ot_lat_bounds_us[i]) {
        ++i;
    }
    OT_STAT_ADD(stats->latency_hist[i], 1);
    OT_STAT_ADD(stats->latency_sum_us, us);
}
