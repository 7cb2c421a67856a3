/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_lock.h
 * @brief The primitives of every shared segment: robust process-shared locks, seqlocks, a hash.
 *
 * Every lock lives in the segment it guards, so that the old and the new children of a graceful
 * restart agree on them: process-shared robust pthread mutexes, each alone on a cache line. A
 * writer holds the lock of its area and makes the area's sequence counter odd while it changes
 * anything; a reader takes no lock, copies what it needs and keeps the copy only if the counter
 * was even and unchanged around the copy (a seqlock). After a few failed tries it takes the lock
 * instead. Used by ot_shm.c, ot_cache.c, ot_revoke.c, ot_rate.c and ot_replay.c.
 */
#ifndef OT_LOCK_H
#define OT_LOCK_H

#include <pthread.h>
#include <apr_errno.h>

#define OT_CACHE_LINE 64
#define OT_LINE_ALIGNED __attribute__((aligned(OT_CACHE_LINE)))

/** Optimistic tries of a seqlock reader before it takes the lock. */
#define OT_SEQ_TRIES 4

/** A process-shared robust mutex alone on its cache line. */
typedef union {
    pthread_mutex_t m;
    char line[OT_CACHE_LINE];
} OT_LINE_ALIGNED ot_lock_t;

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

#endif
