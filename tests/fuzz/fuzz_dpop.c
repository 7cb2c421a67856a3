/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A DPoP proof as a client sends it in the DPoP header, "\n", and a URL: the proof goes through
 * ot_dpop_verify (for a GET of https://rs.example/api with token "tok" at a fixed time, with and
 * without nonces), the URL through ot_url_normalize, and both through ot_credentials_parse as
 * an Authorization header. The seeds (tests/fuzz/corpus/dpop) are signed for that request with
 * keys whose private halves were thrown away. A proof that passes must also pass cjose's
 * verification with its own jwk (the key and signature are checked here with OpenSSL directly).
 */
#include <string.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <cjose/cjose.h>

#include "fuzz_common.h"
#include "ot_dpop.h"
#include "ot_json.h"
#include "ot_token.h"
#include "ot_url.h"
#include "ot_util.h"

#define FUZZ_NOW 1796014600
#define FUZZ_URL "https://rs.example/api"

static void check_url(const char *url, apr_pool_t *p)
{
    const char *n = ot_url_normalize(url, p), *again, *path;

    if (n == NULL) {
        return;
    }
    fuzz_require(strncmp(n, "http://", 7) == 0 || strncmp(n, "https://", 8) == 0,
                 "a normal URL is http or https");
    fuzz_require(strchr(n, '?') == NULL && strchr(n, '#') == NULL,
                 "a normal URL has no query or fragment");
    path = strchr(strstr(n, "://") + 3, '/');
    fuzz_require(path != NULL, "a normal URL has a path");
    fuzz_require(strstr(path, "/./") == NULL && strstr(path, "/../") == NULL,
                 "a normal URL has no dot segments");
    again = ot_url_normalize(n, p);
    fuzz_require(again != NULL && strcmp(again, n) == 0, "normalising is idempotent");
}

/**
 * 1 when cjose, the path proofs took before ot_dpop_key.c, verifies proof with the jwk of its
 * header: every proof ot_dpop_verify accepts must pass there too.
 */
static int cjose_agrees(const char *proof, apr_pool_t *p)
{
    const char *dot = strchr(proof, '.');
    char *raw;
    apr_size_t len;
    json_t *hdr;
    cjose_jwk_t *jwk;
    cjose_jws_t *jws;
    cjose_err err;
    int ok;

    if (dot == NULL || ot_b64url_decode(&raw, &len, proof, (apr_size_t)(dot - proof), p)
        || (hdr = ot_json_parse(raw, len, NULL, p)) == NULL
        || (jwk = cjose_jwk_import_json((cjose_header_t *)json_object_get(hdr, "jwk"),
                                        &err)) == NULL) {
        return 0;
    }
    jws = cjose_jws_import(proof, strlen(proof), &err);
    ok = jws != NULL && cjose_jws_verify(jws, jwk, &err);
    cjose_jws_release(jws);
    cjose_jwk_release(jwk);
    return ok;
}

static void check_proof(const char *proof, int nonces, apr_pool_t *p)
{
    static const unsigned char key[OT_DPOP_KEY_LEN] = "fuzz nonce key, 32 bytes long!!";
    static const char *const names[] = { "ES256", "ES384", "PS256", "RS256" };
    apr_array_header_t *algs = apr_array_make(p, 4, sizeof(const char *));
    ot_dpop_ask_t ask;
    ot_dpop_proof_t out;
    const char *why = NULL;
    ot_dpop_result_t rv;
    int i;

    for (i = 0; i < 4; i++) {
        APR_ARRAY_PUSH(algs, const char *) = names[i];
    }
    memset(&ask, 0, sizeof(ask));
    ask.method = "GET";
    ask.url = FUZZ_URL;
    ask.token = "tok";
    ask.now = apr_time_from_sec(FUZZ_NOW);
    ask.max_age = 60;
    ask.skew = 30;
    ask.algs = algs;
    ask.nonce_key = nonces ? key : NULL;
    rv = ot_dpop_verify(&out, &why, &ask, proof, p);
    if (rv == OT_DPOP_OK) {
        fuzz_require(out.jkt != NULL && strlen(out.jkt) == 43, "a passed proof has a jkt");
        fuzz_require(out.jti != NULL && *out.jti, "a passed proof has a jti");
        fuzz_require(strcmp(out.htu, FUZZ_URL) == 0, "a passed proof names this URL");
        fuzz_require(out.iat >= FUZZ_NOW - 60 && out.iat <= FUZZ_NOW + 30,
                     "a passed proof is fresh");
        fuzz_require(strchr(proof, ',') == NULL, "one proof only");
        fuzz_require(cjose_agrees(proof, p), "cjose verifies what passed here");
    }
    else {
        fuzz_require(why != NULL, "a refusal says why");
        fuzz_require(strlen(proof) < 16 || strstr(why, proof) == NULL,
                     "a refusal never quotes the proof");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *proof, *url, *token;
    ot_scheme_t scheme;

    fuzz_split(data, size, &proof, &url);
    check_proof(proof, 0, p);
    check_proof(proof, 1, p);
    check_url(url, p);
    check_url(proof, p);
    if (ot_credentials_parse(url, 1, 1, &scheme, &token, p) == OT_BEARER_OK) {
        fuzz_require(scheme != OT_SCHEME_NONE && token && *token, "a parsed token has a scheme");
    }
    (void)ot_dpop_jwk_thumbprint(url, strlen(url), p);
    fuzz_end();
    return 0;
}
