/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Local validation's parsing: the input is a token, '\n', a JWT payload's JSON.
 * ot_local_candidate on the token (its header and, for a typ-less header, its payload); the
 * payload through ot_answer_from_jwt, ot_local_times at three times and two leeways, and the
 * cache's digest (ot_answer_digest, ot_answer_from_jwt_digest), which must give back an answer
 * judged exactly the same. A candidate is a three-part JWT; an accepted time has an exp ahead.
 * ot_answer_from_jwt_text (the plain reader) must give the answer ot_answer_from_jwt gives.
 * The token's header read once with the scanner (ot_jose_header_read) must read as jansson's.
 * The payload's typ claim read from the answer (ot_local_access_claim, a first sight's reading
 * of a verified payload) must say what the peek of ot_local_candidate says of the same payload
 * under a typ-less header, whenever the answer reads it.
 */
#include <string.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_json.h"
#include "ot_jose.h"
#include "ot_jwt_verify.h"
#include "ot_util.h"

#define NOW 1796015000

static int dots(const char *s)
{
    int n = 0;

    for (; *s; s++) {
        n += *s == '.';
    }
    return n;
}

static void times(const ot_answer_t *a, const ot_answer_t *b)
{
    static const apr_int64_t nows[] = { 1, NOW, 253402300799LL };
    ot_local_fail_t fa, fb;
    apr_size_t i;
    int skew;

    for (i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        for (skew = 0; skew <= 30; skew += 30) {
            ot_local_verdict_t va = ot_local_times(a, nows[i], skew, &fa);
            fuzz_require(va != OT_LOCAL_ACCEPT || (a->has_exp && a->exp > nows[i]),
                         "an accepted token has an exp ahead");
            if (b != NULL) {
                fuzz_require(ot_local_times(b, nows[i], skew, &fb) == va
                             && (va == OT_LOCAL_ACCEPT || fa == fb),
                             "the cached answer is judged the same");
            }
        }
    }
}

/** a and t (from the text) are the same answer: both NULL, or the same claims and fields. */
static void same_answer(const ot_answer_t *a, const ot_answer_t *t, apr_pool_t *p)
{
    apr_size_t la = 0, lt = 0;
    const char *da, *dt;

    fuzz_require((a == NULL) == (t == NULL), "the plain reader reads what jansson reads");
    if (a == NULL) {
        return;
    }
    da = ot_answer_digest(a, &la, p);
    dt = ot_answer_digest(t, &lt, p);
    fuzz_require((da == NULL) == (dt == NULL) && la == lt && (da == NULL || !memcmp(da, dt, la)),
                 "the plain reader gives the same claims");
    fuzz_require(a->exp == t->exp && a->nbf == t->nbf && a->iat == t->iat
                 && a->has_exp == t->has_exp && a->has_nbf == t->has_nbf
                 && a->kind == t->kind && a->cnf_unknown == t->cnf_unknown
                 && a->has_cnf == t->has_cnf && a->typ_dpop == t->typ_dpop
                 && (a->iss == NULL) == (t->iss == NULL) && (a->sub == NULL) == (t->sub == NULL)
                 && (a->sid == NULL) == (t->sid == NULL)
                 && (a->cnf_jkt == NULL) == (t->cnf_jkt == NULL),
                 "the plain reader gives the same fields");
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

/** The header as read once with the scanner (ot_jose_header_read) is what jansson reads. */
static void header_as_jansson(const char *token, apr_pool_t *p)
{
    const char *dot = strchr(token, '.');
    apr_size_t len = dot ? (apr_size_t)(dot - token) : strlen(token), n;
    ot_jose_header_t h;
    json_t *j = NULL;
    char *raw;

    ot_jose_header_read(&h, token, len, p);
    if (len > 0 && ot_b64url_decode(&raw, &n, token, len, p) == APR_SUCCESS) {
        j = ot_json_parse(raw, n, NULL, p);
    }
    fuzz_require(h.object == json_is_object(j), "the header is an object where jansson says");
    if (!h.object) {
        return;
    }
    fuzz_require(same_str(h.alg, ot_json_string(j, "alg"))
                 && same_str(h.kid, ot_json_string(j, "kid"))
                 && same_str(h.typ, ot_json_string(j, "typ"))
                 && h.bad_kid == (json_object_get(j, "kid") && !ot_json_string(j, "kid"))
                 && h.bad_typ == (json_object_get(j, "typ") && !ot_json_string(j, "typ"))
                 && h.crit == (json_object_get(j, "crit") != NULL),
                 "the header reads as jansson reads it");
}

/** base64url of s, unpadded. */
static char *b64url(const char *s, apr_pool_t *p)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n / 3 * 4 + 5);

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = abc[u[i] >> 2];
        out[o++] = abc[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
        out[o++] = abc[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
        out[o++] = abc[u[i + 2] & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[u[i] >> 2];
        out[o++] = abc[(u[i] & 3) << 4];
    }
    else if (n - i == 2) {
        out[o++] = abc[u[i] >> 2];
        out[o++] = abc[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
        out[o++] = abc[(u[i + 1] & 15) << 2];
    }
    out[o] = '\0';
    return out;
}

/** The answer's typ claim and the peek agree on payload, when the answer reads it. */
static void access_claim_as_peek(const char *payload, apr_pool_t *p)
{
    const char *err = NULL, *why = NULL;
    ot_answer_t *t = ot_answer_from_jwt_text(payload, strlen(payload), &err, p);
    /* {"alg":"RS256"}: the header leaves the kind to the payload's typ claim */
    const char *token = apr_pstrcat(p, "eyJhbGciOiJSUzI1NiJ9.", b64url(payload, p), ".c2ln",
                                    NULL);

    if (t != NULL) {
        fuzz_require(ot_local_access_claim(t) == ot_local_candidate(token, &why, p),
                     "the verified payload's typ claim says what the peek says");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *token, *payload, *err = NULL, *why = NULL, *digest;
    apr_size_t len = 0;
    json_t *j;
    ot_answer_t *a, *b = NULL;

    fuzz_split(data, size, &token, &payload);
    header_as_jansson(token, p);
    if (ot_local_candidate(token, &why, p)) {
        fuzz_require(dots(token) == 2, "a candidate is a three-part JWT");
    }
    else {
        fuzz_require(why != NULL, "a token not judged here says why");
    }
    access_claim_as_peek(payload, p);
    j = ot_json_parse(payload, strlen(payload), NULL, p);
    a = j != NULL ? ot_answer_from_jwt(j, &err, p) : NULL;
    same_answer(a, ot_answer_from_jwt_text(payload, strlen(payload), &err, p), p);
    if (a != NULL) {
        fuzz_require(a->active && a->kind == OT_KIND_ACCESS, "a verified JWT is an access token");
        digest = ot_answer_digest(a, &len, p);
        if (digest != NULL) {
            b = ot_answer_from_jwt_digest(digest, len, p);
            fuzz_require(b != NULL && b->nclaims == a->nclaims && b->exp == a->exp
                         && b->iat == a->iat && b->nbf == a->nbf, "the digest keeps the claims");
        }
        times(a, b);
    }
    fuzz_end();
    return 0;
}
