/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The stored form of an answer: the blob, a record's payload in the shared cache (ot_cache.c)
 * and a value in the second tier (Redis).
 *
 *  +---------+-------+------------------------------+----------------------------+---------+
 *  | version | flags | lengths: iss, sub, sid (u16),| times (s64, big-endian):   | azp len |
 *  | (u8)    | (u8)  | claims (u32)                 | fetched, drop_after, exp,  | (u16)   |
 *  |         |       |                              | iat                        |         |
 *  +---------+-------+------------------------------+----------------------------+---------+
 *  then each present string and a NUL: iss, sub, sid, claims (ot_answer_digest()), azp
 */
#include <string.h>
#include <apr_strings.h>
#include "ot_entry.h"

#define BLOB_VERSION 3   /* 2: the claims are ot_answer_digest()'s, not JSON; 3: azp */
#define BLOB_EXP 28
#define BLOB_IAT 36

#define BLOB_AZP_LEN 44  /* azp's length, after the times (so their offsets stayed) */

enum { F_ACTIVE = 1, F_OFFLINE = 2, F_STR0 = 4, F_ALL = 127 }; /* F_STR0 << i: string i present */
_Static_assert(F_ACTIVE == OT_BLOB_ACTIVE, "Redis's store script reads the active bit in place");

typedef struct {
    char *buf;
    apr_size_t off;
} flat_t;

static void put_be(unsigned char *p, apr_uint64_t x, int n)
{
    while (n--) {
        p[n] = (unsigned char)(x & 0xff);
        x >>= 8;
    }
}

static apr_uint64_t get_be(const unsigned char *p, int n)
{
    apr_uint64_t x = 0;

    while (n--) {
        x = (x << 8) | *p++;
    }
    return x;
}

apr_time_t ot_blob_time(const unsigned char *p)
{
    return (apr_time_t)get_be(p, 8);
}

/** String i of e: iss, sub, sid, claims, azp. */
static const char *entry_str(const ot_cache_entry_t *e, int i)
{
    return i == 0 ? e->iss : i == 1 ? e->sub : i == 2 ? e->sid : i == 3 ? e->claims : e->azp;
}

/** 1 for the strings that are C strings (all but the claims' digest). */
#define IS_CSTR(i) ((i) != 3)

apr_status_t ot_blob_measure(apr_size_t lens[OT_BLOB_STRS], apr_size_t *blen,
                             const ot_cache_entry_t *e)
{
    apr_size_t n = OT_BLOB_FIXED;
    int i;

    if (e->fetched < 0 || e->drop_after < 0 || e->exp < 0 || e->iat < 0) {
        return APR_EINVAL;
    }
    for (i = 0; i < OT_BLOB_STRS; i++) {
        const char *str = entry_str(e, i);
        lens[i] = str == NULL ? 0 : IS_CSTR(i) ? strlen(str) : e->claims_len;
        if (lens[i] > (IS_CSTR(i) ? 0xffffu : 0xffffffffu)) {
            return APR_ENOSPC;
        }
        n += str == NULL ? 0 : lens[i] + 1;
    }
    *blen = n;
    return APR_SUCCESS;
}

void ot_blob_emit(ot_blob_write_fn write, void *baton, const ot_cache_entry_t *e,
                  const apr_size_t lens[OT_BLOB_STRS])
{
    unsigned char fixed[OT_BLOB_FIXED];
    int i;

    fixed[0] = BLOB_VERSION;
    fixed[1] = (unsigned char)((e->active ? F_ACTIVE : 0) | (e->offline ? F_OFFLINE : 0));
    for (i = 0; i < OT_BLOB_STRS; i++) {
        fixed[1] |= entry_str(e, i) != NULL ? (unsigned char)(F_STR0 << i) : 0;
    }
    put_be(fixed + 2, lens[0], 2);
    put_be(fixed + 4, lens[1], 2);
    put_be(fixed + 6, lens[2], 2);
    put_be(fixed + 8, lens[3], 4);
    put_be(fixed + OT_BLOB_FETCHED, (apr_uint64_t)e->fetched, 8);
    put_be(fixed + OT_BLOB_DROP, (apr_uint64_t)e->drop_after, 8);
    put_be(fixed + BLOB_EXP, (apr_uint64_t)e->exp, 8);
    put_be(fixed + BLOB_IAT, (apr_uint64_t)e->iat, 8);
    put_be(fixed + BLOB_AZP_LEN, lens[4], 2);
    write(baton, fixed, OT_BLOB_FIXED);
    for (i = 0; i < OT_BLOB_STRS; i++) {
        if (entry_str(e, i) != NULL) {
            write(baton, entry_str(e, i), lens[i]);
            write(baton, "", 1);
        }
    }
}

