/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file mod_offtok_ask.h
 * @brief One request's question to the issuer (offtok_ask_t), shared by the flow that asks it
 * (mod_offtok_authn.c) and the two tiers that may answer it first (mod_offtok_tiers.c).
 */
#ifndef MOD_OFFTOK_ASK_H
#define MOD_OFFTOK_ASK_H

#include "mod_offtok.h"

/** What one request asks the issuer, and under which cache key. */
typedef struct {
    const offtok_dir_conf *conf;
    ot_introspect_t in;
    ot_jwt_peek_t peek;
    unsigned char key[OT_KEY_LEN];
    const char *secret_file;    /**< where in.client_secret came from (file:), else NULL */
    int fresh;                  /**< a positive answer must come from a call started after arrival */
    int known;                  /**< a tier holds a positive answer of any age (no flood charge) */
} offtok_ask_t;

/**
 * The issuer under which pushed revocations are looked up: the answer's iss, else the location's
 * OfftokIssuer (the handlers record them under OfftokIssuer). Not-before policies are looked up
 * for the location's OfftokClientID, the client Keycloak pushes them to, whichever credentials
 * (OfftokClientFor) introspected the token: see docs/pushed-revocation.md.
 */
const char *offtok_revoke_iss(const offtok_dir_conf *c, const char *iss);

/**
 * What the cache and the revocation tables know of an answer whose issuer call started at
 * `fetched` (without the claims' digest, which only the cache needs).
 */
void offtok_entry_of(ot_cache_entry_t *e, const offtok_ask_t *ask, const ot_answer_t *a,
                     apr_time_t fetched);

/**
 * 1 when this location may take an entry (of either tier, or the initial request's answer) as
 * its answer for a request that arrived at `arrived`. An answer from an issuer call that started
 * after the request arrived is as fresh as this request can ask for; any other is judged by this
 * location's TTLs and OfftokAlwaysValidate. A positive one must also be clear of every
 * revocation recorded since its call started, and of a gap in this process's Redis subscription.
 */
int offtok_acceptable(const offtok_ask_t *ask, const ot_cache_entry_t *e, apr_time_t now,
                      apr_time_t arrived);

/**
 * A cached answer this location may use, or NULL: from the local tier, else from Redis (the
 * second tier, when OfftokRedis is set), which then fills the local tier.
 */
ot_answer_t *offtok_from_cache(request_rec *r, offtok_ask_t *ask, apr_time_t *fetched);

/** Store a fresh answer in both tiers for every process and node. */
void offtok_to_cache(request_rec *r, const offtok_ask_t *ask, const ot_answer_t *a,
                     apr_time_t started);

#endif
