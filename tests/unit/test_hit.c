/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The cached hit's fast paths held to the slow ones they replaced:
 *   - ot_answer_derive (claims found by their first letter, dates read without strtod where
 *     exact) against the strcmp chain and strtod it replaced, kept here as the reference;
 *   - a digest's texts, scanned eight bytes at a time for their end and control characters,
 *     against ot_sanitize;
 *   - ot_cache_key / ot_cache_key_parts (a per-thread digest context, inputs hashed in pieces)
 *     against SHA-256 of the length-prefixed inputs computed from scratch: the keys are the
 *     same bytes as before, so entries kept in the segment or in Redis are still found.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "ot_unit.h"
#include "ot_answer.h"
#include "ot_cache.h"
#include "ot_claims.h"
#include "ot_json.h"
#include "ot_util.h"

/* ---- the reference: ot_answer_derive as it was ------------------------------------------------ */

static apr_int64_t ref_date(const ot_claim_t *c)
{
    double d;

    if (c->type != OT_CT_NUMBER) {
        return 0;
    }
    d = strtod(c->value, NULL);
    if (!isfinite(d) || d < 1.0 || d > 253402300799.0) {
        return 0;
    }
    return (apr_int64_t)d;
}

static const char *ref_string(const ot_claim_t *c)
{
    return c->type == OT_CT_STRING ? c->value : NULL;
}

static void ref_cnf(ot_answer_t *a, const ot_claim_t *c)
{
    json_t *cnf = c->type == OT_CT_JSON ? ot_json_parse(c->value, strlen(c->value), NULL,
                                                        a->pool)
                                        : NULL;
    const char *name;
    json_t *v;

    a->has_cnf = 1;
    a->cnf_unknown = 1;
    if (!json_is_object(cnf) || json_object_size(cnf) == 0) {
        return;
    }
    json_object_foreach(cnf, name, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            return;
        }
        if (strcmp(name, "jkt") == 0) {
            a->cnf_jkt = apr_pstrdup(a->pool, json_string_value(v));
        }
        else if (strcmp(name, "x5t#S256") == 0) {
            a->cnf_x5t = apr_pstrdup(a->pool, json_string_value(v));
        }
        else {
            return;
        }
    }
    a->cnf_unknown = 0;
}

static void ref_claim(ot_answer_t *a, const ot_claim_t *c, const ot_claim_t **typ,
                      const ot_claim_t **token_type)
{
    const char *n = c->name;

    if (strcmp(n, "exp") == 0) {
        a->has_exp = 1, a->exp = ref_date(c);
    }
    else if (strcmp(n, "nbf") == 0) {
        a->has_nbf = 1, a->nbf = ref_date(c);
    }
    else if (strcmp(n, "iat") == 0) {
        a->iat = ref_date(c);
    }
    else if (strcmp(n, "iss") == 0) {
        a->has_iss = 1, a->iss = ref_string(c);
    }
    else if (strcmp(n, "sub") == 0) {
        a->sub = ref_string(c);
    }
    else if (strcmp(n, "sid") == 0) {
        a->sid = ref_string(c);
    }
    else if (strcmp(n, "scope") == 0) {
        a->scope = ref_string(c);
    }
    else if (strcmp(n, "aud") == 0) {
        a->aud = c;
    }
    else if (strcmp(n, "cnf") == 0) {
        ref_cnf(a, c);
    }
    else if (strcmp(n, "typ") == 0) {
        *typ = c;
    }
    else if (strcmp(n, "token_type") == 0) {
        *token_type = c;
    }
}

