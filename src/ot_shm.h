/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_shm.h
 * @brief Inside the shared segment: geometry, locks, seqlocks and the handle that ot_shm.c,
 * ot_cache.c and ot_revoke.c share.
 *
 * The httpd glue needs only ot_cache.h; this header is for the three files that own the segment
 * and for the unit tests. The memory layout is drawn at the top of ot_shm.c.
 *
 * Every lock lives in the segment, so that the old and the new children of a graceful restart
 * agree on them: process-shared robust pthread mutexes, one per cache line. A writer holds the
 * lock of its area and makes the area's sequence counter odd while it changes anything; a reader
 * takes no lock, copies what it needs and keeps the copy only if the counter was even and
 * unchanged around the copy (a seqlock). After a few failed tries it takes the lock instead.
 */
#ifndef OT_SHM_H
#define OT_SHM_H

#include <pthread.h>
#include <apr_shm.h>
#include "ot_cache.h"
#include "ot_stats.h"

#define OT_CACHE_LINE 64
#define OT_LINE_ALIGNED __attribute__((aligned(OT_CACHE_LINE)))

/** Bytes of one chunk; a stored answer is a chain of chunks of one stripe. */
#define OT_CHUNK_SIZE 128
/** Largest stored record (key, links and encoded answer); larger answers are not cached. */
#define OT_MAX_RECORD (16 * 1024)
/** Smallest cache; a smaller OfftokCacheSize is raised to it. */
#define OT_SHM_MIN_CACHE (1024 * 1024)
/** Shards of the hit and miss counters, picked by CPU, so that hits do not share a line. */
#define OT_SHARDS 16
/** Optimistic tries of a seqlock reader before it takes the lock. */
#define OT_SEQ_TRIES 4
/** Bytes before the blob in a record's first chunk: key, hnext and blob length. */
#define OT_REC_PREFIX 40
/** Bytes of the blob's fixed part: version, flags, four lengths, four times. */
#define OT_BLOB_FIXED 46
/** Strings of a blob: iss, sub, sid, claims, azp. */
#define OT_BLOB_STRS 5
/** Offset in the blob of the flags byte, and its "active" bit (Redis's store script reads it). */
#define OT_BLOB_FLAGS 1
#define OT_BLOB_ACTIVE 1
/** Offsets in the blob of fetched and drop_after, which the evictor reads in place. */
#define OT_BLOB_FETCHED 12
#define OT_BLOB_DROP 20
/** No chunk: the end of a chain or an empty bucket. */
#define OT_NIL 0xFFFFFFFFu

/** A process-shared robust mutex alone on its cache line. */
typedef union {
    pthread_mutex_t m;
    char line[OT_CACHE_LINE];
} OT_LINE_ALIGNED ot_lock_t;

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
    ot_stats_t *stats;
    ot_counters_t *counters;
    void *rev;                 /**< the revocation area (ot_revoke.c) */
    void *rate;                /**< the issuer-call budgets (ot_rate.c) */
};

/** Make l a process-shared robust mutex. */
apr_status_t ot_lock_init(ot_lock_t *l);

/**
 * Take l. When its owner died holding it, call recover(baton) (still holding l) before marking
 * it consistent, so that whatever the dead writer left half done is repaired first.
 */
apr_status_t ot_lock_take(ot_lock_t *l, void (*recover)(void *baton), void *baton);

/** Release l. */
void ot_lock_release(ot_lock_t *l);

/** 64-bit hash of n bytes, continuing from h (start with OT_HASH_SEED). Not cryptographic. */
apr_uint64_t ot_hash64(apr_uint64_t h, const void *data, apr_size_t n);
#define OT_HASH_SEED 0xcbf29ce484222325ULL

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

/** Start an optimistic read: the counter to validate against (odd: a writer is busy). */
static APR_INLINE apr_uint32_t ot_seq_read_begin(const apr_uint32_t *seq)
{
    return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

/** 1 when what was read since ot_seq_read_begin returned start is consistent. */
static APR_INLINE int ot_seq_read_valid(const apr_uint32_t *seq, apr_uint32_t start)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return !(start & 1) && __atomic_load_n(seq, __ATOMIC_RELAXED) == start;
}

/** A writer holding the lock starts changing the area: the counter becomes odd. */
static APR_INLINE void ot_seq_write_begin(apr_uint32_t *seq)
{
    __atomic_store_n(seq, __atomic_load_n(seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/** The writer is done: the counter becomes even again, publishing its stores. */
static APR_INLINE void ot_seq_write_end(apr_uint32_t *seq)
{
    __atomic_store_n(seq, __atomic_load_n(seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

/** Where ot_blob_emit sends the bytes of a blob, in order. */
typedef void (*ot_blob_write_fn)(void *baton, const void *data, apr_size_t n);

/**
 * Check e and measure its blob (the ot_cache_entry_encode format): the lengths of iss, sub,
 * sid, claims and azp in lens, the total in *blen. APR_ENOSPC when a string is too long for the
 * format, APR_EINVAL for a negative time or a NUL inside the claims.
 */
apr_status_t ot_blob_measure(apr_size_t lens[OT_BLOB_STRS], apr_size_t *blen,
                             const ot_cache_entry_t *e);

/** Write the blob of e, measured by ot_blob_measure, through write. */
void ot_blob_emit(ot_blob_write_fn write, void *baton, const ot_cache_entry_t *e,
                  const apr_size_t lens[OT_BLOB_STRS]);

/**
 * Parse a blob of exactly len bytes; the strings of *e then point into buf. APR_EINVAL, and *e
 * unchanged, for anything malformed.
 */
apr_status_t ot_blob_parse(ot_cache_entry_t *e, const char *buf, apr_size_t len);

/** The big-endian time at p (a blob's fetched or drop_after). */
apr_time_t ot_blob_time(const unsigned char *p);

/** Initialise every stripe of a new segment: locks, empty buckets, all chunks free. */
apr_status_t ot_cache_init(ot_shm_t *s);

/** Bytes of the revocation area. */
apr_size_t ot_revoke_area_size(void);

/** Initialise the revocation area of a new segment. */
apr_status_t ot_revoke_init(ot_shm_t *s);

/**
 * 1 when a sub or sid revocation of issuer iss (or the overflow marker) makes e unusable; the
 * part of ot_revoke_applies() that does not depend on the client, checked by ot_cache_put.
 */
int ot_revoke_tombstoned(ot_shm_t *s, const char *iss, const ot_cache_entry_t *e);

#endif
