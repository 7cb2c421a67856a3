/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Local validation's parsing: the input is a token, '\n', a JWT payload's JSON.
 * ot_local_candidate on the token (its header and, for a typ-less header, its payload); the
 * payload through ot_answer_from_jwt, ot_local_times at three times and two leeways, and the
 * cache's digest (ot_answer_digest, ot_answer_from_jwt_digest), which must give back an answer
 * judged exactly the same. A candidate is a three-part JWT; an accepted time has an exp ahead.
 */
#include <string.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_json.h"
#include "ot_jwt_verify.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *token, *payload, *err = NULL, *why = NULL, *digest;
    apr_size_t len = 0;
    json_t *j;
    ot_answer_t *a, *b = NULL;

    fuzz_split(data, size, &token, &payload);
    if (ot_local_candidate(token, &why, p)) {
        fuzz_require(dots(token) == 2, "a candidate is a three-part JWT");
    }
    else {
        fuzz_require(why != NULL, "a token not judged here says why");
    }
    j = ot_json_parse(payload, strlen(payload), NULL, p);
    if (j != NULL && (a = ot_answer_from_jwt(j, &err, p)) != NULL) {
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
