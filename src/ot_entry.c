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
#include "ot_claims.h"
#include "ot_entry.h"
#include "ot_util.h"

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

apr_time_t ot_blob_time(const unsigned char *p)
{
    return (apr_time_t)ot_be_get(p, 8);
}

void ot_entry_of(ot_cache_entry_t *e, const ot_answer_t *a, const char *default_iss,
                 apr_time_t fetched, apr_interval_time_t max_ttl)
{
    memset(e, 0, sizeof(*e));
    e->fetched = fetched;
    e->drop_after = fetched + max_ttl;
    e->active = a->active;
    if (!a->active) {
        return;
    }
    e->exp = a->exp ? apr_time_from_sec(a->exp) : 0;
    e->iat = a->iat ? apr_time_from_sec(a->iat) : 0;
    e->offline = a->kind == OT_KIND_OFFLINE;
    e->iss = a->iss ? a->iss : default_iss;
    e->sub = a->sub;
    e->sid = a->sid;
    e->azp = ot_answer_client(a);
    if (e->exp && e->exp < e->drop_after) {
        e->drop_after = e->exp;
    }
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
    ot_be_put(fixed + 2, lens[0], 2);
    ot_be_put(fixed + 4, lens[1], 2);
    ot_be_put(fixed + 6, lens[2], 2);
    ot_be_put(fixed + 8, lens[3], 4);
    ot_be_put(fixed + OT_BLOB_FETCHED, (apr_uint64_t)e->fetched, 8);
    ot_be_put(fixed + OT_BLOB_DROP, (apr_uint64_t)e->drop_after, 8);
    ot_be_put(fixed + BLOB_EXP, (apr_uint64_t)e->exp, 8);
    ot_be_put(fixed + BLOB_IAT, (apr_uint64_t)e->iat, 8);
    ot_be_put(fixed + BLOB_AZP_LEN, lens[4], 2);
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
    lens[0] = ot_be_get(u + 2, 2), lens[1] = ot_be_get(u + 4, 2), lens[2] = ot_be_get(u + 6, 2);
    lens[3] = ot_be_get(u + 8, 4), lens[4] = ot_be_get(u + BLOB_AZP_LEN, 2);
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

/*
 * The digest: the cache's form of a positive answer (ot_cache_entry_t.claims, and so also what
 * Redis holds). A cache hit reads it without a JSON parser; the strings are used in place.
 *
 *  +----------+----------------------------------------------------------------------------+
 *  | count    | count claims, each:                                                        |
 *  | u16, BE  |   type: one byte, ot_claim_type_t, | DIGEST_TEXT when a text of its own    |
 *  |          |         follows (it differs from the value: lists, null, control chars)    |
 *  |          |   name NUL, value NUL, [text NUL]                                          |
 *  +----------+----------------------------------------------------------------------------+
 *
 * A typical Keycloak answer takes about as many bytes as its compact JSON.
 */
#define DIGEST_TEXT 0x80
#define DIGEST_MAX_CLAIMS 0xffff

/** 1 when c's text is not its value (the same string is mostly the same pointer: no compare). */
static int own_text(const ot_claim_t *c)
{
    return c->text != c->value && strcmp(c->text, c->value) != 0;
}

const char *ot_answer_digest(const ot_answer_t *a, apr_size_t *len, apr_pool_t *p)
{
    apr_size_t n = 2;
    char *buf, *o;
    int i;

    if (!a->active || a->nclaims > DIGEST_MAX_CLAIMS) {
        return NULL;
    }
    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];
        n += 1 + strlen(c->name) + 1 + c->value_len + 1;
        if (own_text(c)) {
            n += strlen(c->text) + 1;
        }
    }
    o = buf = apr_palloc(p, n);
    *o++ = (char)((a->nclaims >> 8) & 0xff);
    *o++ = (char)(a->nclaims & 0xff);
    for (i = 0; i < a->nclaims; i++) {
        const ot_claim_t *c = &a->claims[i];
        int own = own_text(c);
        apr_size_t k = strlen(c->name) + 1;

        *o++ = (char)(c->type | (own ? DIGEST_TEXT : 0));
        memcpy(o, c->name, k), o += k;
        memcpy(o, c->value, c->value_len + 1), o += c->value_len + 1;
        if (own) {
            k = strlen(c->text) + 1;
            memcpy(o, c->text, k), o += k;
        }
    }
    *len = n;
    return buf;
}

/** The NUL-terminated string at *off in buf[0..len), advancing *off; NULL when there is none. */
static const char *digest_str(const char *buf, apr_size_t len, apr_size_t *off, apr_size_t *slen)
{
    const char *s = buf + *off, *end;

    if (*off >= len || (end = memchr(s, 0, len - *off)) == NULL) {
        return NULL;
    }
    *slen = (apr_size_t)(end - s);
    *off += *slen + 1;
    return s;
}

