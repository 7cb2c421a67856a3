/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The replay table of DPoP proofs, shared by every process of the server.
 *
 *  +----------------------------------------------------------------------------------------+
 *  | lock (a process-shared robust mutex alone on its cache line)                            |
 *  +----------------------------------------------------------------------------------------+
 *  | nslots, and the secret seed of the home hash                                           |
 *  +----------------------------------------------------------------------------------------+
 *  | slots[N] {first 16 bytes of the key, until (apr_time_t)}   N a power of two            |
 *  +----------------------------------------------------------------------------------------+
 *
 * A key's home is a keyed hash of it (SHA-256 under the table's random seed) modulo N; it may sit
 * in any of the OT_REPLAY_PROBE slots from there (wrapping). The seed is secret so that a client,
 * who picks its proofs' jti and so their keys, cannot aim many proofs at one window and make
 * every other proof whose home lies there fail with 503. A slot whose until has passed is free.
 * A lookup reads every slot of the window, so freeing a slot never hides an entry behind it. One lock for the table: a proof
 * costs one short critical section, far less than checking its signature.
 */
#include <string.h>
#include <apr_general.h>
#include <apr_shm.h>
#include <openssl/evp.h>

#include "ot_replay.h"
#include "ot_dpop_key.h"
#include "ot_lock.h"

#define KEY_BYTES 16
#define SEED_BYTES 16

typedef struct {
    unsigned char key[KEY_BYTES];
    apr_time_t until;
} slot_t;

typedef struct {
    ot_lock_t lock;
    apr_uint32_t nslots;
    unsigned char seed[SEED_BYTES];    /**< random, made with the table: keys homes */
} OT_LINE_ALIGNED table_t;

struct ot_replay_t {
    apr_shm_t *shm;
    table_t *t;
    slot_t *slots;
};

/* The slot is as large as the documentation says. */
typedef char slot_bytes_documented[sizeof(slot_t) == OT_REPLAY_SLOT_BYTES ? 1 : -1];

apr_uint32_t ot_replay_round(apr_uint32_t slots)
{
    apr_uint32_t n = OT_REPLAY_SLOTS_MIN;

    while (n < (slots ? slots : OT_REPLAY_SLOTS) && n < OT_REPLAY_SLOTS_MAX) {
        n <<= 1;
    }
    return n;
}

apr_status_t ot_replay_create(ot_replay_t **pr, apr_uint32_t slots, apr_pool_t *p)
{
    ot_replay_t *r = apr_pcalloc(p, sizeof(*r));
    apr_uint32_t n = ot_replay_round(slots);
    apr_size_t size;
    apr_status_t rv;

    size = sizeof(table_t) + OT_CACHE_LINE + (apr_size_t)n * sizeof(slot_t);
    if ((rv = apr_shm_create(&r->shm, size, NULL, p)) != APR_SUCCESS) {
        return rv;
    }
    r->t = (table_t *)(((apr_uintptr_t)apr_shm_baseaddr_get(r->shm) + OT_CACHE_LINE - 1)
                       & ~(apr_uintptr_t)(OT_CACHE_LINE - 1));
    /*
     * A new anonymous segment is zero (mmap or SysV, as APR makes it): every slot is free. Not
     * writing the slots leaves a large table's pages untouched until proofs use them.
     */
    memset(r->t, 0, sizeof(table_t));
    r->t->nslots = n;
    if ((rv = apr_generate_random_bytes(r->t->seed, SEED_BYTES)) != APR_SUCCESS) {
        return rv;
    }
    r->slots = (slot_t *)(r->t + 1);
    if ((rv = ot_lock_init(&r->t->lock)) != APR_SUCCESS) {
        return rv;
    }
    *pr = r;
    return APR_SUCCESS;
}

/**
 * A writer that died holding the lock wrote at most a slot's key before its until: that slot's
 * until still lies in the past, so it is free as before. Nothing to repair.
 */
static void recover(void *baton)
{
    (void)baton;
}

/**
 * The home slot of key: SHA-256 of the table's seed and the key, modulo the table's size. 0 when
 * the digest cannot be made (out of memory): *ok is then 0, and the caller refuses the proof
 * rather than look it up at a slot it was not stored at.
 */
