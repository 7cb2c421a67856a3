/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Judging an answer against one location's policy: activity, the binding (ot_judge_bound.c),
 * the kind, times, issuer, offline tokens and audience, in this order; the first rule that
 * refuses gives the verdict.
 */
#include <string.h>
#include <apr_tables.h>

#include "ot_judge.h"

/** aud is a string equal to want, or an array holding it. */
static int audience_has(const ot_claim_t *aud, const char *want)
{
    size_t i;
    const json_t *v;
    json_t *arr;
    int found = 0;

    if (aud == NULL) {
        return 0;
    }
    if (aud->type == OT_CT_STRING) {
        return strcmp(aud->value, want) == 0;
    }
    if (aud->type != OT_CT_LIST && aud->type != OT_CT_JSON) {
        return 0;
    }
    arr = ot_claim_json(aud);
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) {
            found = 1;
            break;
        }
    }
    json_decref(arr);
    return found;
}

/** 1 when the token was issued to one of clients. */
static int client_among(const ot_answer_t *a, const apr_array_header_t *clients)
{
    const char *client = ot_answer_client(a);
    int i;

    for (i = 0; client != NULL && i < clients->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(clients, i, const char *), client) == 0) {
            return 1;
        }
    }
    return 0;
}

ot_verdict_t ot_answer_judge(const ot_answer_t *a, const ot_policy_t *policy, apr_int64_t now)
{
    static const ot_bound_t bearer;

    return ot_answer_judge_bound(a, policy, &bearer, now);
}

ot_verdict_t ot_answer_judge_bound(const ot_answer_t *a, const ot_policy_t *policy,
                                   const ot_bound_t *bound, apr_int64_t now)
{
    ot_verdict_t v;

    if (!a->active) {
        return OT_VERDICT_INACTIVE;
    }
    if ((v = ot_bound_judge(a, bound)) != OT_VERDICT_OK) {
        return v;
    }
    if (a->kind_refused) {
        return OT_VERDICT_KIND;
    }
    if (a->has_exp && (a->exp == 0 || a->exp <= now)) {
        return OT_VERDICT_EXPIRED;
    }
    if (a->has_nbf && (a->nbf == 0 || a->nbf > now + policy->skew)) {
        return OT_VERDICT_NOT_YET;
    }
    if (policy->issuer && a->has_iss
        && (a->iss == NULL || strcmp(a->iss, policy->issuer) != 0)) {
        return OT_VERDICT_ISSUER;
    }
    if (a->kind == OT_KIND_OFFLINE && !policy->allow_offline) {
        return OT_VERDICT_OFFLINE_DENIED;
    }
    if (a->kind == OT_KIND_OFFLINE && policy->offline_clients != NULL
        && !client_among(a, policy->offline_clients)) {
        return OT_VERDICT_OFFLINE_CLIENT;
    }
    if (policy->audience && a->kind == OT_KIND_ACCESS
        && !audience_has(a->aud, policy->audience)) {
        return OT_VERDICT_AUDIENCE;
    }
    return OT_VERDICT_OK;
}

const char *ot_verdict_text(ot_verdict_t v)
{
    switch (v) {
    case OT_VERDICT_OK:             return "accepted";
    case OT_VERDICT_INACTIVE:       return "the issuer says the token is not active";
    case OT_VERDICT_EXPIRED:        return "the token has expired";
    case OT_VERDICT_NOT_YET:        return "the token is not valid yet (nbf)";
    case OT_VERDICT_ISSUER:         return "the answer's iss is not OfftokIssuer";
    case OT_VERDICT_AUDIENCE:       return "the token's aud does not contain OfftokAudience";
    case OT_VERDICT_BOUND:          return "the token is DPoP-bound and came as a Bearer token";
    case OT_VERDICT_KIND:           return "the token is not an access or offline token";
    case OT_VERDICT_OFFLINE_DENIED: return "offline tokens are not accepted here";
    case OT_VERDICT_OFFLINE_CLIENT: return "an offline token of a client not in OfftokOfflineClients";
    case OT_VERDICT_CNF_UNKNOWN:    return "the token's cnf holds a confirmation this server cannot check";
    case OT_VERDICT_DPOP_NO_JKT:    return "the token is typed DPoP but has no cnf.jkt";
    case OT_VERDICT_DPOP_OFF:       return "the token is DPoP-bound and OfftokDPoP is Off here";
    case OT_VERDICT_DPOP_KEY:       return "the DPoP proof's key is not the one the token is bound to (cnf.jkt)";
    case OT_VERDICT_UNBOUND_DPOP:   return "the token is not bound and came under the DPoP scheme";
    case OT_VERDICT_CERT:           return "the token is bound to a client certificate this connection did not present";
    case OT_VERDICT_MTLS_OFF:       return "the token is certificate-bound and OfftokMTLS is Off here";
    case OT_VERDICT_UNBOUND:        return "the token is not bound as OfftokDPoP/OfftokMTLS Require asks";
    }
    return "refused";
}
