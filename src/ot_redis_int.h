/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_redis_int.h
 * @brief Inside the Redis tier: the client structure and the helpers that ot_redis.c (client,
 *        answers, publication), ot_redis_seal.c (MACs and encodings) and ot_redis_sub.c (the
 *        subscriber) share. Nothing else includes this.
 */
#ifndef OT_REDIS_INT_H
#define OT_REDIS_INT_H

#include <apr_thread_mutex.h>
#include <hiredis/hiredis.h>

#include "ot_redis.h"
#include "ot_util.h"

/** Length of the MAC after the version byte. */
#define OT_REDIS_MAC_LEN OT_SHA256_LEN
/** Version byte and MAC. */
#define OT_REDIS_SEAL_LEN (1 + OT_REDIS_MAC_LEN)
/** Longest revocation message: sealing, fixed part, two strings at their limit. */
#define OT_REDIS_REV_MAX (OT_REDIS_SEAL_LEN + 37 + 2 * OT_REDIS_VALUE_MAX)
/**
 * Offsets (0-based, in a sealed message) of a not-before policy's order and not_before, which
 * the script that stores policies compares: newer is a greater order, then a greater not_before.
 */
#define OT_REDIS_REV_ORDER (OT_REDIS_SEAL_LEN + 25)
#define OT_REDIS_REV_NB (OT_REDIS_SEAL_LEN + 17)
/** Length of a key tombstone: sealing, fetched, nonce, masked key. */
#define OT_REDIS_KTOMB_LEN (OT_REDIS_SEAL_LEN + 8 + OT_REDIS_KTOMB_NONCE + OT_KEY_LEN)
/** Most bytes the replies to a small command (not an answer, not catching up) may take. */
#define OT_REDIS_REPLY_SMALL (64 * 1024)
/** Most bytes the replies to reading an answer (GETRANGE and PTTL) may take. */
#define OT_REDIS_REPLY_ANSWER (OT_REDIS_ANSWER_CAP + 1024)
/** Most bytes the reply to catching up may take: the messages and their framing. */
#define OT_REDIS_REPLY_STORED (OT_REDIS_STORED_BYTES + 32 * (apr_size_t)OT_REDIS_STORED_MAX + 1024)
/**
 * The most elements an array in any reply of ours has: the catch-up's revocations (both of its
 * arrays together hold at most OT_REDIS_STORED_MAX). A longer count is refused as it is read.
 */
#define OT_REDIS_ARRAY_MAX OT_REDIS_STORED_MAX
/**
 * The deepest nesting of arrays in any reply of ours, the reply itself counted: ROLE of a master
 * (its replicas, each an array) has 3. A deeper array is refused as its count is read.
 */
#define OT_REDIS_DEPTH_MAX 4
/**
 * The most elements the arrays of one reply ot_redis_read reads hold in all (the catch-up's:
 * its two arrays and their revocations), nested arrays' counts included. A reply's objects then
 * take a few MB at most, whatever the budget of its bytes.
 */
#define OT_REDIS_ELEMENTS_MAX (OT_REDIS_ARRAY_MAX + 64)
/**
 * The most elements in all of a reply read within a budget no larger than OT_REDIS_REPLY_ANSWER
 * (anything but the catch-up): ROLE of a master has the most, 4 for each replica and at least 31
 * bytes for each, so fewer than 8,500 within OT_REDIS_REPLY_SMALL. Without it an answer's
 * budget of 257 KiB filled with 4-byte elements took some 65,000 reply objects (~5 MB).
 */
#define OT_REDIS_ELEMENTS_SMALL 16384

/** Size of the buffer that keeps the last failure's description. */
#define OT_REDIS_ERRBUF 160

/**
 * A revocation message on its way: a tombstone goes into the sorted set (scored by until), a
 * not-before policy into the hash under its field (issuer and client), where the next one for
 * the same pair replaces it.
 */
typedef struct {
    char *buf;                       /**< field, then message; malloc'd when queued */
    apr_size_t field_len;            /**< 0 for a tombstone */
    apr_size_t len;                  /**< of the message */
    apr_time_t until;
} ot_redis_pend_t;

