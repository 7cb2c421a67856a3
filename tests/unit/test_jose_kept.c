/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* The verification contexts a thread keeps per key and alg and uses as they are, never copied
 * (ot_jose_evp_pctx, branch localuniq): a context is made only for a key of the algorithm's
 * type and curve, never for EdDSA; it gives the verdicts of the DigestVerify path (a copy of
 * ot_jose_evp_ctx's context) on good and bad signatures alike, again and again on the same
 * context, a failure leaving nothing behind that changes the next verdict; PS's padding and
 * salt length hold on it. And ot_jose_verify_held, a first sight's look with the keys held:
 * the keyed verdict or none, never a fetch, never a turn of the fetch schedule taken.
 * Signatures are made here with OpenSSL directly. */
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <cjose/cjose.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "ot_unit.h"
#include "ot_jose_int.h"

static const char PAYLOAD[] = "{\"sub\":\"alice\",\"typ\":\"Bearer\"}";

static const char *b64(const unsigned char *data, size_t len)
{
    cjose_err err;
    char *out = NULL;
    size_t out_len = 0;
    const char *copy;

    ck_assert(cjose_base64url_encode(data, len, &out, &out_len, &err));
    copy = apr_pstrmemdup(ot_test_pool, out, out_len);
    free(out);
    return copy;
}

#define T0 apr_time_from_sec(1796015000)
#define SEC(n) apr_time_from_sec(n)

/** A compact JWS of PAYLOAD, header {"alg":alg} (and "kid":kid), signed by key. */
static const char *sign_kid(EVP_PKEY *key, const char *alg, int pss_salt, const char *kid)
{
    int bits = atoi(alg + 2);
    const EVP_MD *md = bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : EVP_sha512();
    const char *hdr = kid ? apr_psprintf(ot_test_pool, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg,
                                         kid)
                          : apr_psprintf(ot_test_pool, "{\"alg\":\"%s\"}", alg);
    const char *tbs = apr_pstrcat(ot_test_pool, b64((const unsigned char *)hdr, strlen(hdr)),
                                  ".", b64((const unsigned char *)PAYLOAD, strlen(PAYLOAD)),
                                  NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[600], raw[132];
    size_t n = sizeof(der);

    ck_assert_int_eq(EVP_DigestSignInit(ctx, &pctx, md, NULL, key), 1);
    if (alg[0] == 'P') {
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_salt), 0);
    }
    ck_assert_int_eq(EVP_DigestSign(ctx, der, &n, (const unsigned char *)tbs, strlen(tbs)), 1);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E') {
        size_t size = bits == 256 ? 32 : bits == 384 ? 48 : 66;
        const unsigned char *p = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);

        ck_assert_ptr_nonnull(s);
        BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, (int)size);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + size, (int)size);
        ECDSA_SIG_free(s);
        return apr_pstrcat(ot_test_pool, tbs, ".", b64(raw, 2 * size), NULL);
    }
    return apr_pstrcat(ot_test_pool, tbs, ".", b64(der, n), NULL);
}

/** sign_kid without a kid; pss_salt as for OpenSSL. */
static const char *sign(EVP_PKEY *key, const char *alg, int pss_salt)
{
    return sign_kid(key, alg, pss_salt, NULL);
}

/** tok with the signature of the token sig_of instead of its own. */
static const char *with_sig(const char *tok, const char *sig_of)
{
    apr_size_t n = (apr_size_t)(strrchr(tok, '.') - tok);

    return apr_pstrcat(ot_test_pool, apr_pstrndup(ot_test_pool, tok, n), strrchr(sig_of, '.'),
                       NULL);
}

