/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_redis.h
 * @brief The second tier: answers and pushed revocations shared between httpd nodes through Redis
 *        (hiredis 0.14). Core code: APR, hiredis and OpenSSL, no httpd.
 *
 * What is stored (every name carries a key id, the first 16 hex digits of an HMAC of the key, so
 * that clusters with different OfftokRedisKey can share a Redis without meeting):
 *
 *   offtok:<kid>:a2:<hex HMAC(k_name, cache key)>  one answer; SET with EX, the entry's lifetime
 *   offtok:<kid>:rev                               sorted set of revocation messages, scored by
 *                                                  the time (ms) until which each is in force
 *   channel offtok:<kid>:rev                       the same messages, published as they happen,
 *                                                  and key tombstones (never stored): an
 *                                                  inactive answer replaced a positive one
 *
 * The token never reaches Redis: an answer's name is a keyed digest of the cache key, itself a
 * digest of URL, client, hint and token. Every value and message starts with a version byte and an
 * HMAC-SHA256 (over a domain label, the version, the name for answers, and the body), checked
 * before anything is decoded, so whoever can write to Redis cannot forge an answer or a
 * revocation; moving a value under another name breaks its MAC too. k_name and k_mac are derived
 * from OfftokRedisKey with distinct labels. Someone with write access can still delete, replay
 * (an older answer for the same token, judged by its authentic fetch time; a revocation, which
 * only refuses more) or withhold: see docs/redis.md.
 *
 * One ot_redis_t per process: a mutex-guarded stack of idle connections (a redisContext is not
 * thread-safe, so each is used by one thread at a time), short connect and command timeouts, and
 * a breaker: after a failure nobody waits on Redis again until a backoff has passed, so an
 * outage costs requests nothing. Revocations that could not be published wait in a bounded
 * queue that the subscriber (ot_redis_sub_*) sends once Redis is back.
 */
#ifndef OT_REDIS_H
#define OT_REDIS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "ot_cache.h"
#include "ot_revoke.h"

struct ot_stats_t;

/** Connect timeout; a node on the same network connects in well under a millisecond. */
#define OT_REDIS_CONNECT_TIMEOUT apr_time_from_msec(1000)
/** Command timeout: a Redis that is slower than this counts as unreachable. */
#define OT_REDIS_COMMAND_TIMEOUT apr_time_from_msec(500)
/** Revocations kept for publication while Redis is unreachable (then the oldest go). */
#define OT_REDIS_PENDING_MAX 1024
/** Current format version of answer values. */
#define OT_REDIS_VERSION 1
/** Current format version of revocation messages (2: with the not-before policy's order). */
#define OT_REDIS_REV_VERSION 2
/**
 * Clock difference between nodes allowed for: a revocation from another node is recorded as of
 * max(its time, min(now, its time + OT_REDIS_SKEW)), and so is an inactive answer read from
 * Redis, so that an answer fetched just after them on a clock a few seconds ahead is still
 * caught. Answers are never taken as fetched later than the local clock.
 */
#define OT_REDIS_SKEW apr_time_from_sec(5)
/**
 * Longest answer value read or written: the longest introspection answer the module accepts
 * (256 KiB) plus the sealing and the entry's fixed part. A longer value is never pulled whole.
 */
#define OT_REDIS_ANSWER_CAP (256 * 1024 + 1 + 32 + 64)
/** Revocations a node reads when it catches up: at most this many, of at most this size. */
#define OT_REDIS_STORED_MAX 65536
#define OT_REDIS_STORED_BYTES (32 * 1024 * 1024)
/** Format version of key tombstones ('K': distinct from every answer and revocation version). */
#define OT_REDIS_KTOMB_VERSION 0x4b
/** Bytes of a key tombstone's random nonce. */
#define OT_REDIS_KTOMB_NONCE 16
/** Longest string (iss, sub, sid, client) in a revocation message. */
#define OT_REDIS_VALUE_MAX 4096

/** Default port of a Sentinel. */
#define OT_REDIS_SENTINEL_PORT 26379
/** Most sentinels one redis-sentinel:// URL may list. */
#define OT_REDIS_SENTINELS_MAX 16

/** One host and port. */
typedef struct {
    const char *host;
    int port;
} ot_redis_addr_t;

