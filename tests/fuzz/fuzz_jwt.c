/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The unverified JWT decoding behind the token_type_hint: ot_jwt_peek and ot_jwt_payload on
 * any token (the input up to its first NUL), and ot_b64url_decode on the raw input, of exactly
 * its size.
 */
#include <string.h>
#include <openssl/evp.h>

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
    fuzz_require(pk.is_jwt == (payload != NULL), "peek and payload agree");
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
    fuzz_end();
    return 0;
}
