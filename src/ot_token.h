/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_token.h
 * @brief Reading the bearer token from a request, and peeking into JWT-shaped tokens.
 *
 * The peek decodes a JWT's payload without verifying it. What it finds is used only to choose how
 * to ask the issuer (the token_type_hint, which client credentials); it never decides access.
 */
#ifndef OT_TOKEN_H
#define OT_TOKEN_H

#include <apr_pools.h>
#include <jansson.h>

/** Longest bearer token accepted (RFC 6750 sets none; the contract sets 16 KiB). */
#define OT_TOKEN_MAX (16 * 1024)

typedef enum {
    OT_BEARER_OK = 0,     /**< a well-formed bearer token */
    OT_BEARER_NONE,       /**< no Authorization header, or another scheme: 401 without error */
    OT_BEARER_MALFORMED   /**< "Bearer" with bad credentials: 400 invalid_request */
} ot_bearer_t;

/**
 * Parse an Authorization header value (NULL when absent) per RFC 6750 §2.1: the scheme
 * "Bearer" in any case, one or more spaces, then a b64token of at most OT_TOKEN_MAX bytes and
 * nothing after it. On OT_BEARER_OK *token points into a copy from p.
 */
ot_bearer_t ot_bearer_parse(const char *header, const char **token, apr_pool_t *p);

/**
 * The length of the RFC 6750 b64token (1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
 * *"=") that s is, to its NUL; 0 when s is empty or anything else.
 */
apr_size_t ot_b64token_span(const char *s);

/** The scheme credentials came under. */
typedef enum { OT_SCHEME_NONE = 0, OT_SCHEME_BEARER, OT_SCHEME_DPOP } ot_scheme_t;

/**
 * ot_bearer_parse for the schemes a location takes: Bearer when `bearer` is set, DPoP (RFC 9449
 * §7.1, the same token68 syntax) when `dpop` is set; any other scheme is OT_BEARER_NONE.
 * *scheme is the scheme the credentials came under (OT_SCHEME_NONE with OT_BEARER_NONE).
 */
ot_bearer_t ot_credentials_parse(const char *header, int bearer, int dpop, ot_scheme_t *scheme,
                                 const char **token, apr_pool_t *p);

/** What a peek found of the payload's "exp". */
typedef enum {
    OT_PEEK_EXP_NONE = 0, /**< absent, or not a number */
    OT_PEEK_EXP_INT,      /**< an integer, in exp */
    OT_PEEK_EXP_OTHER     /**< a number with a fraction or an exponent: read it with jansson */
} ot_peek_exp_t;

/** What the peek found in a JWT-shaped token. */
typedef struct {
    int is_jwt;           /**< three base64url parts whose middle one is a JSON object */
    const char *typ;      /**< payload "typ" (Keycloak: Bearer, Refresh, Offline, ID) */
    const char *azp;      /**< payload "azp": the client the token was issued to */
    const char *iss;      /**< payload "iss" (for refusing what is certain to fail) */
    ot_peek_exp_t exp_kind;
    apr_int64_t exp;      /**< payload "exp" with OT_PEEK_EXP_INT */
} ot_jwt_peek_t;

/**
 * Peek into token. Never fails: a token that is not a JWT gives is_jwt 0. It finds a JWT exactly
 * where jansson reads the payload as an object, and then the typ, azp, iss and exp jansson reads.
 */
void ot_jwt_peek(ot_jwt_peek_t *out, const char *token, apr_pool_t *p);

/** How OfftokTokenTypeHint chooses the hint. */
typedef enum {
    OT_HINT_AUTO = 0, OT_HINT_ACCESS, OT_HINT_REFRESH, OT_HINT_NONE
} ot_hint_mode_t;

/** The token_type_hint to send, or NULL for none. */
const char *ot_token_hint(ot_hint_mode_t mode, const ot_jwt_peek_t *peek);

/** Decode the payload of a compact JWS into a JSON object (unverified), or NULL. */
json_t *ot_jwt_payload(const char *token, apr_pool_t *p);

#endif
