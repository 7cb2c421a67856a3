/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* ot_dpop_sig_ok's kept verification contexts (ot_dpop_key.c, dpop16r): a context kept for one
 * key and alg must never verify for another key, another alg or a key of another type, PSS's
 * padding and salt length must survive the copy, and threads sharing the kept contexts must get
 * the same verdicts as one thread. Signatures are made here with OpenSSL directly. */
#include <pthread.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>

#include "ot_unit.h"
#include "ot_dpop_key.h"

static const char TBS[] = "eyJhbGciOiJFUzI1NiJ9.eyJodG0iOiJHRVQifQ";

static EVP_PKEY *ec_key(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static EVP_PKEY *rsa_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

/* alg's JWS signature of TBS with key; pss_salt: -2 digest length, else as given; 0 on failure */
static size_t sign(EVP_PKEY *key, const char *alg, int pss_salt, unsigned char *out)
{
    int bits = atoi(alg + 2);
    const EVP_MD *md = bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : EVP_sha512();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[600];
    size_t n = sizeof(der);

    ck_assert_int_eq(EVP_DigestSignInit(ctx, &pctx, md, NULL, key), 1);
    if (alg[0] == 'P') {
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_salt), 0);
    }
    ck_assert_int_eq(EVP_DigestSign(ctx, der, &n, (const unsigned char *)TBS, strlen(TBS)), 1);
    EVP_MD_CTX_free(ctx);
    if (alg[0] != 'E') {
        memcpy(out, der, n);
        return n;
    } else {
        size_t size = bits == 256 ? 32 : bits == 384 ? 48 : 66;
        const unsigned char *p = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);

        ck_assert_ptr_nonnull(s);
        BN_bn2binpad(ECDSA_SIG_get0_r(s), out, (int)size);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), out + size, (int)size);
        ECDSA_SIG_free(s);
        return 2 * size;
    }
}

static int ok(EVP_PKEY *key, const char *alg, const unsigned char *sig, size_t n)
{
    return ot_dpop_sig_ok(key, alg, TBS, strlen(TBS), sig, n);
}

START_TEST(pss_padding_and_salt_survive_the_kept_context)
{
    EVP_PKEY *k = rsa_key();
    unsigned char pss[512], pss_max[512], pkcs[512];
    size_t npss = sign(k, "PS256", -1, pss), nmax = sign(k, "PS256", 222, pss_max);
    size_t npk = sign(k, "RS256", 0, pkcs);

    for (int i = 0; i < 3; i++) { /* the first makes the context, the others copy it */
        ck_assert_int_eq(ok(k, "PS256", pss, npss), 1);
        ck_assert_int_eq(ok(k, "PS256", pss_max, nmax), 0); /* salt is the digest's length */
        ck_assert_int_eq(ok(k, "PS256", pkcs, npk), 0);     /* PKCS#1 v1.5 is not PSS */
        ck_assert_int_eq(ok(k, "RS256", pkcs, npk), 1);
        ck_assert_int_eq(ok(k, "RS256", pss, npss), 0);     /* nor PSS PKCS#1 v1.5 */
        ck_assert_int_eq(ok(k, "PS384", pss, npss), 0);
    }
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(a_context_is_never_reused_for_another_alg_or_key_type)
{
    EVP_PKEY *ec = ec_key("P-256"), *rsa = rsa_key();
    unsigned char s256[132], s384[132], r[512];
    size_t n256 = sign(ec, "ES256", 0, s256), n384 = sign(ec, "ES384", 0, s384);
    size_t nr = sign(rsa, "RS256", 0, r);

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ok(ec, "ES256", s256, n256), 1);
        ck_assert_int_eq(ok(ec, "ES384", s256, n256), 0);
        ck_assert_int_eq(ok(ec, "ES256", s384, n384), 0); /* 96 bytes: not ES256's 2 x 32 */
        ck_assert_int_eq(ok(rsa, "RS256", r, nr), 1);
        ck_assert_int_eq(ok(rsa, "RS384", r, nr), 0);
        ck_assert_int_eq(ok(rsa, "RS512", r, nr), 0);
        /* a key whose type does not fit alg: refused whether or not a context exists */
        ck_assert_int_eq(ok(ec, "RS256", r, nr), 0);
        ck_assert_int_eq(ok(ec, "PS256", r, nr), 0);
        ck_assert_int_eq(ok(rsa, "ES256", s256, n256), 0);
    }
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}
END_TEST

