/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_cache_int.h
 * @brief What ot_cache.c (stripes, lock-free reads, the interface, the key) and ot_cache_store.c
 * (writing records into a stripe: storing, dropping, eviction) share; nothing else includes it.
 *
 * A record is a chain of OT_CHUNK_SIZE chunks of one stripe; its first chunk starts with the
 * key (OT_KEY_LEN bytes), the next record of its bucket (REC_HNEXT) and the blob's length
 * (REC_BLEN), then the blob (ot_entry.h).
 */
#ifndef OT_CACHE_INT_H
#define OT_CACHE_INT_H

#include <string.h>
#include <apr_time.h>
#include "ot_cache.h"
#include "ot_entry.h"
#include "ot_shm_layout.h"

#define REC_PREFIX OT_REC_PREFIX
#define REC_HNEXT 32
#define REC_BLEN 36

enum { K_FREE = 0, K_HEAD = 1, K_TAIL = 2 };
enum { REF_STORED = 1, REF_HIT = 3 };

/** Process-local view of one stripe. */
typedef struct {
    ot_stripe_t *h;
    apr_uint32_t *buckets, *next;
    unsigned char *ref, *kind, *chunks;
    apr_uint32_t nchunks, nbuckets, max_record;
} stripe_t;

static APR_INLINE apr_uint32_t chunks_for(apr_size_t rec_len)
{
    return (apr_uint32_t)((rec_len + OT_CHUNK_SIZE - 1) / OT_CHUNK_SIZE);
}

static APR_INLINE unsigned char *chunk_at(const stripe_t *v, apr_uint32_t c)
{
    return v->chunks + (apr_size_t)c * OT_CHUNK_SIZE;
}

static APR_INLINE apr_uint32_t rec_u32(const stripe_t *v, apr_uint32_t c, apr_size_t at)
{
    apr_uint32_t x;

    memcpy(&x, chunk_at(v, c) + at, sizeof(x));
    return x;
}

static APR_INLINE void rec_set_u32(stripe_t *v, apr_uint32_t c, apr_size_t at, apr_uint32_t x)
{
    memcpy(chunk_at(v, c) + at, &x, sizeof(x));
}

static APR_INLINE apr_time_t rec_time(const stripe_t *v, apr_uint32_t c, apr_size_t at)
{
    return ot_blob_time(chunk_at(v, c) + REC_PREFIX + at);
}

/**
 * The first chunk of key's record, OT_NIL when none; *prev the record before it in the bucket.
 * Safe on data a writer is changing: every index is checked and the walk is bounded.
 */
apr_uint32_t ot_stripe_find(apr_uint32_t *prev, const stripe_t *v, const unsigned char *key,
                            apr_uint64_t kh);

/** Unlink the record at c (found after prev) from its bucket and free its chunks (locked). */
void ot_stripe_drop(stripe_t *v, apr_uint32_t c, apr_uint32_t prev, apr_uint64_t kh);

/**
 * Store e (blob of blen bytes, string lengths lens) under key, replacing an older answer and
 * making room (expired records, then CLOCK) when needed; a fresher answer already there stays.
 * The caller holds the stripe's lock and keeps its seqlock odd.
 */
void ot_stripe_store(stripe_t *v, const unsigned char *key, apr_uint64_t kh,
                     const ot_cache_entry_t *e, const apr_size_t lens[OT_BLOB_STRS],
                     apr_size_t blen, apr_time_t now);

#endif
