/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A DPoP proof as a client sends it in the DPoP header, "\n", and a URL: the proof goes through
 * ot_dpop_verify (for a GET of https://rs.example/api with token "tok" at a fixed time, with and
 * without nonces), the URL through ot_url_normalize, and both through ot_credentials_parse as
 * an Authorization header. The seeds (tests/fuzz/corpus/dpop) are signed for that request with
 * keys whose private halves were thrown away. A proof that passes must also pass cjose's
 * verification with its own jwk (the key and signature are checked here with OpenSSL directly).
 * Every proof is judged the same (verdict, reason, result) when its header and payload are read
 * with ot_jscan and with jansson alone (ot_dpop_read.c); its decoded parts, and the URL half
 * taken as JSON, are read by both readers, which must agree wherever the scanner is sure.
 */
#include <string.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <cjose/cjose.h>

#include "fuzz_common.h"
#include "ot_dpop.h"
#include "ot_dpop_read.h"
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

/** Both readers on one JSON text, as a header and as a payload. */
static void readers_agree(const char *json, apr_size_t len, apr_pool_t *p)
{
    ot_dpop_head_t hs, hj, ha;
    ot_dpop_claims_t cs, cj, ca;
    int s, j;

    s = ot_dpop_read_head(&hs, json, len, OT_DPOP_READ_SCAN, p);
    j = ot_dpop_read_head(&hj, json, len, OT_DPOP_READ_JANSSON, p);
    fuzz_require(s == -1 || s == j, "the scanner takes a header as JSON when jansson does");
    fuzz_require(s != 1 || ot_dpop_head_eq(&hs, &hj), "both readers read the same header");
    fuzz_require(ot_dpop_read_head(&ha, json, len, OT_DPOP_READ_ANY, p) == j
                 && (!j || ot_dpop_head_eq(&ha, &hj)), "the request path reads as jansson");
    s = ot_dpop_read_claims(&cs, json, len, OT_DPOP_READ_SCAN, p);
    j = ot_dpop_read_claims(&cj, json, len, OT_DPOP_READ_JANSSON, p);
    fuzz_require(s == -1 || s == j, "the scanner takes a payload as JSON when jansson does");
    fuzz_require(s != 1 || ot_dpop_claims_eq(&cs, &cj), "both readers read the same payload");
    fuzz_require(ot_dpop_read_claims(&ca, json, len, OT_DPOP_READ_ANY, p) == j
                 && (!j || ot_dpop_claims_eq(&ca, &cj)), "the request path reads as jansson");
}

/** The proof's first two parts, decoded from base64url, through both readers. */
static void parts_agree(const char *proof, apr_pool_t *p)
{
    const char *dot = strchr(proof, '.'), *end;
    char *raw;
    apr_size_t len;

    if (dot == NULL) {
        return;
    }
    if (ot_b64url_decode(&raw, &len, proof, (apr_size_t)(dot - proof), p) == APR_SUCCESS) {
        readers_agree(raw, len, p);
    }
    end = strchr(dot + 1, '.');
    end = end ? end : dot + 1 + strlen(dot + 1);
    if (ot_b64url_decode(&raw, &len, dot + 1, (apr_size_t)(end - dot - 1), p) == APR_SUCCESS) {
        readers_agree(raw, len, p);
    }
}

static int same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_proof(const char *proof, int nonces, apr_pool_t *p)
{
    static const unsigned char key[OT_DPOP_KEY_LEN] = "fuzz nonce key, 32 bytes long!!";
    static const char *const names[] = { "ES256", "ES384", "PS256", "RS256" };
    apr_array_header_t *algs = apr_array_make(p, 4, sizeof(const char *));
    ot_dpop_ask_t ask;
    ot_dpop_proof_t out, old, again;
    const char *why = NULL, *why_old = NULL;
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
    ot_dpop_read_use(OT_DPOP_READ_JANSSON);
    fuzz_require(ot_dpop_verify(&old, &why_old, &ask, proof, p) == rv,
                 "the scanner and jansson give a proof the same verdict");
    ot_dpop_read_use(OT_DPOP_READ_ANY);
    fuzz_require(rv == OT_DPOP_OK ? same(out.jkt, old.jkt) && same(out.jti, old.jti)
                 && same(out.htu, old.htu) && out.iat == old.iat
                 && out.nonce_old == old.nonce_old : same(why, why_old),
                 "the scanner and jansson give a proof the same result or reason");
    if (rv == OT_DPOP_OK) {
        fuzz_require(out.jkt != NULL && strlen(out.jkt) == 43, "a passed proof has a jkt");
        fuzz_require(out.jti != NULL && *out.jti, "a passed proof has a jti");
        fuzz_require(strcmp(out.htu, FUZZ_URL) == 0, "a passed proof names this URL");
        fuzz_require(out.iat >= FUZZ_NOW - 60 && out.iat <= FUZZ_NOW + 30,
                     "a passed proof is fresh");
        fuzz_require(strchr(proof, ',') == NULL, "one proof only");
        fuzz_require(cjose_agrees(proof, p), "cjose verifies what passed here");
        /* Accepted, its key is kept: the same proof passes again with the kept key. */
        ot_dpop_proof_accepted(&out);
        fuzz_require(ot_dpop_verify(&again, &why, &ask, proof, p) == OT_DPOP_OK
                     && again.key_new == NULL && same(again.jkt, out.jkt),
                     "an accepted proof's key is kept and verifies the proof again");
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
    parts_agree(proof, p);
    readers_agree(url, strlen(url), p);
    check_url(url, p);
    check_url(proof, p);
    if (ot_credentials_parse(url, 1, 1, &scheme, &token, p) == OT_BEARER_OK) {
        fuzz_require(scheme != OT_SCHEME_NONE && token && *token, "a parsed token has a scheme");
    }
    (void)ot_dpop_jwk_thumbprint(url, strlen(url), p);
    fuzz_end();
    return 0;
}