/** Where Redis is and how to reach it. */
typedef struct {
    const char *host;                /**< redis://: the server; NULL with Sentinel */
    int port;
    int db;                          /**< SELECTed after connecting when not 0 */
    const char *user;                /**< ACL user sent with AUTH; NULL: AUTH password alone */
    const char *password;            /**< AUTH; NULL for none */
    int tls;                         /**< rediss:// (only where ot_redis_have_tls()) */
    const char *master;              /**< redis-sentinel://: the master's name, else NULL */
    ot_redis_addr_t sentinels[OT_REDIS_SENTINELS_MAX];
    int n_sentinels;
    const char *key;                 /**< OfftokRedisKey (at least 16 bytes) */
    apr_size_t key_len;
    apr_interval_time_t connect_timeout;   /**< 0: OT_REDIS_CONNECT_TIMEOUT */
    apr_interval_time_t command_timeout;   /**< 0: OT_REDIS_COMMAND_TIMEOUT */
} ot_redis_conf_t;

/**
 * Parse redis://host[:port][/db] into conf's host, port (default 6379) and db (default 0), or
 * redis-sentinel://host[:port][,host[:port]...]/master-name[/db] into sentinels (default port
 * 26379), master and db, or rediss:// as redis:// with tls set (refused, with the reason, where
 * hiredis has no TLS). NULL on success, else a message for the administrator (credentials in
 * the URL are refused).
 */
const char *ot_redis_parse_url(ot_redis_conf_t *conf, const char *url, apr_pool_t *p);

typedef struct ot_redis_t ot_redis_t;

/**
 * The client of one process, from p (which must outlive every use). Connects lazily. max_idle
 * bounds the connections kept between uses; stats (may be NULL) gets redis_errors.
 */
apr_status_t ot_redis_create(ot_redis_t **pr, const ot_redis_conf_t *conf, int max_idle,
                             struct ot_stats_t *stats, apr_pool_t *p);

/** Close every idle connection (the process is going away). */
void ot_redis_close(ot_redis_t *r);

/** A short description of the last failure ("connect: Connection refused"); never a secret. */
const char *ot_redis_last_error(ot_redis_t *r, apr_pool_t *p);

/** The name of the sorted set of revocations, which is also the channel's. Tests only. */
const char *ot_redis_rev_name(const ot_redis_t *r);

/** "host:port/db" (with Sentinel: "master-name via Sentinel host:port,.../db"), for logs. */
const char *ot_redis_where(const ot_redis_t *r);

/** 1 when this build can speak TLS to Redis (hiredis >= 1.0 with hiredis_ssl). */
int ot_redis_have_tls(void);

/** With Sentinel, "host:port" of the master found last (from p), else NULL. */
const char *ot_redis_master(ot_redis_t *r, apr_pool_t *p);

/** Open the breaker now: the next call tries Redis again (the subscriber got through). */
void ot_redis_mark_up(ot_redis_t *r);

/* ---- answers ------------------------------------------------------------------------------ */

/** The Redis name of the answer under cache key `key` ("offtok:<kid>:a2:<64 hex>"; the 2 is the entry format), from p. */
const char *ot_redis_answer_name(const ot_redis_t *r, const unsigned char key[OT_KEY_LEN],
                                 apr_pool_t *p);

/**
 * Fetch the answer stored under cache key `key`. APR_SUCCESS and *e (strings from p) when one is
 * there, authentic and not past its drop_after at now; APR_NOTFOUND when there is none or it has
 * expired; APR_EINVAL when a value is there but is longer than OT_REDIS_ANSWER_CAP (only that
 * much is read), fails its MAC or does not decode (counted; the caller treats it as a miss);
 * APR_EAGAIN when Redis is unreachable or the breaker is closed.
 *
 * e->fetched is put on this node's clock: the value's remaining lifetime in Redis (PTTL, on
 * Redis's clock) says when its writer's drop_after falls on ours, and fetched is taken no later
 * than that lifetime before it, nor than its authentic fetched time, nor than now (drop_after
 * moved back as much). So an answer stored by a node whose clock runs ahead can neither extend
 * a TTL, however often it is read again, nor escape a revocation; someone who can write to
 * Redis cannot extend it either (a longer PTTL loses to the authentic time). An inactive answer
 * is a tombstone, taken as fetched up to OT_REDIS_SKEW later (never past now), as revocations
 * from other nodes are.
 */
