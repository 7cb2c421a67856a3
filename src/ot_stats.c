/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_stats.c
 * @brief The fixed parts of the server-wide counters: histogram bounds, error names, latency.
 */
#include <string.h>

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

/**
 * Every answer the module decides. 200: the token was accepted (the back end answers what it
 * will). 400/401: the token or the request (docs/status.md names each reason's log tag). 403:
 * Require offtok-scope or offtok-claim not met. 429: rate limits (OfftokMissRate,
 * OfftokIssuerMaxRate); a scope or claim denial that httpd answers 401 (after authentication,
 * next to providers that need a user) counts as 401 scope or claim. 500: the location's
 * configuration. 503: the issuer (or what stands for it) could not answer; the issuer error
 * kinds come first, under the names of ot_stats_error_names.
 */
const ot_stats_answer_row_t ot_stats_answer_rows[OT_ANSWER_ROWS] = {
    { 200, "granted" }, { 200, "other" },
    { 400, "malformed" }, { 400, "query_token" }, { 400, "dpop_and_bearer" }, { 400, "other" },
    { 401, "no_token" }, { 401, "inactive" }, { 401, "expired" }, { 401, "not_yet" },
    { 401, "issuer" }, { 401, "audience" }, { 401, "bound" }, { 401, "kind" },
    { 401, "offline_denied" }, { 401, "revoked" }, { 401, "claim_limit" }, { 401, "certain" },
    { 401, "invalid_dpop_proof" }, { 401, "use_dpop_nonce" }, { 401, "signature" },
    { 401, "scope" },
    { 401, "claim" }, { 401, "other" },
    { 403, "scope" }, { 403, "claim" }, { 403, "other" },
    { 429, "miss_rate" }, { 429, "issuer_rate" }, { 429, "other" },
    { 500, "config" }, { 500, "other" },
    { 503, "connect" }, { 503, "timeout" }, { 503, "tls" }, { 503, "recv" }, { 503, "toobig" },
    { 503, "status" }, { 503, "redirect" }, { 503, "parse" }, { 503, "client_auth" },
    { 503, "busy" }, { 503, "internal" }, { 503, "no_link" }, { 503, "wait_timeout" },
    { 503, "keys" }, { 503, "metadata" }, { 503, "redis" }, { 503, "other" }
};

int ot_stats_answer_index(int status, const char *reason)
{
    int i, other = -1;

    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        if (ot_stats_answer_rows[i].status != status) {
            continue;
        }
        if (reason && strcmp(ot_stats_answer_rows[i].reason, reason) == 0) {
            return i;
        }
        if (strcmp(ot_stats_answer_rows[i].reason, "other") == 0) {
            other = i;
        }
    }
    return other;
}
