/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * RFC 9701 signed introspection answers: the input is a JWS header's JSON, "\n", and a payload's
 * JSON. The pair is signed here with a P-256 key made at start (ot_jws_sign) and goes the whole
 * way an issuer's answer goes: ot_signed_unwrap (verification with that key's JWKS, then
 * ot_signed_check), and the accepted token_introspection through ot_answer_parse. The raw input
 * is also offered as an answer body as it is (never a valid signature) and as a Content-Type.
 * What is accepted must be addressed to us, by our issuer, fresh, typed as a signed answer.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "fuzz_common.h"
#include "ot_answer.h"
#include "ot_assert.h"
#include "ot_json.h"
#include "ot_signed.h"

#define ISSUER "https://issuer.example/realms/test"
#define CLIENT "rs-client"
#define NOW 1700000000

static EVP_PKEY *key;
static const char *jwks;
static apr_pool_t *keep;

static void setup(void)
{
    BIGNUM *x = NULL, *y = NULL;
    unsigned char bx[32], by[32];

    apr_pool_create(&keep, NULL);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    BN_bn2binpad(x, bx, 32);
    BN_bn2binpad(y, by, 32);
    jwks = apr_psprintf(keep, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\","
                        "\"x\":\"%s\",\"y\":\"%s\"}]}", ot_b64url_encode(bx, 32, keep),
                        ot_b64url_encode(by, 32, keep));
    BN_free(x);
    BN_free(y);
}

static int aud_names_us(const json_t *aud)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), CLIENT) == 0;
    }
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), CLIENT) == 0) {
            return 1;
        }
    }
    return 0;
}

static void accepted(const char *answer, apr_size_t len, const json_t *header,
                     const json_t *payload, apr_pool_t *p)
{
    const char *typ = ot_json_string(header, "typ"), *err = NULL;
    json_int_t iat = json_integer_value(json_object_get(payload, "iat"));

    fuzz_require(typ && (strcasecmp(typ, "token-introspection+jwt") == 0
                         || strcasecmp(typ, OT_SIGNED_TYPE) == 0), "typ of a signed answer");
    fuzz_require(strcmp(ot_json_string(payload, "iss"), ISSUER) == 0, "iss is OfftokIssuer");
    fuzz_require(aud_names_us(json_object_get(payload, "aud")), "aud names the client");
    fuzz_require(json_is_integer(json_object_get(payload, "iat")) && iat >= NOW - 30
                 && iat <= NOW + 30, "iat is fresh");
    fuzz_require(json_is_object(json_object_get(payload, "token_introspection")),
                 "the answer is the token_introspection object");
    ot_answer_parse(answer, len, &err, p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *htext, *ptext, *jws, *answer = NULL, *why = NULL;
    ot_signed_rules_t rules = { ISSUER, CLIENT, apr_time_from_sec(NOW - 30),
                                apr_time_from_sec(NOW + 30), "jti-asked" };
    json_t *header, *payload;
    apr_size_t len = 0;
    int no_key;

    if (key == NULL) {
        setup();
    }
    fuzz_split(data, size, &htext, &ptext);
    ot_signed_content_type(htext);
    if (ot_signed_unwrap(&answer, &len, &why, &no_key, fuzz_body(data, size), size, jwks,
                         strlen(jwks), &rules, p) == APR_SUCCESS) {
        fuzz_require(0, "an unsigned input never passes");
    }
    header = ot_json_parse(htext, strlen(htext), NULL, p);
    payload = ot_json_parse(ptext, strlen(ptext), NULL, p);
    if (json_is_object(header) && json_is_object(payload)
        && (jws = ot_jws_sign(htext, ptext, key, NULL, p)) != NULL) {
        if (ot_signed_unwrap(&answer, &len, &why, &no_key, jws, strlen(jws), jwks, strlen(jwks),
                             &rules, p) == APR_SUCCESS) {
            accepted(answer, len, header, payload, p);
        }
        else {
            fuzz_require(why != NULL && answer == NULL, "a refusal says why and gives nothing");
        }
    }
    fuzz_end();
    return 0;
}
