/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_entry.h
 * @brief The stored forms of an answer: the digest of its claims (what a cache entry's claims
 * hold), what is kept of one answer (ot_cache_entry_t) and the entry's blob, the format of a
 * record in the shared cache and of a value in the second tier (Redis).
 */
#ifndef OT_ENTRY_H
#define OT_ENTRY_H

#include <apr_pools.h>
#include <apr_time.h>

#include "ot_answer.h"

/** What is kept of one answer. Strings are NUL-terminated; NULL when absent. */
typedef struct {
    apr_time_t fetched;     /**< when the issuer call that produced the answer started */
    apr_time_t drop_after;  /**< no location accepts it after this (min of exp and fetched+max TTL) */
    apr_time_t exp;         /**< the token's exp; 0 when it has none */
    apr_time_t iat;         /**< the answer's iat; 0 when it has none */
    int active;             /**< 1: positive answer, 0: inactive (negative cache) */
    int offline;            /**< 1: an offline token */
    const char *iss;
    const char *sub;
    const char *sid;
    const char *azp;        /**< the client the token was issued to: azp, else client_id */
    const char *claims;     /**< positive answers: ot_answer_digest() (binary, holds NULs) */
    apr_size_t claims_len;
} ot_cache_entry_t;

/**
 * What the cache and the revocation tables know of answer a, whose issuer call (or local
 * verification) started at `fetched`, without the claims' digest: its times, iss (else
 * `default_iss`, the location's OfftokIssuer: revocations are kept per issuer), sub, sid, azp
 * (else client_id) and kind. It is dropped at its exp, else after max_ttl. The one builder of
 * entries: introspection answers and locally verified tokens alike.
 */
void ot_entry_of(ot_cache_entry_t *e, const ot_answer_t *a, const char *default_iss,
                 apr_time_t fetched, apr_interval_time_t max_ttl);

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

/**
 * Encode e compactly for another tier (Redis): a versioned, length-prefixed binary form, in a
 * buffer from p. APR_ENOSPC when a string is too long for the format (iss, sub or sid over
 * 65535 bytes), APR_EINVAL for a negative time.
 */
apr_status_t ot_cache_entry_encode(const ot_cache_entry_t *e, char **buf, apr_size_t *len,
                                   apr_pool_t *p);

/**
 * Decode what ot_cache_entry_encode made; strings are copied into p. Any malformed, truncated
 * or trailing input is APR_EINVAL and leaves *e unchanged; the input may come from anyone who
 * can write to the other tier, so authenticate it first.
 */
apr_status_t ot_cache_entry_decode(ot_cache_entry_t *e, const char *buf, apr_size_t len,
                                   apr_pool_t *p);

/* ---- the digest: an answer's claims as the cache keeps them --------------------------------- */

/**
 * The cache's form of a positive answer: its claims, typed and with their text, so that a cache
 * hit needs no JSON parser (the format is drawn in ot_entry.c). NULL when a is inactive or does not
 * fit the format (over 65535 claims); such an answer is simply not cached.
 */
const char *ot_answer_digest(const ot_answer_t *a, apr_size_t *len, apr_pool_t *p);

/**
 * The answer a digest describes. The strings point into buf, which must live as long as p.
 * NULL when buf is not a well-formed digest of a positive answer.
 */
ot_answer_t *ot_answer_from_digest(const char *buf, apr_size_t len, apr_pool_t *p);

/** The answer a digest of an ot_answer_from_jwt() answer describes, or NULL. */
ot_answer_t *ot_answer_from_jwt_digest(const char *buf, apr_size_t len, apr_pool_t *p);

#endif
