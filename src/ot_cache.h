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
#define OT_KEY_PIECES 8
#define OT_KEY_PARTS 5

/**
 * A piece hashed as one NUL byte (the pointer, not the text, is what counts): it ends a piece
 * that may hold any text, a path or a URL, so that no text of it can pass for what follows.
 */
extern const char ot_key_nul[];

/** One input of a key: the concatenation of its pieces (NULL ones are empty). */
typedef struct {
    const char *piece[OT_KEY_PIECES];
} ot_key_part_t;

/** What a signed answer (OfftokSignedAnswers On) was checked against: part of its key. */
typedef struct {
    const char *issuer;     /**< OfftokIssuer: the iss it must carry */
    const char *jwks_url;   /**< OfftokJWKSURL: the keys that must verify it */
    int clock_skew;         /**< OfftokClockSkew: the window of its iat */
} ot_key_signed_t;

/** Room ot_cache_key_how needs for the text it formats. */
#define OT_KEY_HOW_BUF 32

/**
 * The `how` input of a key, in pieces: "verify" or "noverify", then for signed answers (sig not
 * NULL) " signed SKEW " ISSUER NUL JWKS-URL NUL, then with a CA file " ca=" FILE, which runs to
 * the end of the input (its length is the input's). No text of a CA file, issuer or JWKS URL can
 * pass for another setting; without signed answers the input is "verify|noverify[ ca=FILE]", as
 * it always was. buf holds the skew's text: it must live as long as *how is used. The TLS trust
 * settings are also those the JWKS is fetched under.
 */
void ot_cache_key_how(ot_key_part_t *how, char buf[OT_KEY_HOW_BUF], int verify,
                      const char *ca_file, const ot_key_signed_t *sig);

/**
 * ot_cache_key with each input given in pieces, hashed as their concatenation (the same key as
 * ot_cache_key of the joined strings; an ot_key_nul piece is a NUL byte, which no string
 * holds): url, client id, hint, how and token, in that order. No string is built per request
 * for an input's constant parts. Each thread keeps its own digest
 * context. Should hashing fail (out of memory), the key is random: nothing is found under it.
 */
void ot_cache_key_parts(unsigned char out[OT_KEY_LEN], const ot_key_part_t parts[OT_KEY_PARTS]);

/** Initialise every stripe of a new segment: locks, empty buckets, all chunks free (ot_shm.c). */
apr_status_t ot_cache_init(ot_shm_t *s);

#endif
