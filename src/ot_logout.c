/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_logout.c
 * @brief Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6) and
 *        Keycloak admin actions, judged on their decoded JSON.
 *
 * Every check refuses rather than guesses: a claim of the wrong JSON type is as bad as a
 * missing one, and strings that name what gets revoked are bounded in length.
 */
#include <math.h>   /* isfinite */
#include <string.h>
#include <strings.h>
#include <apr_strings.h>

#include "ot_json.h"
#include "ot_logout.h"

/** Largest number of seconds taken as a time (year 10000). */
#define TIME_MAX 253402300800LL

static const char *const admin_paths[] = { "k_push_not_before", "k_logout", "k_test_available" };
static const char *const admin_actions[] = { "PUSH_NOT_BEFORE", "LOGOUT", "TEST_AVAILABILITY" };

/** A JSON number that is a whole number of seconds in [0, TIME_MAX]: 1 and *out; else 0. */
static int get_time(apr_int64_t *out, const json_t *v)
{
    double d;

    if (json_is_integer(v)) {
        *out = (apr_int64_t)json_integer_value(v);
    }
    else if (json_is_real(v)) {
        d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d > (double)TIME_MAX) {
            return 0;
        }
        *out = (apr_int64_t)d;      /* d >= 0: truncation is floor */
    }
    else {
        return 0;
    }
    return *out >= 0 && *out <= TIME_MAX;
}

/** obj[name]: 1 and *out when absent (NULL) or a non-empty bounded string; 0 otherwise. */
static int get_value(const char **out, const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    *out = NULL;
    if (v == NULL) {
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > OT_PUSH_VALUE_MAX
        || strlen(json_string_value(v)) != json_string_length(v)) {
        return 0;
    }
    *out = json_string_value(v);
    return 1;
}

/** 1 when v is one of list (const char *). */
static int listed(const apr_array_header_t *list, const char *v)
{
    int i;

    for (i = 0; list != NULL && i < list->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(list, i, const char *), v) == 0) {
            return 1;
        }
    }
    return 0;
}

/** 1 when a logout token's aud names a client it may be addressed to. */
static int logout_aud_ok(const json_t *aud, const ot_push_expect_t *x)
{
    const json_t *v;
    size_t i;

    if (x->audiences == NULL) {
        return x->client_id != NULL && ot_json_aud_has(aud, x->client_id);
    }
    if (json_is_string(aud)) {
        return listed(x->audiences, json_string_value(aud));
    }
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && listed(x->audiences, json_string_value(v))) {
            return 1;
        }
    }
    return 0;
}

/** typ, when present, must say logout+jwt (RFC 7515 §4.1.9: "application/" may be left out). */
static int typ_ok(const json_t *header)
{
    const json_t *v = json_object_get(header, "typ");
    const char *typ;

    if (v == NULL) {
        return 1;
    }
    if (!json_is_string(v)) {
        return 0;
    }
    typ = json_string_value(v);
    if (strncasecmp(typ, "application/", 12) == 0) {
        typ += 12;
    }
    return strcasecmp(typ, "logout+jwt") == 0;
}

static const char *logout_times(ot_logout_t *out, const json_t *payload,
                                const ot_push_expect_t *x)
{
    const json_t *exp = json_object_get(payload, "exp");

    if (!get_time(&out->iat, json_object_get(payload, "iat"))) {
        return "its iat is missing or not a time";
    }
    if (out->iat > x->now + x->skew || out->iat < x->now - x->skew) {
        return "its iat is not within the allowed clock skew of now";
    }
    out->exp = 0;
    if (exp != NULL && (!get_time(&out->exp, exp) || out->exp == 0)) {
        return "its exp is not a time";
    }
    if (exp != NULL && out->exp <= x->now) {
        return "it has expired";
    }
    return NULL;
}

static const char *logout_subject(ot_logout_t *out, const json_t *payload)
{
    const json_t *events = json_object_get(payload, "events");

    if (!json_is_object(events)) {
        return "it has no events object";
    }
    if (!json_is_object(json_object_get(events, OT_LOGOUT_EVENT))) {
        return "its events lack the back-channel logout event";
    }
    if (json_object_get(payload, "nonce") != NULL) {
        return "it carries a nonce";
    }
    if (!get_value(&out->sub, payload, "sub") || !get_value(&out->sid, payload, "sid")) {
        return "its sub or sid is not a string of 1 to 1024 characters";
    }
    if (out->sub == NULL && out->sid == NULL) {
        return "it has neither sub nor sid";
    }
    if (!get_value(&out->jti, payload, "jti") || out->jti == NULL) {
        return "its jti is missing or not a string of 1 to 1024 characters";
    }
    return NULL;
}

