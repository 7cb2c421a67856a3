/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What comes back from Redis (fuzz-requires: hiredis): the input is a value, a revocation
 * message or a key tombstone as read there. Raw, it must fail its MAC; then the same bytes are
 * sealed here with the test key, as a node holding OfftokRedisKey would, so that the decoders
 * behind the MAC (ot_redis_open_answer, ot_redis_rev_open, ot_redis_ktomb_open) see them too.
 * What they accept must seal again to exactly the same value.
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_common.h"
#include "ot_redis_int.h"

#define NAME "offtok:0123456789abcdef:a2:00"

/**
 * version | HMAC(k_mac, domain version [len32 name name] body) | body, as ot_redis_seal.c
 * documents it; name NULL for a revocation or a key tombstone ('K').
 */
static const char *seal(const ot_redis_t *r, char domain, const char *name, const char *body,
                        apr_size_t len, apr_size_t *out_len, apr_pool_t *p)
{
    apr_size_t nl = name ? strlen(name) : 0, hl = name ? 6 + nl : 2, n;
    unsigned char *buf = apr_palloc(p, hl + len), *out;
    unsigned int mac_len = OT_REDIS_MAC_LEN;
    unsigned char version = name ? OT_REDIS_VERSION : domain == 'K' ? OT_REDIS_KTOMB_VERSION
        : OT_REDIS_REV_VERSION;

    buf[0] = (unsigned char)domain;
    buf[1] = version;
    if (name) {
        buf[2] = (unsigned char)(nl >> 24), buf[3] = (unsigned char)(nl >> 16);
        buf[4] = (unsigned char)(nl >> 8), buf[5] = (unsigned char)nl;
        memcpy(buf + 6, name, nl);
    }
    memcpy(buf + hl, body, len);
    n = OT_REDIS_SEAL_LEN + len;
    out = apr_palloc(p, n);
    out[0] = version;
    HMAC(EVP_sha256(), r->k_mac, (int)sizeof(r->k_mac), buf, hl + len, out + 1, &mac_len);
    memcpy(out + OT_REDIS_SEAL_LEN, body, len);
    *out_len = n;
    return (const char *)out;
}

/** The seal above is still the one ot_redis_seal.c makes: else the decoders go unfuzzed. */
static void check_seal(const ot_redis_t *r, apr_pool_t *p)
{
    ot_redis_rev_t rev = { OT_REDIS_REV_SUB, "https://issuer.example", "alice", 1, 2, 0, 0 };
    ot_redis_ktomb_t k;
    char *msg;
    const char *mine;
    apr_size_t len, mine_len;

    fuzz_require(ot_redis_rev_seal(r, &rev, &msg, &len, p) == APR_SUCCESS, "ot_redis_rev_seal");
    mine = seal(r, 'R', NULL, msg + OT_REDIS_SEAL_LEN, len - OT_REDIS_SEAL_LEN, &mine_len, p);
    fuzz_require(mine_len == len && memcmp(mine, msg, len) == 0,
                 "fuzz_redis.c seals as ot_redis_seal.c does (update seal() to its format)");
    memset(&k, 0x11, sizeof(k));
    k.fetched = 1;
    fuzz_require(ot_redis_ktomb_seal(r, &k, &msg, &len, p) == APR_SUCCESS, "ot_redis_ktomb_seal");
    mine = seal(r, 'K', NULL, msg + OT_REDIS_SEAL_LEN, len - OT_REDIS_SEAL_LEN, &mine_len, p);
    fuzz_require(mine_len == len && memcmp(mine, msg, len) == 0,
                 "fuzz_redis.c seals key tombstones as ot_redis_seal.c does");
}

static ot_redis_t *redis(void)
{
    static ot_redis_t *r;
    static apr_pool_t *p;
    ot_redis_conf_t conf;

    if (r == NULL) {
        memset(&conf, 0, sizeof(conf));
        conf.host = "127.0.0.1";
        conf.port = 6379;
        conf.key = "fuzz-key-of-at-least-16-bytes";
        conf.key_len = strlen(conf.key);
        apr_pool_create(&p, NULL);
        fuzz_require(ot_redis_create(&r, &conf, 1, NULL, p) == APR_SUCCESS, "ot_redis_create");
        check_seal(r, p);
    }
    return r;
}

