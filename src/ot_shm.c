/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The shared segment: its layout, its creation and the reuse check (the locks are ot_lock.c's).
 *
 * One anonymous MAP_SHARED mapping (apr_shm_create with no file name), made in the httpd parent
 * and inherited by every child; the base is rounded up to a cache line. Offsets are fixed by the
 * requested size alone (ot_geom_t), so a segment kept across a graceful restart is reused only
 * when the header's magic, layout version and geometry equal what this build would make.
 *
 *  +--------------------------------------------------------------------------------------+
 *  | header: magic, layout version, geometry (ot_geom_t)                                  |
 *  +--------------------------------------------------------------------------------------+
 *  | ot_stats_t: issuer counters, bumped with atomic adds                                 |
 *  +--------------------------------------------------------------------------------------+
 *  | ot_counters_t: hits and misses in 16 shards of one cache line each (picked by CPU),  |
 *  |                too_big                                                                |
 *  +--------------------------------------------------------------------------------------+
 *  | revocation area (ot_revoke.c), one robust lock and one seqlock:                       |
 *  |   lock | seq, counts, newest tombstone time, overflow marker                         |
 *  |   tombstones[4096] {hash(kind, iss, sub|sid), at, until}                              |
 *  |   tombstone index[8192] (open addressing, u16 positions)                              |
 *  |   not-before[64] {hash(iss, client), not_before, at}                                  |
 *  |   jtis[4096] {hash(iss, jti), until}                                                  |
 *  +--------------------------------------------------------------------------------------+
 *  | issuer-call budgets (ot_rate.c), one robust lock: the server's bucket, the overflow  |
 *  |   bucket, slots[4096] {client address key, tokens, stamp}                             |
 *  +--------------------------------------------------------------------------------------+
 *  | stripe 0 | stripe 1 | ... | stripe N-1     N = 16..256, a power of two; the top bits |
 *  |                                            of the key's hash pick the stripe         |
 *  +--------------------------------------------------------------------------------------+
 *
 * One stripe (ot_cache.c), C chunks and B buckets (B a power of two, at most C/2):
 *
 *  +------+-------------+-------------+-----------+---------+---------+-------------------+
 *  | lock | seq, free   | buckets[B]  | next[C]   | ref[C]  | kind[C] | chunks[C]         |
 *  | line | list, CLOCK | u32: first  | u32: next | u8:     | u8:     | 128 bytes each    |
 *  |      | hand, counts| record of   | chunk of  | CLOCK   | free,   |                   |
 *  |      | (one line)  | the chain   | the chain | count   | head,   |                   |
 *  |      |             |             |           |         | tail    |                   |
 *  +------+-------------+-------------+-----------+---------+---------+-------------------+
 *
 * One record: a chain of chunks linked by next[]; the first one starts with the prefix.
 *
 *  +----------+-------------+---------------+-------------------------------------------+
 *  | key[32]  | hnext (u32) | blob_len (u32)| blob: the ot_cache_entry_encode() format   |
 *  |          | next record |               | (version, flags, lengths, times, strings)  |
 *  |          | in bucket   |               |                                            |
 *  +----------+-------------+---------------+-------------------------------------------+
 */
#include <string.h>
#include <apr_strings.h>
#include "ot_cache.h"
#include "ot_rate.h"
#include "ot_revoke.h"
#include "ot_shm.h"
#include "ot_shm_layout.h"
#include "ot_stats.h"

#define OT_SHM_MAGIC   0x4f54434bu   /* "OTCK" */
/* Bump on any change to the segment, the stored format or struct ot_shm_t. */
#define OT_SHM_VERSION 5u

#define LINE_UP(n) (((n) + OT_CACHE_LINE - 1) & ~(apr_size_t)(OT_CACHE_LINE - 1))

#define OT_STRIPE_TARGET (256 * 1024) /* aim for stripes of at least this size */
#define OT_STRIPE_BITS_MIN 4
#define OT_STRIPE_BITS_MAX 8

/** The first bytes of the segment. */
typedef struct {
    apr_uint32_t magic;
    apr_uint32_t version;
    ot_geom_t g;
} ot_shm_hdr_t;

/** Lay out the stripes of a cache of cache_bytes: 16 to 256, of 256K or more where possible. */
static void stripe_geometry(ot_geom_t *g, apr_size_t cache_bytes)
{
    apr_uint32_t bits = OT_STRIPE_BITS_MIN, nb = 1;
    apr_size_t per_stripe, nchunks, max_rec;

    while (bits < OT_STRIPE_BITS_MAX && (cache_bytes >> (bits + 1)) >= OT_STRIPE_TARGET) {
        bits++;
    }
    per_stripe = cache_bytes >> bits;
    nchunks = (per_stripe - sizeof(ot_stripe_t)) / (OT_CHUNK_SIZE + OT_CHUNK_OVERHEAD);
    while ((apr_size_t)nb * 4 <= nchunks) {
        nb *= 2;
    }
    max_rec = (nchunks / 8) * OT_CHUNK_SIZE;
    g->nstripes = 1u << bits;
    g->stripe_bits = bits;
    g->nchunks = (apr_uint32_t)nchunks;
    g->nbuckets = nb;
    g->chunk_size = OT_CHUNK_SIZE;
    g->max_record = (apr_uint32_t)(max_rec < OT_MAX_RECORD ? max_rec : OT_MAX_RECORD);
    g->off_buckets = sizeof(ot_stripe_t);
    g->off_next = g->off_buckets + (apr_size_t)nb * 4;
    g->off_ref = g->off_next + nchunks * 4;
    g->off_kind = g->off_ref + nchunks;
    g->off_chunks = LINE_UP(g->off_kind + nchunks);
    g->stripe_size = LINE_UP(g->off_chunks + nchunks * OT_CHUNK_SIZE);
}

static void shm_geometry(ot_geom_t *g, apr_size_t cache_bytes)
{
    memset(g, 0, sizeof(*g));
    g->requested = cache_bytes;
    g->stats_size = sizeof(ot_stats_t);
    g->rev_size = ot_revoke_area_size();
    g->off_stats = LINE_UP(sizeof(ot_shm_hdr_t));
    g->off_counters = g->off_stats + LINE_UP(sizeof(ot_stats_t));
    g->off_rev = g->off_counters + LINE_UP(sizeof(ot_counters_t));
    g->rate_size = ot_rate_area_size();
    g->off_rate = g->off_rev + LINE_UP(g->rev_size);
    g->off_stripes = g->off_rate + LINE_UP(g->rate_size);
    stripe_geometry(g, cache_bytes < OT_SHM_MIN_CACHE ? OT_SHM_MIN_CACHE : cache_bytes);
    g->total = g->off_stripes + (apr_size_t)g->nstripes * g->stripe_size;
}

static void shm_attach(ot_shm_t *s, apr_shm_t *shm)
{
    apr_uintptr_t base = (apr_uintptr_t)apr_shm_baseaddr_get(shm);
    ot_shm_hdr_t *hdr;

    s->shm = shm;
    s->base = (char *)LINE_UP(base);
    hdr = (ot_shm_hdr_t *)s->base;
    s->g = &hdr->g;
    s->stats = (ot_stats_t *)(s->base + hdr->g.off_stats);
    s->counters = (ot_counters_t *)(s->base + hdr->g.off_counters);
    s->rev = s->base + hdr->g.off_rev;
    s->rate = s->base + hdr->g.off_rate;
}

apr_status_t ot_shm_create(ot_shm_t **ps, apr_size_t cache_bytes, apr_pool_t *p)
{
    ot_geom_t g;
    apr_shm_t *shm;
    ot_shm_t *s;
    ot_shm_hdr_t *hdr;
    apr_status_t rv;

    *ps = NULL;
    shm_geometry(&g, cache_bytes);
    /* A fresh anonymous mapping is zeroed; pages are committed only when first written. */
    rv = apr_shm_create(&shm, g.total + OT_CACHE_LINE, NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s = apr_pcalloc(p, sizeof(*s));
    hdr = (ot_shm_hdr_t *)LINE_UP((apr_uintptr_t)apr_shm_baseaddr_get(shm));
    memcpy(&hdr->g, &g, sizeof(g));        /* padding too, for ot_shm_reusable's memcmp */
    shm_attach(s, shm);
    rv = ot_revoke_init(s);
    if (rv == APR_SUCCESS) {
        rv = ot_rate_init(s->rate);
    }
    if (rv == APR_SUCCESS) {
        rv = ot_cache_init(s);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    hdr->version = OT_SHM_VERSION;
    hdr->magic = OT_SHM_MAGIC;
    *ps = s;
leave:
    if (rv != APR_SUCCESS) {
        apr_shm_destroy(shm);
    }
    return rv;
}

int ot_shm_reusable(const ot_shm_t *s, apr_size_t cache_bytes)
{
    const ot_shm_hdr_t *hdr;
    ot_geom_t g;

    if (s == NULL || s->shm == NULL) {
        return 0;
    }
    /* Only s->shm is read before the version is known (see struct ot_shm_t). */
    hdr = (const ot_shm_hdr_t *)LINE_UP((apr_uintptr_t)apr_shm_baseaddr_get(s->shm));
    if (hdr->magic != OT_SHM_MAGIC || hdr->version != OT_SHM_VERSION) {
        return 0;
    }
    shm_geometry(&g, cache_bytes);
    return memcmp(&g, &hdr->g, sizeof(g)) == 0
           && apr_shm_size_get(s->shm) >= g.total + OT_CACHE_LINE;
}

struct ot_stats_t *ot_shm_stats(ot_shm_t *s)
{
    return s->stats;
}

void *ot_shm_rate(ot_shm_t *s)
{
    return s->rate;
}
