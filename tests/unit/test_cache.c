/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The shared-memory cache and revocation tables (ot_shm.c, ot_cache.c, ot_revoke.c). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <apr_strings.h>
#include "ot_unit.h"
#include "ot_cache.h"
#include "ot_revoke.h"
#include "ot_shm.h"
#include "ot_shm_layout.h"

#define ISS "https://sso.example.org/realms/test"
#define T0 apr_time_from_sec(1700000000)
#define SMALL (1024 * 1024)

static void make_key(unsigned char *key, apr_uint64_t i)
{
    int b;

    for (b = 0; b < OT_KEY_LEN; b++) {
        apr_uint64_t z = (i * 32 + (apr_uint64_t)b + 1) * 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        key[b] = (unsigned char)((z ^ (z >> 31)) >> 24);
    }
}

/** The n-th key (from *next on) that lands in stripe st. */
static void key_in_stripe(unsigned char *key, ot_shm_t *s, apr_uint32_t st, apr_uint64_t *next)
{
    do {
        make_key(key, (*next)++);
    } while (ot_key_stripe(s, key) != st);
}

static char *filled(apr_size_t len, unsigned seed, apr_pool_t *p)
{
    char *c = apr_palloc(p, len + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        c[i] = (char)('a' + (seed * 31 + i * 7) % 26);
    }
    c[len] = '\0';
    return c;
}

static ot_cache_entry_t entry(const char *sub, const char *sid, apr_time_t fetched,
                              apr_time_t drop_after, apr_size_t claims_len, apr_pool_t *p)
{
    ot_cache_entry_t e;

    memset(&e, 0, sizeof(e));
    e.fetched = fetched;
    e.drop_after = drop_after;
    e.exp = drop_after + apr_time_from_sec(3600);
    e.iat = fetched - apr_time_from_sec(5);
    e.active = 1;
    e.iss = ISS;
    e.sub = sub;
    e.sid = sid;
    e.azp = "orders-web";
    e.claims = filled(claims_len, (unsigned)claims_len, p);
    e.claims_len = claims_len;
    return e;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_entry(const ot_cache_entry_t *a, const ot_cache_entry_t *b)
{
    return a->fetched == b->fetched && a->drop_after == b->drop_after && a->exp == b->exp
           && a->iat == b->iat && a->active == b->active && a->offline == b->offline
           && same_str(a->iss, b->iss) && same_str(a->sub, b->sub) && same_str(a->sid, b->sid)
           && same_str(a->azp, b->azp) && a->claims_len == b->claims_len
           && (a->claims == b->claims || (a->claims && b->claims
                                          && memcmp(a->claims, b->claims, a->claims_len) == 0));
}

static ot_cache_info_t info_of(ot_shm_t *s)
{
    ot_cache_info_t info;

    ot_cache_info(s, &info);
    return info;
}

/** How many of keys[from], keys[from + step], ... below n are found at now. */
static int present(ot_shm_t *s, unsigned char (*keys)[OT_KEY_LEN], int from, int n, int step,
                   apr_time_t now)
{
    ot_cache_entry_t got;
    int i, found = 0;

    for (i = from; i < n; i += step) {
        found += ot_cache_get(s, keys[i], now, &got, ot_test_pool) == APR_SUCCESS;
    }
    return found;
}

/** Whether a revocation applies to an answer of ISS for client "app" with these fields. */
static int revoked(ot_shm_t *s, const char *sub, const char *sid, apr_time_t fetched)
{
    ot_cache_entry_t e = entry(sub, sid, fetched, fetched + apr_time_from_sec(60), 1, ot_test_pool);

    return ot_revoke_applies(s, ISS, "app", &e);
}

static ot_shm_t *new_cache(apr_size_t size)
{
    ot_shm_t *s = NULL;

    ck_assert_int_eq(ot_shm_create(&s, size, ot_test_pool), APR_SUCCESS);
    return s;
}

START_TEST(test_create_reuse)
{
    ot_shm_t *s = new_cache(16 * 1024 * 1024);

    ck_assert(ot_shm_reusable(s, 16 * 1024 * 1024));
    ck_assert(!ot_shm_reusable(s, 32 * 1024 * 1024));
    ck_assert(!ot_shm_reusable(s, 16 * 1024 * 1024 + 1));
    ck_assert(!ot_shm_reusable(NULL, 16 * 1024 * 1024));
    ck_assert_ptr_eq(ot_shm_stats(s), s->stats);
    ck_assert_uint_eq(info_of(s).entries, 0);
    ck_assert_uint_gt(info_of(s).capacity, 16000);
    ck_assert_uint_eq(s->g->nstripes, 64);
}
END_TEST

START_TEST(test_insert_hit)
{
    ot_shm_t *s = new_cache(SMALL);
    ot_cache_entry_t e = entry("alice", "sess-1", T0, T0 + apr_time_from_sec(60), 600,
                               ot_test_pool), got;
    unsigned char key[OT_KEY_LEN], other[OT_KEY_LEN];

    make_key(key, 1);
    make_key(other, 2);
    e.offline = 1;
    e.sid = NULL;
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, T0 + 1, &got, ot_test_pool), APR_SUCCESS);
    ck_assert(same_entry(&e, &got));
    ck_assert_ptr_null(got.sid);
    ck_assert_uint_eq(strlen(got.claims), 600);
    ck_assert_int_eq(ot_cache_get(s, other, T0 + 1, &got, ot_test_pool), APR_NOTFOUND);
    ck_assert_uint_eq(info_of(s).hits, 1);
    ck_assert_uint_eq(info_of(s).misses, 1);
    ck_assert_uint_eq(info_of(s).entries, 1);
}
END_TEST

