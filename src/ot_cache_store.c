/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Writing records into a stripe of the answer cache, under the stripe's lock and odd seqlock
 * (ot_cache.c takes them): a record's chunks are taken from the stripe's free list and written
 * through a sink; replacing or removing a record unlinks it from its bucket and frees its chain.
 *
 * Eviction, when a store finds too few free chunks: first every expired entry of the stripe
 * (past drop_after) goes, in one sweep that also learns when the next one expires, so the sweep
 * runs only when something may have expired; then CLOCK with a 2-bit count per record: a store
 * sets it to 1, a hit (ot_cache.c) to 3, the hand lowers it by one as it passes and evicts at 0.
 * A record hit recently thus survives two more turns of the hand than one that was only stored.
 */
#include <string.h>
#include "ot_cache_int.h"
#include "ot_lock.h"

/** Where a record being stored goes: the chain of chunks allocated for it. */
typedef struct {
    stripe_t *v;
    apr_uint32_t chunk;
    apr_size_t off;
} sink_t;

/** Free the chain of chunks that starts at c: one record fewer. */
static void chain_free(stripe_t *v, apr_uint32_t c)
{
    apr_uint32_t steps = 0, n;

    while (c < v->nchunks && steps++ < v->nchunks) {
        n = v->next[c];
        v->kind[c] = K_FREE;
        __atomic_store_n(&v->ref[c], 0, __ATOMIC_RELAXED);
        v->next[c] = v->h->free_head;
        v->h->free_head = c;
        v->h->free_count++;
        c = n;
    }
    __atomic_store_n(&v->h->entries, v->h->entries - 1, __ATOMIC_RELAXED);
}

void ot_stripe_drop(stripe_t *v, apr_uint32_t c, apr_uint32_t prev, apr_uint64_t kh)
{
    apr_uint32_t hnext = rec_u32(v, c, REC_HNEXT);

    if (prev == OT_NIL) {
        v->buckets[kh & (v->nbuckets - 1)] = hnext;
    }
    else {
        rec_set_u32(v, prev, REC_HNEXT, hnext);
    }
    chain_free(v, c);
}

/**
 * Drop the record whose first chunk is c, finding its place in its bucket from its key. Frees
 * the chunks even if the bucket does not lead to it, so that eviction always makes progress.
 */
static void stripe_drop_at(stripe_t *v, apr_uint32_t c)
{
    const unsigned char *key = chunk_at(v, c);
    apr_uint64_t kh = ot_key_hash(key);
    apr_uint32_t prev;

    if (ot_stripe_find(&prev, v, key, kh) == c) {
        ot_stripe_drop(v, c, prev, kh);
    }
    else {
        chain_free(v, c);
    }
}

/** Drop every expired record; remember when the next one expires. */
static void stripe_sweep(stripe_t *v, apr_time_t now)
{
    apr_time_t next = APR_INT64_MAX, d;
    apr_uint32_t c;

    for (c = 0; c < v->nchunks; c++) {
        if (v->kind[c] != K_HEAD) {
            continue;
        }
        d = rec_time(v, c, OT_BLOB_DROP);
        if (d <= now) {
            stripe_drop_at(v, c);
        }
        else if (d < next) {
            next = d;
        }
    }
    v->h->next_expiry = next;
}

/** CLOCK: lower counts as the hand passes and evict the first record found at 0; 0 if none. */
static int stripe_evict_one(stripe_t *v)
{
    apr_uint32_t c, steps, limit = 3 * v->nchunks;
    unsigned char r;

    for (steps = 0; steps <= limit + v->nchunks; steps++) {
        c = v->h->hand;
        v->h->hand = c + 1 < v->nchunks ? c + 1 : 0;
        if (v->kind[c] != K_HEAD) {
            continue;
        }
        r = __atomic_load_n(&v->ref[c], __ATOMIC_RELAXED);
        if (r > 0 && steps < limit) {       /* past the limit, hits cannot hold the hand up */
            __atomic_store_n(&v->ref[c], r - 1, __ATOMIC_RELAXED);
            continue;
        }
        stripe_drop_at(v, c);
        __atomic_store_n(&v->h->evictions, v->h->evictions + 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

/** 1 when need chunks are free, after dropping the expired records, then CLOCK's choices. */
static int stripe_make_room(stripe_t *v, apr_uint32_t need, apr_time_t now)
{
    if (v->h->free_count < need && now >= v->h->next_expiry) {
        stripe_sweep(v, now);
    }
    while (v->h->free_count < need) {
        if (!stripe_evict_one(v)) {
            return 0;
        }
    }
    return 1;
}

/** Write n bytes at the sink's place in the record's chain of chunks. */
static void sink_write(void *baton, const void *data, apr_size_t n)
{
    sink_t *k = baton;
    const unsigned char *d = data;

    while (n > 0) {
        apr_size_t room = OT_CHUNK_SIZE - k->off, step = n < room ? n : room;
        memcpy(chunk_at(k->v, k->chunk) + k->off, d, step);
        d += step;
        n -= step;
        k->off += step;
        if (k->off == OT_CHUNK_SIZE && n > 0) {
            k->chunk = k->v->next[k->chunk];
            k->off = 0;
        }
    }
}

/** Take need free chunks, chained through next[]; the first is marked as a record's head. */
static apr_uint32_t stripe_alloc(stripe_t *v, apr_uint32_t need)
{
    apr_uint32_t head = v->h->free_head, c = head, i;

    for (i = 0; i < need; i++) {
        v->kind[c] = i == 0 ? K_HEAD : K_TAIL;
        if (i + 1 == need) {
            v->h->free_head = v->next[c];
            v->next[c] = OT_NIL;
        }
        else {
            c = v->next[c];
        }
    }
    v->h->free_count -= need;
    return head;
}

void ot_stripe_store(stripe_t *v, const unsigned char *key, apr_uint64_t kh,
                     const ot_cache_entry_t *e, const apr_size_t lens[OT_BLOB_STRS],
                     apr_size_t blen, apr_time_t now)
{
    apr_uint32_t prev, need = chunks_for(REC_PREFIX + blen), *bucket, c;
    apr_uint32_t blen32 = (apr_uint32_t)blen;
    sink_t k;

    c = ot_stripe_find(&prev, v, key, kh);
    if (c != OT_NIL) {
        if (rec_time(v, c, OT_BLOB_FETCHED) > e->fetched) {
            return;                 /* keep the fresher answer another call already stored */
        }
        ot_stripe_drop(v, c, prev, kh);
    }
    if (e->drop_after <= now) {
        return;
    }
    if (!stripe_make_room(v, need, now)) {
        return;
    }
    c = stripe_alloc(v, need);
    bucket = &v->buckets[kh & (v->nbuckets - 1)];
    k.v = v;
    k.chunk = c;
    k.off = 0;
    sink_write(&k, key, OT_KEY_LEN);
    sink_write(&k, bucket, sizeof(*bucket));
    sink_write(&k, &blen32, sizeof(blen32));
    ot_blob_emit(sink_write, &k, e, lens);
    __atomic_store_n(&v->ref[c], REF_STORED, __ATOMIC_RELAXED);
    *bucket = c;
    __atomic_store_n(&v->h->entries, v->h->entries + 1, __ATOMIC_RELAXED);
    if (e->drop_after < v->h->next_expiry) {
        v->h->next_expiry = e->drop_after;
    }
}