/** The kept context's verdict on tok, held to the DigestVerify path's (tmpl) verdict. */
static int kept_ok(EVP_PKEY_CTX *kept, const EVP_MD_CTX *tmpl, const char *alg, const char *tok)
{
    const char *text = NULL, *text2 = NULL;
    apr_size_t len = 0, len2 = 0;
    int a = ot_jose_evp_verify(NULL, kept, alg, tok, strlen(tok), &text, &len, ot_test_pool);
    int b = ot_jose_evp_verify(tmpl, NULL, alg, tok, strlen(tok), &text2, &len2, ot_test_pool);

    ck_assert_msg(a == b, "%s: kept %d, DigestVerify %d", alg, a, b);
    if (a) {
        ck_assert_uint_eq(len, strlen(PAYLOAD));
        ck_assert_str_eq(text, PAYLOAD);
    }
    return a;
}

START_TEST(kept_context_fits_the_key)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec[3], *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    static const char *const curves[] = { "P-256", "P-384", "P-521" };
    static const char *const es[] = { "ES256", "ES384", "ES512" };
    static const char *const rs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512" };
    EVP_PKEY_CTX *c;
    int a, k;

    for (k = 0; k < 3; k++) {
        ec[k] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[k]);
        for (a = 0; a < 3; a++) {
            c = ot_jose_evp_pctx(ec[k], es[a]);
            ck_assert_msg((c != NULL) == (a == k), "%s on %s", es[a], curves[k]);
            EVP_PKEY_CTX_free(c);
        }
        ck_assert_ptr_null(ot_jose_evp_pctx(ec[k], "RS256"));
        ck_assert_ptr_null(ot_jose_evp_pctx(ec[k], "PS256"));
        ck_assert_ptr_null(ot_jose_evp_pctx(ec[k], "EdDSA"));
        EVP_PKEY_free(ec[k]);
    }
    for (a = 0; a < 6; a++) {
        c = ot_jose_evp_pctx(rsa, rs[a]);
        ck_assert_ptr_nonnull(c);
        EVP_PKEY_CTX_free(c);
    }
    ck_assert_ptr_null(ot_jose_evp_pctx(rsa, "ES256"));
    ck_assert_ptr_null(ot_jose_evp_pctx(rsa, "EdDSA"));
    ck_assert_ptr_null(ot_jose_evp_pctx(ed, "EdDSA"));
    ck_assert_ptr_null(ot_jose_evp_pctx(ed, "ES256"));
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
}
END_TEST

/**
 * One kept context per alg, used for many tokens in turn, good and bad interleaved: every
 * verdict is the DigestVerify path's, and a good token after any number of failures verifies.
 */
START_TEST(kept_context_used_again_and_again)
{
    static const char *const algs[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                        "ES256", "ES384", "ES512" };
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec[3], *ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    size_t i;
    int round;

    ec[0] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    ec[2] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        const char *alg = algs[i];
        EVP_PKEY *key = alg[0] == 'E' ? ec[alg[2] == '2' ? 0 : alg[2] == '3' ? 1 : 2] : rsa;
        EVP_PKEY *other = alg[0] != 'E' ? rsa2 : key == ec[0] ? ec2 : ec[0];
        EVP_PKEY_CTX *kept = ot_jose_evp_pctx(key, alg);
        EVP_MD_CTX *tmpl = ot_jose_evp_ctx(key, alg);
        const char *good = sign(key, alg, RSA_PSS_SALTLEN_DIGEST), *sig = strrchr(good, '.') + 1;
        char *flipped = apr_pstrdup(ot_test_pool, good);
        const char *bad[6];
        size_t b;

        ck_assert_ptr_nonnull(kept);
        ck_assert_ptr_nonnull(tmpl);
        flipped[strlen(flipped) - 5] = flipped[strlen(flipped) - 5] == 'A' ? 'B' : 'A';
        bad[0] = flipped;
        bad[1] = with_sig(good, sign(other, alg, RSA_PSS_SALTLEN_DIGEST));  /* another key */
        bad[2] = apr_pstrcat(ot_test_pool, good, "AA", NULL);            /* a byte more */
        bad[3] = apr_pstrndup(ot_test_pool, good, strlen(good) - strlen(sig) / 2);
        /* the other padding: PKCS #1 v1.5 for PS, PSS for RS; for ES another curve's size */
        bad[4] = alg[0] == 'R' ? with_sig(good, sign(key, apr_pstrcat(ot_test_pool, "PS",
                                                                      alg + 2, NULL), -1))
               : alg[0] == 'P' ? with_sig(good, sign(key, apr_pstrcat(ot_test_pool, "RS",
                                                                      alg + 2, NULL), 0))
               : with_sig(good, sign(key == ec[0] ? ec[1] : ec[0], key == ec[0] ? "ES384"
                                                                               : "ES256", 0));
        /* PS with the longest salt, not the digest's length */
        bad[5] = alg[0] == 'P' ? with_sig(good, sign(key, alg, RSA_PSS_SALTLEN_MAX)) : flipped;
        for (round = 0; round < 3; round++) {
            ck_assert_msg(kept_ok(kept, tmpl, alg, good), "%s round %d", alg, round);
            for (b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
                ck_assert_msg(!kept_ok(kept, tmpl, alg, bad[b]), "%s bad %zu", alg, b);
                ck_assert_msg(kept_ok(kept, tmpl, alg, good), "%s after bad %zu", alg, b);
            }
        }
        EVP_PKEY_CTX_free(kept);
        EVP_MD_CTX_free(tmpl);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec2);
    for (i = 0; i < 3; i++) {
        EVP_PKEY_free(ec[i]);
    }
}
END_TEST