static void ref_derive(ot_answer_t *a)
{
    const ot_claim_t *typ = NULL, *token_type = NULL;
    int i;

    for (i = 0; i < a->nclaims; i++) {
        ref_claim(a, &a->claims[i], &typ, &token_type);
    }
    a->typ = typ && ref_string(typ) ? typ->value : token_type ? ref_string(token_type) : NULL;
    a->typ_dpop = (typ && ref_string(typ) && strcmp(typ->value, "DPoP") == 0)
        || (token_type && ref_string(token_type) && strcasecmp(token_type->value, "DPoP") == 0);
    a->kind_refused = 0;
    if (typ != NULL) {
        if (ref_string(typ)
            && (strcmp(typ->value, "Bearer") == 0 || strcmp(typ->value, "DPoP") == 0)) {
            a->kind = OT_KIND_ACCESS;
        }
        else if (ref_string(typ) && strcmp(typ->value, "Offline") == 0) {
            a->kind = OT_KIND_OFFLINE;
        }
        else {
            a->kind_refused = 1;
        }
        return;
    }
    a->kind = token_type != NULL ? OT_KIND_ACCESS
              : (a->scope && ot_scope_has(a->scope, "offline_access")) ? OT_KIND_OFFLINE
              : OT_KIND_ACCESS;
}

/* ---- claims to derive from -------------------------------------------------------------------- */

/* Every name derive reads, its near misses (prefixes, extensions, case) and others. */
static const char *const names[] = {
    "exp", "nbf", "iat", "iss", "sub", "sid", "scope", "aud", "cnf", "typ", "token_type",
    "", "e", "ex", "expp", "exP", "Exp", "n", "nb", "nbff", "i", "ia", "is", "iatt", "issx",
    "s", "su", "si", "subb", "sidd", "sco", "scop", "scopes", "Scope", "a", "au", "audi", "c",
    "cn", "cnff", "t", "ty", "typx", "token_typ", "token_types", "token", "active", "azp",
    "client_id", "jti", "x"
};

/* Values of every type; numbers on both sides of every edge of the date rule. */
static const struct { char type; const char *value; } values[] = {
    { 's', "x" }, { 's', "" }, { 's', "Bearer" }, { 's', "DPoP" }, { 's', "dpop" },
    { 's', "Offline" }, { 's', "offline" }, { 's', "openid offline_access" },
    { 's', "1700000000" },
    { 'n', "1700000000" }, { 'n', "0" }, { 'n', "1" }, { 'n', "9" }, { 'n', "01" },
    { 'n', "00" }, { 'n', "-5" }, { 'n', "-0" }, { 'n', "1.5" }, { 'n', "0.5" },
    { 'n', "1.0" }, { 'n', "1700000000.0" }, { 'n', "1700000000.9" }, { 'n', "1e9" },
    { 'n', "1E9" }, { 'n', "1e300" }, { 'n', "1e999" }, { 'n', "253402300799" },
    { 'n', "253402300800" }, { 'n', "253402300799.5" }, { 'n', "999999999999" },
    { 'n', "100000000000" }, { 'n', "1234567890123" }, { 'n', "9007199254740993" },
    { 'n', "12abc" }, { 'n', "" }, { 'n', " 5" },
    { 'b', "true" }, { 'b', "false" }, { 'z', "null" }, { 'l', "[\"a\",1]" },
    { 'j', "{\"jkt\":\"abc\"}" }, { 'j', "{\"x5t#S256\":\"h\"}" }, { 'j', "{\"jkt\":1}" },
    { 'j', "{}" }, { 'j', "{\"other\":\"v\"}" }, { 'j', "[{}]" }
};

#define NNAMES (sizeof(names) / sizeof(names[0]))
#define NVALUES (sizeof(values) / sizeof(values[0]))

static void claim_of(ot_claim_t *c, unsigned name, unsigned value)
{
    c->name = names[name];
    c->type = values[value].type;
    c->value = c->text = values[value].value;
    c->value_len = strlen(c->value);
}

static void same_str(const char *x, const char *y)
{
    if (x == NULL || y == NULL) {
        ck_assert_ptr_eq(x, y);
    }
    else {
        ck_assert_str_eq(x, y);
    }
}

