/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_shm.h
 * @brief The shared segment: one anonymous segment (ot_shm_t) that holds a header (magic,
 * layout version, size), the server-wide counters (ot_stats_t), the revocation table
 * (ot_revoke.h), the issuer-call budgets (ot_rate.h) and the answer cache (ot_cache.h).
 *
 * The segment is made once in the httpd parent and survives graceful restarts: the glue keeps it
 * in a pool with no parent, remembered in ap_retained_data, and reuses it while ot_shm_reusable()
 * says its layout and size match the new configuration. Every lock lives inside the segment.
 * What is inside is ot_shm_layout.h's; the layout is drawn at the top of ot_shm.c.
 */
#ifndef OT_SHM_H
#define OT_SHM_H

#include <apr_pools.h>

struct ot_stats_t;
typedef struct ot_shm_t ot_shm_t;

/**
 * Make a new segment able to hold about cache_bytes of answers, from anonymous shared memory
 * allocated with p (give a pool with no parent to let it outlive a configuration generation).
 */
apr_status_t ot_shm_create(ot_shm_t **ps, apr_size_t cache_bytes, apr_pool_t *p);

/** 1 when s was made by this code's layout version for the same cache_bytes. */
int ot_shm_reusable(const ot_shm_t *s, apr_size_t cache_bytes);

/** The server-wide counters that live in the segment. */
struct ot_stats_t *ot_shm_stats(ot_shm_t *s);

/** The issuer-call budgets in the segment, for ot_rate.h's functions. */
void *ot_shm_rate(ot_shm_t *s);

#endif
