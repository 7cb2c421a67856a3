/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * SetHandler offtok-status: the server-wide counters (they live in the shared segment, so every
 * process answers the same) as a JSON object, as Prometheus text with ?format=prometheus, or as
 * an HTML page with ?format=html (mod_offtok_status_html.c, which also writes the module's
 * section of mod_status's server-status page).
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
 *   answers  {status: {reason: n}}   (offtok_answers_total{status,reason}; docs/status.md)
 *
 * Every plain counter is named once, in offtok_counters (mod_offtok_counters.c), and every output
 * walks that table; the three families with labels (issuer errors by kind, the latency histogram,
 * the answers) are written next to it from their own tables in ot_stats.c. p50 and p99 are estimates, interpolated
 * inside the histogram bucket that holds them.
 */
#include <stddef.h>
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "mod_offtok_counters.h"
#include "mod_offtok_status_html.h"
#include "ot_shm.h"
#include "ot_json.h"
#include "ot_rate.h"

/* ---- JSON --------------------------------------------------------------------------------- */

static json_t *quantile_json(const offtok_status_t *st, apr_uint64_t permille)
{
    double q = offtok_status_quantile_ms(st, permille);

    return q < 0 ? json_null() : json_real(q);
}

static json_t *status_latency(const offtok_status_t *st)
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
                     "p50_ms", quantile_json(st, 500), "p99_ms", quantile_json(st, 990));
}

/** {"200": {"granted": n, ...}, "401": {...}, ...}: every row, zero or not. */
static json_t *status_answers(const offtok_status_t *st, apr_pool_t *p)
{
    json_t *all = json_object(), *by;
    const char *code;
    int i;

    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        code = apr_itoa(p, ot_stats_answer_rows[i].status);
        if ((by = json_object_get(all, code)) == NULL) {
            json_object_set_new(all, code, by = json_object());
        }
        json_object_set_new(by, ot_stats_answer_rows[i].reason,
                            json_integer((json_int_t)st->answers[i]));
    }
    return all;
}

static int status_json(request_rec *r, const offtok_status_t *st)
{
    json_t *root = ot_json_own(json_object(), r->pool), *errors = json_object(), *issuer, *sec;
    const offtok_counter_t *c;
    int i;

    json_object_set_new(root, "version", json_string(OT_VERSION));
    for (c = offtok_counters; c->section; c++) {
        if ((sec = json_object_get(root, c->section)) == NULL) {
            json_object_set_new(root, c->section, sec = json_object());
        }
        json_object_set_new(sec, c->key, json_integer((json_int_t)offtok_counter_value(st, c)));
    }
    for (i = 0; i < OT_ERR_KINDS; i++) {
        json_object_set_new(errors, ot_stats_error_names[i],
                            json_integer((json_int_t)st->errors[i]));
    }
    issuer = json_object_get(root, "issuer");
    json_object_set_new(issuer, "errors", errors);
    json_object_set_new(issuer, "latency", status_latency(st));
    json_object_set_new(root, "answers", status_answers(st, r->pool));
    for (i = 0, errors = json_object(); i < OT_LOCAL_FAIL_KINDS; i++) {
        json_object_set_new(errors, ot_local_fail_names[i],
                            json_integer((json_int_t)st->local_failures[i]));
    }
    json_object_set_new(json_object_get(root, "local"), "failures", errors);
    ap_set_content_type(r, "application/json");
    ap_rputs(ot_json_dump(root, NULL, r->pool), r);
    ap_rputs("\n", r);
    return OK;
}

/* ---- Prometheus --------------------------------------------------------------------------- */

static void prom_family(request_rec *r, const char *name, const char *type, const char *help)
{
    ap_rprintf(r, "# HELP offtok_%s %s\n# TYPE offtok_%s %s\n", name, help, name, type);
}

static void prom_latency(request_rec *r, const offtok_status_t *st)
{
    apr_uint64_t cum = 0;
    int i;

    prom_family(r, "issuer_latency_seconds", "histogram", "Latency of introspection calls.");
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

static void prom_labelled(request_rec *r, const offtok_status_t *st)
{
    int i;

    prom_family(r, "issuer_errors_total", "counter", "Failed issuer calls, by kind.");
    for (i = 0; i < OT_ERR_KINDS; i++) {
        ap_rprintf(r, "offtok_issuer_errors_total{kind=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   ot_stats_error_names[i], st->errors[i]);
    }
    prom_family(r, "answers_total", "counter",
                "Answers the module decided, by HTTP status and reason.");
    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        ap_rprintf(r, "offtok_answers_total{status=\"%d\",reason=\"%s\"} %" APR_UINT64_T_FMT
                   "\n", ot_stats_answer_rows[i].status, ot_stats_answer_rows[i].reason,
                   st->answers[i]);
    }
    prom_family(r, "local_failures_total", "counter",
                "Locally judged tokens refused (or 503 for want of keys), by reason.");
    for (i = 0; i < OT_LOCAL_FAIL_KINDS; i++) {
        ap_rprintf(r, "offtok_local_failures_total{reason=\"%s\"} %" APR_UINT64_T_FMT "\n",
                   ot_local_fail_names[i], st->local_failures[i]);
    }
    prom_latency(r, st);
}

static int status_prometheus(request_rec *r, const offtok_status_t *st)
{
    const offtok_counter_t *c;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    prom_family(r, "info", "gauge", "mod_offtok's version.");
    ap_rprintf(r, "offtok_info{version=\"%s\"} 1\n", OT_VERSION);
    for (c = offtok_counters; c->section; c++) {
        if (c->metric == NULL) {
            continue;       /* the sum of a labelled family: Prometheus sums for itself */
        }
        prom_family(r, c->metric, c->gauge ? "gauge" : "counter", c->help);
        ap_rprintf(r, "offtok_%s %" APR_UINT64_T_FMT "\n", c->metric,
                   offtok_counter_value(st, c));
    }
    prom_labelled(r, st);
    return OK;
}

/* ---- the handler -------------------------------------------------------------------------- */

typedef enum { FORMAT_JSON, FORMAT_PROMETHEUS, FORMAT_HTML } format_t;

/** The format=... the query string asks for (JSON when none or another). */
static format_t wanted_format(const char *args, apr_pool_t *p)
{
    char *copy, *pair, *last;

    if (args == NULL) {
        return FORMAT_JSON;
    }
    copy = apr_pstrdup(p, args);
    for (pair = apr_strtok(copy, "&", &last); pair; pair = apr_strtok(NULL, "&", &last)) {
        if (strcmp(pair, "format=prometheus") == 0) {
            return FORMAT_PROMETHEUS;
        }
        if (strcmp(pair, "format=html") == 0) {
            return FORMAT_HTML;
        }
    }
    return FORMAT_JSON;
}

int offtok_status(request_rec *r)
{
    static const char *const types[] = {
        "application/json", "text/plain; version=0.0.4; charset=utf-8", "text/html; charset=utf-8"
    };
    offtok_status_t st;
    format_t f;

    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    f = wanted_format(r->args, r->pool);
    if (r->header_only) {
        ap_set_content_type(r, types[f]);
        return OK;
    }
    offtok_status_read(&st);
    switch (f) {
    case FORMAT_PROMETHEUS:
        return status_prometheus(r, &st);
    case FORMAT_HTML:
        return offtok_status_html(r, &st);
    default:
        return status_json(r, &st);
    }
}