START_TEST(test_expiry_replace_remove)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t drop = T0 + apr_time_from_sec(10);
    ot_cache_entry_t e = entry("bob", "s", T0, drop, 100, ot_test_pool), got;
    ot_cache_entry_t newer = entry("bob", "s2", T0 + 5, drop + 5, 200, ot_test_pool);
    unsigned char key[OT_KEY_LEN];

    make_key(key, 7);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, drop - 1, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, drop, &got, ot_test_pool), APR_NOTFOUND);
    /* a fresher answer replaces; an older one does not */
    ck_assert_int_eq(ot_cache_put(s, key, &newer, T0 + 5), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0 + 6), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, T0 + 6, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(got.sid, "s2");
    ck_assert_uint_eq(info_of(s).entries, 1);
    ot_cache_remove(s, key);
    ck_assert_int_eq(ot_cache_get(s, key, T0 + 6, &got, ot_test_pool), APR_NOTFOUND);
    /* an answer already past drop_after is not stored, but replaces what was there */
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    newer.drop_after = T0 + 5;
    ck_assert_int_eq(ot_cache_put(s, key, &newer, T0 + 5), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, T0 + 1, &got, ot_test_pool), APR_NOTFOUND);
    ck_assert_uint_eq(info_of(s).entries, 0);
}
END_TEST

/** Fill stripe 0 with entries of one size; keys[i] from *next on; returns how many fit. */
static int fill_stripe(ot_shm_t *s, unsigned char (*keys)[OT_KEY_LEN], int max,
                       apr_uint64_t *next, apr_time_t short_drop)
{
    ot_stripe_t *st = ot_shm_stripe(s, 0);
    ot_cache_entry_t e = entry("u", "s", T0, short_drop, 300, ot_test_pool);
    apr_uint32_t before = st->free_count, per;
    int i, n;

    key_in_stripe(keys[0], s, 0, next);
    ck_assert_int_eq(ot_cache_put(s, keys[0], &e, T0), APR_SUCCESS);
    per = before - st->free_count;
    n = (int)(s->g->nchunks / per);
    ck_assert_int_le(n, max);
    for (i = 1; i < n; i++) {
        e.drop_after = i % 2 ? T0 + apr_time_from_sec(1000) : short_drop;
        key_in_stripe(keys[i], s, 0, next);
        ck_assert_int_eq(ot_cache_put(s, keys[i], &e, T0), APR_SUCCESS);
    }
    ck_assert_uint_lt(st->free_count, per);
    ck_assert_uint_eq(st->entries, (apr_uint32_t)n);
    return n;
}