/** The RSA key's public part as a JWK under kid, with extra members (",..." or ""). */
static const char *jwk_of(EVP_PKEY *rsa, const char *kid, const char *extra)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char nb[512], eb[16];
    int nl, el;

    ck_assert_int_eq(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    ck_assert_int_eq(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    nl = BN_bn2bin(n, nb);
    el = BN_bn2bin(e, eb);
    BN_free(n);
    BN_free(e);
    return apr_psprintf(ot_test_pool, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\","
                        "\"e\":\"%s\"%s}", kid, b64(nb, (size_t)nl), b64(eb, (size_t)el),
                        extra);
}

/** A JWKS of the RSA key's public part under kid. */
static const char *jwks_of(EVP_PKEY *rsa, const char *kid)
{
    return apr_pstrcat(ot_test_pool, "{\"keys\":[", jwk_of(rsa, kid, ",\"use\":\"sig\""), "]}",
                       NULL);
}

typedef struct {
    const char *jwks;
    int fetches;
} fake_t;

static apr_status_t fake_fetch(void *baton, const char *url, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p)
{
    fake_t *f = baton;

    f->fetches++;
    *body = f->jwks;
    *len = strlen(f->jwks);
    return APR_SUCCESS;
}

static const char URL[] = "https://issuer/certs";

/** ot_jose_verify_held on tok at now: the verdict, *need as it says. */
static ot_jose_result_t held(ot_jose_keys_t *k, const char *tok, apr_time_t now, int *need)
{
    const char *why = NULL;
    ot_jws_t jws;
    ot_jose_result_t r;

    *need = -1;
    r = ot_jose_verify_held(&jws, &why, need, k, URL, tok, strlen(tok), NULL, now, ot_test_pool);
    ck_assert(*need == 0 || *need == 1);
    ck_assert(r == OT_JOSE_OK || why != NULL);
    if (r == OT_JOSE_OK) {
        ck_assert(!*need);
        ck_assert_str_eq(jws.payload_text, PAYLOAD);
    }
    return r;
}

/** The keyed verification (fetching as it must) of tok at now. */
static ot_jose_result_t keyed(ot_jose_keys_t *k, fake_t *f, const char *tok, apr_time_t now)
{
    const char *why = NULL;
    ot_jws_t jws;
    int unknown = 0;

    return ot_jose_verify_kid_text_h(&jws, &why, &unknown, k, URL, tok, strlen(tok), NULL,
                                     fake_fetch, f, now, ot_test_pool);
}

/**
 * With the keys held, the held look gives the keyed verdict (good, forged, garbage); where the
 * keyed one would fetch (no keys yet, keys past OT_JWKS_MAX_AGE, an unknown kid) it gives none
 * and fetches nothing, and the fetch schedule is left as it was: the keyed look right after it
 * still fetches.
 */
START_TEST(held_keys_verdict_or_none_never_a_fetch)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fake_t f = { jwks_of(rsa, "k1"), 0 };
    const char *good = sign_kid(rsa, "RS256", 0, "k1");
    const char *forged = sign_kid(rsa2, "RS256", 0, "k1");
    const char *unknown = sign_kid(rsa2, "RS256", 0, "k2");
    ot_jose_keys_t *k;
    int need;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    held(k, good, T0, &need);
    ck_assert_int_eq(need, 1);                      /* no keys yet */
    ck_assert_int_eq(f.fetches, 0);
    ck_assert_int_eq(keyed(k, &f, good, T0), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 1);
    ck_assert_int_eq(held(k, good, T0 + SEC(1), &need), OT_JOSE_OK);
    ck_assert_int_eq(held(k, forged, T0 + SEC(1), &need), OT_JOSE_INVALID);
    ck_assert_int_eq(need, 0);
    ck_assert_int_eq(keyed(k, &f, forged, T0 + SEC(1)), OT_JOSE_INVALID);
    ck_assert_int_eq(held(k, "x.y.z", T0 + SEC(1), &need), OT_JOSE_INVALID);
    ck_assert_int_eq(need, 0);                      /* garbage: the keyed verdict too */
    /* An unknown kid, past the interval: no verdict and no fetch; the keyed look then fetches */
    held(k, unknown, T0 + SEC(20), &need);
    ck_assert_int_eq(need, 1);
    held(k, unknown, T0 + SEC(20), &need);
    ck_assert_int_eq(f.fetches, 1);
    ck_assert_int_eq(keyed(k, &f, unknown, T0 + SEC(20)), OT_JOSE_INVALID);
    ck_assert_int_eq(f.fetches, 2);
    /* Keys as old as OT_JWKS_MAX_AGE: the keyed look would fetch, so no verdict, no fetch. */
    held(k, good, T0 + SEC(20) + OT_JWKS_MAX_AGE, &need);
    ck_assert_int_eq(need, 1);
    ck_assert_int_eq(f.fetches, 2);
    ck_assert_int_eq(keyed(k, &f, good, T0 + SEC(20) + OT_JWKS_MAX_AGE), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 3);
    ck_assert_int_eq(held(k, good, T0 + SEC(21) + OT_JWKS_MAX_AGE, &need), OT_JOSE_OK);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
}
END_TEST

