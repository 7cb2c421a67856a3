/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_cache.h
 * @brief The shared-memory cache of introspection answers, in the segment of ot_shm.h.
 *
 * The token is never stored: entries are found by a 32-byte key, ot_cache_key()'s SHA-256
 * digest over introspection URL, client id, hint, how the answer was obtained and token. What
 * an entry holds and its stored form are ot_entry.h's; the revocations that make entries
 * unusable are ot_revoke.h's.
 */
#ifndef OT_CACHE_H
#define OT_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>
#include "ot_entry.h"

/** Bytes of a cache key (a SHA-256 digest). */
#define OT_KEY_LEN 32

/* The segment the cache lives in (ot_shm.h). */
typedef struct ot_shm_t ot_shm_t;

/** Counters of the cache itself, as read by the status handler. */
typedef struct {
    apr_uint64_t entries, capacity, hits, misses, evictions, too_big;
} ot_cache_info_t;

/** Bytes one entry of claims_len bytes of claims takes in the segment (documented sizing). */
apr_size_t ot_cache_entry_footprint(apr_size_t claims_len);

/**
 * Look key up. APR_SUCCESS and a copy (strings from p) in *e when found and not past
 * drop_after at now; APR_NOTFOUND otherwise. The caller applies its own TTL to e->fetched.
 * Never sees a half-written entry. Counts a hit or a miss.
 */
apr_status_t ot_cache_get(ot_shm_t *s, const unsigned char *key, apr_time_t now,
                          ot_cache_entry_t *e, apr_pool_t *p);

/**
 * Store e under key, replacing what was there unless that was fetched later (newer wins: an
 * inactive answer stays the tombstone of every older positive one). When the segment is full
 * the expired entries go first, then the least recently used. APR_ENOSPC when e can never fit
 * (too large): the caller goes on without caching. A positive entry whose fetched time is older
 * than a matching revocation (see below) is not stored (APR_EINCOMPLETE).
 */
apr_status_t ot_cache_put(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                          apr_time_t now);

/**
 * Store e under key unless a live entry fetched at or after `since` is there (then APR_EEXIST
 * and its fetched time in *held): one check and store under the stripe's lock, so of several
 * processes claiming the same key at once exactly one succeeds (ot_docs.c's fetch claims).
 */
apr_status_t ot_cache_claim(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                            apr_time_t now, apr_time_t since, apr_time_t *held, apr_pool_t *p);

/** Forget key. Tests only: the module stores an inactive answer instead (the tombstone). */
void ot_cache_remove(ot_shm_t *s, const unsigned char *key);

/** Fill *info. */
void ot_cache_info(ot_shm_t *s, ot_cache_info_t *info);

/**
 * The cache key of one introspection: SHA-256 over the introspection URL, the client id, the
 * hint sent (NULL for none), how the answer was obtained (`how`: the TLS trust settings and
 * whether signed answers were required, so that an answer fetched with weaker checks never
 * serves a location with stronger ones) and the token, each length-prefixed so no two inputs
 * collide.
 */
void ot_cache_key(unsigned char out[OT_KEY_LEN], const char *url, const char *client_id,
                  const char *hint, const char *how, const char *token);

/** Most pieces of one input of ot_cache_key_parts; inputs of ot_cache_key_parts. */
#define OT_KEY_PIECES 4
#define OT_KEY_PARTS 5

/** One input of a key: the concatenation of its pieces (NULL ones are empty). */
typedef struct {
    const char *piece[OT_KEY_PIECES];
} ot_key_part_t;

/**
 * ot_cache_key with each input given in pieces, hashed as their concatenation (the same key as
 * ot_cache_key of the joined strings): url, client id, hint, how and token, in that order. No
 * string is built per request for an input's constant parts. Each thread keeps its own digest
 * context. Should hashing fail (out of memory), the key is random: nothing is found under it.
 */
void ot_cache_key_parts(unsigned char out[OT_KEY_LEN], const ot_key_part_t parts[OT_KEY_PARTS]);

/** Initialise every stripe of a new segment: locks, empty buckets, all chunks free (ot_shm.c). */
apr_status_t ot_cache_init(ot_shm_t *s);

#endif
