/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What a verified push says: the input is a JWS header's JSON, "\n", and a payload's JSON. It
 * is judged as a back-channel logout token (ot_logout_check) and as each Keycloak admin action
 * (ot_admin_check); what they accept must be what the contract allows, and every time in it
 * must survive apr_time_from_sec(), which the revocation table applies.
 */
#include <string.h>
#include <apr_time.h>

#include "fuzz_common.h"
#include "ot_json.h"
#include "ot_logout.h"

#define ISSUER "https://issuer.example/realms/test"
#define NOW 1700000000

static int fits_apr_time(apr_int64_t sec)
{
    return sec >= 0 && sec <= APR_INT64_MAX / APR_USEC_PER_SEC;
}

static int bounded(const char *s)
{
    return s == NULL || (*s != '\0' && strlen(s) <= OT_PUSH_VALUE_MAX);
}

static void logout(const json_t *header, const json_t *payload, const ot_push_expect_t *x,
                   apr_pool_t *p)
{
    ot_logout_t lt;

    if (ot_logout_check(&lt, header, payload, x, p) != NULL) {
        return;
    }
    fuzz_require(json_object_get(payload, "nonce") == NULL, "no nonce");
    fuzz_require(lt.jti != NULL && (lt.sub != NULL || lt.sid != NULL), "jti and sub or sid");
    fuzz_require(bounded(lt.jti) && bounded(lt.sub) && bounded(lt.sid), "bounded values");
    fuzz_require(strcmp(ot_json_string(payload, "iss"), ISSUER) == 0, "iss is OfftokIssuer");
    fuzz_require(lt.iat >= x->now - x->skew && lt.iat <= x->now + x->skew, "iat within skew");
    fuzz_require(lt.exp == 0 || lt.exp > x->now, "not expired");
    fuzz_require(fits_apr_time(lt.iat) && fits_apr_time(lt.exp)
                 && fits_apr_time(ot_logout_replay_until(&lt, x)), "times fit apr_time_t");
    fuzz_require(ot_logout_replay_until(&lt, x) > x->now, "a jti is remembered past now");
}

static void admin(const json_t *payload, const ot_push_expect_t *x, apr_pool_t *p)
{
    static const char *const paths[] = { "k_push_not_before", "k_logout", "k_test_available" };
    ot_admin_t a;
    size_t i;
    int kind, j;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        kind = ot_admin_kind(paths[i]);
        fuzz_require(kind >= 0, "the admin paths are known");
        if (ot_admin_check(&a, payload, (ot_admin_kind_t)kind, x, p) != NULL) {
            continue;
        }
        fuzz_require(a.id != NULL && bounded(a.id), "an action has an id");
        fuzz_require(a.expiration >= x->now && fits_apr_time(a.expiration), "not expired");
        fuzz_require(fits_apr_time(a.not_before), "notBefore fits apr_time_t");
        fuzz_require(strcmp(ot_json_string(payload, "resource"), x->client_id) == 0,
                     "the resource is OfftokClientID");
        for (j = 0; a.sids && j < a.sids->nelts; j++) {
            fuzz_require(bounded(APR_ARRAY_IDX(a.sids, j, const char *)), "bounded session id");
        }
        fuzz_require(a.sids == NULL || a.sids->nelts <= OT_PUSH_SIDS_MAX, "bounded sessions");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *h, *b;
    json_t *header, *payload;
    ot_push_expect_t x = { ISSUER, "rs-client", NOW, 60, NULL };

    fuzz_split(data, size, &h, &b);
    ot_admin_kind(h);
    header = ot_json_parse(h, strlen(h), NULL, p);
    payload = ot_json_parse(b, strlen(b), NULL, p);
    logout(header, payload, &x, p);
    admin(payload, &x, p);
    fuzz_end();
    return 0;
}