/**
 * A key the issuer takes out of its set stops verifying once the new set is fetched, on the
 * thread that kept a context for it: removed, or its kid given to another key (the kept context
 * and fit belong to the set's version, never to the kid). The held look says the same.
 */
START_TEST(kept_context_goes_with_its_set)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    const char *good = sign_kid(rsa, "RS256", 0, "k1"), *next = sign_kid(rsa2, "RS256", 0, "k2");
    const char *reused = sign_kid(rsa2, "RS256", 0, "k1");
    fake_t f = { jwks_of(rsa, "k1"), 0 };
    ot_jose_keys_t *k;
    int need, round;

    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    for (round = 0; round < 3; round++) {
        ck_assert_int_eq(keyed(k, &f, good, T0), OT_JOSE_OK);
        ck_assert_int_eq(held(k, good, T0, &need), OT_JOSE_OK);
    }
    /* rotated: k1 removed, k2 in; the unknown k2 fetches the new set */
    f.jwks = jwks_of(rsa2, "k2");
    ck_assert_int_eq(keyed(k, &f, next, T0 + SEC(20)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 2);
    ck_assert_int_ne(keyed(k, &f, good, T0 + SEC(21)), OT_JOSE_OK);
    ck_assert_int_ne(held(k, good, T0 + SEC(21), &need), OT_JOSE_OK);
    /* k1 again, now another key's: the old key's token fails with it, the new key's verifies */
    f.jwks = jwks_of(rsa2, "k1");
    ck_assert_int_eq(keyed(k, &f, reused, T0 + SEC(40)), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 3);
    ck_assert_int_eq(keyed(k, &f, good, T0 + SEC(41)), OT_JOSE_INVALID);
    ck_assert_int_eq(held(k, good, T0 + SEC(41), &need), OT_JOSE_INVALID);
    ck_assert_int_eq(need, 0);
    ck_assert_int_eq(held(k, reused, T0 + SEC(41), &need), OT_JOSE_OK);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
}
END_TEST

