/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_replay.h
 * @brief The DPoP proofs seen by every process of this server: a fixed table in a shared
 *        segment of its own, so that a proof is accepted once whichever process gets it.
 *
 * An entry is kept until its proof could no longer pass (iat + OfftokDPoPMaxAge +
 * OfftokClockSkew) and is never evicted before: when every slot a key may take holds a live
 * entry the table says so, and the request is answered 503, never accepted unchecked.
 */
#ifndef OT_REPLAY_H
#define OT_REPLAY_H

#include <apr_pools.h>
#include <apr_time.h>

/** Slots of the table; a key may take any of OT_REPLAY_PROBE consecutive ones. */
#define OT_REPLAY_SLOTS 65536
#define OT_REPLAY_PROBE 256

typedef struct ot_replay_t ot_replay_t;

/**
 * Make the table (an anonymous shared mapping, inherited by children forked later) in p; slots
 * is rounded up to a power of two (0: OT_REPLAY_SLOTS).
 */
apr_status_t ot_replay_create(ot_replay_t **pr, apr_uint32_t slots, apr_pool_t *p);

/**
 * Record key (32 bytes) until `until`: APR_SUCCESS when it was not there, APR_EEXIST when a live
 * entry holds it (a replay), APR_ENOSPC when every slot it may take is live (nothing recorded).
 */
apr_status_t ot_replay_once(ot_replay_t *r, const unsigned char *key, apr_time_t until,
                            apr_time_t now);

/** Live entries; counts under the lock. Tests only (the status page does not show it yet). */
apr_uint32_t ot_replay_live(ot_replay_t *r, apr_time_t now);

#endif
