/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "ot_token.h"
#include "ot_util.h"
#include "ot_json.h"

/** RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int is_b64token(const char *s, apr_size_t len)
{
    apr_size_t i = 0;

    while (i < len && (apr_isalnum(s[i]) || strchr("-._~+/", s[i]) != NULL) && s[i] != '\0') {
        i++;
    }
    if (i == 0) {
        return 0;
    }
    while (i < len && s[i] == '=') {
        i++;
    }
    return i == len;
}

ot_bearer_t ot_bearer_parse(const char *header, const char **token, apr_pool_t *p)
{
    const char *s;
    apr_size_t len;

    if (header == NULL || strncasecmp(header, "Bearer", 6) != 0) {
        return OT_BEARER_NONE;
    }
    s = header + 6;
    if (*s == '\0') {
        return OT_BEARER_MALFORMED;            /* "Bearer" and nothing */
    }
    if (*s != ' ') {
        /* "Bearer\t..." is a Bearer credential with bad white space; "Bearerx" another scheme. */
        return (*s == '\t') ? OT_BEARER_MALFORMED : OT_BEARER_NONE;
    }
    while (*s == ' ') {
        s++;
    }
    len = strlen(s);
    if (len == 0 || len > OT_TOKEN_MAX || !is_b64token(s, len)) {
        return OT_BEARER_MALFORMED;
    }
    *token = apr_pstrmemdup(p, s, len);
    return OT_BEARER_OK;
}

json_t *ot_jwt_payload(const char *token, apr_pool_t *p)
{
    const char *dot1 = strchr(token, '.'), *dot2;
    char *raw;
    apr_size_t raw_len;
    json_t *payload;

    if (dot1 == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.') != NULL) {
        return NULL;
    }
    if (ot_b64url_decode(&raw, &raw_len, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), p)
        != APR_SUCCESS) {
        return NULL;
    }
    payload = ot_json_parse(raw, raw_len, NULL, p);
    if (payload != NULL && !json_is_object(payload)) {
        return NULL;
    }
    return payload;
}

void ot_jwt_peek(ot_jwt_peek_t *out, const char *token, apr_pool_t *p)
{
    json_t *payload = ot_jwt_payload(token, p);

    memset(out, 0, sizeof(*out));
    if (payload == NULL) {
        return;
    }
    out->is_jwt = 1;
    out->typ = ot_json_string(payload, "typ");
    out->azp = ot_json_string(payload, "azp");
}

const char *ot_token_hint(ot_hint_mode_t mode, const ot_jwt_peek_t *peek)
{
    switch (mode) {
    case OT_HINT_ACCESS:
        return "access_token";
    case OT_HINT_REFRESH:
        return "refresh_token";
    case OT_HINT_NONE:
        return NULL;
    case OT_HINT_AUTO:
    default:
        break;
    }
    if (!peek->is_jwt) {
        return NULL;
    }
    if (peek->typ && (strcmp(peek->typ, "Refresh") == 0 || strcmp(peek->typ, "Offline") == 0)) {
        return "refresh_token";
    }
    return "access_token";
}
