/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_rate.c
 * @brief Token buckets for issuer calls in the shared segment (see ot_rate.h).
 *
 *  +------+--------------------------------------------------------------------------------+
 *  | lock | server bucket | overflow bucket | overflow count | secret seed of the slot hash  |
 *  | line | (one line)                                                                       |
 *  +------+--------------------------------------------------------------------------------+
 *  | slots[4096] {key[16], tokens (double), stamp (apr_time_t)}: open addressing, an address |
 *  | probes 8 slots from SHA-256(seed, key); a slot whose bucket is full again is free       |
 *  +------------------------------------------------------------------------------------------+
 *
 * A bucket holds `tokens` as of `stamp`; its level at a later time adds rate tokens a second, up
 * to burst. A stamp of 0 is a full bucket. The clock going back adds nothing, and a bucket found
 * stamped in the future is restamped now, so that it refills from now on rather than staying as
 * it is until the clock has caught up again (the glue gives a monotonic clock anyway).
 *
 * The slot hash is keyed with a random seed made with the area: with a hash anyone can compute,
 * a client could pick eight addresses (IPv6 /64s are cheap) whose slots cover another address's
 * eight, keep them refilling, and so push that address into the overflow bucket it drains too.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/sha.h>
#include "ot_rate.h"
#include "ot_lock.h"

typedef struct {
    double tokens;
    apr_time_t stamp;
} bucket_t;

typedef struct {
    unsigned char key[OT_RATE_KEY_LEN];   /**< all zero: never used */
    bucket_t b;
} slot_t;

typedef struct {
    ot_lock_t lock;
    struct {
        bucket_t server;
        bucket_t overflow;
        apr_uint64_t overflows;
        unsigned char seed[16];          /**< random, made with the area; keys the slot hash */
    } OT_LINE_ALIGNED h;
    slot_t slots[OT_RATE_SLOTS];
} area_t;

/** Key families (the first byte); never 0, so an all-zero key is an unused slot. */
enum { FAM_TEXT = 1, FAM_V4 = 4, FAM_V6 = 6 };

apr_size_t ot_rate_area_size(void)
{
    return (sizeof(area_t) + OT_CACHE_LINE - 1) & ~(apr_size_t)(OT_CACHE_LINE - 1);
}

apr_status_t ot_rate_init(void *area)
{
    area_t *a = area;
    apr_status_t rv = apr_generate_random_bytes(a->h.seed, sizeof(a->h.seed));

    return rv == APR_SUCCESS ? ot_lock_init(&a->lock) : rv;
}

void ot_rate_addr_key(unsigned char key[OT_RATE_KEY_LEN], const char *ip)
{
    unsigned char a[16];
    apr_uint64_t h;
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    /* RFC 6052's well-known NAT64 prefix: IPv4 clients of a translator in front of the server. */
    static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };

    memset(key, 0, OT_RATE_KEY_LEN);
    if (ip != NULL && inet_pton(AF_INET, ip, a) == 1) {
        key[0] = FAM_V4;
        memcpy(key + 1, a, 4);
    }
    else if (ip != NULL && inet_pton(AF_INET6, ip, a) == 1) {
        if (memcmp(a, mapped, sizeof(mapped)) == 0 || memcmp(a, nat64, sizeof(nat64)) == 0) {
            key[0] = FAM_V4;
            memcpy(key + 1, a + 12, 4);
        }
        else {
            key[0] = FAM_V6;
            memcpy(key + 1, a, 8);          /* the /64: one site's or one subscriber's */
        }
    }
    else {
        h = ot_hash64(OT_HASH_SEED, ip ? ip : "", ip ? strlen(ip) : 0);
        key[0] = FAM_TEXT;
        memcpy(key + 1, &h, sizeof(h));
    }
}

/** The bucket's level at now. */
static double level(const bucket_t *b, const ot_rate_t *r, apr_time_t now)
{
    double t;

    if (b->stamp == 0) {
        return r->burst;
    }
    t = b->tokens;
    if (now > b->stamp) {
        t += (double)(now - b->stamp) / APR_USEC_PER_SEC * r->rate;
    }
    return t < r->burst ? t : r->burst;
}

/**
 * A bucket stamped after now (the clock went back, or a build that used the wall clock stamped
 * it before a graceful restart kept the segment) refills from now on.
 */
static void not_ahead(bucket_t *b, apr_time_t now)
{
    if (b->stamp != 0 && b->stamp > now) {
        b->stamp = now > 0 ? now : 1;
    }
}

static void set_level(bucket_t *b, double tokens, apr_time_t now)
{
    b->tokens = tokens;
    b->stamp = now > 0 ? now : 1;
}

static void no_repair(void *baton)
{
    /* A writer that died left at worst one bucket half written: a few tokens off, no more. */
}

