/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A cache entry as read back from another tier (Redis) or the shared segment: whoever can
 * write there controls the bytes. ot_cache_entry_decode must refuse what is malformed, and what
 * it accepts must be sound and encode to exactly the same bytes again. The claims of a positive
 * entry are an answer digest (ot_answer_from_digest): what it accepts must carry no control
 * character to the back end, and be judged and turned into JSON without harm.
 */
#include <string.h>

#include "fuzz_common.h"
#include "ot_answer.h"
#include "ot_entry.h"
#include "ot_judge.h"
#include "ot_cache.h"

/** Absent, or a string shorter than the input it was decoded from. */
static int sound_string(const char *s, apr_size_t len)
{
    return s == NULL || strlen(s) < len;
}

/** A digest accepted is a positive answer whose texts carry no control character. */
static void check_digest(const char *buf, apr_size_t len, apr_pool_t *p)
{
    ot_answer_t *a = ot_answer_from_digest(buf, len, p);
    ot_policy_t pol = { "https://issuer.example", "rs-client", 0, NULL, 0 };
    const char *t;
    int i;

    if (a == NULL) {
        return;
    }
    fuzz_require(a->active, "a digest is of a positive answer");
    for (i = 0; i < a->nclaims; i++) {
        for (t = a->claims[i].text; *t; t++) {
            fuzz_require((unsigned char)*t >= 0x20 && *t != 0x7f, "no control character");
        }
        fuzz_require(strlen(a->claims[i].value) == a->claims[i].value_len, "value_len");
    }
    (void)ot_answer_judge(a, &pol, 1700000000);
    fuzz_require(json_is_object(ot_answer_json(a)), "it becomes a JSON object");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *in = fuzz_bytes(data, size);
    ot_cache_entry_t e;
    char *buf;
    apr_size_t len;

    memset(&e, 0xa5, sizeof(e));
    if (ot_cache_entry_decode(&e, in, size, p) != APR_SUCCESS) {
        fuzz_end();
        return 0;
    }
    fuzz_require(sound_string(e.iss, size) && sound_string(e.sub, size)
                 && sound_string(e.sid, size), "strings inside the input");
    fuzz_require(e.claims == NULL ? e.claims_len == 0 : e.claims_len < size,
                 "the claims are inside the input");
    fuzz_require(e.fetched >= 0 && e.drop_after >= 0 && e.exp >= 0 && e.iat >= 0,
                 "no negative time");
    fuzz_require((e.active == 0 || e.active == 1) && (e.offline == 0 || e.offline == 1),
                 "flags are 0 or 1");
    fuzz_require(ot_cache_entry_encode(&e, &buf, &len, p) == APR_SUCCESS, "it encodes again");
    fuzz_require(len == size && memcmp(buf, in, size) == 0, "to the same bytes");
    if (e.claims != NULL) {
        check_digest(e.claims, e.claims_len, p);
    }
    fuzz_end();
    return 0;
}