static void revocation(const ot_redis_t *r, const char *body, apr_size_t len, apr_pool_t *p)
{
    ot_redis_rev_t rev;
    apr_size_t n, again_len;
    const char *msg = seal(r, 'R', NULL, body, len, &n, p);
    char *again;

    if (ot_redis_rev_open(r, msg, n, &rev, p) != APR_SUCCESS) {
        return;
    }
    fuzz_require(rev.kind >= OT_REDIS_REV_SUB && rev.kind <= OT_REDIS_REV_NOT_BEFORE, "kind");
    fuzz_require(rev.iss != NULL && strlen(rev.iss) <= OT_REDIS_VALUE_MAX
                 && rev.value != NULL && strlen(rev.value) <= OT_REDIS_VALUE_MAX, "strings");
    fuzz_require(rev.at >= 0 && rev.until >= 0 && rev.not_before >= 0 && rev.order >= 0,
                 "no negative time");
    fuzz_require(ot_redis_rev_seal(r, &rev, &again, &again_len, p) == APR_SUCCESS
                 && again_len == n && memcmp(again, msg, n) == 0, "seals to the same message");
}

static void key_tombstone(const ot_redis_t *r, const char *body, apr_size_t len, apr_pool_t *p)
{
    ot_redis_ktomb_t k;
    apr_size_t n, again_len;
    const char *msg = seal(r, 'K', NULL, body, len, &n, p);
    char *again;

    if (ot_redis_ktomb_open(r, msg, n, &k, p) != APR_SUCCESS) {
        return;
    }
    fuzz_require(n == OT_REDIS_KTOMB_LEN && k.fetched >= 0, "fixed length, no negative time");
    fuzz_require(ot_redis_ktomb_seal(r, &k, &again, &again_len, p) == APR_SUCCESS
                 && again_len == n && memcmp(again, msg, n) == 0, "seals to the same message");
    fuzz_require(ot_redis_rev_open(r, msg, n, &(ot_redis_rev_t){ 0 }, p) == APR_EINVAL,
                 "a key tombstone is no revocation");
}

static void answer(const ot_redis_t *r, const char *entry, apr_size_t len, apr_pool_t *p)
{
    ot_cache_entry_t e, direct;
    apr_size_t n, again_len;
    const char *val = seal(r, 'A', NAME, entry, len, &n, p);
    char *again;
    apr_status_t rv = ot_redis_open_answer(r, NAME, val, n, &e, p);

    fuzz_require((rv == APR_SUCCESS) == (ot_cache_entry_decode(&direct, entry, len, p)
                                         == APR_SUCCESS), "behind the MAC, the cache format");
    fuzz_require(rv != APR_SUCCESS || ot_redis_open_answer(r, NAME "0", val, n, &e, p)
                 == APR_EINVAL, "a value moved under another name fails its MAC");
    if (rv == APR_SUCCESS) {
        fuzz_require(ot_redis_seal_answer(r, NAME, &e, &again, &again_len, p) == APR_SUCCESS
                     && again_len == n && memcmp(again, val, n) == 0, "seals to the same value");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const ot_redis_t *r = redis();
    const char *in = fuzz_bytes(data, size);
    ot_cache_entry_t e;
    ot_redis_rev_t rev;
    ot_redis_ktomb_t k;

    fuzz_require(ot_redis_open_answer(r, NAME, in, size, &e, p) == APR_EINVAL,
                 "no answer without the key");
    fuzz_require(ot_redis_rev_open(r, in, size, &rev, p) == APR_EINVAL,
                 "no revocation without the key");
    fuzz_require(ot_redis_ktomb_open(r, in, size, &k, p) == APR_EINVAL,
                 "no key tombstone without the key");
    revocation(r, in, size, p);
    key_tombstone(r, in, size, p);
    answer(r, in, size, p);
    fuzz_end();
    return 0;
}
