/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_shm_layout.h
 * @brief Inside the shared segment: its geometry, the stripes and the handle's members, which
 * ot_shm.c (that lays the segment out), ot_cache.c, ot_cache_store.c (through ot_cache_int.h) and
 * ot_revoke.c share. Nothing else includes it but the unit tests; the rest of the module uses
 * ot_shm.h, ot_cache.h and ot_revoke.h.
 *
 * The memory layout is drawn at the top of ot_shm.c; the locks are ot_lock.h's.
 */
#ifndef OT_SHM_LAYOUT_H
#define OT_SHM_LAYOUT_H

#include <apr_shm.h>
#include "ot_lock.h"

/* The handle ot_shm.h names; its members are below. */
typedef struct ot_shm_t ot_shm_t;

/** Bytes of one chunk; a stored answer is a chain of chunks of one stripe. */
#define OT_CHUNK_SIZE 128
/** Largest stored record (key, links and encoded answer); larger answers are not cached. */
#define OT_MAX_RECORD (16 * 1024)
/** Smallest cache; a smaller OfftokCacheSize is raised to it. */
#define OT_SHM_MIN_CACHE (1024 * 1024)
/** Bookkeeping bytes per chunk: next 4, ref 1, kind 1, at most 2 of bucket. */
#define OT_CHUNK_OVERHEAD 8
/** Shards of the hit and miss counters, picked by CPU, so that hits do not share a line. */
#define OT_SHARDS 16
/** Bytes before the blob in a record's first chunk: key, hnext and blob length. */
#define OT_REC_PREFIX 40
/** No chunk: the end of a chain or an empty bucket. */
#define OT_NIL 0xFFFFFFFFu

/**
 * Where everything is, relative to the segment's aligned base. Computed from the requested size
 * alone, so that comparing a stored geometry with a freshly computed one tells whether a
 * segment can be reused by this build.
 */
typedef struct {
    apr_size_t requested;     /**< cache_bytes as the configuration asked */
    apr_size_t total;         /**< bytes used from the aligned base */
    apr_size_t stats_size;    /**< sizeof(ot_stats_t) of the build that made the segment */
    apr_size_t rev_size;      /**< bytes of the revocation area */
    apr_size_t rate_size;     /**< bytes of the issuer-call budgets (ot_rate.c) */
    apr_size_t off_stats, off_counters, off_rev, off_rate, off_stripes;
    apr_size_t stripe_size;   /**< bytes of one stripe, a multiple of the cache line */
    apr_size_t off_buckets, off_next, off_ref, off_kind, off_chunks; /**< inside a stripe */
    apr_uint32_t nstripes, stripe_bits, nchunks, nbuckets, max_record, chunk_size;
} ot_geom_t;

/** Counters of the cache that are not per stripe. */
typedef struct {
    struct {
        apr_uint64_t hits, misses;
    } OT_LINE_ALIGNED shard[OT_SHARDS];
    apr_uint64_t too_big;
} ot_counters_t;

/** Head of one stripe: its lock, its seqlock counter and its bookkeeping. */
typedef struct {
    ot_lock_t lock;
    apr_uint32_t seq;          /**< odd while a writer changes the stripe */
    apr_uint32_t free_head;    /**< first free chunk, OT_NIL when none */
    apr_uint32_t free_count;
    apr_uint32_t hand;         /**< CLOCK hand: the next chunk the evictor looks at */
    apr_uint32_t entries;
    apr_uint64_t evictions;    /**< live entries removed to make room */
    apr_time_t next_expiry;    /**< no stored entry expires before this (a lower bound) */
} OT_LINE_ALIGNED ot_stripe_t;

/**
 * The per-process handle: pointers into the mapping, identical in every forked child. It is
 * kept across graceful restarts, possibly into a newer build of the module, so shm stays the
 * first member: ot_shm_reusable reads only it until the segment's layout version says that
 * the rest of the handle has the layout this build expects.
 */
struct ot_shm_t {
    apr_shm_t *shm;
    char *base;                /**< the segment's base, aligned to a cache line */
    const ot_geom_t *g;        /**< the geometry stored in the segment's header */
    struct ot_stats_t *stats;  /**< ot_stats.h */
    ot_counters_t *counters;
    void *rev;                 /**< the revocation area (ot_revoke.c) */
    void *rate;                /**< the issuer-call budgets (ot_rate.c) */
};

/** Stripe i of s. */
static APR_INLINE ot_stripe_t *ot_shm_stripe(const ot_shm_t *s, apr_uint32_t i)
{
    return (ot_stripe_t *)(s->base + s->g->off_stripes + (apr_size_t)i * s->g->stripe_size);
}

/** The 64 bits of a cache key that pick its stripe (high bits) and bucket (low bits). */
static APR_INLINE apr_uint64_t ot_key_hash(const unsigned char *key)
{
    apr_uint64_t h = 0;
    int i;

    for (i = 0; i < 8; i++) {
        h = (h << 8) | (key[i] ^ key[i + 8]);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/** Index of the stripe that holds key. */
static APR_INLINE apr_uint32_t ot_key_stripe(const ot_shm_t *s, const unsigned char *key)
{
    return (apr_uint32_t)(ot_key_hash(key) >> (64 - s->g->stripe_bits));
}

#endif
