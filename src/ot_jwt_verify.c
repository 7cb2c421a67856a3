/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jwt_verify.c
 * @brief Which JWTs are judged locally, and the time and revocation rules applied to them.
 */
#include <string.h>
#include <apr_strings.h>

#include "ot_jose.h"
#include "ot_json.h"
#include "ot_jwt_verify.h"
#include "ot_token.h"
#include "ot_util.h"

const char *const ot_local_fail_names[OT_LOCAL_FAIL_KINDS] = {
    "signature", "expired", "not_yet_valid", "issuer", "audience", "revoked", "no_keys"
};

/** The algorithms judged here: those ot_jose.c verifies, all asymmetric. */
static const char *const local_algs[] = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
};

static int alg_judged(const char *alg)
{
    apr_size_t i;

    for (i = 0; alg && i < sizeof(local_algs) / sizeof(local_algs[0]); i++) {
        if (strcmp(alg, local_algs[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/**
 * 1 when the payload's `typ` claim is Bearer or DPoP (Keycloak's access tokens). Read with
 * ot_jwt_peek's checked scanner (jansson only when the scanner cannot say), not a jansson tree:
 * this runs on every first sight of a token.
 */
static int keycloak_access(const char *token, apr_pool_t *p)
{
    ot_jwt_peek_t peek;

    ot_jwt_peek(&peek, token, p);
    return peek.is_jwt && peek.typ
        && (strcmp(peek.typ, "Bearer") == 0 || strcmp(peek.typ, "DPoP") == 0);
}

int ot_local_candidate(const char *token, const char **why, apr_pool_t *p)
{
    const char *dot1 = token ? strchr(token, '.') : NULL;
    ot_jose_header_t h;

    ot_jose_header_read(&h, token, dot1 ? (apr_size_t)(dot1 - token) : 0, p);
    return ot_local_candidate_h(token, &h, why, p);
}

int ot_local_candidate_hdr(const char *token, const ot_jose_header_t *h, const char **why)
{
    const char *dot1 = token ? strchr(token, '.') : NULL, *dot2, *typ;

    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL || dot2[1] == '\0') {
        *why = "it is not a signed compact JWT";
        return 0;
    }
    if (!h->object) {
        *why = "its header is not a JSON object";
        return 0;
    }
    if (!alg_judged(h->alg)) {
        *why = "its alg is not one verified here (asymmetric RS, PS, ES or EdDSA only)";
        return 0;
    }
    if (h->bad_typ) {
        *why = "its header typ is not a string";
        return 0;
    }
    typ = h->typ;
    if (typ && (strcasecmp(typ, "at+jwt") == 0 || strcasecmp(typ, "application/at+jwt") == 0)) {
        return 1;
    }
    if (typ && strcasecmp(typ, "JWT") != 0) {
        *why = "its header typ is neither at+jwt nor JWT";
        return 0;
    }
    return -1;
}

int ot_local_candidate_h(const char *token, const ot_jose_header_t *h, const char **why,
                         apr_pool_t *p)
{
    int c = ot_local_candidate_hdr(token, h, why);

    if (c >= 0) {
        return c;
    }
    if (!keycloak_access(token, p)) {
        *why = "it is not typed as an access token (at+jwt, or claim typ Bearer or DPoP)";
        return 0;
    }
    return 1;
}

int ot_local_access_claim(const ot_answer_t *a)
{
    const ot_claim_t *typ = a ? ot_answer_claim(a, "typ") : NULL;

    return typ != NULL && typ->type == OT_CT_STRING
        && (strcmp(typ->value, "Bearer") == 0 || strcmp(typ->value, "DPoP") == 0);
}

ot_local_verdict_t ot_local_times(const ot_answer_t *a, apr_int64_t now, apr_int64_t skew,
                                  ot_local_fail_t *fail)
{
    const ot_claim_t *iat = ot_answer_claim(a, "iat");

    if (!a->has_exp || a->exp == 0 || a->exp <= now) {
        *fail = OT_LOCAL_FAIL_EXPIRED;
        return OT_LOCAL_REFUSE;
    }
    if ((a->has_nbf && (a->nbf == 0 || a->nbf > now + skew))
        || (iat != NULL && (a->iat == 0 || a->iat > now + skew))) {
        *fail = OT_LOCAL_FAIL_NOT_YET;
        return OT_LOCAL_REFUSE;
    }
    return OT_LOCAL_ACCEPT;
}

ot_local_verdict_t ot_local_revocation(ot_shm_t *s, const ot_answer_t *a, const char *iss,
                                       const char *client, apr_interval_time_t keep,
                                       apr_pool_t *p)
{
    const ot_claim_t *azp = ot_answer_claim(a, "azp");
    ot_cache_entry_t e;
    apr_time_t iat;

    if (a->iat == 0 || a->exp == 0 || a->exp < a->iat
        || apr_time_from_sec(a->exp - a->iat) > keep) {
        return OT_LOCAL_ASK;
    }
    iat = apr_time_from_sec(a->iat);
    if (s == NULL || iat <= ot_revoke_stale_marker(s)) {
        return s == NULL ? OT_LOCAL_ACCEPT : OT_LOCAL_ASK;
    }
    /* "fetched" just before iat: a logout recorded at or after iat applies. */
    memset(&e, 0, sizeof(e));
    e.fetched = iat - 1;
    e.iat = iat;
    e.active = 1;
    e.iss = iss;
    if (azp == NULL || azp->type != OT_CT_STRING) {
        azp = ot_answer_claim(a, "client_id");  /* RFC 9068's name for it */
    }
    e.azp = azp && azp->type == OT_CT_STRING ? azp->value : NULL;
    e.sid = a->sid;
    e.sub = a->sid ? NULL : a->sub;
    if (ot_revoke_applies(s, iss, client, &e)) {
        return OT_LOCAL_REFUSE;
    }
    if (a->sid && a->sub) {
        /* A logout of every session of the sub refuses it; one of another session does not. */
        e.sid = apr_pstrcat(p, OT_REVOKE_ALL_SESSIONS, a->sub, NULL);
        e.sub = NULL;
        if (ot_revoke_applies(s, iss, client, &e)) {
            return OT_LOCAL_REFUSE;
        }
        e.sid = NULL;
        e.sub = a->sub;
        if (ot_revoke_applies(s, iss, client, &e)) {
            return OT_LOCAL_ASK;
        }
    }
    return OT_LOCAL_ACCEPT;
}