/** tok's payload and signature under the header hdr (JSON) instead of its own. */
static const char *with_header(const char *tok, const char *hdr)
{
    return apr_pstrcat(ot_test_pool, b64((const unsigned char *)hdr, strlen(hdr)),
                       strchr(tok, '.'), NULL);
}

/**
 * A held verdict of OT_JOSE_INVALID for ot_jose_sig_fails says what ot_jose_known_forgery says
 * of a token with a kid (the flood check takes a first sight's verdict for it, not checking the
 * token again): a key of its kid failed it. Not for a good token, garbage, a refused header, an
 * unknown kid or a kid whose only member may not verify; yes when every member of its kid fails.
 */
START_TEST(held_sig_fails_is_a_known_forgery)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa3 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    const char *good = sign_kid(rsa, "RS256", 0, "k1"), *forged = sign_kid(rsa3, "RS256", 0, "k1");
    const char *toks[] = {
        good, forged, sign_kid(rsa, "PS256", -1, "k1"), sign_kid(rsa3, "PS256", -1, "k1"),
        sign_kid(rsa, "RS256", 0, "k2"), sign_kid(rsa3, "RS256", 0, "k9"),
        with_header(good, "{\"alg\":\"RS256\",\"kid\":\"k1\",\"crit\":[\"x\"]}"),
        with_header(good, "{\"alg\":\"RS256\",\"kid\":7}"), "eyJ4IjoxfQ.e30.c2ln",
    };
    const char *sets[] = {
        jwks_of(rsa, "k1"),
        /* the kid twice: another key first, then the token's */
        apr_pstrcat(ot_test_pool, "{\"keys\":[", jwk_of(rsa2, "k1", ""), ",",
                    jwk_of(rsa, "k1", ""), "]}", NULL),
        /* k1 may not verify; k9 keeps the set usable */
        apr_pstrcat(ot_test_pool, "{\"keys\":[", jwk_of(rsa, "k1", ",\"use\":\"enc\""), ",",
                    jwk_of(rsa2, "k9", ""), "]}", NULL),
    };
    size_t i, j;
    int forgeries = 0;

    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        fake_t f = { sets[i], 0 };
        ot_jose_keys_t *k;

        ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
        keyed(k, &f, good, T0);                     /* the keys fetched, then held */
        for (j = 0; j < sizeof(toks) / sizeof(toks[0]); j++) {
            const char *why = NULL;
            ot_jws_t jws;
            int need = -1, sig_fails;
            ot_jose_result_t r = ot_jose_verify_held(&jws, &why, &need, k, URL, toks[j],
                                                     strlen(toks[j]), NULL, T0, ot_test_pool);

            if (need) {
                continue;                           /* no verdict: nothing handed on */
            }
            sig_fails = r == OT_JOSE_INVALID && why == ot_jose_sig_fails;
            forgeries += sig_fails;
            ck_assert_msg(sig_fails == ot_jose_known_forgery(k, URL, toks[j], strlen(toks[j]),
                                                             ot_test_pool),
                          "set %zu token %zu: held %d (%s)", i, j, (int)r, why);
        }
    }
    ck_assert_int_ge(forgeries, 3);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(rsa3);
}
END_TEST