/** t is an ot_claim_type_t. */
static int digest_type_ok(char t)
{
    switch (t) {
    case OT_CT_STRING: case OT_CT_NUMBER: case OT_CT_BOOL: case OT_CT_NULL: case OT_CT_LIST:
    case OT_CT_JSON:
        return 1;
    default:
        return 0;
    }
}

#define ONES APR_UINT64_C(0x0101010101010101)
#define HIGHS APR_UINT64_C(0x8080808080808080)

/** Some byte of w may be below 0x20 (a NUL or a control character) or 0x7f: never a miss. */
static APR_INLINE int word_may_stop(apr_uint64_t w)
{
    apr_uint64_t del = w ^ (ONES * 0x7f);

    return ((((w - ONES * 0x20) & ~w) | ((del - ONES) & ~del)) & HIGHS) != 0;
}

/**
 * digest_str for a text the back end sees: in the same pass, *ctl says whether it holds a
 * control character (ot_sanitize's). Eight bytes at a time, byte by byte where a word may hold
 * one, or the NUL, and in the tail.
 */
static const char *digest_text(const char *buf, apr_size_t len, apr_size_t *off,
                               apr_size_t *slen, int *ctl)
{
    const unsigned char *s = (const unsigned char *)buf + *off;
    apr_size_t n = *off < len ? len - *off : 0, i = 0, end;
    apr_uint64_t w;

    *ctl = 0;
    while (i < n) {
        if (n - i >= 8 && (memcpy(&w, s + i, 8), !word_may_stop(w))) {
            i += 8;
            continue;
        }
        for (end = n - i >= 8 ? i + 8 : n; i < end; i++) {
            if (s[i] == '\0') {
                *slen = i;
                *off += i + 1;
                return (const char *)s;
            }
            *ctl |= s[i] < 0x20 || s[i] == 0x7f;
        }
    }
    return NULL;
}

/** Read claim c at *off (its type read); *name_len its name's length. 0 when malformed. */
static int digest_claim(ot_claim_t *c, unsigned char type, const char *buf, apr_size_t len,
                        apr_size_t *off, apr_size_t *name_len, apr_pool_t *p)
{
    apr_size_t slen;
    int ctl;

    c->type = (char)(type & ~DIGEST_TEXT);
    if (!digest_type_ok(c->type) || (c->name = digest_str(buf, len, off, name_len)) == NULL) {
        return 0;
    }
    if (type & DIGEST_TEXT) {
        c->value = digest_str(buf, len, off, &c->value_len);
        c->text = c->value ? digest_text(buf, len, off, &slen, &ctl) : NULL;
    }
    else {
        c->value = c->text = digest_text(buf, len, off, &c->value_len, &ctl);
    }
    if (c->text == NULL) {
        return 0;
    }
    /* Whoever wrote it, no control character reaches the back end. */
    if (ctl) {
        c->text = ot_sanitize(c->text, p);
    }
    return 1;
}

/** The answer a digest describes; need_active: it must hold `"active": true`. */
static ot_answer_t *digest_answer(const char *buf, apr_size_t len, int need_active,
                                  apr_pool_t *p)
{
    const unsigned char *u = (const unsigned char *)buf;
    ot_answer_t *a;
    ot_claim_t *claims;
    apr_size_t off = 2, name_len;
    int n, i, active = 0;

    if (buf == NULL || len < 2) {
        return NULL;
    }
    n = (u[0] << 8) | u[1];
    if ((apr_size_t)n > (len - 2) / 3) {      /* each claim takes at least three bytes */
        return NULL;
    }
    claims = apr_palloc(p, (apr_size_t)n * sizeof(*claims) + 1);
    for (i = 0; i < n; i++) {
        ot_claim_t *c = &claims[i];

        if (off >= len || !digest_claim(c, u[off++], buf, len, &off, &name_len, p)) {
            return NULL;
        }
        if (name_len == 6 && memcmp(c->name, "active", 6) == 0) {
            active = c->type == OT_CT_BOOL && strcmp(c->value, "true") == 0;
        }
    }
    if (off != len || (need_active && !active)) {
        return NULL;
    }
    a = ot_answer_inactive(p);
    a->active = 1;
    a->claims = claims;
    a->nclaims = n;
    ot_answer_derive(a);
    return a;
}

ot_answer_t *ot_answer_from_digest(const char *buf, apr_size_t len, apr_pool_t *p)
{
    return digest_answer(buf, len, 1, p);
}

ot_answer_t *ot_answer_from_jwt_digest(const char *buf, apr_size_t len, apr_pool_t *p)
{
    ot_answer_t *a = digest_answer(buf, len, 0, p);

    if (a != NULL) {
        a->kind = OT_KIND_ACCESS;
    }
    return a;
}
