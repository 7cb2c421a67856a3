/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_rate.h
 * @brief Budgets of issuer calls: a token bucket per client address (OfftokMissRate) and one
 *        for the whole server (OfftokIssuerMaxRate), in an area of the shared segment.
 *
 * The area is a fixed table, so its memory is bounded whatever the number of addresses: a slot
 * whose bucket has filled up again is as good as empty and is taken by the next new address;
 * when every slot an address may use holds a bucket that is still refilling, that address shares
 * one overflow bucket with every other such address. One robust process-shared lock guards the
 * area; it is taken only for a request that would start an issuer call while a budget is set.
 */
#ifndef OT_RATE_H
#define OT_RATE_H

#include <apr_pools.h>
#include <apr_time.h>

/** A budget: rate tokens a second into a bucket of burst tokens. rate 0: no budget. */
typedef struct {
    double rate;
    double burst;
} ot_rate_t;

/** Bytes of an address key: family, then the IPv4 address or the IPv6 /64 prefix. */
#define OT_RATE_KEY_LEN 16
/** Slots of the table of addresses (a power of two), and how many one address may use. */
#define OT_RATE_SLOTS 4096
#define OT_RATE_PROBES 8

/** Whose budget a call was refused by. */
typedef enum {
    OT_RATE_OK = 0,
    OT_RATE_CLIENT,      /**< the client address's (OfftokMissRate) */
    OT_RATE_SERVER       /**< the server's (OfftokIssuerMaxRate) */
} ot_rate_verdict_t;

/** Bytes of the area (a multiple of the cache line; place it on a cache line). */
apr_size_t ot_rate_area_size(void);

/** Initialise a zeroed area: its lock and the random seed of its slot hash; buckets start full. */
apr_status_t ot_rate_init(void *area);

/**
 * The key of a client address given as text: an IPv4 address (also IPv4-mapped IPv6, and IPv6
 * under NAT64's well-known prefix 64:ff9b::/96) as itself, an IPv6 address by its /64 prefix,
 * anything else by a hash of the text.
 */
void ot_rate_addr_key(unsigned char key[OT_RATE_KEY_LEN], const char *ip);

/**
 * Take one token from the bucket of key under client (if client->rate > 0) and one from the
 * server's bucket under server (if server->rate > 0): both or neither. On a refusal, *retry
 * is how long until the refusing bucket holds a token again (at least a second, rounded up).
 */
ot_rate_verdict_t ot_rate_take(void *area, const unsigned char *key, const ot_rate_t *client,
                               const ot_rate_t *server, apr_time_t now,
                               apr_interval_time_t *retry);

/**
 * Count a call that is made whatever the budget says (a key or metadata fetch) against the
 * server's bucket: it may go into debt, down to -burst, which later calls then pay back.
 */
void ot_rate_charge_server(void *area, const ot_rate_t *server, apr_time_t now);

/** How many times an address had to use the overflow bucket since the area was made. */
apr_uint64_t ot_rate_overflows(void *area);

/**
 * Parse "per-second [burst]" or "Off" (burst NULL when absent; default: the rate, at least 1).
 * NULL on success, else an error text from p. Off gives rate 0.
 */
const char *ot_rate_parse(ot_rate_t *r, const char *rate, const char *burst, apr_pool_t *p);

#endif