const char *ot_logout_check(ot_logout_t *out, const json_t *header, const json_t *payload,
                            const ot_push_expect_t *x, apr_pool_t *p)
{
    const char *iss = NULL, *why;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(header) || !json_is_object(payload)) {
        return "it is not a JWT";
    }
    if (!typ_ok(header)) {
        return "its typ is not logout+jwt";
    }
    if (!get_value(&iss, payload, "iss") || iss == NULL || x->issuer == NULL
        || strcmp(iss, x->issuer) != 0) {
        return "its iss is not OfftokIssuer";
    }
    if (!logout_aud_ok(json_object_get(payload, "aud"), x)) {
        return x->audiences ? "its aud names no client of OfftokLogoutAudience"
                            : "its aud does not contain OfftokClientID";
    }
    why = logout_times(out, payload, x);
    if (why == NULL) {
        why = logout_subject(out, payload);
    }
    return why;
}

apr_int64_t ot_logout_replay_until(const ot_logout_t *lt, const ot_push_expect_t *x)
{
    /* After this, iat is out of the skew window (or exp has passed): a replay fails anyway. */
    apr_int64_t until = lt->iat + x->skew;

    if (lt->exp > until) {
        until = lt->exp;
    }
    return until + 1;
}

/* ---- Keycloak admin actions ---------------------------------------------------------------- */

int ot_admin_kind(const char *segment)
{
    int i;

    for (i = 0; segment && i < (int)(sizeof(admin_paths) / sizeof(admin_paths[0])); i++) {
        if (strcmp(segment, admin_paths[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/** keycloakSessionIds: absent, null, or an array of bounded strings. */
static const char *admin_sids(ot_admin_t *out, const json_t *payload, apr_pool_t *p)
{
    const json_t *ids = json_object_get(payload, "keycloakSessionIds"), *v;
    size_t i;

    out->sids = apr_array_make(p, 4, sizeof(const char *));
    if (ids == NULL || json_is_null(ids)) {
        return NULL;
    }
    if (!json_is_array(ids) || json_array_size(ids) > OT_PUSH_SIDS_MAX) {
        return "its keycloakSessionIds is not an array of at most 1000 session ids";
    }
    json_array_foreach(ids, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > OT_PUSH_VALUE_MAX
            || strlen(json_string_value(v)) != json_string_length(v)) {
            return "its keycloakSessionIds holds something that is not a session id";
        }
        APR_ARRAY_PUSH(out->sids, const char *) = json_string_value(v);
    }
    return NULL;
}

static const char *admin_members(ot_admin_t *out, const json_t *payload, apr_pool_t *p)
{
    const json_t *nb = json_object_get(payload, "notBefore");

    out->not_before = 0;
    switch (out->kind) {
    case OT_ADMIN_PUSH_NOT_BEFORE:
        if (!get_time(&out->not_before, nb)) {
            return "its notBefore is missing or not a time";
        }
        return NULL;
    case OT_ADMIN_LOGOUT:
        if (nb != NULL && !json_is_null(nb) && !get_time(&out->not_before, nb)) {
            return "its notBefore is not a time";
        }
        return admin_sids(out, payload, p);
    default:
        return NULL;
    }
}

const char *ot_admin_check(ot_admin_t *out, const json_t *payload, ot_admin_kind_t kind,
                           const ot_push_expect_t *x, apr_pool_t *p)
{
    const char *action = NULL, *resource = NULL;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (!json_is_object(payload) || (int)kind < 0 || kind > OT_ADMIN_TEST_AVAILABLE) {
        return "it is not an admin action";
    }
    if (!get_value(&action, payload, "action") || action == NULL
        || strcmp(action, admin_actions[kind]) != 0) {
        return apr_pstrcat(p, "its action is not ", admin_actions[kind], NULL);
    }
    if (!get_value(&resource, payload, "resource") || resource == NULL
        || ((x->client_id == NULL || strcmp(resource, x->client_id) != 0)
            && !listed(x->audiences, resource))) {
        return "its resource is neither OfftokClientID nor a client of OfftokLogoutAudience";
    }
    if (!get_time(&out->expiration, json_object_get(payload, "expiration"))) {
        return "its expiration is missing or not a time";
    }
    if (out->expiration < x->now) {
        return "it has expired";
    }
    if (!get_value(&out->id, payload, "id") || out->id == NULL) {
        return "its id is missing or not a string of 1 to 1024 characters";
    }
    out->resource = resource;
    return admin_members(out, payload, p);
}
