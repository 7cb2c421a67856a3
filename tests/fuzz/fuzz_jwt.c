/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The unverified JWT decoding behind the token_type_hint: ot_jwt_peek and ot_jwt_payload on
 * any token (the input up to its first NUL), and ot_b64url_decode on the raw input, of exactly
 * its size. The raw input is also made the payload of a token, to hold the peek (the scanner of
 * ot_jscan.c, with jansson behind it) to jansson: wherever jansson reads an object, the peek finds
 * the same typ, azp, iss and exp, and it finds a JWT nowhere else.
 */
#include <string.h>
#include <openssl/evp.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_token.h"
#include "ot_util.h"

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s; s++) {
        n += (*s == c);
    }
    return n;
}

static void peek(const char *token, apr_pool_t *p)
{
    ot_jwt_peek_t pk;
    json_t *payload = ot_jwt_payload(token, p);
    const char *hint;

    ot_jwt_peek(&pk, token, p);
    fuzz_require((payload != NULL) == pk.is_jwt, "a JWT exactly when the payload is an object");
    fuzz_require(!pk.is_jwt || count_char(token, '.') == 2, "a JWT is three parts");
    fuzz_require(payload == NULL || (json_is_object(payload) && count_char(token, '.') == 2),
                 "a JWT is three parts whose middle one is an object");
    fuzz_require(pk.is_jwt || (pk.typ == NULL && pk.azp == NULL), "nothing found in a non-JWT");
    hint = ot_token_hint(OT_HINT_AUTO, &pk);
    fuzz_require(pk.is_jwt || hint == NULL, "no hint for what is not a JWT");
}

/** in[0..n) as base64url without padding, from p. */
static const char *b64url(const char *in, size_t n, apr_pool_t *p)
{
    char *out = (char *)ot_b64_encode(in, n, p), *c;

    for (c = out; *c; c++) {
        if (*c == '+') *c = '-';
        else if (*c == '/') *c = '_';
        else if (*c == '=') *c = '\0';
    }
    return out;
}

static const char *b64url(const char *in, size_t n, apr_pool_t *p);

static int same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void peek_payload(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *raw = fuzz_bytes(data, size);
    const char *token = apr_pstrcat(p, "eyJhbGciOiJSUzI1NiJ9.", b64url(raw, size, p), ".c2ln",
                                    NULL);
    ot_jwt_peek_t pk;
    json_error_t err;
    json_t *j = json_loadb(raw, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);

    ot_jwt_peek(&pk, token, p);
    if (json_is_object(j)) {
        const json_t *typ = json_object_get(j, "typ"), *azp = json_object_get(j, "azp");
        const json_t *iss = json_object_get(j, "iss"), *exp = json_object_get(j, "exp");
        fuzz_require(pk.is_jwt, "an object payload makes a JWT");
        fuzz_require(same(pk.typ, json_is_string(typ) ? json_string_value(typ) : NULL)
                     && same(pk.azp, json_is_string(azp) ? json_string_value(azp) : NULL)
                     && same(pk.iss, json_is_string(iss) ? json_string_value(iss) : NULL),
                     "the peek finds what jansson finds");
        fuzz_require(json_is_integer(exp)
                     ? pk.exp_kind == OT_PEEK_EXP_INT && pk.exp == json_integer_value(exp)
                     : pk.exp_kind == (json_is_real(exp) ? OT_PEEK_EXP_OTHER : OT_PEEK_EXP_NONE),
                     "the peek reads exp as jansson does");
    }
    else {
        fuzz_require(!pk.is_jwt, "no JWT where jansson reads no object");
    }
    json_decref(j);
}

static void decode(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *in = fuzz_bytes(data, size), *enc;
    char *out = NULL;
    apr_size_t out_len = 0;

    if (ot_b64url_decode(&out, &out_len, in, size, p) == APR_SUCCESS) {
        fuzz_require(out_len <= size * 3 / 4 && out[out_len] == '\0', "decoded length");
    }
    /* Whatever the bytes, their own encoding decodes back to them. */
    enc = b64url(in, size, p);
    fuzz_require(ot_b64url_decode(&out, &out_len, enc, strlen(enc), p) == APR_SUCCESS
                 && out_len == size && memcmp(out, in, size) == 0, "base64url round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();

    peek(fuzz_cstr(data, size), p);
    decode(data, size, p);
    peek_payload(data, size, p);
    fuzz_end();
    return 0;
}