struct ot_redis_t {
    ot_redis_conf_t conf;
    struct timeval connect_tv, command_tv;
    unsigned char k_name[OT_SHA256_LEN];   /**< keys answer names */
    unsigned char k_mac[OT_SHA256_LEN];    /**< authenticates values and messages */
    unsigned char k_mask[OT_SHA256_LEN];   /**< masks the cache key in key tombstones */
    char kid[17];                          /**< key id in every name: 16 hex digits */
    const char *rev_key;                   /**< the sorted set of tombstones (sub, sid) */
    const char *nb_key;                    /**< the hash of not-before policies */
    const char *channel;                   /**< where revocations are published */
    const char *where;                     /**< host:port/db, for logs */
    struct ot_stats_t *stats;
    void *tls;                             /**< redisSSLContext with rediss://, else NULL */

    apr_thread_mutex_t *mutex;             /**< guards everything below */
    redisContext **idle;                   /**< connections between uses; last is newest */
    int n_idle, max_idle;
    apr_time_t down_until;                 /**< the breaker: nobody tries before this */
    apr_interval_time_t backoff;           /**< current breaker delay, 0 when healthy */
    char err[OT_REDIS_ERRBUF];             /**< the last failure */
    char master_host[256];                 /**< Sentinel: the master last found; "" unknown */
    int master_port;
    int sentinel_next;                     /**< Sentinel: the one to ask first */
    ot_redis_pend_t pend[OT_REDIS_PENDING_MAX]; /**< ring of unpublished revocations */
    int pend_head, pend_count;
};

/** One command of a pipeline: up to twelve arguments, binary-safe. */
typedef struct {
    int argc;
    const char *argv[12];
    size_t lens[12];
} ot_redis_cmd_t;

/** Append an argument of n bytes (ot_redis_arg_str: a string) to c. */
void ot_redis_arg(ot_redis_cmd_t *c, const char *s, apr_size_t n);
void ot_redis_arg_str(ot_redis_cmd_t *c, const char *s);

/**
 * Run n commands in one round trip on a connection of the pool (a kept one that fails is tried
 * once more on a new one): APR_SUCCESS and the n replies (free them with ot_redis_free_replies),
 * else APR_EAGAIN (Redis unreachable, slower than the command timeout, the breaker closed, or
 * replies over `cap` bytes in all: a server that is not ours cannot make this process read
 * without end).
 */
apr_status_t ot_redis_run(ot_redis_t *r, int n, ot_redis_cmd_t *cmds, redisReply **replies,
                          apr_size_t cap);

/**
 * The next reply on blocking context c (the commands already written), reading at most *budget
 * more bytes from the socket (then lowered by what was read). REDIS_OK with *reply; REDIS_ERR
 * with c->err set otherwise (hiredis fails a read: REDIS_ERR_IO, timeouts included; an overrun
 * of the budget is REDIS_ERR_PROTOCOL, and the context is of no more use; so are arrays with
 * more than OT_REDIS_ELEMENTS_MAX elements in all, or OT_REDIS_ELEMENTS_SMALL with a *budget of
 * OT_REDIS_REPLY_ANSWER or less, refused as their counts are read).
 */
int ot_redis_read(redisContext *c, redisReply **reply, apr_size_t *budget);

/**
 * One command on c, written and its reply read within OT_REDIS_REPLY_SMALL bytes; the reply, or
 * NULL with c->errstr saying why.
 */
redisReply *ot_redis_command(redisContext *c, int argc, const char **argv);
void ot_redis_free_replies(int n, redisReply **replies);

/** 1 when reply is an error reply (then noted, with what, as the last error). */
int ot_redis_refused(ot_redis_t *r, const redisReply *reply, const char *what);

/** Derive k_name, k_mac and kid from conf->key. */
void ot_redis_derive_keys(ot_redis_t *r);

/**
 * A new connection: connected within the connect timeout, command timeout set, AUTH and SELECT
 * done. NULL on failure, with the reason noted (ot_redis_note).
 */
redisContext *ot_redis_connect(ot_redis_t *r);

/**
 * A connection to host:port with the timeouts set, TLS when configured, and AUTH done; for data
 * (not a Sentinel) SELECT too, and a refused AUTH fails it. A Sentinel that refuses AUTH is used
 * anyway (many run without a password): what it answers next decides. NULL on failure, noted.
 */
