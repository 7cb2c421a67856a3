/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Revocations pushed by issuers, in the revocation area of the shared segment (ot_shm.c draws
 * it): sub and sid tombstones, not-before policies, and the jtis seen, for replay detection.
 *
 * Everything is keyed by a 64-bit hash of (kind, issuer, value) instead of the strings, so the
 * tables are small and fixed. Two values that collide can only make an answer look revoked
 * when it is not (one more issuer call), never the reverse; a colliding jti would refuse a
 * push as a replay, with odds of about 2^-52 per push at a full table.
 *
 * Writers take the area's one robust mutex and its seqlock. ot_revoke_applies runs on every
 * cache hit, so its common cases take no lock and touch one or two cache lines: no tombstone
 * at all, or an answer fetched after the newest tombstone, or no not-before policy. Otherwise
 * it reads the tombstone index (open addressing) or the small not-before table optimistically.
 *
 * Bounds, and what happens at them:
 * - 4,096 tombstones. When full, the expired ones (past `until`, judged at the new one's `at`)
 *   go. When all are still in force, the oldest is folded into an overflow marker, "every
 *   answer fetched before T is stale", with T its `at`: stricter than the tombstone it
 *   replaces, so a revocation is never lost; it costs one issuer call per cached token.
 *   The marker is never cleared: once the longest TTL has passed, the answers it hits are
 *   past drop_after anyway.
 * - 64 not-before policies (issuer, client). A policy replaces the pair's previous one only
 *   when it is newer: a later order (the Keycloak action's expiration), or the same order and a
 *   later not-before; so a delayed, queued or replayed older policy never lowers a newer one.
 *   A clear (not-before 0) is kept as a policy of 0 with its order, so that an older policy
 *   arriving after it is ignored too; a cleared slot is reused when the table is full. One more
 *   policy than fits sets the marker to its `at`, so every answer cached before it goes back to
 *   the issuer (which applies its own not-before), and answers APR_ENOSPC so the caller can
 *   log it.
 * - 4,096 jtis. When full, an expired one is replaced; when none is, the one expiring first:
 *   its replay is then no longer caught, and a replayed logout only revokes again.
 * - A writer that dies holding the lock may leave a change half made: the lock's next taker
 *   rebuilds the index and sets the marker to now, which drops every cached answer once.
 */
#include <string.h>
#include "ot_revoke.h"
#include "ot_shm_layout.h"

#define OT_REV_TOMBS 4096
#define OT_REV_SLOTS 8192            /* index slots, twice the tombstones, a power of two */
#define OT_REV_NBS 64
#define OT_REV_JTIS 4096
#define OT_REV_NB_MAX (APR_INT64_MAX / APR_USEC_PER_SEC)

enum { H_SUB = OT_REVOKE_SUB, H_SID = OT_REVOKE_SID, H_NOT_BEFORE, H_JTI };

typedef struct {
    apr_uint64_t h;
    apr_time_t at, until;
} rev_tomb_t;

typedef struct {
    apr_uint64_t h;
    apr_int64_t not_before;   /* seconds since the epoch; 0: cleared (the order is kept) */
    apr_int64_t order;        /* the action's expiration: which of two policies is newer */
    apr_time_t at;
} rev_nb_t;

typedef struct {
    apr_uint64_t h;
    apr_time_t until;         /* 0 or past: a free slot */
} rev_jti_t;

typedef struct {
    ot_lock_t lock;
    apr_uint32_t seq;
    apr_uint32_t ntomb, nnb;
    apr_time_t newest;        /* latest `at` of any tombstone */
    apr_time_t stale_before;  /* overflow marker: answers fetched before it are stale */
    rev_tomb_t tomb[OT_REV_TOMBS];
    apr_uint16_t slot[OT_REV_SLOTS]; /* position in tomb[] + 1; 0: empty */
    rev_nb_t nb[OT_REV_NBS];
    rev_jti_t jti[OT_REV_JTIS];
} rev_t;

/** What one optimistic read looks for. */
typedef struct {
    apr_uint64_t h[2];        /* tombstone hashes (0: none), or h[0] the not-before pair */
    apr_time_t fetched, iat;
} rev_query_t;

typedef int (*rev_check_fn)(const rev_t *r, const rev_query_t *q);

static apr_uint64_t rev_hash(int kind, const char *a, const char *b)
{
    unsigned char k = (unsigned char)kind;
    apr_uint64_t h = ot_hash64(OT_HASH_SEED, &k, 1);

    a = a ? a : "";
    h = ot_hash64(h, a, strlen(a) + 1);
    h = ot_hash64(h, b, strlen(b));
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static void set_max(apr_time_t *t, apr_time_t v)
{
    if (v > *t) {
        __atomic_store_n(t, v, __ATOMIC_RELEASE);
    }
}

/* ---- tombstones ---------------------------------------------------------------------------- */

/** 1 and *pos when a tombstone with hash h is indexed; bounded and safe on torn data. */
static int tomb_find(apr_uint32_t *pos, const rev_t *r, apr_uint64_t h)
{
    apr_uint32_t i = (apr_uint32_t)h & (OT_REV_SLOTS - 1), n;
    apr_uint16_t v;

    for (n = 0; n < OT_REV_SLOTS; n++, i = (i + 1) & (OT_REV_SLOTS - 1)) {
        v = __atomic_load_n(&r->slot[i], __ATOMIC_RELAXED);
        if (v == 0) {
            return 0;
        }
        if (v <= OT_REV_TOMBS && r->tomb[v - 1].h == h) {
            *pos = v - 1u;
            return 1;
        }
    }
    return 0;
}

static void tomb_index(rev_t *r, apr_uint32_t pos)
{
    apr_uint32_t i = (apr_uint32_t)r->tomb[pos].h & (OT_REV_SLOTS - 1);

    while (r->slot[i] != 0) {
        i = (i + 1) & (OT_REV_SLOTS - 1);
    }
    r->slot[i] = (apr_uint16_t)(pos + 1);
}

static void tomb_reindex(rev_t *r)
{
    apr_uint32_t pos;

    memset(r->slot, 0, sizeof(r->slot));
    for (pos = 0; pos < r->ntomb; pos++) {
        tomb_index(r, pos);
        set_max(&r->newest, r->tomb[pos].at);
    }
}

/** Room for one more: drop the expired; if none, fold the oldest into the marker. */
static void tomb_make_room(rev_t *r, apr_time_t now)
{
    apr_uint32_t i, kept = 0, oldest = 0;

    for (i = 0; i < r->ntomb; i++) {
        if (r->tomb[i].until > now) {
            r->tomb[kept++] = r->tomb[i];
        }
    }
    if (kept == r->ntomb) {
        for (i = 1; i < kept; i++) {
            oldest = r->tomb[i].at < r->tomb[oldest].at ? i : oldest;
        }
        set_max(&r->stale_before, r->tomb[oldest].at);
        r->tomb[oldest] = r->tomb[--kept];
    }
    __atomic_store_n(&r->ntomb, kept, __ATOMIC_RELAXED);
    tomb_reindex(r);
}

static void tomb_put(rev_t *r, apr_uint64_t h, apr_time_t at, apr_time_t until)
{
    apr_uint32_t pos;

    if (tomb_find(&pos, r, h)) {
        r->tomb[pos].at = at > r->tomb[pos].at ? at : r->tomb[pos].at;
        r->tomb[pos].until = until > r->tomb[pos].until ? until : r->tomb[pos].until;
    }
    else {
        if (r->ntomb == OT_REV_TOMBS) {
            tomb_make_room(r, at);
        }
        pos = r->ntomb;
        r->tomb[pos].h = h;
        r->tomb[pos].at = at;
        r->tomb[pos].until = until;
        tomb_index(r, pos);
        __atomic_store_n(&r->ntomb, pos + 1, __ATOMIC_RELAXED);
    }
    set_max(&r->newest, at);
}

static int tomb_check(const rev_t *r, const rev_query_t *q)
{
    apr_uint32_t pos;
    int i;

    for (i = 0; i < 2; i++) {
        if (q->h[i] != 0 && tomb_find(&pos, r, q->h[i]) && q->fetched < r->tomb[pos].at) {
            return 1;
        }
    }
    return 0;
}

/* ---- not-before and reading ---------------------------------------------------------------- */

static int nb_find(const rev_t *r, apr_uint64_t h)
{
    apr_uint32_t i, n = __atomic_load_n(&r->nnb, __ATOMIC_RELAXED);

    for (i = 0; i < n && i < OT_REV_NBS; i++) {
        if (r->nb[i].h == h) {
            return (int)i;
        }
    }
    return -1;
}

/** The not-before policies of the two (issuer, client) pairs in q->h (0: none). */
static int nb_check(const rev_t *r, const rev_query_t *q)
{
    apr_int64_t nb;
    int i, k;

    for (k = 0; k < 2; k++) {
        if (q->h[k] == 0 || (i = nb_find(r, q->h[k])) < 0) {
            continue;
        }
        nb = r->nb[i].not_before;
        if (nb <= 0 || nb > OT_REV_NB_MAX) {
            continue;       /* cleared, or torn (a torn read is retried by the caller) */
        }
        if (q->iat != 0 ? q->iat < apr_time_from_sec(nb) : q->fetched < r->nb[i].at) {
            return 1;
        }
    }
    return 0;
}

/** The lock's owner died: repair what it may have left half done, and stay on the safe side. */
static void rev_recover(void *baton)
{
    rev_t *r = baton;

    if (!(r->seq & 1)) {
        ot_seq_write_begin(&r->seq);
    }
    r->ntomb = r->ntomb > OT_REV_TOMBS ? OT_REV_TOMBS : r->ntomb;
    r->nnb = r->nnb > OT_REV_NBS ? OT_REV_NBS : r->nnb;
    tomb_reindex(r);
    set_max(&r->stale_before, apr_time_now());
    ot_seq_write_end(&r->seq);
}

/** Run check optimistically, then under the lock; 1 (revoked) when the lock fails. */
static int rev_read(rev_t *r, rev_check_fn check, const rev_query_t *q)
{
    apr_uint32_t seq;
    int i, res;

    for (i = 0; i < OT_SEQ_TRIES; i++) {
        seq = ot_seq_read_begin(&r->seq);
        res = check(r, q);
        if (ot_seq_read_valid(&r->seq, seq)) {
            return res;
        }
    }
    if (ot_lock_take(&r->lock, rev_recover, r) != APR_SUCCESS) {
        return 1;
    }
    res = check(r, q);
    ot_lock_release(&r->lock);
    return res;
}

static apr_status_t rev_lock(rev_t *r)
{
    apr_status_t rv = ot_lock_take(&r->lock, rev_recover, r);

    if (rv == APR_SUCCESS) {
        ot_seq_write_begin(&r->seq);
    }
    return rv;
}

static void rev_unlock(rev_t *r)
{
    ot_seq_write_end(&r->seq);
    ot_lock_release(&r->lock);
}

/* ---- the interface ------------------------------------------------------------------------- */

apr_size_t ot_revoke_area_size(void)
{
    return sizeof(rev_t);
}

apr_status_t ot_revoke_init(ot_shm_t *s)
{
    rev_t *r = s->rev;

    memset(r, 0, sizeof(*r));
    return ot_lock_init(&r->lock);
}

apr_status_t ot_revoke_add(ot_shm_t *s, ot_revoke_kind_t kind, const char *iss,
                           const char *value, apr_time_t at, apr_time_t until)
{
    rev_t *r = s->rev;
    apr_status_t rv;

    if ((kind != OT_REVOKE_SUB && kind != OT_REVOKE_SID) || value == NULL || *value == '\0') {
        return APR_EINVAL;
    }
    rv = rev_lock(r);
    if (rv == APR_SUCCESS) {
        tomb_put(r, rev_hash(kind, iss, value), at, until);
        rev_unlock(r);
    }
    return rv;
}

apr_status_t ot_revoke_stale_before(ot_shm_t *s, apr_time_t t)
{
    rev_t *r = s->rev;
    apr_status_t rv = rev_lock(r);

    if (rv == APR_SUCCESS) {
        set_max(&r->stale_before, t);
        rev_unlock(r);
    }
    return rv;
}

/** 1 when (order, not_before) is newer than what slot i holds. */
static int nb_newer(const rev_nb_t *old, apr_int64_t not_before, apr_int64_t order)
{
    return order > old->order || (order == old->order && not_before > old->not_before);
}

/** A slot for a new pair: a free one, else the cleared one of the lowest order; -1 if none. */
static int nb_slot(rev_t *r)
{
    apr_uint32_t i;
    int pick = -1;

    if (r->nnb < OT_REV_NBS) {
        i = r->nnb;
        r->nb[i].h = 0;
        __atomic_store_n(&r->nnb, r->nnb + 1, __ATOMIC_RELAXED);
        return (int)i;
    }
    for (i = 0; i < r->nnb; i++) {
        if (r->nb[i].not_before == 0 && (pick < 0 || r->nb[i].order < r->nb[pick].order)) {
            pick = (int)i;
        }
    }
    return pick;
}

apr_status_t ot_revoke_set_not_before(ot_shm_t *s, const char *iss, const char *client,
                                      apr_int64_t not_before, apr_int64_t order, apr_time_t at)
{
    apr_uint64_t h = rev_hash(H_NOT_BEFORE, iss, client ? client : "");
    rev_t *r = s->rev;
    apr_status_t rv;
    int i;

    if (not_before < 0 || not_before > OT_REV_NB_MAX || order < 0) {
        return APR_EINVAL;
    }
    rv = rev_lock(r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    i = nb_find(r, h);
    if (i >= 0 && !nb_newer(&r->nb[i], not_before, order)) {
        rv = APR_EEXIST;
        i = -1;
    }
    else if (i < 0 && (i = nb_slot(r)) < 0 && not_before != 0) {
        set_max(&r->stale_before, at);
        rv = APR_ENOSPC;
    }
    if (i >= 0) {
        r->nb[i].h = h;
        r->nb[i].not_before = not_before;
        r->nb[i].order = order;
        r->nb[i].at = at;
    }
    rev_unlock(r);
    return rv;
}

int ot_revoke_tombstoned(ot_shm_t *s, const char *iss, const ot_cache_entry_t *e)
{
    rev_t *r = s->rev;
    rev_query_t q;

    if (e->fetched < __atomic_load_n(&r->stale_before, __ATOMIC_ACQUIRE)) {
        return 1;
    }
    if (__atomic_load_n(&r->ntomb, __ATOMIC_ACQUIRE) == 0
        || e->fetched >= __atomic_load_n(&r->newest, __ATOMIC_ACQUIRE)
        || (e->sub == NULL && e->sid == NULL)) {
        return 0;
    }
    q.h[0] = e->sub ? rev_hash(H_SUB, iss, e->sub) : 0;
    q.h[1] = e->sid ? rev_hash(H_SID, iss, e->sid) : 0;
    q.fetched = e->fetched;
    q.iat = e->iat;
    return rev_read(r, tomb_check, &q);
}

int ot_revoke_applies(ot_shm_t *s, const char *iss, const char *client,
                      const ot_cache_entry_t *e)
{
    rev_t *r = s->rev;
    rev_query_t q;

    iss = iss ? iss : e->iss;
    if (ot_revoke_tombstoned(s, iss, e)) {
        return 1;
    }
    if (__atomic_load_n(&r->nnb, __ATOMIC_ACQUIRE) == 0) {
        return 0;
    }
    /* The location's own client's policy covers every answer; another client's (a
     * k_push_not_before for a client in OfftokLogoutAudience) the tokens issued to it. */
    q.h[0] = rev_hash(H_NOT_BEFORE, iss, client ? client : "");
    q.h[1] = e->azp && (client == NULL || strcmp(e->azp, client) != 0)
        ? rev_hash(H_NOT_BEFORE, iss, e->azp) : 0;
    q.fetched = e->fetched;
    q.iat = e->iat;
    return rev_read(r, nb_check, &q);
}

/** The jti table's slot holding h in force at now; -1 when none. Under the lock. */
static int jti_find(const rev_t *r, apr_uint64_t h, apr_time_t now)
{
    int i;

    for (i = 0; i < OT_REV_JTIS; i++) {
        if (r->jti[i].until > now && r->jti[i].h == h) {
            return i;
        }
    }
    return -1;
}

apr_status_t ot_revoke_once(ot_shm_t *s, const char *iss, const char *jti, apr_time_t until,
                            apr_time_t now, ot_revoke_apply_fn apply, void *baton)
{
    rev_t *r = s->rev;
    apr_status_t rv;
    int found;

    if (jti == NULL || *jti == '\0') {
        return APR_EINVAL;
    }
    if ((rv = ot_lock_take(&r->lock, rev_recover, r)) != APR_SUCCESS) {
        return rv;
    }
    found = jti_find(r, rev_hash(H_JTI, iss, jti), now) >= 0;
    ot_lock_release(&r->lock);
    if (found) {
        return APR_EEXIST;
    }
    if ((rv = apply(baton)) != APR_SUCCESS) {
        return rv;
    }
    /* Applied: a failure to remember (or a copy remembered meanwhile) only lets a replay
     * revoke once more. */
    ot_revoke_seen_jti(s, iss, jti, until, now);
    return APR_SUCCESS;
}

apr_status_t ot_revoke_seen_jti(ot_shm_t *s, const char *iss, const char *jti, apr_time_t until,
                                apr_time_t now)
{
    apr_uint64_t h;
    rev_t *r = s->rev;
    apr_uint32_t i, pick = 0;
    apr_status_t rv;

    if (jti == NULL || *jti == '\0') {
        return APR_EINVAL;
    }
    h = rev_hash(H_JTI, iss, jti);
    rv = ot_lock_take(&r->lock, rev_recover, r);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (jti_find(r, h, now) >= 0) {
        rv = APR_EEXIST;
    }
    else {
        for (i = 1; i < OT_REV_JTIS; i++) {
            if (r->jti[i].until < r->jti[pick].until) {
                pick = i;   /* a free or expired slot, else the one expiring first */
            }
        }
        r->jti[pick].h = h;
        r->jti[pick].until = until;
    }
    ot_lock_release(&r->lock);
    return rv;
}

apr_time_t ot_revoke_stale_marker(ot_shm_t *s)
{
    return __atomic_load_n(&((rev_t *)s->rev)->stale_before, __ATOMIC_ACQUIRE);
}