apr_status_t ot_redis_get(ot_redis_t *r, const unsigned char key[OT_KEY_LEN], apr_time_t now,
                          ot_cache_entry_t *e, apr_pool_t *p);

/**
 * Store e under cache key `key` until its drop_after (at least a second), unless what is there is
 * newer (a later fetched time in its value's plain entry, compared by a script in Redis, so that
 * a slow node's older answer never replaces a newer one, an inactive one in particular):
 * APR_EEXIST then. APR_ENOSPC for a value over OT_REDIS_ANSWER_CAP. APR_EAGAIN as above.
 *
 * When e is inactive and the value it replaces was a positive answer, the same script publishes
 * a key tombstone (ot_redis_ktomb_seal) on the revocation channel, so that every node stops
 * using its own cached positive answer for the key; *told (may be NULL) is then 1, else 0. An
 * inactive answer that replaces nothing, or another inactive one, publishes nothing: tokens that
 * were never active (a flood of made-up ones) cost no message.
 */
apr_status_t ot_redis_put(ot_redis_t *r, const unsigned char key[OT_KEY_LEN],
                          const ot_cache_entry_t *e, apr_time_t now, int *told, apr_pool_t *p);

/** The value ot_redis_put stores for e under `name` (version, MAC, entry), from p. */
apr_status_t ot_redis_seal_answer(const ot_redis_t *r, const char *name,
                                  const ot_cache_entry_t *e, char **val, apr_size_t *len,
                                  apr_pool_t *p);

/** Check and decode a value read under `name`: APR_SUCCESS or APR_EINVAL. */
apr_status_t ot_redis_open_answer(const ot_redis_t *r, const char *name, const char *val,
                                  apr_size_t len, ot_cache_entry_t *e, apr_pool_t *p);

/* ---- key tombstones ----------------------------------------------------------------------- */

/**
 * A key tombstone: the answer under cache key `key` was found inactive by an issuer call that
 * started at `fetched` (on the publishing node's clock), and that replaced a positive answer in
 * Redis. A receiving node makes every positive answer it holds for the key fetched before then
 * unusable. Never stored in Redis, only published.
 */
typedef struct {
    unsigned char key[OT_KEY_LEN];
    apr_time_t fetched;
    unsigned char nonce[OT_REDIS_KTOMB_NONCE];   /**< random, masks the key (see ot_redis_seal.c) */
} ot_redis_ktomb_t;

/**
 * The message for k: version 'K', MAC, fetched, nonce and the key masked under a key derived from
 * OfftokRedisKey (the channel shows no cache key, as no answer name does), from p. APR_EINVAL
 * for a negative time.
 */
apr_status_t ot_redis_ktomb_seal(const ot_redis_t *r, const ot_redis_ktomb_t *k, char **msg,
                                 apr_size_t *len, apr_pool_t *p);

/** Check and decode a key tombstone: APR_SUCCESS or APR_EINVAL. */
apr_status_t ot_redis_ktomb_open(const ot_redis_t *r, const char *msg, apr_size_t len,
                                 ot_redis_ktomb_t *k, apr_pool_t *p);

/* ---- once across all nodes (ot_redis_once.c) --------------------------------------------- */

/**
 * Record that `id` of `table` (a short label: "push", "dpop") from issuer `iss` was used, until
 * `until`, with SET NX EX under a keyed name ("offtok:<kid>:once:<64 hex>", so neither the id
 * nor the issuer shows). APR_SUCCESS: first use anywhere; APR_EEXIST: some node recorded it
 * before; APR_EAGAIN: Redis could not be asked (the caller decides what that means).
 */
apr_status_t ot_redis_once(ot_redis_t *r, const char *table, const char *iss, const char *id,
                           apr_time_t until, apr_time_t now, apr_pool_t *p);

/** Forget what ot_redis_once recorded for id (the push it guarded failed here). */
apr_status_t ot_redis_once_forget(ot_redis_t *r, const char *table, const char *iss,
                                  const char *id, apr_pool_t *p);

/** The name ot_redis_once uses, from p. */
const char *ot_redis_once_name(const ot_redis_t *r, const char *table, const char *iss,
                               const char *id, apr_pool_t *p);

/* ---- revocations -------------------------------------------------------------------------- */