/** The bucket of key: its slot, a free slot claimed for it, or the overflow bucket. */
static bucket_t *client_bucket(area_t *a, const unsigned char *key, const ot_rate_t *r,
                               apr_time_t now)
{
    static const unsigned char unused[OT_RATE_KEY_LEN];
    unsigned char in[sizeof(a->h.seed) + OT_RATE_KEY_LEN], md[SHA256_DIGEST_LENGTH];
    apr_uint64_t h;
    slot_t *s, *free_slot = NULL;
    int i;

    memcpy(in, a->h.seed, sizeof(a->h.seed));
    memcpy(in + sizeof(a->h.seed), key, OT_RATE_KEY_LEN);
    SHA256(in, sizeof(in), md);
    memcpy(&h, md, sizeof(h));

    for (i = 0; i < OT_RATE_PROBES; i++) {
        s = &a->slots[(h + (apr_uint64_t)i) & (OT_RATE_SLOTS - 1)];
        not_ahead(&s->b, now);          /* or it would look busy until the clock catches up */
        if (memcmp(s->key, key, OT_RATE_KEY_LEN) == 0) {
            return &s->b;
        }
        if (free_slot == NULL
            && (memcmp(s->key, unused, OT_RATE_KEY_LEN) == 0 || level(&s->b, r, now) >= r->burst)) {
            free_slot = s;
        }
    }
    if (free_slot == NULL) {
        __atomic_add_fetch(&a->h.overflows, 1, __ATOMIC_RELAXED);
        return &a->h.overflow;
    }
    memcpy(free_slot->key, key, OT_RATE_KEY_LEN);
    free_slot->b.stamp = 0;
    return &free_slot->b;
}

/** Whole seconds until a bucket at lvl holds one token under r: at least 1. */
static apr_interval_time_t retry_after(double lvl, const ot_rate_t *r)
{
    double s = (1.0 - lvl) / r->rate;
    apr_int64_t whole;

    if (!(s < 86400)) {
        return apr_time_from_sec(86400);
    }
    whole = (apr_int64_t)s;
    whole += (double)whole < s;
    return apr_time_from_sec(whole < 1 ? 1 : whole);
}

ot_rate_verdict_t ot_rate_take(void *area, const unsigned char *key, const ot_rate_t *client,
                               const ot_rate_t *server, apr_time_t now,
                               apr_interval_time_t *retry)
{
    area_t *a = area;
    bucket_t *cb = NULL, *sb = NULL;
    double lc = 1, ls = 1;
    ot_rate_verdict_t v = OT_RATE_OK;

    *retry = 0;
    if (client->rate <= 0 && server->rate <= 0) {
        return OT_RATE_OK;
    }
    if (ot_lock_take(&a->lock, no_repair, NULL) != APR_SUCCESS) {
        return OT_RATE_OK;          /* a broken lock must not lock out every client */
    }
    if (client->rate > 0) {
        cb = client_bucket(a, key, client, now);
        not_ahead(cb, now);
        lc = level(cb, client, now);
    }
    if (server->rate > 0) {
        sb = &a->h.server;
        not_ahead(sb, now);
        ls = level(sb, server, now);
    }
    if (lc < 1) {
        v = OT_RATE_CLIENT;
        *retry = retry_after(lc, client);
    }
    else if (ls < 1) {
        v = OT_RATE_SERVER;
        *retry = retry_after(ls, server);
    }
    else {
        if (cb) {
            set_level(cb, lc - 1, now);
        }
        if (sb) {
            set_level(sb, ls - 1, now);
        }
    }
    ot_lock_release(&a->lock);
    return v;
}

void ot_rate_charge_server(void *area, const ot_rate_t *server, apr_time_t now)
{
    area_t *a = area;
    double ls;

    if (server->rate <= 0 || ot_lock_take(&a->lock, no_repair, NULL) != APR_SUCCESS) {
        return;
    }
    ls = level(&a->h.server, server, now) - 1;
    set_level(&a->h.server, ls < -server->burst ? -server->burst : ls, now);
    ot_lock_release(&a->lock);
}

apr_uint64_t ot_rate_overflows(void *area)
{
    return __atomic_load_n(&((area_t *)area)->h.overflows, __ATOMIC_RELAXED);
}

/** A decimal number from min to 1000000, or -1. */
static double number(const char *s, double min)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
        return -1;
    }
    v = strtod(s, &end);
    if (*end != '\0' || !(v >= min) || v > 1000000) {
        return -1;
    }
    return v;
}

const char *ot_rate_parse(ot_rate_t *r, const char *rate, const char *burst, apr_pool_t *p)
{
    double v, b;

    r->rate = 0;
    r->burst = 0;
    if (strcasecmp(rate, "Off") == 0) {
        return burst ? "Off takes no burst" : NULL;
    }
    v = number(rate, 0);
    if (v <= 0) {
        return apr_psprintf(p, "'%s' is not Off or a number of calls a second above 0 and at "
                            "most 1000000 (e.g. 5 or 0.5)", rate);
    }
    b = burst ? number(burst, 1) : (v < 1 ? 1 : v);
    if (b < 1) {
        return apr_psprintf(p, "burst '%s' is not a number from 1 to 1000000", burst);
    }
    r->rate = v;
    r->burst = b;
    return NULL;
}