START_TEST(test_evict_expired_first)
{
    ot_shm_t *s = new_cache(SMALL);
    static unsigned char keys[1024][OT_KEY_LEN], fresh[1024][OT_KEY_LEN];
    apr_time_t t1 = T0 + apr_time_from_sec(20);
    ot_cache_entry_t e = entry("u", "s", t1, t1 + apr_time_from_sec(1000), 300, ot_test_pool);
    apr_uint64_t next = 0;
    int n = fill_stripe(s, keys, 1024, &next, T0 + apr_time_from_sec(10)), i;

    for (i = 0; i < (n + 1) / 2; i++) {
        key_in_stripe(fresh[i], s, 0, &next);
        ck_assert_int_eq(ot_cache_put(s, fresh[i], &e, t1), APR_SUCCESS);
    }
    ck_assert_uint_eq(info_of(s).evictions, 0);
    ck_assert_int_eq(present(s, keys, 1, n, 2, t1), n / 2);          /* the long-lived */
    ck_assert_int_eq(present(s, fresh, 0, (n + 1) / 2, 1, t1), (n + 1) / 2);
}
END_TEST

START_TEST(test_evict_lru)
{
    ot_shm_t *s = new_cache(SMALL);
    static unsigned char keys[1024][OT_KEY_LEN], fresh[1024][OT_KEY_LEN];
    ot_cache_entry_t e = entry("u", "s", T0, T0 + apr_time_from_sec(1000), 300, ot_test_pool);
    apr_uint64_t next = 0;
    int n = fill_stripe(s, keys, 1024, &next, T0 + apr_time_from_sec(1000)), i;

    ck_assert_int_eq(present(s, keys, 0, n, 2, T0), (n + 1) / 2);  /* the even ones are used */
    for (i = 0; i < n / 2; i++) {
        key_in_stripe(fresh[i], s, 0, &next);
        ck_assert_int_eq(ot_cache_put(s, fresh[i], &e, T0), APR_SUCCESS);
    }
    ck_assert_uint_eq(info_of(s).evictions, (apr_uint64_t)(n / 2));
    ck_assert_int_eq(present(s, keys, 0, n, 2, T0), (n + 1) / 2);
    ck_assert_int_eq(present(s, keys, 1, n, 2, T0), 0);
}
END_TEST

START_TEST(test_full_cache_never_fails)
{
    ot_shm_t *s = new_cache(SMALL);
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e = entry("u", "s", T0, T0 + apr_time_from_sec(1000), 900, ot_test_pool), got;
    int i, found = 0;

    for (i = 0; i < 20000; i++) {
        make_key(key, (apr_uint64_t)i);
        e.claims_len = 100 + (apr_size_t)(i % 800);
        ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    }
    ck_assert_uint_gt(info_of(s).evictions, 10000);
    ck_assert_uint_gt(info_of(s).entries, info_of(s).capacity / 2);
    for (i = 19900; i < 20000; i++) {
        make_key(key, (apr_uint64_t)i);
        found += ot_cache_get(s, key, T0, &got, ot_test_pool) == APR_SUCCESS;
    }
    ck_assert_int_ge(found, 95);
}
END_TEST

