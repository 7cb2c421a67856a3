/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What a client sends: the Authorization header value, then "\n", then the query string.
 * The header goes through ot_bearer_parse as mod_offtok_authn.c reads it; a token it accepts
 * then goes where a token goes (the peek for the hint, the fingerprint for the log, the cache
 * key, the introspection request), and the query through ot_query_has_param.
 */
#include <string.h>
#include <strings.h>
#include <apr_lib.h>

#include "fuzz_common.h"
#include "ot_cache.h"
#include "ot_token.h"
#include "ot_util.h"
#include "ot_introspect.h"

/** RFC 6750 b64token, checked here without the parser's code. */
static int b64token(const char *t)
{
    size_t n = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");

    return n > 0 && t[n + strspn(t + n, "=")] == '\0';
}

/** Only what application/x-www-form-urlencoded leaves as it is, and its escapes. */
static int form_safe(const char *s)
{
    return s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*+%=&")]
           == '\0';
}

static void use_token(const char *token, apr_pool_t *p)
{
    static const ot_client_auth_t auths[] = { OT_AUTH_BASIC, OT_AUTH_POST };
    ot_jwt_peek_t peek;
    ot_introspect_t in;
    ot_http_req_t req;
    unsigned char key[OT_SHA256_LEN];
    const char *fp;
    int mode;
    size_t i;

    ot_jwt_peek(&peek, token, p);
    for (mode = OT_HINT_AUTO; mode <= OT_HINT_NONE; mode++) {
        const char *hint = ot_token_hint((ot_hint_mode_t)mode, &peek);
        fuzz_require(hint == NULL || strcmp(hint, "access_token") == 0
                     || strcmp(hint, "refresh_token") == 0, "a hint RFC 7662 knows");
    }
    fp = ot_token_fingerprint(token, p);
    fuzz_require(strncmp(fp, "sha256:", 7) == 0 && strlen(fp) == 19, "fingerprint shape");
    ot_cache_key(key, "https://issuer.example/introspect", "rs-client",
                 ot_token_hint(OT_HINT_AUTO, &peek), "verify", token);
    for (i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
        memset(&in, 0, sizeof(in));
        memset(&req, 0, sizeof(req));
        in.url = "https://issuer.example/introspect";
        in.client_id = "rs client";
        in.client_secret = "s3cr3t:+/&=%";
        in.auth = auths[i];
        in.hint = ot_token_hint(OT_HINT_AUTO, &peek);
        in.token = token;
        ot_introspect_request(&req, &in, p);
        fuzz_require(form_safe(req.body) && strlen(req.body) == req.body_len,
                     "the introspection body is form-encoded");
        fuzz_require(strstr(req.body, "s3cr3t:") == NULL, "the secret is encoded");
        fuzz_require((in.auth == OT_AUTH_BASIC) == (req.authorization != NULL),
                     "Basic exactly for client_secret_basic");
    }
}

/** 1 when args has a parameter spelled literally access_token (escapes are not decoded). */
static int literal_access_token(const char *args)
{
    const char *s = args;

    while ((s = strstr(s, "access_token")) != NULL) {
        if ((s == args || s[-1] == '&') && strchr("=&", s[12]) != NULL) {
            return 1;
        }
        s++;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *header, *args, *token = NULL;

    fuzz_split(data, size, &header, &args);
    switch (ot_bearer_parse(size ? header : NULL, &token, p)) {
    case OT_BEARER_OK:
        fuzz_require(strncasecmp(header, "Bearer ", 7) == 0, "the scheme is Bearer");
        fuzz_require(strlen(token) <= OT_TOKEN_MAX, "the token is at most OT_TOKEN_MAX");
        fuzz_require(b64token(token), "the token is a b64token");
        fuzz_require(strcmp(header + strlen(header) - strlen(token), token) == 0,
                     "the token is the end of the header");
        use_token(token, p);
        break;
    case OT_BEARER_MALFORMED:
        fuzz_require(strncasecmp(header, "Bearer", 6) == 0, "malformed only after Bearer");
        break;
    case OT_BEARER_NONE:
        break;
    default:
        fuzz_require(0, "ot_bearer_parse answers one of its three values");
    }
    if (literal_access_token(args)) {
        fuzz_require(ot_query_has_param(args, "access_token"), "a token in the query is seen");
    }
    else {
        ot_query_has_param(args, "access_token");
    }
    fuzz_end();
    return 0;
}
