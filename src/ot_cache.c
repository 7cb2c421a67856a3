/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The answer cache inside the shared segment (layout drawn at the top of ot_shm.c).
 *
 * A key's hash picks a stripe (top bits) and a bucket in it (low bits); a bucket chains records
 * through the hnext field of their first chunk. A record is a chain of 128-byte chunks of the
 * stripe, so any mix of answer sizes fits without a general allocator and wastes under a chunk.
 *
 * Writers hold the stripe's robust mutex and keep its seqlock counter odd while they change it.
 * Readers take no lock: they walk the bucket, copy the record into their pool and keep the copy
 * only when the counter was even and unchanged around it; every index they follow is bounds
 * checked, so a torn read can fail but never stray. After OT_SEQ_TRIES failures they lock.
 *
 * This file holds the stripes (views, reset, lock recovery), the readers, the interface (which
 * stripe, the lock and seqlock, the counters) and the cache key. Writing a record into a stripe,
 * dropping one and eviction (expired first, then CLOCK) are ot_cache_store.c's; ot_cache_int.h
 * is what the two share.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "ot_cache_int.h"
#include "ot_revoke.h"
#include "ot_shm_layout.h"
#include "ot_stats.h"
#include "ot_util.h"

/* What a typical Keycloak answer keeps, for the capacity the status page shows. */
#define OT_TYPICAL_IDS (65 + 37 + 37 + 16) /* iss, sub, sid, azp, with their NULs */
#define OT_TYPICAL_CLAIMS 600

/* ---- geometry and stripes ------------------------------------------------------------------ */

static void stripe_view(stripe_t *v, const ot_shm_t *s, apr_uint32_t i)
{
    const ot_geom_t *g = s->g;
    char *b = (char *)ot_shm_stripe(s, i);

    v->h = (ot_stripe_t *)b;
    v->buckets = (apr_uint32_t *)(b + g->off_buckets);
    v->next = (apr_uint32_t *)(b + g->off_next);
    v->ref = (unsigned char *)(b + g->off_ref);
    v->kind = (unsigned char *)(b + g->off_kind);
    v->chunks = (unsigned char *)(b + g->off_chunks);
    v->nchunks = g->nchunks;
    v->nbuckets = g->nbuckets;
    v->max_record = g->max_record;
}

/** Empty the stripe: every chunk free, in order, every bucket empty. */
static void stripe_reset(stripe_t *v)
{
    apr_uint32_t c;

    for (c = 0; c < v->nbuckets; c++) {
        v->buckets[c] = OT_NIL;
    }
    for (c = 0; c < v->nchunks; c++) {
        v->next[c] = c + 1 < v->nchunks ? c + 1 : OT_NIL;
        v->kind[c] = K_FREE;
        v->ref[c] = 0;
    }
    v->h->free_head = v->nchunks ? 0 : OT_NIL;
    v->h->free_count = v->nchunks;
    v->h->hand = 0;
    __atomic_store_n(&v->h->entries, 0, __ATOMIC_RELAXED);
    v->h->next_expiry = APR_INT64_MAX;
}

/** Lock recovery: the dead writer may have left anything half done, so wipe the stripe. */
static void stripe_recover(void *baton)
{
    stripe_t *v = baton;

    if (!(v->h->seq & 1)) {
        ot_seq_write_begin(&v->h->seq);
    }
    stripe_reset(v);
    ot_seq_write_end(&v->h->seq);
}

apr_status_t ot_cache_init(ot_shm_t *s)
{
    stripe_t v;
    apr_uint32_t i;
    apr_status_t rv;

    for (i = 0; i < s->g->nstripes; i++) {
        stripe_view(&v, s, i);
        rv = ot_lock_init(&v.h->lock);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        v.h->seq = 0;
        v.h->evictions = 0;
        stripe_reset(&v);
    }
    return APR_SUCCESS;
}

/* ---- records in a stripe ------------------------------------------------------------------- */

