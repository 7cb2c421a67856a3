/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The counters for people: offtok-status?format=html, and the module's section of mod_status's
 * server-status page (its status_hook; in server-status?auto, "offtok_<metric>: value" lines).
 * Both walk the same table as the JSON and Prometheus outputs (mod_offtok_status.c). Every text
 * written into the HTML is escaped, constants included, so that a name added later cannot break
 * the page.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <mod_status.h>

#include "mod_offtok.h"
#include "mod_offtok_counters.h"
#include "mod_offtok_status_html.h"

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s, 1);
}

static void html_counters(request_rec *r, const offtok_status_t *st)
{
    const offtok_counter_t *c;

    ap_rputs("<table class=\"offtok\">\n<tr><th>counter</th><th>value</th><th>meaning</th></tr>\n",
             r);
    for (c = offtok_counters; c->section; c++) {
        ap_rprintf(r, "<tr><td>%s.%s</td><td>%" APR_UINT64_T_FMT "</td><td>%s</td></tr>\n",
                   esc(r, c->section), esc(r, c->key), offtok_counter_value(st, c),
                   esc(r, c->help));
    }
    ap_rputs("</table>\n", r);
}

static void html_issuer(request_rec *r, const offtok_status_t *st)
{
    double p50 = offtok_status_quantile_ms(st, 500), p99 = offtok_status_quantile_ms(st, 990);
    int i;

    ap_rputs("<h3>Issuer calls</h3>\n", r);
    if (p50 < 0) {
        ap_rputs("<p>No issuer call yet.</p>\n", r);
    }
    else {
        ap_rprintf(r, "<p>%" APR_UINT64_T_FMT " calls timed; latency p50 %.2f ms, p99 %.2f ms "
                   "(estimates).</p>\n", st->lat_count, p50, p99);
    }
    ap_rputs("<table class=\"offtok\">\n<tr><th>failed calls, by kind</th><th>count</th></tr>\n",
             r);
    for (i = 0; i < OT_ERR_KINDS; i++) {
        ap_rprintf(r, "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   esc(r, ot_stats_error_names[i]), st->errors[i]);
    }
    ap_rputs("</table>\n", r);
}

static void html_answers(request_rec *r, const offtok_status_t *st)
{
    int i, shown = 0;

    ap_rputs("<h3>Answers decided</h3>\n<table class=\"offtok\">\n"
             "<tr><th>status</th><th>reason</th><th>count</th></tr>\n", r);
    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        if (st->answers[i] == 0) {
            continue;
        }
        ap_rprintf(r, "<tr><td>%d</td><td>%s</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   ot_stats_answer_rows[i].status, esc(r, ot_stats_answer_rows[i].reason),
                   st->answers[i]);
        shown++;
    }
    if (!shown) {
        ap_rputs("<tr><td colspan=\"3\">none yet</td></tr>\n", r);
    }
    ap_rputs("</table>\n", r);
}

/** The part the page and the server-status section share. */
static void html_body(request_rec *r, const offtok_status_t *st)
{
    html_counters(r, st);
    html_issuer(r, st);
    html_answers(r, st);
}

int offtok_status_html(request_rec *r, const offtok_status_t *st)
{
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
               "<title>mod_offtok status</title></head>\n<body>\n"
               "<h1>mod_offtok %s</h1>\n<p>Server-wide counters, as of %s. Also as "
               "<a href=\"?format=prometheus\">Prometheus text</a> and <a href=\"?\">JSON</a>."
               "</p>\n", esc(r, OT_VERSION),
               esc(r, ap_ht_time(r->pool, apr_time_now(), "%Y-%m-%d %H:%M:%S %Z", 1)));
    html_body(r, st);
    ap_rputs("</body></html>\n", r);
    return OK;
}

int offtok_status_hook(request_rec *r, int flags)
{
    const offtok_counter_t *c;
    offtok_status_t st;
    int i;

    offtok_status_read(&st);
    if (flags & AP_STATUS_SHORT) {
        for (c = offtok_counters; c->section; c++) {
            if (c->metric) {
                ap_rprintf(r, "offtok_%s: %" APR_UINT64_T_FMT "\n", c->metric,
                           offtok_counter_value(&st, c));
            }
        }
        for (i = 0; i < OT_ANSWER_ROWS; i++) {
            ap_rprintf(r, "offtok_answers_%d_%s: %" APR_UINT64_T_FMT "\n",
                       ot_stats_answer_rows[i].status, ot_stats_answer_rows[i].reason,
                       st.answers[i]);
        }
        return OK;
    }
    ap_rprintf(r, "<hr />\n<h2>mod_offtok %s</h2>\n", esc(r, OT_VERSION));
    html_body(r, &st);
    return OK;
}
