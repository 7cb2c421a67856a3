/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The counters every status output shows (mod_offtok_status.c: JSON and Prometheus text;
 * mod_offtok_status_html.c: the HTML page and the server-status section): the table that names
 * each plain counter once, and one reading of all of them from the shared segment.
 */
#include <stddef.h>
#include <string.h>
#include <httpd.h>
#include <http_config.h>

#include "mod_offtok.h"
#include "mod_offtok_counters.h"
#include "ot_shm.h"
#include "ot_rate.h"

#define AT(field) offsetof(offtok_status_t, field)

const offtok_counter_t offtok_counters[] = {
    { "cache", "entries", "cache_entries", 1, "Answers in the shared cache.", AT(cache.entries) },
    { "cache", "capacity", "cache_capacity", 1, "Answers the shared cache can hold (estimate).",
      AT(cache.capacity) },
    { "cache", "hits", "cache_hits_total", 0, "Cache look-ups that found an answer.",
      AT(cache.hits) },
    { "cache", "misses", "cache_misses_total", 0, "Cache look-ups that found none.",
      AT(cache.misses) },
    { "cache", "evictions", "cache_evictions_total", 0, "Live answers evicted to make room.",
      AT(cache.evictions) },
    { "cache", "too_big", "cache_too_big_total", 0,
      "Answers too large for a cache entry (used, not stored).", AT(cache.too_big) },
    { "issuer", "calls", "issuer_calls_total", 0, "Introspection calls made.", AT(calls) },
    { "issuer", "errors_total", NULL, 0, "Failed issuer calls, all kinds together.",
      AT(errors_total) },
    { "issuer", "coalesced", "issuer_coalesced_total", 0,
      "Requests answered by another thread's issuer call.", AT(coalesced) },
    { "issuer", "connections_opened", "issuer_connections_opened_total", 0,
      "Connections opened to the issuer.", AT(connections) },
    { "issuer", "retries", "issuer_retries_total", 0,
      "Issuer calls retried on a fresh connection.", AT(retries) },
    { "issuer", "jwks_fetches", "jwks_fetches_total", 0, "Fetches of the issuers' keys.",
      AT(jwks_fetches) },
    { "pushes", "accepted", "pushes_accepted_total", 0,
      "Pushed logouts and admin actions accepted.", AT(accepted) },
    { "pushes", "refused", "pushes_refused_total", 0,
      "Pushed logouts and admin actions refused.", AT(refused) },
    { "redis", "errors", "redis_errors_total", 0, "Redis commands that failed or timed out.",
      AT(redis_errors) },
    { "flood", "refused_miss_rate", "refused_miss_rate_total", 0,
      "429s: a client address over OfftokMissRate.", AT(refused_miss_rate) },
    { "flood", "refused_issuer_rate", "refused_issuer_rate_total", 0,
      "429s: the server over OfftokIssuerMaxRate.", AT(refused_issuer_rate) },
    { "flood", "refused_certain", "refused_certain_total", 0,
      "401s without an issuer call: tokens certain to fail.", AT(refused_certain) },
    { "flood", "shed_slow", "issuer_shed_total", 0,
      "503s: over OfftokIssuerMaxPending while the issuer is slow.", AT(shed_slow) },
    { "flood", "overflow", "rate_overflow_total", 0,
      "Times an address had to share the overflow bucket (the table was full).", AT(overflow) },
    { "local", "verified", "local_verified_total", 0,
      "JWT access tokens whose signature was verified here (OfftokAccessTokens Local).",
      AT(local_verified) },
    { "local", "cached", "local_cached_total", 0,
      "Locally judged tokens answered from the shared cache.", AT(local_cached) },
    { "local", "introspected", "local_introspected_total", 0,
      "Tokens introspected at a Local location (not judged here).", AT(local_introspected) },
    { "local", "metadata_fetches", "metadata_fetches_total", 0,
      "Issuer metadata fetches (discovery) that went to the network.", AT(metadata_fetches) },
    { NULL, NULL, NULL, 0, NULL, 0 }
};

apr_uint64_t offtok_counter_value(const offtok_status_t *st, const offtok_counter_t *c)
{
    apr_uint64_t v;

    memcpy(&v, (const char *)st + c->off, sizeof(v));
    return v;
}

void offtok_status_read(offtok_status_t *st)
{
    offtok_proc_t *proc = offtok_proc();
    ot_stats_t *s = proc->stats;
    int i;

    memset(st, 0, sizeof(*st));
    if (proc->shm) {
        ot_cache_info(proc->shm, &st->cache);
    }
    st->calls = OT_STAT_GET(s->issuer_calls);
    for (i = 0; i < OT_ERR_KINDS; i++) {
        st->errors[i] = OT_STAT_GET(s->issuer_errors[i]);
        st->errors_total += st->errors[i];
    }
    st->coalesced = OT_STAT_GET(s->coalesced);
    st->connections = OT_STAT_GET(s->connections_opened);
    st->retries = OT_STAT_GET(s->retries);
    for (i = 0; i < OT_LAT_BUCKETS; i++) {
        st->hist[i] = OT_STAT_GET(s->latency_hist[i]);
        st->lat_count += st->hist[i];
    }
    st->lat_sum_us = OT_STAT_GET(s->latency_sum_us);
    st->jwks_fetches = OT_STAT_GET(s->jwks_fetches);
    st->accepted = OT_STAT_GET(s->pushes_accepted);
    st->refused = OT_STAT_GET(s->pushes_refused);
    st->redis_errors = OT_STAT_GET(s->redis_errors);
    st->refused_miss_rate = OT_STAT_GET(s->refused_miss_rate);
    st->refused_issuer_rate = OT_STAT_GET(s->refused_issuer_rate);
    st->refused_certain = OT_STAT_GET(s->refused_certain);
    st->shed_slow = OT_STAT_GET(s->shed_slow);
    st->overflow = proc->shm ? ot_rate_overflows(ot_shm_rate(proc->shm)) : 0;
    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        st->answers[i] = OT_STAT_GET(s->answers[i]);
    }
    st->local_verified = OT_STAT_GET(s->local_verified);
    st->local_cached = OT_STAT_GET(s->local_cached);
    st->local_introspected = OT_STAT_GET(s->local_introspected);
    st->metadata_fetches = OT_STAT_GET(s->metadata_fetches);
    for (i = 0; i < OT_LOCAL_FAIL_KINDS; i++) {
        st->local_failures[i] = OT_STAT_GET(s->local_failures[i]);
    }
}

double offtok_status_quantile_ms(const offtok_status_t *st, apr_uint64_t permille)
{
    apr_uint64_t rank, cum = 0;
    double lo, hi;
    int i;

    if (st->lat_count == 0) {
        return -1.0;
    }
    rank = (st->lat_count * permille + 999) / 1000;
    for (i = 0; i < OT_LAT_BUCKETS; i++) {
        if (cum + st->hist[i] >= rank && st->hist[i] > 0) {
            lo = i ? (double)ot_lat_bounds_us[i - 1] : 0.0;
            if (i == OT_LAT_BUCKETS - 1) {
                return lo / 1000.0;     /* the open bucket: its lower bound */
            }
            hi = (double)ot_lat_bounds_us[i];
            return (lo + (hi - lo) * (double)(rank - cum) / (double)st->hist[i]) / 1000.0;
        }
        cum += st->hist[i];
    }
    return -1.0;
}