/** What a revocation message says. */
typedef enum {
    OT_REDIS_REV_SUB = 1,            /**< = OT_REVOKE_SUB */
    OT_REDIS_REV_SID = 2,            /**< = OT_REVOKE_SID */
    OT_REDIS_REV_NOT_BEFORE = 3      /**< value is the client; not_before in seconds, 0 clears */
} ot_redis_rev_kind_t;

typedef struct {
    ot_redis_rev_kind_t kind;
    const char *iss;                 /**< may be NULL (stored as empty) */
    const char *value;               /**< sub, sid, or the client of a not-before policy */
    apr_time_t at;                   /**< when the receiving node applied it */
    apr_time_t until;                /**< kept in Redis (and tombstoned) until then */
    apr_int64_t not_before;
    apr_int64_t order;               /**< not-before: the action's expiration (seconds) */
} ot_redis_rev_t;

/** The message for rev (version, MAC, body), from p. APR_EINVAL for a value over the limit. */
apr_status_t ot_redis_rev_seal(const ot_redis_t *r, const ot_redis_rev_t *rev, char **msg,
                               apr_size_t *len, apr_pool_t *p);

/** Check and decode a message: APR_SUCCESS (strings from p) or APR_EINVAL. */
apr_status_t ot_redis_rev_open(const ot_redis_t *r, const char *msg, apr_size_t len,
                               ot_redis_rev_t *rev, apr_pool_t *p);

/**
 * Publish rev to every node: add it to the sorted set (dropping what has expired there) and
 * publish it on the channel, in one MULTI/EXEC; a not-before policy replaces the one stored
 * for its (issuer, client) only when it is newer (a script compares their order and
 * not-before), and is published either way (every node keeps the newer one). When Redis cannot be reached it is queued, and
 * the subscriber publishes it once Redis is back (APR_EAGAIN then).
 */
apr_status_t ot_redis_publish(ot_redis_t *r, const ot_redis_rev_t *rev, apr_time_t now,
                              apr_pool_t *p);

/** Publish what waits in the queue; APR_SUCCESS once it is empty. */
apr_status_t ot_redis_flush_pending(ot_redis_t *r, apr_time_t now);

/** Messages waiting in the queue. */
int ot_redis_pending(ot_redis_t *r);

/**
 * Every revocation stored and still in force at now, authentic ones only, in the order they
 * were applied (by `at`): an array of ot_redis_rev_t from p. APR_EAGAIN when unreachable;
 * APR_EGENERAL when Redis holds more than OT_REDIS_STORED_MAX of them or more than
 * OT_REDIS_STORED_BYTES (nothing is handed over then: the node stays "not caught up").
 * Messages longer than any this module writes are skipped without being read (counted).
 */
apr_status_t ot_redis_stored(ot_redis_t *r, apr_array_header_t **revs, apr_time_t now,
                             apr_pool_t *p);

/* ---- the subscriber ----------------------------------------------------------------------- */

/** What the subscriber tells its owner; called in the subscriber's thread. */
typedef struct {
    /** A revocation, stored (when catching up) or live, authentic; p for scratch. */
    void (*revoked)(void *baton, const ot_redis_rev_t *rev, apr_pool_t *p);
    /** Subscribed and caught up: every revocation in force has been handed over. */
    void (*up)(void *baton);
    /**
     * The subscription is lost, or could not be made: revocations published from now on may
     * be missed until the next up(). why is for the log.
     */
    void (*down)(void *baton, const char *why);
    /**
     * A key tombstone, authentic (live only: they are not stored); may be NULL. Its fetched time
     * is as the publisher sent it (the receiver puts it on its own clock).
     */
    void (*key_dead)(void *baton, const ot_redis_ktomb_t *k, apr_pool_t *p);
} ot_redis_sub_fns_t;

typedef struct ot_redis_sub_t ot_redis_sub_t;

/** A subscriber over client r, from p. It does nothing until ot_redis_sub_run. */
apr_status_t ot_redis_sub_create(ot_redis_sub_t **ps, ot_redis_t *r,
                                 const ot_redis_sub_fns_t *fns, void *baton, apr_pool_t *p);

/**
 * Subscribe, catch up, listen, and start over with backoff after any failure, until
 * ot_redis_sub_stop. Runs in the calling thread (give it one of its own).
 */
void ot_redis_sub_run(ot_redis_sub_t *s);

/** From any thread: make ot_redis_sub_run return soon (shuts its socket down). */
void ot_redis_sub_stop(ot_redis_sub_t *s);

#endif
