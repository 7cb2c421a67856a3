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

/**
 * Slots of the table by default (OfftokDPoPReplaySize), and at most; a key may take any of
 * OT_REPLAY_PROBE consecutive ones. A slot is OT_REPLAY_SLOT_BYTES of shared memory.
 */
#define OT_REPLAY_SLOTS 1048576
#define OT_REPLAY_SLOTS_MIN 1024
#define OT_REPLAY_SLOTS_MAX (64 * 1048576)
#define OT_REPLAY_PROBE 256
#define OT_REPLAY_SLOT_BYTES 24

typedef struct ot_replay_t ot_replay_t;

/**
 * Make the table (an anonymous shared mapping, inherited by children forked later) in p; slots
 * is rounded up to a power of two, at least OT_REPLAY_SLOTS_MIN and at most OT_REPLAY_SLOTS_MAX
 * (0: OT_REPLAY_SLOTS). The slots are not written until used.
 */
apr_status_t ot_replay_create(ot_replay_t **pr, apr_uint32_t slots, apr_pool_t *p);

/**
 * Record key (32 bytes) until `until`: APR_SUCCESS when it was not there, APR_EEXIST when a live
 * entry holds it (a replay), APR_ENOSPC when every slot it may take is live (nothing recorded),
 * APR_ENOMEM when its home cannot be computed (nothing looked up or recorded).
 */
apr_status_t ot_replay_once(ot_replay_t *r, const unsigned char *key, apr_time_t until,
                            apr_time_t now);

/** The slots a table asked for slots has (0: the default). */
apr_uint32_t ot_replay_round(apr_uint32_t slots);

/**
 * 0 for a table made by a version of the module that homed keys on their first bytes (no seed:
 * those bytes of its header are zero), kept across a graceful restart that loaded this one: its
 * entries cannot be found here, so it must be copied into a new table (ot_replay_copy rehomes).
 */
int ot_replay_keyed(const ot_replay_t *r);

/** The table's slots (a power of two). */
apr_uint32_t ot_replay_slots(const ot_replay_t *r);

/**
 * Record every live entry of from in to (a table of another size, made at a restart), so that
 * a proof seen before the restart stays refused after it. Returns how many found no room.
 */
apr_uint32_t ot_replay_copy(ot_replay_t *to, ot_replay_t *from, apr_time_t now);

/**
 * Keep every live entry by longer, under the lock: a restart made proofs pass for longer than
 * their entries were recorded for. *extended says how many; APR_SUCCESS, or the lock's error.
 */
apr_status_t ot_replay_extend(ot_replay_t *r, apr_interval_time_t by, apr_time_t now,
                              apr_uint32_t *extended);

/** Live entries; counts under the lock. Tests only (the status page does not show it yet). */
apr_uint32_t ot_replay_live(ot_replay_t *r, apr_time_t now);

#endif
