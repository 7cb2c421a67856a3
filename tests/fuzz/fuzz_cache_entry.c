/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A cache entry as read back from another tier (Redis) or the shared segment: whoever can
 * write there controls the bytes. ot_cache_entry_decode must refuse what is malformed, and what
 * it accepts must be sound and encode to exactly the same bytes again.
 */
#include <string.h>

#include "fuzz_common.h"
#include "ot_cache.h"

/** Absent, or a string shorter than the input it was decoded from. */
static int sound_string(const char *s, apr_size_t len)
{
    return s == NULL || strlen(s) < len;
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
    fuzz_require(e.claims == NULL ? e.claims_len == 0 : strlen(e.claims) == e.claims_len,
                 "claims_len is the claims' length");
    fuzz_require(e.fetched >= 0 && e.drop_after >= 0 && e.exp >= 0 && e.iat >= 0,
                 "no negative time");
    fuzz_require((e.active == 0 || e.active == 1) && (e.offline == 0 || e.offline == 1),
                 "flags are 0 or 1");
    fuzz_require(ot_cache_entry_encode(&e, &buf, &len, p) == APR_SUCCESS, "it encodes again");
    fuzz_require(len == size && memcmp(buf, in, size) == 0, "to the same bytes");
    fuzz_end();
    return 0;
}