/**
 * A member's fit for an algorithm, kept per thread's parsed set: asked again and again, it says
 * what the member says (use, key_ops, alg, kid), for each algorithm apart: a member fit for
 * RS256 only never checks a PS256 token, an unfit member never hides a fit one after it.
 */
START_TEST(kept_fits_answer_as_the_members_say)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    const char *rs = sign_kid(rsa, "RS256", 0, "k1"), *ps = sign_kid(rsa, "PS256", -1, "k1");
    const char *other_kid = sign_kid(rsa, "RS256", 0, "k2");
    struct {
        const char *members;
        ot_jose_result_t rs, ps;
    } sets[] = {
        { jwk_of(rsa, "k1", ""), OT_JOSE_OK, OT_JOSE_OK },
        { jwk_of(rsa, "k1", ",\"alg\":\"RS256\""), OT_JOSE_OK, OT_JOSE_INVALID },
        { jwk_of(rsa, "k1", ",\"alg\":\"PS256\""), OT_JOSE_INVALID, OT_JOSE_OK },
        /* a usable member under another kid keeps the set usable (ot_jose_jwks_check) */
        { apr_pstrcat(ot_test_pool, jwk_of(rsa, "k1", ",\"use\":\"enc\""), ",",
                      jwk_of(rsa, "k9", ""), NULL), OT_JOSE_INVALID, OT_JOSE_INVALID },
        { apr_pstrcat(ot_test_pool, jwk_of(rsa, "k1", ",\"key_ops\":[\"encrypt\"]"), ",",
                      jwk_of(rsa, "k9", ""), NULL), OT_JOSE_INVALID, OT_JOSE_INVALID },
        { apr_pstrcat(ot_test_pool, jwk_of(rsa, "k1", ",\"use\":\"enc\""), ",",
                      jwk_of(rsa, "k1", ",\"alg\":\"RS256\""), NULL),
          OT_JOSE_OK, OT_JOSE_INVALID },
    };
    size_t i;
    int round;

    for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        fake_t f = { apr_pstrcat(ot_test_pool, "{\"keys\":[", sets[i].members, "]}", NULL), 0 };
        ot_jose_keys_t *k;

        ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
        for (round = 0; round < 3; round++) {
            ck_assert_msg(keyed(k, &f, rs, T0) == sets[i].rs, "set %zu RS256 round %d", i, round);
            ck_assert_msg(keyed(k, &f, ps, T0) == sets[i].ps, "set %zu PS256 round %d", i, round);
            ck_assert_int_eq(keyed(k, &f, other_kid, T0), OT_JOSE_INVALID);
        }
    }
    EVP_PKEY_free(rsa);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------- */

#define CROWD_ALGS 5
#define CROWD_THREADS 4

/** What one thread verifies, and how many verdicts it found wrong. */
typedef struct {
    ot_jose_keys_t *k;
    fake_t *f;
    const char **ok, **no;          /**< per algorithm: verifies, and does not */
    apr_time_t now;
    apr_pool_t *pool;               /**< the thread's own */
    int wrong;
} crowd_t;

