/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_flight_issuer.c
 * @brief The coalescer's table of issuers (introspection URL -> latency) and what it decides:
 * whether an issuer is slow now, and whether a place of the bound can free up soon.
 *
 * Every function here is called with the coalescer's mutex held (ot_flight_int.h).
 */
#include <string.h>
#include "ot_flight_int.h"

/* ---- the issuers, each with its latency ---------------------------------------------------- */

/* Documented in ot_flight_int.h. */
apr_uint64_t ot_flight_issuer_hash(const char *url)
{
    apr_uint64_t h = 0xcbf29ce484222325ULL;

    for (; *url; ++url) {
        h = (h ^ (unsigned char)*url) * 0x100000001b3ULL;
    }
    return h;
}

/** Entry e now stands for url (mutex held): its copy, and no latency known yet. */
static void issuer_take(ot_flight_t *f, ot_flight_issuer_t *e, const char *url, apr_uint64_t h)
{
    apr_size_t len = strlen(url) + 1;

    if (e->url_cap < len) {
        /* URLs come from the configuration: a few, so the private pool grows by a few. */
        e->url_cap = len < 128 ? 128 : len;
        e->url = apr_palloc(f->hash_pool, e->url_cap);
    }
    memcpy(e->url, url, len);
    e->hash = h;
    e->latency = 0;
}

/* Documented in ot_flight_int.h. */
ot_flight_issuer_t *ot_flight_issuer_pin(ot_flight_t *f, const char *url, apr_uint64_t h)
{
    ot_flight_issuer_t *e, *pick = NULL;
    int i;

    for (i = 0; i < OT_FLIGHT_ISSUERS; ++i) {
        e = &f->issuers[i];
        if (e->url != NULL && e->hash == h && strcmp(e->url, url) == 0) {
            pick = e;
            break;
        }
        if (e->users == 0 && (pick == NULL || (pick->url != NULL
                                               && (e->url == NULL || e->used < pick->used)))) {
            pick = e;
        }
    }
    if (pick == NULL) {
        pick = &f->issuers[OT_FLIGHT_ISSUERS];
    }
    else if (pick->url == NULL || pick->hash != h || strcmp(pick->url, url) != 0) {
        issuer_take(f, pick, url, h);
    }
    pick->used = ++f->ticks;
    ++pick->users;
    return pick;
}

/* ---- the bound on waiting, and shedding when the issuer is slow -------------------------- */

/** What the issuer's recent latency explains: eight times its average and 50 ms, at most 1 s. */
#define PATIENCE_FLOOR apr_time_from_msec(50)
#define PATIENCE_MAX apr_time_from_sec(1)
/**
 * An issuer whose calls take this long on average is slow, however steadily: requests over the
 * bound then get no place to wait for. (What its latency explains grows with it to the cap, so
 * without this its calls would never look overdue, and requests waiting up to a second each for
 * a place would take the threads the bound keeps free.)
 */
#define SLOW_LATENCY apr_time_from_msec(100)

/**
 * A call to e took d (mutex held): the first sets the average, later ones move it by an eighth.
 * A call longer than PATIENCE_MAX counts as PATIENCE_MAX: its whole length says no more about the
 * steady latency (what its patience is capped at), and one call hung until the timeout would
 * otherwise keep a healthy issuer "slow" (SLOW_LATENCY) for dozens of calls, shedding requests.
 */
void ot_flight_note_latency(ot_flight_issuer_t *e, apr_interval_time_t d)
{
    if (d > PATIENCE_MAX) {
        d = PATIENCE_MAX;
    }
    e->latency = e->latency == 0 ? (d > 0 ? d : 1) : e->latency + (d - e->latency) / 8;
}

/* Documented in ot_flight_int.h. */
apr_interval_time_t ot_flight_patience(const ot_flight_issuer_t *e)
{
    apr_interval_time_t t = 8 * e->latency + PATIENCE_FLOOR;

    return t < PATIENCE_MAX ? t : PATIENCE_MAX;
}

/** How long the oldest call this process is running to e has been running (mutex held). */
static apr_interval_time_t oldest_call(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now)
{
    apr_interval_time_t oldest = 0;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, f->calls); hi; hi = apr_hash_next(hi)) {
        const ot_flight_call_t *c = apr_hash_this_val(hi);
        if (c->issuer == e && c->started != 0 && !c->done && now - c->began > oldest) {
            oldest = now - c->began;
        }
    }
    return oldest;
}

/**
 * 1 when issuer e is slow now (mutex held): slow on average, or a call of this process to it has
 * been running longer than its latency explains (limit: ot_flight_patience(e)). Another issuer's
 * calls have no say.
 */
static int issuer_slow(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now,
                       apr_interval_time_t limit)
{
    return e->latency >= SLOW_LATENCY || oldest_call(f, e, now) > limit;
}

/**
 * 1 when some place of the bound is held by a request whose issuer is not slow now (mutex held):
 * only such a place can free up within what a healthy issuer's latency explains. When every place
 * is held by requests to slow issuers, a request of a healthy one waiting for a place would only
 * hold its thread until its wait ran out, and a burst of them every thread the bound keeps free.
 */
static int room_can_free(ot_flight_t *f, apr_time_t now)
{
    unsigned char overdue[OT_FLIGHT_ISSUERS + 1];
    apr_hash_index_t *hi;
    int i;

    memset(overdue, 0, sizeof(overdue));
    for (hi = apr_hash_first(NULL, f->calls); hi; hi = apr_hash_next(hi)) {
        const ot_flight_call_t *c = apr_hash_this_val(hi);
        if (c->started != 0 && !c->done && now - c->began > ot_flight_patience(c->issuer)) {
            overdue[c->issuer - f->issuers] = 1;
        }
    }
    for (i = 0; i <= OT_FLIGHT_ISSUERS; ++i) {
        const ot_flight_issuer_t *e = &f->issuers[i];
        if (e->pending > 0 && !overdue[i] && e->latency < SLOW_LATENCY) {
            return 1;
        }
    }
    return 0;
}

/* Documented in ot_flight_int.h. */
int ot_flight_no_room_soon(ot_flight_t *f, const ot_flight_issuer_t *e, apr_time_t now,
                           apr_interval_time_t limit)
{
    return issuer_slow(f, e, now, limit) || !room_can_free(f, now);
}
