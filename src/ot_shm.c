/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The shared segment: its layout, its creation, the reuse check and the locks in it.
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
#include <errno.h>
#include <string.h>
#include <apr_strings.h>
#include "ot_rate.h"
#include "ot_shm.h"

#define OT_SHM_MAGIC   0x4f54434bu   /* "OTCK" */
/* Bump on any change to the segment, the stored format or struct ot_shm_t. */
#define OT_SHM_VERSION 5u

#define LINE_UP(n) (((n) + OT_CACHE_LINE - 1) & ~(apr_size_t)(OT_CACHE_LINE - 1))

#define OT_STRIPE_TARGET (256 * 1024) /* aim for stripes of at least this size */
#define OT_STRIPE_BITS_MIN 4
#define OT_STRIPE_BITS_MAX 8
#define OT_CHUNK_OVERHEAD 8           /* next 4, ref 1, kind 1, at most 2 of bucket */
#define OT_TYPICAL_IDS (65 + 37 + 37 + 16) /* iss, sub, sid, azp of a Keycloak answer, NULs */
#define OT_TYPICAL_CLAIMS 600

/** The first bytes of the segment. */
typedef struct {
    apr_uint32_t magic;
    apr_uint32_t version;
    ot_geom_t g;
} ot_shm_hdr_t;

static apr_size_t chunks_for(apr_size_t rec_len)
{
    return (rec_len + OT_CHUNK_SIZE - 1) / OT_CHUNK_SIZE;
}

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

apr_size_t ot_cache_entry_footprint(apr_size_t claims_len)
{
    apr_size_t rec = OT_REC_PREFIX + OT_BLOB_FIXED + OT_TYPICAL_IDS + claims_len + 1;

    return chunks_for(rec) * (OT_CHUNK_SIZE + OT_CHUNK_OVERHEAD);
}

void ot_cache_info(ot_shm_t *s, ot_cache_info_t *info)
{
    apr_size_t typical = ot_cache_entry_footprint(OT_TYPICAL_CLAIMS)
                         / (OT_CHUNK_SIZE + OT_CHUNK_OVERHEAD);
    apr_uint32_t i;

    memset(info, 0, sizeof(*info));
    for (i = 0; i < s->g->nstripes; i++) {
        ot_stripe_t *st = ot_shm_stripe(s, i);
        info->entries += __atomic_load_n(&st->entries, __ATOMIC_RELAXED);
        info->evictions += __atomic_load_n(&st->evictions, __ATOMIC_RELAXED);
    }
    for (i = 0; i < OT_SHARDS; i++) {
        info->hits += OT_STAT_GET(s->counters->shard[i].hits);
        info->misses += OT_STAT_GET(s->counters->shard[i].misses);
    }
    info->capacity = (apr_uint64_t)s->g->nstripes * (s->g->nchunks / typical);
    info->too_big = OT_STAT_GET(s->counters->too_big);
}