START_TEST(a_freed_key_s_context_never_verifies_for_a_new_key)
{
    unsigned char s[132];

    /* 200 keys through 64 slots: keys are freed as soon as used, and any new key at a freed
     * key's address would find that key's context if the context did not hold its key */
    for (int i = 0; i < 200; i++) {
        EVP_PKEY *a = ec_key("P-256"), *b;
        size_t n = sign(a, "ES256", 0, s);

        ck_assert_int_eq(ok(a, "ES256", s, n), 1);
        EVP_PKEY_free(a);
        b = ec_key("P-256");
        ck_assert_int_eq(ok(b, "ES256", s, n), 0);
        EVP_PKEY_free(b);
    }
}
END_TEST

/* ---- threads ---- */

#define NKEYS 96
#define NTHREADS 6

static EVP_PKEY *tkeys[NKEYS];
static unsigned char tsig[NKEYS][132];
static size_t tlen[NKEYS];

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(apr_uintptr_t)arg;
    long bad = 0;

    for (int i = 0; i < 3000; i++) {
        int k = (int)((seed = seed * 1103515245u + 12345u) >> 8) % NKEYS;
        int other = (k + 1 + (int)(seed >> 20) % (NKEYS - 1)) % NKEYS;
        const char *alg = (k & 1) ? "ES384" : "ES256";

        bad += ok(tkeys[k], alg, tsig[k], tlen[k]) != 1;
        bad += ok(tkeys[other], (other & 1) ? "ES384" : "ES256", tsig[k], tlen[k]) != 0;
    }
    return (void *)bad;
}

START_TEST(threads_sharing_kept_contexts_get_one_thread_s_verdicts)
{
    pthread_t t[NTHREADS];
    long bad = 0;

    for (int i = 0; i < NKEYS; i++) {
        const char *alg = (i & 1) ? "ES384" : "ES256";

        tkeys[i] = ec_key((i & 1) ? "P-384" : "P-256");
        tlen[i] = sign(tkeys[i], alg, 0, tsig[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, (void *)(apr_uintptr_t)(i + 7)), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *r;

        pthread_join(t[i], &r);
        bad += (long)r;
    }
    for (int i = 0; i < NKEYS; i++) {
        EVP_PKEY_free(tkeys[i]);
    }
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* A context is kept only once a signature verified with it, and only where the caller lets it
 * (ot_dpop_verify: for a key an accepted proof was signed with): a signature that fails keeps
 * nothing, so it evicts no other key's context. */
START_TEST(a_failed_signature_keeps_no_context)
{
    EVP_PKEY *k = ec_key("P-256");
    unsigned char sig[132];
    size_t n = sign(k, "ES256", 0, sig);

    sig[n / 2] ^= 1;
    ck_assert_int_eq(ok(k, "ES256", sig, n), 0);
    ck_assert_int_eq(ot_dpop_vctx_kept(k, "ES256"), 0);
    sig[n / 2] ^= 1;
    ck_assert_int_eq(ot_dpop_sig_check(k, "ES256", TBS, strlen(TBS), sig, n, 0), 1);
    ck_assert_int_eq(ot_dpop_vctx_kept(k, "ES256"), 0);
    ck_assert_int_eq(ok(k, "ES256", sig, n), 1);
    ck_assert_int_eq(ot_dpop_vctx_kept(k, "ES256"), 1);
    /* A kept context is found, and a failing signature leaves it kept and still verifying. */
    sig[n / 2] ^= 1;
    ck_assert_int_eq(ok(k, "ES256", sig, n), 0);
    sig[n / 2] ^= 1;
    ck_assert_int_eq(ot_dpop_vctx_kept(k, "ES256"), 1);
    ck_assert_int_eq(ok(k, "ES256", sig, n), 1);
    EVP_PKEY_free(k);
}
END_TEST

Suite *suite_dpop_vctx(void)
{
    Suite *s = suite_create("dpop_vctx");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pss_padding_and_salt_survive_the_kept_context);
    tcase_add_test(tc, a_context_is_never_reused_for_another_alg_or_key_type);
    tcase_add_test(tc, a_freed_key_s_context_never_verifies_for_a_new_key);
    tcase_add_test(tc, threads_sharing_kept_contexts_get_one_thread_s_verdicts);
    tcase_add_test(tc, a_failed_signature_keeps_no_context);
    suite_add_tcase(s, tc);
    return s;
}