START_TEST(test_largest_and_too_big)
{
    ot_shm_t *s = new_cache(16 * 1024 * 1024);
    ot_cache_entry_t e = entry("carol", "sess", T0, T0 + apr_time_from_sec(60), 0, ot_test_pool);
    ot_cache_entry_t got;
    apr_size_t fixed = OT_REC_PREFIX + OT_BLOB_FIXED + strlen(ISS) + 1 + 6 + 5 + 1
                       + strlen("orders-web") + 1;
    unsigned char key[OT_KEY_LEN];

    ck_assert_uint_eq(s->g->max_record, OT_MAX_RECORD);
    make_key(key, 3);
    e.claims_len = s->g->max_record - fixed;
    e.claims = filled(e.claims_len, 9, ot_test_pool);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, T0, &got, ot_test_pool), APR_SUCCESS);
    ck_assert(same_entry(&e, &got));
    e.claims_len++;
    e.claims = filled(e.claims_len, 9, ot_test_pool);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0 + 1), APR_ENOSPC);
    e.claims_len = 300 * 1024;
    e.claims = filled(e.claims_len, 9, ot_test_pool);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0 + 1), APR_ENOSPC);
    ck_assert_uint_eq(info_of(s).too_big, 2);
    ck_assert_int_eq(ot_cache_get(s, key, T0, &got, ot_test_pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_sizing_100k_in_128m)
{
    ot_shm_t *s = new_cache(128 * 1024 * 1024);
    char sub[40], sid[40];
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e = entry(sub, sid, T0, T0 + apr_time_from_sec(300), 600, ot_test_pool), got;
    int i;

    ck_assert_uint_le(ot_cache_entry_footprint(600) * 100000, 128 * 1024 * 1024);
    for (i = 0; i < 100000; i++) {
        snprintf(sub, sizeof(sub), "0b3a53c2-81e4-4a0d-9d43-%012d", i);
        snprintf(sid, sizeof(sid), "7f1c9e2a-55b1-4c8e-a0c4-%012d", i);
        make_key(key, (apr_uint64_t)i);
        ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    }
    ck_assert_uint_eq(info_of(s).evictions, 0);
    ck_assert_uint_eq(info_of(s).entries, 100000);
    ck_assert_uint_ge(info_of(s).capacity, 100000);
    make_key(key, 4242);
    ck_assert_int_eq(ot_cache_get(s, key, T0, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(got.sub, "0b3a53c2-81e4-4a0d-9d43-000000004242");
}
END_TEST

/* ---- several processes ----------------------------------------------------------------------- */

#define HAMMER_HOT 32             /* most operations hit these keys, colliding often */
#define HAMMER_COLD 2000          /* the others, enough to keep evicting */
#define HAMMER_OPS 200000
#define HAMMER_KIDS 4

/**
 * What writer wid stores as version seq of key idx; readers recompute it to check a copy. The
 * length depends on the key only, so that a torn copy would still parse and be caught here.
 */
static ot_cache_entry_t hammer_entry(unsigned idx, unsigned wid, unsigned seq, apr_pool_t *p)
{
    apr_size_t len = 50 + (idx * 797) % 2500;
    ot_cache_entry_t e = entry(apr_psprintf(p, "user-%u", idx),
                               apr_psprintf(p, "w%u-%08u", wid, seq),
                               T0 + seq, T0 + apr_time_from_sec(1000) + seq, 0, p);

    e.claims = filled(len, idx * 131 + wid * 17 + seq, p);
    e.claims_len = len;
    return e;
}

static int hammer(ot_shm_t *s, unsigned wid)
{
    apr_pool_t *p;
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    unsigned op, idx, who = wid, ver, foreign = 0, rnd = wid * 2654435761u + 1, seq = 0;
    int bad = 0;

    apr_pool_create(&p, NULL);
    for (op = 0; op < HAMMER_OPS && !bad; op++) {
        rnd = rnd * 1103515245u + 12345u;
        idx = (rnd >> 8) % 4 ? (rnd >> 10) % HAMMER_HOT : HAMMER_HOT + (rnd >> 10) % HAMMER_COLD;
        make_key(key, idx);
        if ((rnd >> 20) % 3 == 0) {
            e = hammer_entry(idx, wid, seq++, p);
            bad |= ot_cache_put(s, key, &e, T0) != APR_SUCCESS;
        }
        else if (ot_cache_get(s, key, T0, &e, p) == APR_SUCCESS) {   /* exactly as stored? */
            ot_cache_entry_t want;
            bad |= e.sid == NULL || sscanf(e.sid, "w%u-%u", &who, &ver) != 2;
            want = hammer_entry(idx, bad ? 0 : who, bad ? 0 : ver, p);
            bad |= !same_entry(&want, &e);
            foreign += who != wid;
        }
        if (op % 256 == 0) {
            apr_pool_clear(p);
        }
    }
    apr_pool_destroy(p);
    return bad ? 1 : foreign == 0 ? 2 : 0;
}

START_TEST(test_forked_writers)
{
    ot_shm_t *s = new_cache(SMALL);
    static unsigned char keys[HAMMER_HOT][OT_KEY_LEN];
    pid_t kids[HAMMER_KIDS];
    int i, status[HAMMER_KIDS], go[2];
    char c;

    ck_assert_int_eq(pipe(go), 0);
    for (i = 0; i < HAMMER_KIDS; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {             /* start together: when the parent closes the pipe */
            close(go[1]);
            _exit(read(go[0], &c, 1) == 0 ? hammer(s, (unsigned)i) : 3);
        }
    }
    close(go[0]);
    close(go[1]);
    for (i = 0; i < HAMMER_KIDS; i++) {
        ck_assert_int_eq(waitpid(kids[i], &status[i], 0), kids[i]);
    }
    for (i = 0; i < HAMMER_KIDS; i++) {   /* 1: inconsistent copy, 2: saw no other writer */
        ck_assert_msg(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0,
                      "child %d: status %d %d %d %d", i, status[0], status[1], status[2],
                      status[3]);
        make_key(keys[i], (apr_uint64_t)i);
    }
    ck_assert_int_gt(present(s, keys, 0, HAMMER_KIDS, 1, T0), 0);   /* and the parent too */
}
END_TEST

START_TEST(test_dead_lock_holder)
{
    ot_shm_t *s = new_cache(SMALL);
    unsigned char key[OT_KEY_LEN], other[OT_KEY_LEN];
    ot_cache_entry_t e = entry("dave", "s", T0, T0 + apr_time_from_sec(60), 400, ot_test_pool), got;
    apr_uint64_t next = 0;
    ot_stripe_t *st;
    int fds[2], status;
    char c;
    pid_t kid;

    key_in_stripe(key, s, 3, &next);
    key_in_stripe(other, s, 4, &next);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_put(s, other, &e, T0), APR_SUCCESS);
    st = ot_shm_stripe(s, 3);
    ck_assert_int_eq(pipe(fds), 0);
    kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {             /* take the lock, start a write, scribble, and die */
        ot_lock_take(&st->lock, NULL, NULL);
        ot_seq_write_begin(&st->seq);
        memset((char *)st + s->g->off_buckets, 0x5a, 64);
        memset((char *)st + s->g->off_next, 0xa5, 256);
        (void)!write(fds[1], "x", 1);
        pause();
        _exit(0);
    }
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    kill(kid, SIGKILL);
    ck_assert_int_eq(waitpid(kid, &status, 0), kid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(ot_cache_get(s, key, T0, &got, ot_test_pool), APR_NOTFOUND);
    ck_assert_uint_eq(st->seq & 1, 0);
    ck_assert_int_eq(ot_cache_get(s, other, T0, &got, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_put(s, key, &e, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, T0, &got, ot_test_pool), APR_SUCCESS);
    ck_assert(same_entry(&e, &got));
}
END_TEST

/* ---- revocations ----------------------------------------------------------------------------- */

START_TEST(test_revoke_sub_sid)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t at = T0 + apr_time_from_sec(5), until = T0 + apr_time_from_sec(100);
    ot_cache_entry_t old = entry("alice", "S1", T0, until, 50, ot_test_pool), got;
    ot_cache_entry_t fresh = entry("alice", "S1", at + 1, until, 50, ot_test_pool);
    unsigned char key[OT_KEY_LEN];

    ck_assert(!revoked(s, "alice", "S1", T0));
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS, "alice", at, until), APR_SUCCESS);
    ck_assert(revoked(s, "alice", "S1", T0));
    ck_assert(ot_revoke_applies(s, NULL, "app", &old));             /* the answer's iss */
    ck_assert(!ot_revoke_applies(s, "https://other.example", "app", &old));
    ck_assert(!revoked(s, "alice", "S1", at + 1));
    ck_assert(!revoked(s, "bob", "S2", T0));
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SID, ISS, "S2", at, until), APR_SUCCESS);
    ck_assert(revoked(s, "bob", "S2", T0));
    ck_assert(!revoked(s, "bob", "S3", T0));
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS, "", at, until), APR_EINVAL);
    /* a call that started before the logout and ended after it is not cached */
    make_key(key, 11);
    ck_assert_int_eq(ot_cache_put(s, key, &old, at + 2), APR_EINCOMPLETE);
    ck_assert_int_eq(ot_cache_get(s, key, at + 2, &got, ot_test_pool), APR_NOTFOUND);
    ck_assert_int_eq(ot_cache_put(s, key, &fresh, at + 2), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_get(s, key, at + 2, &got, ot_test_pool), APR_SUCCESS);
}
END_TEST

