/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What goes into Redis, and how it is checked when it comes back.
 *
 * Keys: k_name = HMAC(OfftokRedisKey, "offtok-redis-v1 name"), k_mac = HMAC(OfftokRedisKey,
 * "offtok-redis-v1 mac"); the key id in every name is the first 8 bytes (hex) of
 * HMAC(OfftokRedisKey, "offtok-redis-v1 id").
 *
 *   answer name   offtok:<kid>:a2:<hex HMAC(k_name, cache key)>
 *   answer value  version (1) | HMAC(k_mac, "A" version len32(name) name entry) | entry
 *                 entry: ot_cache_entry_encode's versioned, length-checked form
 *   revocation    version (2) | HMAC(k_mac, "R" version body) | body
 *                 body: kind u8 | at i64 | until i64 | not_before i64 | order i64
 *                       | len16 iss | iss | len16 value | value
 *                 (integers big-endian, times in µs, not_before and order in seconds; a
 *                 script in Redis compares order and not_before in place: OT_REDIS_REV_ORDER)
 *   key tombstone 'K' | HMAC(k_mac, "K" 'K' body) | body          (never stored, only published)
 *                 body: fetched i64 | nonce (16 random bytes) | cache key XOR HMAC(k_mask, nonce)
 *                 (k_mask = HMAC(OfftokRedisKey, "offtok-redis-v1 mask"): the channel shows no
 *                 more of a cache key than an answer's name does)
 *
 * The MAC is compared in constant time before a single byte of the rest is interpreted.
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ot_redis_int.h"

#define LABEL_NAME "offtok-redis-v1 name"
#define LABEL_MAC "offtok-redis-v1 mac"
#define LABEL_ID "offtok-redis-v1 id"
#define LABEL_MASK "offtok-redis-v1 mask"
#define DOMAIN_ANSWER 'A'
#define DOMAIN_REVOKE 'R'
#define DOMAIN_KTOMB 'K'
/** kind, at, until, not_before, order, and the two lengths. */
#define REV_FIXED (1 + 8 + 8 + 8 + 8 + 2 + 2)
/** Where the strings start in the body. */
#define REV_STRINGS 33

static void hmac(unsigned char out[OT_SHA256_LEN], const void *key, apr_size_t key_len,
                 const void *data, apr_size_t len)
{
    unsigned int n = OT_SHA256_LEN;

    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

void ot_redis_derive_keys(ot_redis_t *r)
{
    unsigned char id[OT_SHA256_LEN];

    hmac(r->k_name, r->conf.key, r->conf.key_len, LABEL_NAME, strlen(LABEL_NAME));
    hmac(r->k_mac, r->conf.key, r->conf.key_len, LABEL_MAC, strlen(LABEL_MAC));
    hmac(r->k_mask, r->conf.key, r->conf.key_len, LABEL_MASK, strlen(LABEL_MASK));
    hmac(id, r->conf.key, r->conf.key_len, LABEL_ID, strlen(LABEL_ID));
    ot_hex(r->kid, id, 8);
    OPENSSL_cleanse(id, sizeof(id));
}

const char *ot_redis_answer_name(const ot_redis_t *r, const unsigned char key[OT_KEY_LEN],
                                 apr_pool_t *p)
{
    unsigned char d[OT_SHA256_LEN];
    char hex[2 * OT_SHA256_LEN + 1];

    hmac(d, r->k_name, sizeof(r->k_name), key, OT_KEY_LEN);
    ot_hex(hex, d, sizeof(d));
    return apr_pstrcat(p, "offtok:", r->kid, ":a2:", hex, NULL);
}

/* ---- answers ------------------------------------------------------------------------------- */

/** MAC of an answer value: over the domain, version, name (length-prefixed) and entry. */
static void answer_mac(unsigned char out[OT_SHA256_LEN], const ot_redis_t *r, unsigned char ver,
                       const char *name, const char *entry, apr_size_t len, apr_pool_t *p)
{
    apr_size_t nl = strlen(name), n = 2 + 4 + nl + len;
    unsigned char *buf = apr_palloc(p, n);

    buf[0] = DOMAIN_ANSWER;
    buf[1] = ver;
    ot_be_put(buf + 2, nl, 4);
    memcpy(buf + 6, name, nl);
    memcpy(buf + 6 + nl, entry, len);
    hmac(out, r->k_mac, sizeof(r->k_mac), buf, n);
}

apr_status_t ot_redis_seal_answer(const ot_redis_t *r, const char *name,
                                  const ot_cache_entry_t *e, char **val, apr_size_t *len,
                                  apr_pool_t *p)
{
    char *entry, *out;
    apr_size_t elen;
    apr_status_t rv = ot_cache_entry_encode(e, &entry, &elen, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    out = apr_palloc(p, OT_REDIS_SEAL_LEN + elen);
    out[0] = OT_REDIS_VERSION;
    answer_mac((unsigned char *)out + 1, r, OT_REDIS_VERSION, name, entry, elen, p);
    memcpy(out + OT_REDIS_SEAL_LEN, entry, elen);
    *val = out;
    *len = OT_REDIS_SEAL_LEN + elen;
    return APR_SUCCESS;
}

apr_status_t ot_redis_open_answer(const ot_redis_t *r, const char *name, const char *val,
                                  apr_size_t len, ot_cache_entry_t *e, apr_pool_t *p)
{
    unsigned char mac[OT_SHA256_LEN];

    if (val == NULL || len <= OT_REDIS_SEAL_LEN || val[0] != OT_REDIS_VERSION) {
        return APR_EINVAL;
    }
    answer_mac(mac, r, OT_REDIS_VERSION, name, val + OT_REDIS_SEAL_LEN,
               len - OT_REDIS_SEAL_LEN, p);
    if (CRYPTO_memcmp(mac, val + 1, OT_REDIS_MAC_LEN) != 0) {
        return APR_EINVAL;
    }
    return ot_cache_entry_decode(e, val + OT_REDIS_SEAL_LEN, len - OT_REDIS_SEAL_LEN, p);
}

/* ---- revocations --------------------------------------------------------------------------- */

static void rev_mac(unsigned char out[OT_SHA256_LEN], const ot_redis_t *r, unsigned char ver,
                    const char *body, apr_size_t len, apr_pool_t *p)
{
    unsigned char *buf = apr_palloc(p, 2 + len);

    buf[0] = DOMAIN_REVOKE;
    buf[1] = ver;
    memcpy(buf + 2, body, len);
    hmac(out, r->k_mac, sizeof(r->k_mac), buf, 2 + len);
}

static unsigned char *put_str(unsigned char *b, const char *s, apr_size_t n)
{
    ot_be_put(b, n, 2);
    memcpy(b + 2, s, n);
    return b + 2 + n;
}

apr_status_t ot_redis_rev_seal(const ot_redis_t *r, const ot_redis_rev_t *rev, char **msg,
                               apr_size_t *len, apr_pool_t *p)
{
    const char *iss = rev->iss ? rev->iss : "";
    apr_size_t il = strlen(iss), vl = rev->value ? strlen(rev->value) : 0, n;
    unsigned char *out, *b;

    if (rev->kind < OT_REDIS_REV_SUB || rev->kind > OT_REDIS_REV_NOT_BEFORE
        || il > OT_REDIS_VALUE_MAX || vl > OT_REDIS_VALUE_MAX || rev->at < 0 || rev->until < 0
        || rev->not_before < 0 || rev->order < 0) {
        return APR_EINVAL;
    }
    n = REV_FIXED + il + vl;
    out = apr_palloc(p, OT_REDIS_SEAL_LEN + n);
    b = out + OT_REDIS_SEAL_LEN;
    b[0] = (unsigned char)rev->kind;
    ot_be_put(b + 1, (apr_uint64_t)rev->at, 8);
    ot_be_put(b + 9, (apr_uint64_t)rev->until, 8);
    ot_be_put(b + 17, (apr_uint64_t)rev->not_before, 8);
    ot_be_put(b + 25, (apr_uint64_t)rev->order, 8);
    put_str(put_str(b + REV_STRINGS, iss, il), rev->value ? rev->value : "", vl);
    out[0] = OT_REDIS_REV_VERSION;
    rev_mac(out + 1, r, OT_REDIS_REV_VERSION, (const char *)b, n, p);
    *msg = (char *)out;
    *len = OT_REDIS_SEAL_LEN + n;
    return APR_SUCCESS;
}

/** Read a length-prefixed string at *off of body[0..n); NULL when it does not fit. */
static const char *get_str(const unsigned char *body, apr_size_t n, apr_size_t *off,
                           apr_pool_t *p)
{
    apr_size_t l;

    if (n - *off < 2) {
        return NULL;
    }
    l = (apr_size_t)ot_be_get(body + *off, 2);
    if (l > OT_REDIS_VALUE_MAX || n - *off - 2 < l || memchr(body + *off + 2, 0, l)) {
        return NULL;
    }
    *off += 2 + l;
    return apr_pstrmemdup(p, (const char *)body + *off - l, l);
}

apr_status_t ot_redis_rev_open(const ot_redis_t *r, const char *msg, apr_size_t len,
                               ot_redis_rev_t *rev, apr_pool_t *p)
{
    const unsigned char *b = (const unsigned char *)msg + OT_REDIS_SEAL_LEN;
    unsigned char mac[OT_SHA256_LEN];
    apr_size_t n, off = REV_STRINGS;
    ot_redis_rev_t out;

    if (msg == NULL || len < OT_REDIS_SEAL_LEN + REV_FIXED || len > OT_REDIS_REV_MAX
        || msg[0] != OT_REDIS_REV_VERSION) {
        return APR_EINVAL;
    }
    n = len - OT_REDIS_SEAL_LEN;
    rev_mac(mac, r, OT_REDIS_REV_VERSION, (const char *)b, n, p);
    if (CRYPTO_memcmp(mac, msg + 1, OT_REDIS_MAC_LEN) != 0) {
        return APR_EINVAL;
    }
    out.kind = (ot_redis_rev_kind_t)b[0];
    out.at = (apr_time_t)ot_be_get(b + 1, 8);
    out.until = (apr_time_t)ot_be_get(b + 9, 8);
    out.not_before = (apr_int64_t)ot_be_get(b + 17, 8);
    out.order = (apr_int64_t)ot_be_get(b + 25, 8);
    out.iss = get_str(b, n, &off, p);
    out.value = out.iss ? get_str(b, n, &off, p) : NULL;
    if (out.value == NULL || off != n || out.kind < OT_REDIS_REV_SUB
        || out.kind > OT_REDIS_REV_NOT_BEFORE || out.at < 0 || out.until < 0
        || out.not_before < 0 || out.order < 0
        || (out.kind != OT_REDIS_REV_NOT_BEFORE && *out.value == '\0')) {
        return APR_EINVAL;
    }
    *rev = out;
    return APR_SUCCESS;
}

/* ---- key tombstones ------------------------------------------------------------------------ */

/** MAC of a key tombstone's body (fixed length: no length prefix needed). */
static void ktomb_mac(unsigned char out[OT_SHA256_LEN], const ot_redis_t *r,
                      const unsigned char *body)
{
    unsigned char buf[2 + OT_REDIS_KTOMB_LEN - OT_REDIS_SEAL_LEN];

    buf[0] = DOMAIN_KTOMB;
    buf[1] = OT_REDIS_KTOMB_VERSION;
    memcpy(buf + 2, body, OT_REDIS_KTOMB_LEN - OT_REDIS_SEAL_LEN);
    hmac(out, r->k_mac, sizeof(r->k_mac), buf, sizeof(buf));
}

/** out = key XOR HMAC(k_mask, nonce): its own inverse. */
static void ktomb_mask(unsigned char out[OT_KEY_LEN], const ot_redis_t *r,
                       const unsigned char *nonce, const unsigned char *key)
{
    unsigned char pad[OT_SHA256_LEN];
    int i;

    _Static_assert(OT_KEY_LEN <= OT_SHA256_LEN, "one HMAC masks the whole key");
    hmac(pad, r->k_mask, sizeof(r->k_mask), nonce, OT_REDIS_KTOMB_NONCE);
    for (i = 0; i < OT_KEY_LEN; i++) {
        out[i] = key[i] ^ pad[i];
    }
    OPENSSL_cleanse(pad, sizeof(pad));
}

apr_status_t ot_redis_ktomb_seal(const ot_redis_t *r, const ot_redis_ktomb_t *k, char **msg,
                                 apr_size_t *len, apr_pool_t *p)
{
    unsigned char *out, *b;

    if (k->fetched < 0) {
        return APR_EINVAL;
    }
    out = apr_palloc(p, OT_REDIS_KTOMB_LEN);
    b = out + OT_REDIS_SEAL_LEN;
    ot_be_put(b, (apr_uint64_t)k->fetched, 8);
    memcpy(b + 8, k->nonce, OT_REDIS_KTOMB_NONCE);
    ktomb_mask(b + 8 + OT_REDIS_KTOMB_NONCE, r, k->nonce, k->key);
    out[0] = OT_REDIS_KTOMB_VERSION;
    ktomb_mac(out + 1, r, b);
    *msg = (char *)out;
    *len = OT_REDIS_KTOMB_LEN;
    return APR_SUCCESS;
}

apr_status_t ot_redis_ktomb_open(const ot_redis_t *r, const char *msg, apr_size_t len,
                                 ot_redis_ktomb_t *k, apr_pool_t *p)
{
    const unsigned char *b = (const unsigned char *)msg + OT_REDIS_SEAL_LEN;
    unsigned char mac[OT_SHA256_LEN];
    apr_uint64_t fetched;

    (void)p;
    if (msg == NULL || len != OT_REDIS_KTOMB_LEN
        || (unsigned char)msg[0] != OT_REDIS_KTOMB_VERSION) {
        return APR_EINVAL;
    }
    ktomb_mac(mac, r, b);
    if (CRYPTO_memcmp(mac, msg + 1, OT_REDIS_MAC_LEN) != 0) {
        return APR_EINVAL;
    }
    fetched = ot_be_get(b, 8);
    if (fetched > (apr_uint64_t)APR_INT64_MAX) {
        return APR_EINVAL;
    }
    k->fetched = (apr_time_t)fetched;
    memcpy(k->nonce, b + 8, OT_REDIS_KTOMB_NONCE);
    ktomb_mask(k->key, r, k->nonce, b + 8 + OT_REDIS_KTOMB_NONCE);
    return APR_SUCCESS;
}
