/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Counting the answers the module decides (offtok_answers_total{status,reason}).
 *
 * Every place that decides a refusal calls offtok_count_answer() with the HTTP status and a
 * short reason from ot_stats_answer_rows; a 403 is counted when mod_authz_core answers it (the
 * insert_error filter), and a 200 in the fixups hook, which runs only once every access check has
 * passed. So counters only go up, and one client request counts once, under its first final
 * decision. It is kept in the initial request's notes as "offtok-answer" ("401 inactive"), which
 * LogFormat shows with %{offtok-answer}n. Subrequests (mod_include, mod_dir's look-ups) do not
 * count: their outcome is not what the client receives.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_stats.h"

#define ANSWER_NOTE "offtok-answer"

/** The request this one descends from through internal redirects; NULL for a subrequest. */
static request_rec *client_request(request_rec *r)
{
    for (; r; r = r->prev) {
        if (r->main) {
            return NULL;
        }
        if (!r->prev) {
            return r;
        }
    }
    return NULL;
}

/** "200 granted": the note of a row, built without apr_psprintf's formatter (every granted
 * request writes one); a status is three digits. */
static const char *answer_note(const ot_stats_answer_row_t *row, apr_pool_t *p)
{
    apr_size_t n = strlen(row->reason);
    char *s;

    if (row->status < 100 || row->status > 999) {
        return apr_psprintf(p, "%d %s", row->status, row->reason);
    }
    s = apr_palloc(p, n + 5);
    s[0] = (char)('0' + row->status / 100);
    s[1] = (char)('0' + row->status / 10 % 10);
    s[2] = (char)('0' + row->status % 10);
    s[3] = ' ';
    memcpy(s + 4, row->reason, n + 1);
    return s;
}

void offtok_count_answer(request_rec *r, int status, const char *reason)
{
    request_rec *top = client_request(r);
    int row = ot_stats_answer_index(status, reason);

    if (top == NULL || row < 0 || apr_table_get(top->notes, ANSWER_NOTE) != NULL) {
        return;
    }
    OT_STAT_ADD(offtok_proc()->stats->answers[row], 1);
    apr_table_setn(top->notes, ANSWER_NOTE, answer_note(&ot_stats_answer_rows[row], top->pool));
}

int offtok_answers_fixups(request_rec *r)
{
    const offtok_req_t *st = ap_get_module_config(r->request_config, &offtok_module);

    if (st != NULL && st->status == OK && r->user != NULL && offtok_is_ours(r)) {
        offtok_count_answer(r, HTTP_OK, "granted");
    }
    return DECLINED;
}

const char *offtok_verdict_reason(int verdict)
{
    switch (verdict) {
    case OT_VERDICT_INACTIVE:       return "inactive";
    case OT_VERDICT_EXPIRED:        return "expired";
    case OT_VERDICT_NOT_YET:        return "not_yet";
    case OT_VERDICT_ISSUER:         return "issuer";
    case OT_VERDICT_AUDIENCE:       return "audience";
    case OT_VERDICT_BOUND:          /* and every other refusal of a token's binding */
    case OT_VERDICT_CNF_UNKNOWN: case OT_VERDICT_DPOP_NO_JKT: case OT_VERDICT_DPOP_OFF:
    case OT_VERDICT_DPOP_KEY: case OT_VERDICT_UNBOUND_DPOP: case OT_VERDICT_CERT:
    case OT_VERDICT_MTLS_OFF: case OT_VERDICT_UNBOUND:
                                    return "bound";
    case OT_VERDICT_KIND:           return "kind";
    case OT_VERDICT_OFFLINE_DENIED: return "offline_denied";
    default:                        return "other";
    }
}