redisContext *ot_redis_open(ot_redis_t *r, const char *host, int port, int data);

/**
 * Make c's reader refuse an array longer than OT_REDIS_ARRAY_MAX when it reads the count (then
 * c fails with "Out of memory"), before hiredis makes the array's table: hiredis 0.14 makes it
 * for any count, so a "*1111111110" from a server that is not ours asked for 8.9 GB. Every
 * connection ot_redis_open makes has it; 0 when c has no reader (the functions are copied from
 * c's own reader, so a failure here is never for good).
 */
int ot_redis_bound_arrays(redisContext *c);

/**
 * redisGetReplyFromReader, but an array refused by ot_redis_bound_arrays fails c as
 * REDIS_ERR_PROTOCOL with errstr saying so (not hiredis's "Out of memory").
 */
int ot_redis_take(redisContext *c, void **reply);

/*
 * A connection read as messages arrive (the subscriber's, a Sentinel watch) keeps *fed: the
 * bytes of the reply being read that were read so far. The reader's unparsed bytes are not
 * that: hiredis parses an unfinished array's elements as they come and drops their bytes, so
 * an endless array of small elements (nested, each array within OT_REDIS_ARRAY_MAX) leaves few
 * unparsed bytes while its objects grow without end. Start *fed at ot_redis_buffered(c).
 */
/** redisBufferRead, adding the bytes it read to *fed. */
int ot_redis_feed(redisContext *c, apr_size_t *fed);
/** ot_redis_take; after a reply, *fed is what is buffered past it (the next reply's start). */
int ot_redis_take_fed(redisContext *c, void **reply, apr_size_t *fed);
/** Bytes in c's reader not parsed yet. */
apr_size_t ot_redis_buffered(const redisContext *c);

/* ---- TLS (ot_redis_tls.c; APR_ENOTIMPL where hiredis has no hiredis_ssl) ------------------- */

/** Make r->tls: verifies the server against the system's CA store (OpenSSL's default paths). */
apr_status_t ot_redis_tls_init(ot_redis_t *r, apr_pool_t *p);

/** Start TLS on c, checking that the certificate names host; noted on failure. */
apr_status_t ot_redis_tls_start(ot_redis_t *r, redisContext *c, const char *host);

/* ---- Sentinel (ot_redis_sentinel.c) ------------------------------------------------------- */

/** Parse the redis-sentinel:// URL into conf; NULL or a message (see ot_redis_parse_url). */
const char *ot_redis_sentinel_parse(ot_redis_conf_t *conf, const char *url, apr_pool_t *p);

/**
 * A data connection to the master: the one last found if it still says it is the master
 * (ROLE), else the one the Sentinels name now (asked in turn), checked the same way.
 */
redisContext *ot_redis_sentinel_connect(ot_redis_t *r);

/** Forget the master (it answered READONLY: a replica now); the next connection asks again. */
void ot_redis_sentinel_forget(ot_redis_t *r);

/** 1 when c goes to the master last found (always 1 without Sentinel). */
int ot_redis_sentinel_current(ot_redis_t *r, const redisContext *c);

/** A connection to one of the Sentinels, SUBSCRIBEd to +switch-master; NULL when none answers. */
redisContext *ot_redis_sentinel_watch(ot_redis_t *r);

/**
 * Read what the watch connection brought. 0 when it failed (free it); 1 otherwise, with *moved
 * set when a Sentinel announced a new master for ours (already recorded). *fed as for
 * ot_redis_feed (ot_redis_buffered(w) when the watch was made): an unfinished message that
 * took more than OT_REDIS_REPLY_SMALL bytes fails it.
 */
int ot_redis_sentinel_heard(ot_redis_t *r, redisContext *w, apr_size_t *fed, int *moved);

/** Remember why something failed (for ot_redis_last_error) and count it. */
void ot_redis_note(ot_redis_t *r, const char *what, const char *detail);

/** The time as the score of the sorted set: milliseconds since the epoch. */
apr_int64_t ot_redis_ms(apr_time_t t);

#endif
