/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The two tiers for one request: whether a kept entry (the shared segment, else Redis with
 * OfftokRedis) may answer it at this location (TTLs, OfftokAlwaysValidate, revocations since its
 * call started), and storing a fresh answer in both for every process and node.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "mod_offtok_redis.h"
#include "mod_offtok_ask.h"
#include "ot_cache.h"

APLOG_USE_MODULE(offtok);

/**
 * The issuer under which pushed revocations are looked up: the answer's iss, else the location's
 * OfftokIssuer (the handlers record them under OfftokIssuer). Not-before policies are looked up
 * for the location's OfftokClientID, the client Keycloak pushes them to, whichever credentials
 * (OfftokClientFor) introspected the token: see docs/pushed-revocation.md.
 */
const char *offtok_revoke_iss(const offtok_dir_conf *c, const char *iss)
{
    return iss ? iss : c->issuer;
}

/**
 * What the cache and the revocation tables know of an answer whose issuer call started at
 * `fetched` (without the claims' digest, which only the cache needs).
 */
void offtok_entry_of(ot_cache_entry_t *e, const offtok_ask_t *ask, const ot_answer_t *a,
                     apr_time_t fetched)
{
    /* Revocations are kept per issuer: an answer without iss belongs to OfftokIssuer. */
    ot_entry_of(e, a, offtok_revoke_iss(ask->conf, NULL), fetched,
                apr_time_from_sec(offtok_longest_ttl()));
}

/**
 * 1 when this location may take an entry (of either tier, or the initial request's answer) as
 * its answer for a request that arrived at `arrived`. An answer from an issuer call that started
 * after the request arrived is as fresh as this request can ask for; any other is judged by this
 * location's TTLs and OfftokAlwaysValidate. A positive one must also be clear of every
 * revocation recorded since its call started, and of a gap in this process's Redis subscription.
 */
int offtok_acceptable(const offtok_ask_t *ask, const ot_cache_entry_t *e, apr_time_t now,
                      apr_time_t arrived)
{
    offtok_proc_t *proc = offtok_proc();
    const offtok_dir_conf *c = ask->conf;
    ot_always_t always = offtok_always(c);
    int fresh = e->fetched >= arrived;

    if (!e->active) {
        /* Where every answer must be fresh, an old "inactive" is as stale as an old "active". */
        return fresh || (!ask->fresh && now - e->fetched < apr_time_from_sec(offtok_neg_ttl(c)));
    }
    if (!fresh && (now - e->fetched >= apr_time_from_sec(offtok_cache_ttl(c))
                   || always == OT_ALWAYS_ON || (always == OT_ALWAYS_OFFLINE && e->offline))) {
        return 0;
    }
    return proc->shm != NULL
        && !ot_revoke_applies(proc->shm, offtok_revoke_iss(c, e->iss), c->client_id, e)
        && offtok_redis_trusts(e->fetched);
}

/** An entry of either tier that this location may use, as an answer; NULL when it may not. */
static ot_answer_t *usable(request_rec *r, const offtok_ask_t *ask, const ot_cache_entry_t *e,
                           apr_time_t now)
{
    if (!offtok_acceptable(ask, e, now, r->request_time)) {
        return NULL;
    }
    return e->active ? ot_answer_from_digest(e->claims, e->claims_len, r->pool)
                     : ot_answer_inactive(r->pool);
}

/**
 * 1 when e makes the token known to the flood budgets (no charge for asking about it): only a
 * positive answer does. An inactive one is what every made-up token gets, and re-asking about it
 * free of charge (every repeat under OfftokAlwaysValidate On, every repeat after
 * OfftokNegativeCacheTTL otherwise, or at once where that is 0 and the answer is only the
 * tombstone of older positive ones) would let one charged token buy issuer calls for as long as
 * a flood lasts.
 */
static int known(const offtok_ask_t *ask, const ot_cache_entry_t *e)
{
    (void)ask;
    return e->active;
}

/**
 * A cached answer this location may use, or NULL: from the local tier, else from Redis (the
 * second tier, when OfftokRedis is set), which then fills the local tier.
 */
ot_answer_t *offtok_from_cache(request_rec *r, offtok_ask_t *ask, apr_time_t *fetched)
{
    offtok_proc_t *proc = offtok_proc();
    apr_time_t now = apr_time_now();
    ot_cache_entry_t e, l;
    ot_answer_t *a;
    int local;

    if (proc->shm == NULL) {
        return NULL;
    }
    local = ot_cache_get(proc->shm, ask->key, now, &l, r->pool) == APR_SUCCESS;
    ask->known = local && known(ask, &l);
    /* With OfftokAlwaysValidate On no cached answer is ever used (the look says known only). */
    if (offtok_always(ask->conf) == OT_ALWAYS_ON) {
        return NULL;
    }
    if (local && (a = usable(r, ask, &l, now)) != NULL) {
        *fetched = l.fetched;
        return a;
    }
    if (offtok_redis_get(r, ask->key, now, &e) != APR_SUCCESS) {
        return NULL;
    }
    ask->known = ask->known || known(ask, &e);
    /*
     * Another node's call never counts as made for this request (offtok_acceptable()'s "fresh"), however
     * its clock reads: so its TTL and OfftokAlwaysValidate Offline are applied. Newer wins: never
     * an answer older than the local one (an inactive one above all).
     */
    if (e.fetched >= r->request_time) {
        e.drop_after -= e.fetched - (r->request_time - 1);
        e.fetched = r->request_time - 1;
    }
    if (local && e.fetched <= l.fetched) {
        return NULL;
    }
    ot_cache_put(proc->shm, ask->key, &e, now);
    *fetched = e.fetched;
    return usable(r, ask, &e, now);
}

void offtok_to_cache(request_rec *r, const offtok_ask_t *ask, const ot_answer_t *a,
                     apr_time_t started)
{
    offtok_proc_t *proc = offtok_proc();
    ot_cache_entry_t e;

    /*
     * An inactive answer is stored whatever OfftokNegativeCacheTTL says: it is the tombstone
     * that keeps every older positive one for the key from being used again, in both tiers.
     * With a negative TTL of 0 it is never reused as an answer (usable()).
     */
    if (proc->shm == NULL) {
        return;
    }
    offtok_entry_of(&e, ask, a, started);
    if (a->active && (e.claims = ot_answer_digest(a, &e.claims_len, r->pool)) == NULL) {
        return;
    }
    /* Not where a revocation already refuses it; Redis takes what is too big for the segment. */
    if (ot_cache_put(proc->shm, ask->key, &e, apr_time_now()) != APR_EINCOMPLETE) {
        offtok_redis_put(r, ask->key, &e);
    }
}