apr_uint32_t ot_stripe_find(apr_uint32_t *prev, const stripe_t *v, const unsigned char *key,
                            apr_uint64_t kh)
{
    apr_uint32_t c, steps = 0;

    *prev = OT_NIL;
    c = __atomic_load_n(&v->buckets[kh & (v->nbuckets - 1)], __ATOMIC_RELAXED);
    while (c < v->nchunks && steps++ < v->nchunks) {
        if (memcmp(chunk_at(v, c), key, OT_KEY_LEN) == 0) {
            return c;
        }
        *prev = c;
        c = rec_u32(v, c, REC_HNEXT);
    }
    return OT_NIL;
}

/** Copy the blob of the record at c into a buffer from p; APR_EAGAIN when it looks torn. */
static apr_status_t stripe_copy(char **pbuf, apr_size_t *plen, const stripe_t *v,
                                apr_uint32_t c, apr_pool_t *p)
{
    apr_uint32_t blen = rec_u32(v, c, REC_BLEN);
    apr_size_t done = 0, off = REC_PREFIX;
    char *buf;

    if (blen < OT_BLOB_FIXED || blen > v->max_record - REC_PREFIX) {
        return APR_EAGAIN;
    }
    buf = apr_palloc(p, blen);
    while (done < blen) {
        apr_size_t step = OT_CHUNK_SIZE - off;
        if (c >= v->nchunks) {
            return APR_EAGAIN;
        }
        step = step < blen - done ? step : blen - done;
        memcpy(buf + done, chunk_at(v, c) + off, step);
        done += step;
        off = 0;
        c = __atomic_load_n(&v->next[c], __ATOMIC_RELAXED);
    }
    *pbuf = buf;
    *plen = blen;
    return APR_SUCCESS;
}

/**
 * One read of key under the seqlock (or under the lock, where it cannot fail to validate).
 * APR_EAGAIN: a writer interfered, try again.
 */
static apr_status_t stripe_read(ot_cache_entry_t *e, apr_uint32_t *pc, const stripe_t *v,
                                const unsigned char *key, apr_uint64_t kh, apr_pool_t *p)
{
    apr_uint32_t seq = ot_seq_read_begin(&v->h->seq), prev;
    char *buf = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (seq & 1) {
        return APR_EAGAIN;
    }
    *pc = ot_stripe_find(&prev, v, key, kh);
    rv = *pc == OT_NIL ? APR_NOTFOUND : stripe_copy(&buf, &len, v, *pc, p);
    if (!ot_seq_read_valid(&v->h->seq, seq)) {
        return APR_EAGAIN;
    }
    if (rv == APR_SUCCESS) {
        rv = ot_blob_parse(e, buf, len);
    }
    return rv == APR_SUCCESS || rv == APR_NOTFOUND ? rv : APR_EGENERAL;
}

/* ---- the interface ------------------------------------------------------------------------- */

static void count(ot_shm_t *s, int hit)
{
    int cpu = sched_getcpu();
    unsigned i = cpu < 0 ? 0 : (unsigned)cpu % OT_SHARDS;

    if (hit) {
        OT_STAT_ADD(s->counters->shard[i].hits, 1);
    }
    else {
        OT_STAT_ADD(s->counters->shard[i].misses, 1);
    }
}

apr_status_t ot_cache_get(ot_shm_t *s, const unsigned char *key, apr_time_t now,
                          ot_cache_entry_t *e, apr_pool_t *p)
{
    apr_uint64_t kh = ot_key_hash(key);
    apr_status_t rv = APR_EAGAIN;
    apr_uint32_t c = OT_NIL;
    stripe_t v;
    int i;

    stripe_view(&v, s, ot_key_stripe(s, key));
    for (i = 0; i < OT_SEQ_TRIES && rv == APR_EAGAIN; i++) {
        rv = stripe_read(e, &c, &v, key, kh, p);
    }
    if (rv == APR_EAGAIN && ot_lock_take(&v.h->lock, stripe_recover, &v) == APR_SUCCESS) {
        rv = stripe_read(e, &c, &v, key, kh, p);
        ot_lock_release(&v.h->lock);
    }
    if (rv == APR_SUCCESS && e->drop_after <= now) {
        rv = APR_NOTFOUND;
    }
    if (rv == APR_SUCCESS && __atomic_load_n(&v.ref[c], __ATOMIC_RELAXED) != REF_HIT) {
        __atomic_store_n(&v.ref[c], REF_HIT, __ATOMIC_RELAXED);
    }
    count(s, rv == APR_SUCCESS);
    return rv == APR_SUCCESS ? APR_SUCCESS : APR_NOTFOUND;
}