/** Derive claims both ways and require the same fields. */
static void derive_both(const ot_claim_t *claims, int n)
{
    ot_answer_t *a = ot_answer_inactive(ot_test_pool), *b = ot_answer_inactive(ot_test_pool);

    a->active = b->active = 1;
    a->claims = b->claims = claims;
    a->nclaims = b->nclaims = n;
    ot_answer_derive(a);
    ref_derive(b);
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_int_eq(a->kind_refused, b->kind_refused);
    ck_assert(a->exp == b->exp && a->nbf == b->nbf && a->iat == b->iat);
    ck_assert(a->has_exp == b->has_exp && a->has_nbf == b->has_nbf);
    ck_assert(a->has_iss == b->has_iss && a->has_cnf == b->has_cnf);
    ck_assert(a->cnf_unknown == b->cnf_unknown && a->typ_dpop == b->typ_dpop);
    ck_assert_ptr_eq(a->iss, b->iss);
    ck_assert_ptr_eq(a->sub, b->sub);
    ck_assert_ptr_eq(a->sid, b->sid);
    ck_assert_ptr_eq(a->scope, b->scope);
    ck_assert_ptr_eq(a->typ, b->typ);
    ck_assert_ptr_eq(a->aud, b->aud);
    same_str(a->cnf_jkt, b->cnf_jkt);
    same_str(a->cnf_x5t, b->cnf_x5t);
}

START_TEST(derive_reads_every_single_claim_as_the_strcmp_chain_did)
{
    ot_claim_t c;
    unsigned i, j;

    for (i = 0; i < NNAMES; i++) {
        for (j = 0; j < NVALUES; j++) {
            claim_of(&c, i, j);
            derive_both(&c, 1);
        }
    }
}
END_TEST

START_TEST(derive_reads_mixed_answers_as_the_strcmp_chain_did)
{
    ot_claim_t claims[10];
    unsigned seed = 12345;
    int round, k, n;

    /* Repeated names too: the last one of a name wins, both ways. */
    for (round = 0; round < 20000; round++) {
        n = 1 + (int)(rand_r(&seed) % 10);
        for (k = 0; k < n; k++) {
            claim_of(&claims[k], (unsigned)rand_r(&seed) % NNAMES,
                     (unsigned)rand_r(&seed) % NVALUES);
        }
        derive_both(claims, n);
    }
}
END_TEST

START_TEST(dates_are_read_as_strtod_reads_them)
{
    ot_claim_t c = { "exp", NULL, NULL, 0, OT_CT_NUMBER };
    ot_answer_t *a = ot_answer_inactive(ot_test_pool);
    char buf[32];
    apr_int64_t v;

    a->active = 1;
    a->claims = &c;
    a->nclaims = 1;
    /* Every length of integer, at and around powers of ten and the last sane date. */
    for (v = 1; v <= APR_INT64_C(100000000000000); v *= 10) {
        apr_int64_t d;
        for (d = -2; d <= 2; d++) {
            apr_snprintf(buf, sizeof(buf), "%" APR_INT64_T_FMT, v + d);
            c.value = c.text = buf;
            a->exp = -1;
            ot_answer_derive(a);
            ck_assert_int_eq(a->exp, ref_date(&c));
        }
    }
    c.value = c.text = "253402300799";
    ot_answer_derive(a);
    ck_assert_int_eq(a->exp, APR_INT64_C(253402300799));
    c.value = c.text = "253402300800";
    ot_answer_derive(a);
    ck_assert_int_eq(a->exp, 0);             /* milliseconds, most likely: not a date */
    c.value = c.text = "1796014000";
    ot_answer_derive(a);
    ck_assert_int_eq(a->exp, 1796014000);
}
END_TEST

/* ---- the key ---------------------------------------------------------------------------------- */

/** SHA-256 of the five inputs, each length-prefixed (4 bytes, big-endian), from scratch. */
static void ref_key(unsigned char out[OT_KEY_LEN], const char *const in[5])
{
    apr_size_t total = 0, off = 0, n;
    unsigned char *buf;
    int i;

    for (i = 0; i < 5; i++) {
        total += 4 + (in[i] ? strlen(in[i]) : 0);
    }
    buf = apr_palloc(ot_test_pool, total + 1);
    for (i = 0; i < 5; i++) {
        n = in[i] ? strlen(in[i]) : 0;
        ot_be_put(buf + off, n, 4);
        memcpy(buf + off + 4, in[i] ? in[i] : "", n);
        off += 4 + n;
    }
    ck_assert(EVP_Digest(buf, total, out, NULL, EVP_sha256(), NULL) == 1);
}

