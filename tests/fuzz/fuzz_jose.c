/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What an issuer pushes before anything is believed: a compact JWS (a logout token, an admin
 * action), "\n", and the JWKS it is checked against (when empty, the seeds' key set below).
 * The JWKS goes through ot_jose_jwks_check, the JWS through ot_jose_verify_jwks and, with the
 * JWKS behind a fetch function, through the key cache of ot_jose_verify; then through
 * ot_jose_known_forgery, which must never call a token that verifies a forgery.
 */
#include <string.h>
#include <apr_time.h>

#include "fuzz_common.h"
#include <cjose/cjose.h>

#include "ot_jose.h"
#include "ot_json.h"
#include "ot_util.h"

/** The public keys the seeds (tests/fuzz/corpus/jose) are signed with: RSA 2048 and P-256. */
static const char seed_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\","
    "\"n\":\""
    "52LQ-SFIt-27rJ3FU-wlIiZFbROziJZ4rRKJemCHj49RtSmMKWaSFnq_q_WM7viNGGTGuHSkipL6fald"
    "clei6DKflI9-q83JiIp_FrRtKy_sL0DrLvuWN7an0UPq1Uiy7dlAZZ4SL352YkxHJQ7WMkEot23fib6Q"
    "qOb2whTahcwmT3A_0y6L8BDcLu6THeOcY1tGNT_F7SYhopgKFiu-H5WFBD0Z1koqsNFZ0YV-cUU0WRra"
    "jQ-pyVIVIROThmNISyHhnQZ4AmWQN26rr80y73aJQ8DLRWwLNgzCjxCvyqBfJGsFZAX3F1HHDtgfvXJi"
    "j_NFytn15HY6G81nSFdVEQ"
    "\"},"
    "{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\","
    "\"x\":\"DhLZzCax5GdWqaufvHOaek2k5aZG0b2cZBkCG-QcXWU\","
    "\"y\":\"Zvjbqp1cxUFWKvVgKi-B8NCi2EIgEvTw8Itwh4tsSnc\"}]}";

static const char *const accepted[] = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
};

typedef struct {
    const char *jwks;
    int fetches;
} fetch_ctx_t;

static apr_status_t fetch(void *baton, const char *url, const char **body, apr_size_t *len,
                          const char **why, apr_pool_t *p)
{
    fetch_ctx_t *ctx = baton;

    ctx->fetches++;
    *body = ctx->jwks;
    *len = strlen(ctx->jwks);
    return APR_SUCCESS;
}

static void check_verified(const ot_jws_t *jws)
{
    size_t i;
    int known = 0;

    for (i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        known |= strcmp(jws->alg, accepted[i]) == 0;
    }
    fuzz_require(known, "only an accepted algorithm verifies");
    fuzz_require(json_is_object(jws->header) && json_is_object(jws->payload),
                 "header and payload are objects");
    fuzz_require(json_object_get(jws->header, "crit") == NULL, "crit is refused");
}

/**
 * The oracle: a token the OpenSSL path verifies (not EdDSA, which cjose lacks) verifies with
 * cjose under one of the set's keys, imported as ot_jose.c imports them (members decoding).
 */
static void cjose_agrees(const char *compact, const char *jwks, apr_pool_t *p)
{
    json_t *set = ot_json_parse(jwks, strlen(jwks), NULL, p), *key, *v;
    cjose_jws_t *jws;
    cjose_jwk_t *jwk;
    cjose_err err;
    const char *name;
    char *raw;
    apr_size_t i, n;
    int ok = 0, decodes;

    json_array_foreach(json_object_get(set, "keys"), i, key) {
        decodes = json_is_object(key);
        json_object_foreach(key, name, v) {
            decodes &= !json_is_string(v) || ot_b64url_decode(&raw, &n, json_string_value(v),
                                                              json_string_length(v), p)
                                             == APR_SUCCESS || strlen(name) > 2;
        }
        if (!decodes || (jwk = cjose_jwk_import_json((cjose_header_t *)key, &err)) == NULL) {
            continue;
        }
        jws = cjose_jws_import(compact, strlen(compact), &err);
        ok |= jws != NULL && cjose_jws_verify(jws, jwk, &err);
        cjose_jws_release(jws);
        cjose_jwk_release(jwk);
    }
    fuzz_require(ok, "what OpenSSL verifies cjose verifies with one of the keys");
}

static void check_refused(const char *why, const char *compact)
{
    fuzz_require(why != NULL, "a refusal says why");
    fuzz_require(strlen(compact) < 8 || strstr(why, compact) == NULL,
                 "the reason does not hold the token");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *compact, *jwks, *why = NULL;
    ot_jose_keys_t *keys;
    fetch_ctx_t ctx;
    ot_jws_t jws;
    apr_time_t now = apr_time_from_sec(1700000000);
    int no_key, round, verified;

    fuzz_split(data, size, &compact, &jwks);
    if (*jwks == '\0') {
        jwks = seed_jwks;
    }
    ot_jose_jwks_check(jwks, strlen(jwks), &why, p);

    why = NULL;
    memset(&jws, 0, sizeof(jws));
    verified = ot_jose_verify_jwks(&jws, &why, &no_key, jwks, strlen(jwks), compact,
                                   strlen(compact), p) == OT_JOSE_OK;
    if (verified) {
        check_verified(&jws);
        if (strcmp(jws.alg, "EdDSA") != 0) {
            cjose_agrees(compact, jwks, p);
        }
    }
    else {
        check_refused(why, compact);
    }

    /* The cache: within min_refresh, however the token tries, at most one fetch. */
    fuzz_require(ot_jose_keys_create(&keys, apr_time_from_sec(10), p) == APR_SUCCESS,
                 "key cache");
    ctx.jwks = jwks;
    ctx.fetches = 0;
    for (round = 0; round < 2; round++) {
        why = NULL;
        memset(&jws, 0, sizeof(jws));
        if (ot_jose_verify(&jws, &why, keys, "https://issuer.example/certs", compact,
                           strlen(compact), fetch, &ctx, now + apr_time_from_sec(round), p)
            == OT_JOSE_OK) {
            check_verified(&jws);
            fuzz_require(verified, "the key cache verifies what the key set verifies");
        }
        else {
            fuzz_require(!verified, "the key cache verifies what the key set verifies");
            check_refused(why, compact);
        }
    }
    fuzz_require(ctx.fetches <= 1, "at most one fetch per min_refresh");
    fuzz_require(!(verified && ot_jose_known_forgery(keys, "https://issuer.example/certs",
                                                     compact, strlen(compact), p)),
                 "a token that verifies is never a known forgery");
    fuzz_end();
    return 0;
}
