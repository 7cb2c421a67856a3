/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * SetHandler offtok-status: the server-wide counters (they live in the shared segment, so every
 * process answers the same) as a JSON object, or as Prometheus text with ?format=prometheus.
 *
 *   version
 *   cache    entries, capacity, hits, misses, evictions, too_big
 *   issuer   calls, errors {kind: n}, errors_total, coalesced, connections_opened, retries,
 *            latency {buckets [{le_ms, count}] (cumulative), count, sum_ms, p50_ms, p99_ms},
 *            jwks_fetches
 *   pushes   accepted, refused
 *   redis    errors
 *   flood    refused_miss_rate, refused_issuer_rate, refused_certain, shed_slow, overflow
 *            (mod_offtok_flood.c; overflow: addresses that had to share the overflow bucket)
 *
 * p50 and p99 are estimates, interpolated inside the histogram bucket that holds them.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_cache.h"
#include "ot_json.h"
#include "ot_rate.h"
#include "ot_stats.h"

/** Everything the status page shows, read once. */
typedef struct {
    ot_cache_info_t cache;
    apr_uint64_t calls, errors[OT_ERR_KINDS], errors_total, coalesced, connections, retries;
    apr_uint64_t hist[OT_LAT_BUCKETS], lat_count, lat_sum_us, jwks_fetches, accepted, refused;
    apr_uint64_t redis_errors;
} status_t;

static void status_read(status_t *st)
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
}

/** The q-quantile (permille) of the latency in ms, interpolated in its bucket; null if none. */
static json_t *quantile_ms(const status_t *st, apr_uint64_t permille)
{
    apr_uint64_t rank, cum = 0;
    double lo, hi;
    int i;

    if (st->lat_count == 0) {
        return json_null();
    }
    rank = (st->lat_count * permille + 999) / 1000;
    for (i = 0; i < OT_LAT_BUCKETS; i++) {
        if (cum + st->hist[i] >= rank && st->hist[i] > 0) {
            lo = i ? (double)ot_lat_bounds_us[i - 1] : 0.0;
            if (i == OT_LAT_BUCKETS - 1) {
                return json_real(lo / 1000.0);     /* the open bucket: its lower bound */
            }
            hi = (double)ot_lat_bounds_us[i];
            return json_real((lo + (hi - lo) * (double)(rank - cum) / (double)st->hist[i])
                             / 1000.0);
        }
        cum += st->hist[i];
    }
    return json_null();
}

static json_t *status_latency(const status_t *st)
{
    json_t *buckets = json_array();
    apr_uint64_t cum = 0;
    int i;

    for (i = 0; i < OT_LAT_BUCKETS; i++) {
        cum += st->hist[i];
        json_array_append_new(buckets, i < OT_LAT_BUCKETS - 1
            ? json_pack("{s:f,s:I}", "le_ms", (double)ot_lat_bounds_us[i] / 1000.0, "count",
                        (json_int_t)cum)
            : json_pack("{s:s,s:I}", "le_ms", "+Inf", "count", (json_int_t)cum));
    }
    return json_pack("{s:o,s:I,s:f,s:o,s:o}", "buckets", buckets, "count",
                     (json_int_t)st->lat_count, "sum_ms", (double)st->lat_sum_us / 1000.0,
                     "p50_ms", quantile_ms(st, 500), "p99_ms", quantile_ms(st, 990));
}

/* ---- floods of made-up tokens (docs/flood.md) --------------------------------------------- */

/** The flood counters, in JSON and Prometheus order. */
static void flood_read(apr_uint64_t v[5])
{
    offtok_proc_t *proc = offtok_proc();

    v[0] = OT_STAT_GET(proc->stats->refused_miss_rate);
    v[1] = OT_STAT_GET(proc->stats->refused_issuer_rate);
    v[2] = OT_STAT_GET(proc->stats->refused_certain);
    v[3] = OT_STAT_GET(proc->stats->shed_slow);
    v[4] = proc->shm ? ot_rate_overflows(ot_shm_rate(proc->shm)) : 0;
}

static json_t *flood_json(void)
{
    apr_uint64_t v[5];

    flood_read(v);
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "refused_miss_rate", (json_int_t)v[0],
                     "refused_issuer_rate", (json_int_t)v[1], "refused_certain",
                     (json_int_t)v[2], "shed_slow", (json_int_t)v[3], "overflow",
                     (json_int_t)v[4]);
}

static void prom(request_rec *r, const char *name, const char *type, const char *help,
                 apr_uint64_t value);

static void flood_prometheus(request_rec *r)
{
    apr_uint64_t v[5];

    flood_read(v);
    prom(r, "refused_miss_rate_total", "counter", "429s: a client address over OfftokMissRate.",
         v[0]);
    prom(r, "refused_issuer_rate_total", "counter", "429s: the server over OfftokIssuerMaxRate.",
         v[1]);
    prom(r, "refused_certain_total", "counter",
         "401s without an issuer call: tokens certain to fail.", v[2]);
    prom(r, "issuer_shed_total", "counter",
         "503s: over OfftokIssuerMaxPending while the issuer is slow.", v[3]);
    prom(r, "rate_overflow_total", "counter",
         "Times an address had to share the overflow bucket (the table was full).", v[4]);
}