START_TEST(key_is_sha256_of_the_length_prefixed_inputs)
{
    static const char *const cases[][5] = {
        { "https://i/x", "client", "access_token", "verify", "tok" },
        { "https://i/x", "client", NULL, "verify ca=/etc/ca.pem signed", "tok" },
        { "offtok-local\nhttps://kc/certs", "https://kc/realms/r", NULL, "/ca.pem|1", "a.b.c" },
        { "offtok-doc\nhttps://kc/.well-known", "", NULL, "|0", "" },
        { NULL, NULL, NULL, NULL, NULL }
    };
    unsigned char got[OT_KEY_LEN], want[OT_KEY_LEN];
    unsigned i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ot_cache_key(got, cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
        ref_key(want, cases[i]);
        ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
    }
}
END_TEST

START_TEST(key_in_pieces_is_the_key_of_the_joined_inputs)
{
    /* The local key's prefix and JWKS URL, trust_scope, and an input in four pieces (answer_how's
     * shape is test_key.c's). */
    ot_key_part_t parts[OT_KEY_PARTS] = {
        { { "offtok-local\n", "https://kc/certs" } }, { { "https://kc/realms/r" } },
        { { NULL } }, { { "/ca.pem", "|1" } }, { { "a.b.c" } }
    };
    ot_key_part_t how[OT_KEY_PARTS] = {
        { { "https://i/x" } }, { { "client" } }, { { "access_token" } },
        { { "noverify", " ca=", "/ca.pem", " signed" } }, { { "tok" } }
    };
    unsigned char got[OT_KEY_LEN], want[OT_KEY_LEN];

    ot_cache_key_parts(got, parts);
    ot_cache_key(want, "offtok-local\nhttps://kc/certs", "https://kc/realms/r", NULL,
                 "/ca.pem|1", "a.b.c");
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
    ot_cache_key_parts(got, how);
    ot_cache_key(want, "https://i/x", "client", "access_token", "noverify ca=/ca.pem signed",
                 "tok");
    ck_assert(memcmp(got, want, OT_KEY_LEN) == 0);
    /* A piece moved to the next input is another key: the length covers the whole input. */
    parts[3].piece[0] = "/ca.pem|";
    parts[3].piece[1] = "1";
    ot_cache_key_parts(want, parts);
    ck_assert(memcmp(got, want, OT_KEY_LEN) != 0);
    how[3].piece[3] = NULL;
    how[4].piece[0] = " signedtok";
    ot_cache_key_parts(want, how);
    ck_assert(memcmp(got, want, OT_KEY_LEN) != 0);
}
END_TEST

typedef struct {
    int id, bad;
} key_thread_t;

/** Many keys on one thread, each checked against the reference. */
static void *key_thread(void *baton)
{
    key_thread_t *t = baton;
    unsigned char got[OT_KEY_LEN], want[OT_KEY_LEN];
    char tok[32];
    const char *in[5] = { "https://i/x", "client", NULL, "verify", tok };
    int i;

    for (i = 0; i < 2000; i++) {
        apr_snprintf(tok, sizeof(tok), "t%d-%d", t->id, i);
        ot_cache_key(got, in[0], in[1], in[2], in[3], in[4]);
        if (i % 100 == 0) {
            /* The reference allocates from the test's pool: not from two threads at once. */
            unsigned char buf[64];
            apr_size_t off = 0, k, n;
            for (k = 0; k < 5; k++) {
                n = in[k] ? strlen(in[k]) : 0;
                ot_be_put(buf + off, n, 4);
                memcpy(buf + off + 4, in[k] ? in[k] : "", n);
                off += 4 + n;
            }
            EVP_Digest(buf, off, want, NULL, EVP_sha256(), NULL);
            t->bad += memcmp(got, want, OT_KEY_LEN) != 0;
        }
    }
    return NULL;
}

START_TEST(key_contexts_are_per_thread)
{
    key_thread_t t[4];
    pthread_t th[4];
    int i;

    for (i = 0; i < 4; i++) {
        t[i].id = i;
        t[i].bad = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, key_thread, &t[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].bad, 0);
    }
}
END_TEST

/* ---- reading a digest's texts ----------------------------------------------------------------- */