apr_status_t ot_lock_init(ot_lock_t *l)
{
    pthread_mutexattr_t attr;
    int rc;

    memset(l, 0, sizeof(*l));
    rc = pthread_mutexattr_init(&attr);
    if (rc != 0) {
        return APR_FROM_OS_ERROR(rc);
    }
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(&l->m, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return APR_FROM_OS_ERROR(rc);
}

apr_status_t ot_lock_take(ot_lock_t *l, void (*recover)(void *baton), void *baton)
{
    int rc = pthread_mutex_lock(&l->m);

    if (rc == EOWNERDEAD) {
        recover(baton);
        rc = pthread_mutex_consistent(&l->m);
        if (rc != 0) {
            pthread_mutex_unlock(&l->m);
        }
    }
    return APR_FROM_OS_ERROR(rc);
}

void ot_lock_release(ot_lock_t *l)
{
    pthread_mutex_unlock(&l->m);
}

apr_uint64_t ot_hash64(apr_uint64_t h, const void *data, apr_size_t n)
{
    const unsigned char *d = data;

    while (n--) {
        h ^= *d++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- the stored form of an answer: the blob, also the second tier's format ------------------ */

#define BLOB_VERSION 3   /* 2: the claims are ot_answer_digest()'s, not JSON; 3: azp */
#define BLOB_EXP 28
#define BLOB_IAT 36

#define BLOB_AZP_LEN 44  /* azp's length, after the times (so their offsets stayed) */

enum { F_ACTIVE = 1, F_OFFLINE = 2, F_STR0 = 4, F_ALL = 127 }; /* F_STR0 << i: string i present */
_Static_assert(F_ACTIVE == OT_BLOB_ACTIVE, "Redis's store script reads the active bit in place");

typedef struct {
    char *buf;
    apr_size_t off;
} flat_t;

static void put_be(unsigned char *p, apr_uint64_t x, int n)
{
    while (n--) {
        p[n] = (unsigned char)(x & 0xff);
        x >>= 8;
    }
}

static apr_uint64_t get_be(const unsigned char *p, int n)
{
    apr_uint64_t x = 0;

    while (n--) {
        x = (x << 8) | *p++;
    }
    return x;
}

apr_time_t ot_blob_time(const unsigned char *p)
{
    return (apr_time_t)get_be(p, 8);
}

/** String i of e: iss, sub, sid, claims, azp. */
static const char *entry_str(const ot_cache_entry_t *e, int i)
{
    return i == 0 ? e->iss : i == 1 ? e->sub : i == 2 ? e->sid : i == 3 ? e->claims : e->azp;
}

/** 1 for the strings that are C strings (all but the claims' digest). */
#define IS_CSTR(i) ((i) != 3)

apr_status_t ot_blob_measure(apr_size_t lens[OT_BLOB_STRS], apr_size_t *blen,
                             const ot_cache_entry_t *e)
{
    apr_size_t n = OT_BLOB_FIXED;
    int i;

    if (e->fetched < 0 || e->drop_after < 0 || e->exp < 0 || e->iat < 0) {
        return APR_EINVAL;
    }
    for (i = 0; i < OT_BLOB_STRS; i++) {
        const char *str = entry_str(e, i);
        lens[i] = str == NULL ? 0 : IS_CSTR(i) ? strlen(str) : e->claims_len;
        if (lens[i] > (IS_CSTR(i) ? 0xffffu : 0xffffffffu)) {
            return APR_ENOSPC;
        }
        n += str == NULL ? 0 : lens[i] + 1;
    }
    *blen = n;
    return APR_SUCCESS;
}

void ot_blob_emit(ot_blob_write_fn write, void *baton, const ot_cache_entry_t *e,
                  const apr_size_t lens[OT_BLOB_STRS])
{
    unsigned char fixed[OT_BLOB_FIXED];
    int i;

    fixed[0] = BLOB_VERSION;
    fixed[1] = (unsigned char)((e->active ? F_ACTIVE : 0) | (e->offline ? F_OFFLINE : 0));
    for (i = 0; i < OT_BLOB_STRS; i++) {
        fixed[1] |= entry_str(e, i) != NULL ? (unsigned char)(F_STR0 << i) : 0;
    }
    put_be(fixed + 2, lens[0], 2);
    put_be(fixed + 4, lens[1], 2);
    put_be(fixed + 6, lens[2], 2);
    put_be(fixed + 8, lens[3], 4);
    put_be(fixed + OT_BLOB_FETCHED, (apr_uint64_t)e->fetched, 8);
    put_be(fixed + OT_BLOB_DROP, (apr_uint64_t)e->drop_after, 8);
    put_be(fixed + BLOB_EXP, (apr_uint64_t)e->exp, 8);
    put_be(fixed + BLOB_IAT, (apr_uint64_t)e->iat, 8);
    put_be(fixed + BLOB_AZP_LEN, lens[4], 2);
    write(baton, fixed, OT_BLOB_FIXED);
    for (i = 0; i < OT_BLOB_STRS; i++) {
        if (entry_str(e, i) != NULL) {
            write(baton, entry_str(e, i), lens[i]);
            write(baton, "", 1);
        }
    }
}

apr_status_t ot_blob_parse(ot_cache_entry_t *e, const char *buf, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)buf;
    const char **dst[OT_BLOB_STRS];
    apr_size_t lens[OT_BLOB_STRS], off = OT_BLOB_FIXED;
    ot_cache_entry_t r;
    int i;

    if (len < OT_BLOB_FIXED || u[0] != BLOB_VERSION || (u[1] & ~F_ALL) != 0
        || (u[OT_BLOB_FETCHED] | u[OT_BLOB_DROP] | u[BLOB_EXP] | u[BLOB_IAT]) & 0x80) {
        return APR_EINVAL;
    }
    memset(&r, 0, sizeof(r));
    dst[0] = &r.iss, dst[1] = &r.sub, dst[2] = &r.sid, dst[3] = &r.claims, dst[4] = &r.azp;
    lens[0] = get_be(u + 2, 2), lens[1] = get_be(u + 4, 2), lens[2] = get_be(u + 6, 2);
    lens[3] = get_be(u + 8, 4), lens[4] = get_be(u + BLOB_AZP_LEN, 2);
    for (i = 0; i < OT_BLOB_STRS; i++) {
        if (!(u[1] & (F_STR0 << i))) {
            if (lens[i] != 0) {
                return APR_EINVAL;
            }
            continue;
        }
        /* iss, sub, sid and azp are C strings; the claims (a digest) hold NULs of their own. */
        if (lens[i] >= len - off || buf[off + lens[i]] != '\0'
            || (IS_CSTR(i) && memchr(buf + off, 0, lens[i]) != NULL)) {
            return APR_EINVAL;
        }
        *dst[i] = buf + off;
        off += lens[i] + 1;
    }
    if (off != len) {
        return APR_EINVAL;
    }
    r.active = (u[1] & F_ACTIVE) != 0;
    r.offline = (u[1] & F_OFFLINE) != 0;
    r.claims_len = lens[3];
    r.fetched = ot_blob_time(u + OT_BLOB_FETCHED);
    r.drop_after = ot_blob_time(u + OT_BLOB_DROP);
    r.exp = ot_blob_time(u + BLOB_EXP);
    r.iat = ot_blob_time(u + BLOB_IAT);
    *e = r;
    return APR_SUCCESS;
}

static void flat_write(void *baton, const void *data, apr_size_t n)
{
    flat_t *f = baton;

    memcpy(f->buf + f->off, data, n);
    f->off += n;
}

apr_status_t ot_cache_entry_encode(const ot_cache_entry_t *e, char **buf, apr_size_t *len,
                                   apr_pool_t *p)
{
    apr_size_t lens[OT_BLOB_STRS], n;
    flat_t f;
    apr_status_t rv = ot_blob_measure(lens, &n, e);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    f.buf = apr_palloc(p, n);
    f.off = 0;
    ot_blob_emit(flat_write, &f, e, lens);
    *buf = f.buf;
    *len = n;
    return APR_SUCCESS;
}

apr_status_t ot_cache_entry_decode(ot_cache_entry_t *e, const char *buf, apr_size_t len,
                                   apr_pool_t *p)
{
    if (buf == NULL || len < OT_BLOB_FIXED) {
        return APR_EINVAL;
    }
    return ot_blob_parse(e, apr_pmemdup(p, buf, len), len);
}