START_TEST(test_not_before)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t at = T0 + apr_time_from_sec(50);
    ot_cache_entry_t e = entry("erin", "S", T0, T0 + apr_time_from_sec(300), 50, ot_test_pool);
    apr_int64_t nb = 1700000010;

    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "app", nb, 1, at), APR_SUCCESS);
    e.iat = apr_time_from_sec(nb - 1);
    ck_assert(ot_revoke_applies(s, ISS, "app", &e));
    ck_assert(!ot_revoke_applies(s, ISS, "other-app", &e));
    e.iat = apr_time_from_sec(nb);
    ck_assert(!ot_revoke_applies(s, ISS, "app", &e));
    e.iat = 0;                                  /* without iat: fetched before the action */
    ck_assert(ot_revoke_applies(s, ISS, "app", &e));
    e.fetched = at;
    ck_assert(!ot_revoke_applies(s, ISS, "app", &e));
    e.fetched = T0;
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "app", 0, 2, at), APR_SUCCESS);
    ck_assert(!ot_revoke_applies(s, ISS, "app", &e));
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "app", -1, 3, at), APR_EINVAL);
}
END_TEST

/* A k_push_not_before for another client (OfftokLogoutAudience) covers the tokens issued to it
 * (the entry's azp), wherever they are checked; the location's own client's covers them all. */