/** A digest of "active": true and claim "x" of value v (and own text t, when not NULL). */
static const char *forged(apr_size_t *len, const char *v, apr_size_t vlen, const char *t,
                          apr_size_t tlen)
{
    static const char head[] = "\0\2bactive\0true\0";
    char *buf = apr_palloc(ot_test_pool, sizeof(head) + 4 + vlen + tlen + 2);
    apr_size_t n = sizeof(head) - 1;

    memcpy(buf, head, n);
    buf[n++] = (char)(t ? 's' | 0x80 : 's');
    memcpy(buf + n, "x", 2), n += 2;
    memcpy(buf + n, v, vlen), n += vlen;
    buf[n++] = '\0';
    if (t != NULL) {
        memcpy(buf + n, t, tlen), n += tlen;
        buf[n++] = '\0';
    }
    *len = n;
    return buf;
}

START_TEST(digest_texts_are_sanitized_wherever_the_control_character_is)
{
    static const unsigned char odd[] = { 0x01, 0x09, 0x1f, 0x7f, 0x20, 0x7e, 0x80, 0xff, 0x00 };
    char v[48];
    const char *d;
    apr_size_t len, vlen, k, o;
    const ot_claim_t *x;
    ot_answer_t *b;

    /* Every length around the eight-byte words, every position, each byte near the bounds. */
    for (vlen = 1; vlen < sizeof(v); vlen++) {
        for (k = 0; k < vlen; k++) {
            for (o = 0; o < sizeof(odd); o++) {
                memset(v, 'a', vlen);
                v[k] = (char)odd[o];
                d = forged(&len, v, vlen, NULL, 0);
                b = ot_answer_from_digest(d, len, ot_test_pool);
                if (odd[o] == 0) {             /* a NUL inside: a string that ends early */
                    ck_assert_ptr_null(b);
                    continue;
                }
                ck_assert_ptr_nonnull(b);
                x = ot_answer_claim(b, "x");
                ck_assert_uint_eq(x->value_len, vlen);
                ck_assert(memcmp(x->value, v, vlen) == 0);
                ck_assert_str_eq(x->text, ot_sanitize(apr_pstrmemdup(ot_test_pool, v, vlen),
                                                      ot_test_pool));
                /* The same as a text of its own, after a clean value. */
                d = forged(&len, "v", 1, v, vlen);
                b = ot_answer_from_digest(d, len, ot_test_pool);
                ck_assert_ptr_nonnull(b);
                x = ot_answer_claim(b, "x");
                ck_assert_str_eq(x->value, "v");
                ck_assert_str_eq(x->text, ot_sanitize(apr_pstrmemdup(ot_test_pool, v, vlen),
                                                      ot_test_pool));
            }
        }
    }
    /* Clean texts are used in place, not copied. */
    d = forged(&len, "clean text", 10, NULL, 0);
    b = ot_answer_from_digest(d, len, ot_test_pool);
    ck_assert_ptr_nonnull(b);
    x = ot_answer_claim(b, "x");
    ck_assert_ptr_eq(x->text, x->value);
    /* A text that does not end in the digest is refused, whatever its length. */
    for (vlen = 1; vlen < sizeof(v); vlen++) {
        memset(v, 'a', vlen);
        d = forged(&len, v, vlen, NULL, 0);
        ck_assert_ptr_null(ot_answer_from_digest(d, len - 1, ot_test_pool));
        d = forged(&len, "v", 1, v, vlen);
        ck_assert_ptr_null(ot_answer_from_digest(d, len - 1, ot_test_pool));
    }
}
END_TEST

Suite *suite_hit(void)
{
    Suite *s = suite_create("hit");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, derive_reads_every_single_claim_as_the_strcmp_chain_did);
    tcase_add_test(tc, derive_reads_mixed_answers_as_the_strcmp_chain_did);
    tcase_add_test(tc, dates_are_read_as_strtod_reads_them);
    tcase_add_test(tc, digest_texts_are_sanitized_wherever_the_control_character_is);
    tcase_add_test(tc, key_is_sha256_of_the_length_prefixed_inputs);
    tcase_add_test(tc, key_in_pieces_is_the_key_of_the_joined_inputs);
    tcase_add_test(tc, key_contexts_are_per_thread);
    suite_add_tcase(s, tc);
    return s;
}