static int status_json(request_rec *r, const status_t *st)
{
    json_t *errors = json_object(), *j;
    int i;

    for (i = 0; i < OT_ERR_KINDS; i++) {
        json_object_set_new(errors, ot_stats_error_names[i], json_integer((json_int_t)st->errors[i]));
    }
    j = ot_json_own(json_pack("{s:s,s:{s:I,s:I,s:I,s:I,s:I,s:I},"
                              "s:{s:I,s:o,s:I,s:I,s:I,s:I,s:o,s:I},s:{s:I,s:I},s:{s:I}}",
        "version", OT_VERSION,
        "cache", "entries", (json_int_t)st->cache.entries, "capacity",
        (json_int_t)st->cache.capacity, "hits", (json_int_t)st->cache.hits, "misses",
        (json_int_t)st->cache.misses, "evictions", (json_int_t)st->cache.evictions, "too_big",
        (json_int_t)st->cache.too_big,
        "issuer", "calls", (json_int_t)st->calls, "errors", errors, "errors_total",
        (json_int_t)st->errors_total, "coalesced", (json_int_t)st->coalesced,
        "connections_opened", (json_int_t)st->connections, "retries", (json_int_t)st->retries,
        "latency", status_latency(st), "jwks_fetches", (json_int_t)st->jwks_fetches,
        "pushes", "accepted", (json_int_t)st->accepted, "refused", (json_int_t)st->refused,
        "redis", "errors", (json_int_t)st->redis_errors),
        r->pool);
    if (j == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    json_object_set_new(j, "flood", flood_json());
    ap_set_content_type(r, "application/json");
    ap_rputs(ot_json_dump(j, NULL, r->pool), r);
    ap_rputs("\n", r);
    return OK;
}

static void prom(request_rec *r, const char *name, const char *type, const char *help,
                 apr_uint64_t value)
{
    ap_rprintf(r, "# HELP offtok_%s %s\n# TYPE offtok_%s %s\nofftok_%s %" APR_UINT64_T_FMT "\n",
               name, help, name, type, name, value);
}

static void prom_issuer(request_rec *r, const status_t *st)
{
    apr_uint64_t cum = 0;
    int i;

    prom(r, "issuer_calls_total", "counter", "Introspection calls made.", st->calls);
    ap_rputs("# HELP offtok_issuer_errors_total Failed issuer calls, by kind.\n"
             "# TYPE offtok_issuer_errors_total counter\n", r);
    for (i = 0; i < OT_ERR_KINDS; i++) {
        ap_rprintf(r, "offtok_issuer_errors_total{kind=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   ot_stats_error_names[i], st->errors[i]);
    }
    prom(r, "issuer_coalesced_total", "counter",
         "Requests answered by another thread's issuer call.", st->coalesced);
    prom(r, "issuer_connections_opened_total", "counter",
         "Connections opened to the issuer.", st->connections);
    prom(r, "issuer_retries_total", "counter", "Issuer calls retried on a fresh connection.",
         st->retries);
    ap_rputs("# HELP offtok_issuer_latency_seconds Latency of introspection calls.\n"
             "# TYPE offtok_issuer_latency_seconds histogram\n", r);
    for (i = 0; i < OT_LAT_BUCKETS; i++) {
        cum += st->hist[i];
        if (i < OT_LAT_BUCKETS - 1) {
            ap_rprintf(r, "offtok_issuer_latency_seconds_bucket{le=\"%g\"} %" APR_UINT64_T_FMT
                       "\n", (double)ot_lat_bounds_us[i] / 1e6, cum);
        }
        else {
            ap_rprintf(r, "offtok_issuer_latency_seconds_bucket{le=\"+Inf\"} %"
                       APR_UINT64_T_FMT "\n", cum);
        }
    }
    ap_rprintf(r, "offtok_issuer_latency_seconds_sum %.6f\n"
               "offtok_issuer_latency_seconds_count %" APR_UINT64_T_FMT "\n",
               (double)st->lat_sum_us / 1e6, st->lat_count);
}

static int status_prometheus(request_rec *r, const status_t *st)
{
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    ap_rprintf(r, "# HELP offtok_info mod_offtok's version.\n# TYPE offtok_info gauge\n"
               "offtok_info{version=\"%s\"} 1\n", OT_VERSION);
    prom(r, "cache_entries", "gauge", "Answers in the shared cache.", st->cache.entries);
    prom(r, "cache_capacity", "gauge", "Answers the shared cache can hold (estimate).",
         st->cache.capacity);
    prom(r, "cache_hits_total", "counter", "Cache look-ups that found an answer.",
         st->cache.hits);
    prom(r, "cache_misses_total", "counter", "Cache look-ups that found none.",
         st->cache.misses);
    prom(r, "cache_evictions_total", "counter", "Live answers evicted to make room.",
         st->cache.evictions);
    prom_issuer(r, st);
    prom(r, "jwks_fetches_total", "counter", "Fetches of the issuers' keys.", st->jwks_fetches);
    prom(r, "pushes_accepted_total", "counter", "Pushed logouts and admin actions accepted.",
         st->accepted);
    prom(r, "pushes_refused_total", "counter", "Pushed logouts and admin actions refused.",
         st->refused);
    prom(r, "redis_errors_total", "counter", "Redis commands that failed or timed out.",
         st->redis_errors);
    flood_prometheus(r);
    return OK;
}

/** 1 when the query string asks for format=prometheus. */
static int wants_prometheus(const char *args, apr_pool_t *p)
{
    char *copy, *pair, *last;

    if (args == NULL) {
        return 0;
    }
    copy = apr_pstrdup(p, args);
    for (pair = apr_strtok(copy, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        if (strcmp(pair, "format=prometheus") == 0) {
            return 1;
        }
    }
    return 0;
}

int offtok_status(request_rec *r)
{
    status_t st;

    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    status_read(&st);
    if (r->header_only) {
        ap_set_content_type(r, wants_prometheus(r->args, r->pool)
                            ? "text/plain; version=0.0.4; charset=utf-8" : "application/json");
        return OK;
    }
    return wants_prometheus(r->args, r->pool) ? status_prometheus(r, &st) : status_json(r, &st);
}