apr_status_t ot_cache_put(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                          apr_time_t now)
{
    apr_uint64_t kh = ot_key_hash(key);
    apr_size_t lens[OT_BLOB_STRS], blen = 0;
    apr_status_t rv = ot_blob_measure(lens, &blen, e);
    stripe_t v;

    if (rv == APR_SUCCESS && blen > s->g->max_record - REC_PREFIX) {
        rv = APR_ENOSPC;
    }
    if (rv == APR_ENOSPC) {
        OT_STAT_ADD(s->counters->too_big, 1);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (e->active && ot_revoke_tombstoned(s, e->iss, e)) {
        return APR_EINCOMPLETE;
    }
    stripe_view(&v, s, ot_key_stripe(s, key));
    rv = ot_lock_take(&v.h->lock, stripe_recover, &v);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    ot_seq_write_begin(&v.h->seq);
    ot_stripe_store(&v, key, kh, e, lens, blen, now);
    ot_seq_write_end(&v.h->seq);
    ot_lock_release(&v.h->lock);
    return APR_SUCCESS;
}

void ot_cache_remove(ot_shm_t *s, const unsigned char *key)
{
    apr_uint64_t kh = ot_key_hash(key);
    apr_uint32_t c, prev;
    stripe_t v;

    stripe_view(&v, s, ot_key_stripe(s, key));
    if (ot_lock_take(&v.h->lock, stripe_recover, &v) != APR_SUCCESS) {
        return;
    }
    c = ot_stripe_find(&prev, &v, key, kh);
    if (c != OT_NIL) {
        ot_seq_write_begin(&v.h->seq);
        ot_stripe_drop(&v, c, prev, kh);
        ot_seq_write_end(&v.h->seq);
    }
    ot_lock_release(&v.h->lock);
}

apr_status_t ot_cache_claim(ot_shm_t *s, const unsigned char *key, const ot_cache_entry_t *e,
                            apr_time_t now, apr_time_t since, apr_time_t *held, apr_pool_t *p)
{
    apr_uint64_t kh = ot_key_hash(key);
    apr_size_t lens[OT_BLOB_STRS], blen = 0;
    apr_status_t rv = ot_blob_measure(lens, &blen, e);
    ot_cache_entry_t old;
    apr_uint32_t c = OT_NIL;
    stripe_t v;

    if (rv != APR_SUCCESS || blen > s->g->max_record - REC_PREFIX) {
        return rv != APR_SUCCESS ? rv : APR_ENOSPC;
    }
    stripe_view(&v, s, ot_key_stripe(s, key));
    rv = ot_lock_take(&v.h->lock, stripe_recover, &v);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* Under the lock the read validates; a live claim made since `since` stands. */
    if (stripe_read(&old, &c, &v, key, kh, p) == APR_SUCCESS && old.drop_after > now
        && old.fetched >= since) {
        *held = old.fetched;
        rv = APR_EEXIST;
    }
    else {
        ot_seq_write_begin(&v.h->seq);
        ot_stripe_store(&v, key, kh, e, lens, blen, now);
        ot_seq_write_end(&v.h->seq);
    }
    ot_lock_release(&v.h->lock);
    return rv;
}

apr_size_t ot_cache_entry_footprint(apr_size_t claims_len)
{
    apr_size_t rec = OT_REC_PREFIX + OT_BLOB_FIXED + OT_TYPICAL_IDS + claims_len + 1;

    return (apr_size_t)chunks_for(rec) * (OT_CHUNK_SIZE + OT_CHUNK_OVERHEAD);
}

void ot_cache_info(ot_shm_t *s, ot_cache_info_t *info)
{
    apr_size_t typical = ot_cache_entry_footprint(OT_TYPICAL_CLAIMS)
                         / (OT_CHUNK_SIZE + OT_CHUNK_OVERHEAD);
    apr_uint32_t i;

    memset(info, 0, sizeof(*info));
    for (i = 0; i < s->g->nstripes; i++) {
        ot_stripe_t *st = ot_shm_stripe(s, i);
        info->entries += __atomic_load_n(&st->entries, __ATOMIC_RELAXED);
        info->evictions += __atomic_load_n(&st->evictions, __ATOMIC_RELAXED);
    }
    for (i = 0; i < OT_SHARDS; i++) {
        info->hits += OT_STAT_GET(s->counters->shard[i].hits);
        info->misses += OT_STAT_GET(s->counters->shard[i].misses);
    }
    info->capacity = (apr_uint64_t)s->g->nstripes * (s->g->nchunks / typical);
    info->too_big = OT_STAT_GET(s->counters->too_big);
}

/* ---- the key ------------------------------------------------------------------------------ */

/** SHA-256, fetched once: OpenSSL 3 otherwise looks the algorithm up on every EVP_sha256() use. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* Its first byte is hashed; the rest makes it a text that no merging of constants can give to
 * another piece (an empty string piece is the empty string, not a NUL). */
const char ot_key_nul[] = "\0ot_key_nul";

/** One input, its pieces' length first (4 bytes, big-endian), then the pieces: 1 when hashed. */
static int sha_part(EVP_MD_CTX *ctx, const ot_key_part_t *part)
{
    unsigned char len[4];
    apr_size_t n[OT_KEY_PIECES], total = 0;
    int i, ok;

    for (i = 0; i < OT_KEY_PIECES; i++) {
        n[i] = part->piece[i] == ot_key_nul ? 1 : part->piece[i] ? strlen(part->piece[i]) : 0;
        total += n[i];
    }
    ot_be_put(len, total, 4);
    ok = EVP_DigestUpdate(ctx, len, sizeof(len));
    for (i = 0; i < OT_KEY_PIECES; i++) {
        ok = ok && (n[i] == 0 || EVP_DigestUpdate(ctx, part->piece[i], n[i]));
    }
    return ok;
}

void ot_cache_key_parts(unsigned char out[OT_KEY_LEN], const ot_key_part_t parts[OT_KEY_PARTS])
{
    EVP_MD_CTX *ctx = ot_thread_md_ctx();
    int i, ok;

    pthread_once(&sha256_once, sha256_fetch);
    ok = ctx != NULL && EVP_DigestInit_ex(ctx, sha256_md ? sha256_md : EVP_sha256(), NULL);

    for (i = 0; i < OT_KEY_PARTS; i++) {
        ok = ok && sha_part(ctx, &parts[i]);
    }
    if (ok && EVP_DigestFinal_ex(ctx, out, NULL)) {
        return;
    }
    /*
     * No digest (out of memory): a key no other request has, so that nothing is found under it
     * and nothing stored under it is ever found. Never a fixed or left-over one, which another
     * token would share.
     */
    if (RAND_bytes(out, OT_KEY_LEN) != 1) {
        abort();
    }
}

void ot_cache_key(unsigned char out[OT_KEY_LEN], const char *url, const char *client_id,
                  const char *hint, const char *how, const char *token)
{
    ot_key_part_t parts[OT_KEY_PARTS] = {
        { { url } }, { { client_id } }, { { hint } }, { { how } }, { { token } }
    };

    ot_cache_key_parts(out, parts);
}

void ot_cache_key_how(ot_key_part_t *how, char buf[OT_KEY_HOW_BUF], int verify,
                      const char *ca_file, const ot_key_signed_t *sig)
{
    int i = 0;

    memset(how, 0, sizeof(*how));
    how->piece[i++] = verify ? "verify" : "noverify";
    if (sig) {
        apr_snprintf(buf, OT_KEY_HOW_BUF, " signed %d ", sig->clock_skew);
        how->piece[i++] = buf;
        how->piece[i++] = sig->issuer;
        how->piece[i++] = ot_key_nul;
        how->piece[i++] = sig->jwks_url;
        how->piece[i++] = ot_key_nul;
    }
    if (ca_file) {
        how->piece[i++] = " ca=";
        how->piece[i] = ca_file;
    }
}