START_TEST(test_not_before_of_the_tokens_client)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t at = T0 + apr_time_from_sec(50);
    ot_cache_entry_t e = entry("erin", "S", T0, T0 + apr_time_from_sec(300), 50, ot_test_pool);
    apr_int64_t nb = 1700000010;

    e.iat = apr_time_from_sec(nb - 1);
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "orders-web", nb, 1, at), APR_SUCCESS);
    ck_assert(ot_revoke_applies(s, ISS, "rs-client", &e));        /* azp orders-web */
    e.azp = "orders-mobile";
    ck_assert(!ot_revoke_applies(s, ISS, "rs-client", &e));
    e.azp = NULL;
    ck_assert(!ot_revoke_applies(s, ISS, "rs-client", &e));
    ck_assert(ot_revoke_applies(s, ISS, "orders-web", &e));       /* the location's own */
    e.iat = apr_time_from_sec(nb);
    e.azp = "orders-web";
    ck_assert(!ot_revoke_applies(s, ISS, "rs-client", &e));
}
END_TEST

static int applied;

static apr_status_t apply_fails_once(void *baton)
{
    return applied++ == 0 ? APR_EGENERAL : APR_SUCCESS;
}

/* A push whose applying failed is not remembered: the issuer's retry is applied (issue 13,
 * hole 7); once applied, a copy is a replay. */
START_TEST(test_push_remembered_only_once_applied)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t until = T0 + apr_time_from_sec(120);

    applied = 0;
    ck_assert_int_eq(ot_revoke_once(s, ISS, "jti-9", until, T0, apply_fails_once, NULL),
                     APR_EGENERAL);
    ck_assert_int_eq(ot_revoke_once(s, ISS, "jti-9", until, T0 + 1, apply_fails_once, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(applied, 2);
    ck_assert_int_eq(ot_revoke_once(s, ISS, "jti-9", until, T0 + 2, apply_fails_once, NULL),
                     APR_EEXIST);
    ck_assert_int_eq(applied, 2);
    ck_assert_int_eq(ot_revoke_once(s, ISS, "", until, T0 + 2, apply_fails_once, NULL),
                     APR_EINVAL);
    ck_assert_int_eq(ot_revoke_once(s, ISS, "jti-9", until, until, apply_fails_once, NULL),
                     APR_SUCCESS);          /* forgotten once its time is over */
}
END_TEST

START_TEST(test_revoke_table_full)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t until = T0 + apr_time_from_sec(100);
    int i;

    for (i = 0; i < 4096; i++) {        /* all in force: the oldest becomes the marker */
        ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS, apr_psprintf(ot_test_pool, "u%d", i),
                                       T0 + i, until), APR_SUCCESS);
    }
    ck_assert(!revoked(s, "x", NULL, T0 - 1));
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS, "more", T0 + 5000, until), APR_SUCCESS);
    ck_assert(revoked(s, "x", NULL, T0 - 1));                 /* stricter, never laxer */
    ck_assert(revoked(s, "u0", NULL, T0 - 1));
    ck_assert(revoked(s, "u4095", NULL, T0 + 10));
    ck_assert(revoked(s, "more", NULL, T0 + 10));
    ck_assert(!revoked(s, "x", NULL, T0 + 10));
    for (i = 0; i < 4096; i++) {        /* once they expire, one more makes room, no marker */
        ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SID, ISS, apr_psprintf(ot_test_pool, "s%d", i),
                                       T0 + 6000, T0 + 7000), APR_SUCCESS);
    }
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SID, ISS, "late", T0 + 8000, T0 + 9000),
                     APR_SUCCESS);
    ck_assert(!revoked(s, "x", NULL, T0 + 5001));
    ck_assert(revoked(s, "x", "late", T0 + 5001));
}
END_TEST

