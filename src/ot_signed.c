/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ot_json.h"
#include "ot_signed.h"

int ot_signed_content_type(const char *ct)
{
    apr_size_t n = sizeof(OT_SIGNED_TYPE) - 1;

    while (ct && (*ct == ' ' || *ct == '\t')) {
        ct++;
    }
    return ct && strncasecmp(ct, OT_SIGNED_TYPE, n) == 0
        && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

static int typ_ok(const char *typ)
{
    return typ && (strcasecmp(typ, "token-introspection+jwt") == 0
                   || strcasecmp(typ, OT_SIGNED_TYPE) == 0);
}

/** NULL when iat is a whole number of seconds within the rules' window, else the reason. */
static const char *iat_problem(const json_t *iat, const ot_signed_rules_t *rules)
{
    json_int_t v;

    if (!json_is_integer(iat)) {
        return "it has no iat (a whole number of seconds)";
    }
    v = json_integer_value(iat);
    if (v < apr_time_sec(rules->earliest)) {
        return "its iat is older than the call (a replayed or stale answer)";
    }
    if (v > apr_time_sec(rules->latest)) {
        return "its iat is in the future";
    }
    return NULL;
}

/** 0 when the answer names a jti that is not the asked token's (both known), else 1. */
static int about_token(const json_t *inner, const char *token_jti)
{
    const json_t *jti = json_object_get(inner, "jti");

    if (token_jti == NULL || jti == NULL) {
        return 1;
    }
    return json_is_string(jti) && strcmp(json_string_value(jti), token_jti) == 0;
}

apr_status_t ot_signed_check(const char **answer, apr_size_t *len, const char **why,
                             const ot_jws_t *jws, const ot_signed_rules_t *rules, apr_pool_t *p)
{
    const json_t *inner = json_object_get(jws->payload, "token_introspection");
    const char *iss = ot_json_string(jws->payload, "iss");

    *answer = NULL;
    if (!typ_ok(jws->typ)) {
        *why = "its header typ is not token-introspection+jwt";
    }
    else if (iss == NULL || rules->issuer == NULL || strcmp(iss, rules->issuer) != 0) {
        *why = "its iss is not OfftokIssuer";
    }
    else if (rules->client_id == NULL
             || !ot_json_aud_has(json_object_get(jws->payload, "aud"), rules->client_id)) {
        *why = "its aud does not name the client id that asked";
    }
    else if ((*why = iat_problem(json_object_get(jws->payload, "iat"), rules)) != NULL) {
        /* *why says it */
    }
    else if (!json_is_object(inner)) {
        *why = "it has no token_introspection object";
    }
    else if (!about_token(inner, rules->token_jti)) {
        *why = "its token_introspection is about another token (its jti is not the token's)";
    }
    else if ((*answer = ot_json_dump(inner, len, p)) == NULL) {
        *why = "its token_introspection cannot be serialised";
    }
    return *answer ? APR_SUCCESS : APR_EINVAL;
}

void ot_signed_trim(const char **start, apr_size_t *n, const char *body, apr_size_t len)
{
    while (len > 0 && strchr(" \t\r\n", body[0]) && body[0]) {
        body++;
        len--;
    }
    while (len > 0 && strchr(" \t\r\n", body[len - 1]) && body[len - 1]) {
        len--;
    }
    *start = body;
    *n = len;
}

apr_status_t ot_signed_unwrap(const char **answer, apr_size_t *len, const char **why,
                              int *no_key, const char *body, apr_size_t body_len,
                              const char *jwks, apr_size_t jwks_len,
                              const ot_signed_rules_t *rules, apr_pool_t *p)
{
    ot_jws_t jws;
    const char *compact;
    apr_size_t n;

    *answer = NULL;
    ot_signed_trim(&compact, &n, body, body_len);
    if (ot_jose_verify_jwks(&jws, why, no_key, jwks, jwks_len, compact, n, p) != OT_JOSE_OK) {
        return APR_EINVAL;
    }
    return ot_signed_check(answer, len, why, &jws, rules, p);
}