static void *APR_THREAD_FUNC crowd_run(apr_thread_t *t, void *data)
{
    crowd_t *c = data;
    const char *why = NULL;
    ot_jws_t jws;
    int round, a, unknown = 0;

    for (round = 0; round < 20; round++) {
        for (a = 0; a < CROWD_ALGS; a++) {
            c->wrong += ot_jose_verify_kid_text_h(&jws, &why, &unknown, c->k, URL, c->ok[a],
                                                  strlen(c->ok[a]), NULL, fake_fetch, c->f,
                                                  c->now, c->pool) != OT_JOSE_OK;
            c->wrong += ot_jose_verify_kid_text_h(&jws, &why, &unknown, c->k, URL, c->no[a],
                                                  strlen(c->no[a]), NULL, fake_fetch, c->f,
                                                  c->now, c->pool) != OT_JOSE_INVALID;
        }
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/** CROWD_THREADS threads at once, each on its own: how many verdicts were wrong. */
static int crowd(ot_jose_keys_t *k, fake_t *f, const char **ok, const char **no, apr_time_t now)
{
    crowd_t c[CROWD_THREADS];
    apr_thread_t *t[CROWD_THREADS];
    apr_status_t rv;
    int i, wrong = 0;

    for (i = 0; i < CROWD_THREADS; i++) {
        c[i] = (crowd_t){ k, f, ok, no, now, NULL, 0 };
        ck_assert_int_eq(apr_pool_create(&c[i].pool, ot_test_pool), APR_SUCCESS);
    }
    for (i = 0; i < CROWD_THREADS; i++) {
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, crowd_run, &c[i], ot_test_pool), 0);
    }
    for (i = 0; i < CROWD_THREADS; i++) {
        apr_thread_join(&rv, t[i]);
        wrong += c[i].wrong;
    }
    return wrong;
}

/**
 * Threads verifying at once, with RS and PS of every hash in turn, each on the digest context
 * and parsed keys it keeps (ot_jose_evp.c, ot_jose_parsed.c): every good token verifies and
 * every bad one fails on every thread; after a rotation (another key under the same kid) each
 * thread verifies with the new key alone, its parsed copy of the old set never used again.
 */
START_TEST(threads_keep_their_own_and_follow_a_rotation)
{
    static const char *const algs[CROWD_ALGS] = { "RS256", "RS384", "RS512", "PS384",
                                                  "PS256" };
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    const char *old[CROWD_ALGS], *bad[CROWD_ALGS], *cur[CROWD_ALGS];
    fake_t f = { jwks_of(rsa, "k1"), 0 };
    ot_jose_keys_t *k;
    int a;

    for (a = 0; a < CROWD_ALGS; a++) {
        char *flipped;

        old[a] = sign_kid(rsa, algs[a], RSA_PSS_SALTLEN_DIGEST, "k1");
        cur[a] = sign_kid(rsa2, algs[a], RSA_PSS_SALTLEN_DIGEST, "k1");
        flipped = apr_pstrdup(ot_test_pool, old[a]);
        flipped[strlen(flipped) - 5] = flipped[strlen(flipped) - 5] == 'A' ? 'B' : 'A';
        bad[a] = flipped;
    }
    ck_assert_int_eq(ot_jose_keys_create(&k, SEC(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(crowd(k, &f, old, bad, T0), 0);
    ck_assert_int_eq(crowd(k, &f, old, cur, T0 + SEC(1)), 0);
    f.jwks = jwks_of(rsa2, "k1");           /* the rotation, seen at the next fetch */
    ck_assert_int_eq(keyed(k, &f, cur[0], T0 + OT_JWKS_MAX_AGE), OT_JOSE_OK);
    ck_assert_int_eq(f.fetches, 2);
    ck_assert_int_eq(crowd(k, &f, cur, old, T0 + OT_JWKS_MAX_AGE + SEC(1)), 0);
    ck_assert_int_eq(f.fetches, 2);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
}
END_TEST

Suite *suite_jose_kept(void)
{
    Suite *s = suite_create("jose_kept");
    TCase *tc = tcase_create("jose_kept");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, kept_context_fits_the_key);
    tcase_add_test(tc, kept_context_used_again_and_again);
    tcase_add_test(tc, held_keys_verdict_or_none_never_a_fetch);
    tcase_add_test(tc, kept_fits_answer_as_the_members_say);
    tcase_add_test(tc, held_sig_fails_is_a_known_forgery);
    tcase_add_test(tc, kept_context_goes_with_its_set);
    tcase_add_test(tc, threads_keep_their_own_and_follow_a_rotation);
    suite_add_tcase(s, tc);
    return s;
}