START_TEST(test_jti_replay_across_processes)
{
    ot_shm_t *s = new_cache(SMALL);
    apr_time_t until = T0 + apr_time_from_sec(120);
    int status;
    pid_t kid;

    ck_assert_int_eq(ot_revoke_seen_jti(s, ISS, "jti-1", until, T0), APR_SUCCESS);
    ck_assert_int_eq(ot_revoke_seen_jti(s, ISS, "jti-1", until, T0 + 1), APR_EEXIST);
    ck_assert_int_eq(ot_revoke_seen_jti(s, "https://other.example", "jti-1", until, T0),
                     APR_SUCCESS);
    kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        int rc = ot_revoke_seen_jti(s, ISS, "jti-1", until, T0 + 2) == APR_EEXIST ? 0 : 1;
        rc |= ot_revoke_seen_jti(s, ISS, "jti-2", until, T0 + 2) == APR_SUCCESS ? 0 : 2;
        rc |= ot_revoke_add(s, OT_REVOKE_SUB, ISS, "frank", T0 + 2, until) == APR_SUCCESS ? 0 : 4;
        _exit(rc);
    }
    ck_assert_int_eq(waitpid(kid, &status, 0), kid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(ot_revoke_seen_jti(s, ISS, "jti-2", until, T0 + 3), APR_EEXIST);
    ck_assert_int_eq(ot_revoke_seen_jti(s, ISS, "jti-1", until, until), APR_SUCCESS);
    ck_assert(revoked(s, "frank", NULL, T0));
}
END_TEST

/* ---- the encoding for a second tier ---------------------------------------------------------- */

START_TEST(test_encode_decode)
{
    ot_cache_entry_t e = entry("gina", "S9", T0, T0 + apr_time_from_sec(60), 700, ot_test_pool);
    ot_cache_entry_t got;
    char *buf, *bad;
    apr_size_t len, i;

    e.offline = 1;
    ck_assert_int_eq(ot_cache_entry_encode(&e, &buf, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_cache_entry_decode(&got, buf, len, ot_test_pool), APR_SUCCESS);
    ck_assert(same_entry(&e, &got));
    for (i = 0; i < len; i++) {             /* every truncation fails, cleanly */
        bad = apr_pmemdup(ot_test_pool, buf, i);
        ck_assert_int_eq(ot_cache_entry_decode(&got, bad, i, ot_test_pool), APR_EINVAL);
    }
    bad = apr_palloc(ot_test_pool, len + 1);
    memcpy(bad, buf, len);
    ck_assert_int_eq(ot_cache_entry_decode(&got, bad, len + 1, ot_test_pool), APR_EINVAL);
    for (i = 0; i < len; i++) {             /* every corruption is refused or decodes sanely */
        memcpy(bad, buf, len);
        bad[i] ^= (char)(1 << (i % 8));
        if (ot_cache_entry_decode(&got, bad, len, ot_test_pool) == APR_SUCCESS) {
            ck_assert(got.claims == NULL || strlen(got.claims) == got.claims_len);
        }
    }
    e.iss = e.sub = e.sid = e.azp = e.claims = NULL;
    e.claims_len = 0;
    ck_assert_int_eq(ot_cache_entry_encode(&e, &buf, &len, ot_test_pool), APR_SUCCESS);
    ck_assert_uint_eq(len, OT_BLOB_FIXED);
    ck_assert_int_eq(ot_cache_entry_decode(&got, buf, len, ot_test_pool), APR_SUCCESS);
    ck_assert(same_entry(&e, &got));
    e.sub = filled(70000, 1, ot_test_pool);
    ck_assert_int_eq(ot_cache_entry_encode(&e, &buf, &len, ot_test_pool), APR_ENOSPC);
    ck_assert_int_eq(ot_cache_entry_decode(&got, NULL, 0, ot_test_pool), APR_EINVAL);
}
END_TEST

Suite *suite_cache(void)
{
    const TTest *tests[] = {
        test_create_reuse, test_insert_hit, test_expiry_replace_remove, test_evict_expired_first,
        test_evict_lru, test_full_cache_never_fails, test_largest_and_too_big,
        test_sizing_100k_in_128m, test_forked_writers, test_dead_lock_holder,
        test_revoke_sub_sid, test_not_before, test_not_before_of_the_tokens_client,
        test_push_remembered_only_once_applied, test_revoke_table_full,
        test_jti_replay_across_processes, test_encode_decode,
    };
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    apr_size_t i;

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 120);
    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        tcase_add_test(tc, tests[i]);
    }
    suite_add_tcase(s, tc);
    return s;
}