apr_status_t ot_blob_parse(ot_cache_entry_t *e, const char *buf, apr_size_t len)
{
    const unsigned char *u = (const unsigned char *)buf;
    const char **dst[OT_BLOB_STRS];
    apr_size_t lens[OT_BLOB_STRS], off = OT_BLOB_FIXED;
    ot_cache_entry_t r;
    int i;

    if (len < OT_BLOB_FIXED || u[0] != BLOB_VERSION || (u[1] & ~F_ALL) != 0
        || (u[OT_BLOB_FETCHED] | u[OT_BLOB_DROP] | u[BLOB_EXP] | u[BLOB_IAT]) & 0x80) {
        return APR_EINVAL;
    }
    memset(&r, 0, sizeof(r));
    dst[0] = &r.iss, dst[1] = &r.sub, dst[2] = &r.sid, dst[3] = &r.claims, dst[4] = &r.azp;
    lens[0] = get_be(u + 2, 2), lens[1] = get_be(u + 4, 2), lens[2] = get_be(u + 6, 2);
    lens[3] = get_be(u + 8, 4), lens[4] = get_be(u + BLOB_AZP_LEN, 2);
    for (i = 0; i < OT_BLOB_STRS; i++) {
        if (!(u[1] & (F_STR0 << i))) {
            if (lens[i] != 0) {
                return APR_EINVAL;
            }
            continue;
        }
        /* iss, sub, sid and azp are C strings; the claims (a digest) hold NULs of their own. */
        if (lens[i] >= len - off || buf[off + lens[i]] != '\0'
            || (IS_CSTR(i) && memchr(buf + off, 0, lens[i]) != NULL)) {
            return APR_EINVAL;
        }
        *dst[i] = buf + off;
        off += lens[i] + 1;
    }
    if (off != len) {
        return APR_EINVAL;
    }
    r.active = (u[1] & F_ACTIVE) != 0;
    r.offline = (u[1] & F_OFFLINE) != 0;
    r.claims_len = lens[3];
    r.fetched = ot_blob_time(u + OT_BLOB_FETCHED);
    r.drop_after = ot_blob_time(u + OT_BLOB_DROP);
    r.exp = ot_blob_time(u + BLOB_EXP);
    r.iat = ot_blob_time(u + BLOB_IAT);
    *e = r;
    return APR_SUCCESS;
}

static void flat_write(void *baton, const void *data, apr_size_t n)
{
    flat_t *f = baton;

    memcpy(f->buf + f->off, data, n);
    f->off += n;
}

apr_status_t ot_cache_entry_encode(const ot_cache_entry_t *e, char **buf, apr_size_t *len,
                                   apr_pool_t *p)
{
    apr_size_t lens[OT_BLOB_STRS], n;
    flat_t f;
    apr_status_t rv = ot_blob_measure(lens, &n, e);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    f.buf = apr_palloc(p, n);
    f.off = 0;
    ot_blob_emit(flat_write, &f, e, lens);
    *buf = f.buf;
    *len = n;
    return APR_SUCCESS;
}

apr_status_t ot_cache_entry_decode(ot_cache_entry_t *e, const char *buf, apr_size_t len,
                                   apr_pool_t *p)
{
    if (buf == NULL || len < OT_BLOB_FIXED) {
        return APR_EINVAL;
    }
    return ot_blob_parse(e, apr_pmemdup(p, buf, len), len);
}