static apr_uint32_t home_of(const ot_replay_t *r, const unsigned char *key, int *ok)
{
    unsigned char in[SEED_BYTES + KEY_BYTES], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    memcpy(in, r->t->seed, SEED_BYTES);
    memcpy(in + SEED_BYTES, key, KEY_BYTES);
    /* The digest fetched once per process: SHA256() fetches it on every call (OpenSSL 3). */
    *ok = EVP_Digest(in, sizeof(in), md, &mdlen, ot_dpop_md(256), NULL) == 1 && mdlen >= 4;
    if (!*ok) {
        return 0;
    }
    return ((apr_uint32_t)md[0] << 24 | (apr_uint32_t)md[1] << 16 | (apr_uint32_t)md[2] << 8
            | md[3]) & (r->t->nslots - 1);
}

apr_status_t ot_replay_once(ot_replay_t *r, const unsigned char *key, apr_time_t until,
                            apr_time_t now)
{
    apr_uint32_t mask = r->t->nslots - 1, home, i, free_at = 0;
    int have_free = 0, ok;
    apr_status_t rv;

    home = home_of(r, key, &ok);
    if (!ok) {
        return APR_ENOMEM;                /* refused (503), never looked up at a wrong slot */
    }
    if ((rv = ot_lock_take(&r->t->lock, recover, r)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < OT_REPLAY_PROBE && i <= mask; i++) {
        slot_t *s = &r->slots[(home + i) & mask];
        if (s->until > now) {
            if (memcmp(s->key, key, KEY_BYTES) == 0) {
                ot_lock_release(&r->t->lock);
                return APR_EEXIST;
            }
        }
        else if (!have_free) {
            have_free = 1;
            free_at = (home + i) & mask;
        }
    }
    if (have_free) {
        memcpy(r->slots[free_at].key, key, KEY_BYTES);
        r->slots[free_at].until = until;
    }
    ot_lock_release(&r->t->lock);
    return have_free ? APR_SUCCESS : APR_ENOSPC;
}

apr_uint32_t ot_replay_live(ot_replay_t *r, apr_time_t now)
{
    apr_uint32_t i, n = 0;

    if (ot_lock_take(&r->t->lock, recover, r) != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < r->t->nslots; i++) {
        n += r->slots[i].until > now;
    }
    ot_lock_release(&r->t->lock);
    return n;
}

apr_status_t ot_replay_extend(ot_replay_t *r, apr_interval_time_t by, apr_time_t now,
                              apr_uint32_t *extended)
{
    apr_uint32_t i;
    apr_status_t rv;

    *extended = 0;
    if ((rv = ot_lock_take(&r->t->lock, recover, r)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < r->t->nslots; i++) {
        if (r->slots[i].until > now) {
            r->slots[i].until += by;
            (*extended)++;
        }
    }
    ot_lock_release(&r->t->lock);
    return APR_SUCCESS;
}

int ot_replay_keyed(const ot_replay_t *r)
{
    static const unsigned char zero[SEED_BYTES];

    return memcmp(r->t->seed, zero, SEED_BYTES) != 0;
}

apr_uint32_t ot_replay_slots(const ot_replay_t *r)
{
    return r->t->nslots;
}

apr_uint32_t ot_replay_copy(ot_replay_t *to, ot_replay_t *from, apr_time_t now)
{
    unsigned char key[32];
    apr_uint32_t i, lost = 0;
    apr_status_t rv;

    memset(key, 0, sizeof(key));
    if (ot_lock_take(&from->t->lock, recover, from) != APR_SUCCESS) {
        return from->t->nslots;
    }
    for (i = 0; i < from->t->nslots; i++) {
        const slot_t *s = &from->slots[i];
        if (s->until > now) {
            memcpy(key, s->key, KEY_BYTES);
            /* Not recorded (no room, no digest, no lock): lost, as when there is no room. */
            rv = ot_replay_once(to, key, s->until, now);
            lost += rv != APR_SUCCESS && rv != APR_EEXIST;
        }
    }
    ot_lock_release(&from->t->lock);
    return lost;
}
