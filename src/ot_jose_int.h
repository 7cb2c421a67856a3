/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_int.h
 * @brief Internal to the ot_jose family (ot_jose.c, ot_jose_cache.c, ot_jose_parsed.c,
 *        ot_jose_evp.c, ot_jose_okp.c): each thread's parsed key sets, once per JWKS version,
 *        and what the files of the family share.
 */
#ifndef OT_JOSE_INT_H
#define OT_JOSE_INT_H

#include <apr_pools.h>
#include <jansson.h>
#include <cjose/cjose.h>
#include <openssl/evp.h>

#include "ot_jose.h"

typedef struct ot_jose_parsed_t ot_jose_parsed_t;

/** Import one JWKS member as a cjose key the caller releases, or NULL; scratch for the work. */
typedef cjose_jwk_t *ot_jose_import_fn(json_t *key, apr_pool_t *scratch);

/**
 * This thread's parsed copy of the key set of (owner, url) at generation gen, parsed from
 * jwks[0..len) when the thread has none for that generation (an older one is freed). NULL when
 * no copy can be kept (the caller then parses for itself). Valid until this thread's next call.
 */
ot_jose_parsed_t *ot_jose_parsed(const void *owner, const char *url, apr_uint64_t gen,
                                 const char *jwks, apr_size_t len);

/**
 * This thread's parsed copy of the key set of (owner, url) at generation gen (len bytes of text),
 * when it has one; NULL otherwise. Nothing is made: it may be called under the key cache's lock.
 * A generation names one text only (ot_jose_cache.c never gives one twice, per owner or not).
 */
ot_jose_parsed_t *ot_jose_parsed_held(const void *owner, const char *url, apr_uint64_t gen,
                                      apr_size_t len);

/** The parsed JWKS (NULL when it was not JSON). */
json_t *ot_jose_parsed_set(const ot_jose_parsed_t *ps);

/**
 * Member i of "keys" imported with import (scratch: a pool for its work), once per parsed set;
 * NULL when it does not import. The key is the set's: the caller never releases it.
 */
cjose_jwk_t *ot_jose_parsed_jwk(ot_jose_parsed_t *ps, size_t i, ot_jose_import_fn *import,
                                apr_pool_t *scratch);

/**
 * Member i of "keys" as an OpenSSL key, made once per parsed set (okp: an Ed25519 key, else an RSA
 * or EC one); NULL when it is not one. The key is the set's: the caller never frees it.
 */
EVP_PKEY *ot_jose_parsed_pkey(ot_jose_parsed_t *ps, size_t i, int okp, apr_pool_t *scratch);

/** 1 when the JWKS member key may check tokens of the algorithm of index a (any kid). */
typedef int ot_jose_fits_fn(const json_t *key, int a);

/**
 * fits(member i, a), asked once per parsed set and remembered: the set never changes. 0 when
 * there is no member i.
 */
int ot_jose_parsed_fits(ot_jose_parsed_t *ps, size_t i, int a, ot_jose_fits_fn *fits);

/* ---- OpenSSL keys and signatures (ot_jose_okp.c, ot_jose_evp.c) ---------------------------- */

/** The Ed25519 public JWK key as an EVP_PKEY the caller frees; NULL when it is not one. */
EVP_PKEY *ot_jose_okp_pkey(const json_t *key, apr_pool_t *p);

/** 1 when sig (64 bytes) is the Ed25519 key's signature of tbs. */
int ot_jose_okp_sig_ok(EVP_PKEY *key, const char *tbs, apr_size_t tbs_len,
                       const unsigned char *sig, apr_size_t sig_len);

/**
 * A DigestVerify context for key and alg (one of ot_jose.c's), made ready once: a verification
 * works on a copy of it. NULL when the key is not of alg's type (for ES, of its curve). Freed
 * with EVP_MD_CTX_free.
 */
EVP_MD_CTX *ot_jose_evp_ctx(EVP_PKEY *key, const char *alg);

/**
 * A verification context for key and alg (RS, PS or ES; NULL for EdDSA), made ready once and
 * used as it is by one thread (ot_jose_evp_verify's kept): the input is hashed apart and the
 * context is never copied. NULL when the key is not of alg's type (for ES, of its curve). Freed
 * with EVP_PKEY_CTX_free.
 */
EVP_PKEY_CTX *ot_jose_evp_pctx(EVP_PKEY *key, const char *alg);

/**
 * 1 when the key of kept (ot_jose_evp_pctx, this thread's) or, when kept is NULL, of tmpl
 * (ot_jose_evp_ctx) verifies the compact JWS compact (len bytes, three base64url parts) as alg,
 * with OpenSSL alone: RS, PS with a salt as long as the hash, ES with r||s of exactly the curve's
 * size, EdDSA (tmpl only). *text (NUL-terminated, from p) and *text_len are then its payload.
 */
int ot_jose_evp_verify(const EVP_MD_CTX *tmpl, EVP_PKEY_CTX *kept, const char *alg,
                       const char *compact, apr_size_t len, const char **text,
                       apr_size_t *text_len, apr_pool_t *p);

/** Algorithms ot_jose.c accepts (the length of its table). */
#define OT_JOSE_ALGS 10

/**
 * The context of ot_jose_evp_ctx for member i's key pk and the algorithm alg (index a of
 * ot_jose.c's table), made once per parsed set. The set's: the caller never frees it.
 */
EVP_MD_CTX *ot_jose_parsed_ctx(ot_jose_parsed_t *ps, size_t i, int a, const char *alg,
                               EVP_PKEY *pk);

/**
 * The context of ot_jose_evp_pctx for member i's key pk and the algorithm alg (index a), made
 * once per parsed set; NULL for EdDSA or a key alg cannot use. The set's (so this thread's): the
 * caller never frees it.
 */
EVP_PKEY_CTX *ot_jose_parsed_pctx(ot_jose_parsed_t *ps, size_t i, int a, const char *alg,
                                  EVP_PKEY *pk);

/* ---- between ot_jose.c and ot_jose_cache.c -------------------------------------------- */

/** One accepted algorithm (ot_jose.c's table). */
typedef struct ot_jose_alg_t ot_jose_alg_t;

/** A token taken apart, before any key is tried. */
typedef struct {
    const char *compact;  /**< NUL-terminated copy */
    apr_size_t len;
    apr_size_t hlen;      /**< length of the header part */
    const ot_jose_alg_t *alg;
    const char *kid;
    const char *typ;
    int text;             /**< 1: the payload is given as text, not parsed */
    apr_pool_t *scratch;  /**< the pool it was parsed in */
} ot_jose_in_t;

/**
 * Take compact (len bytes) apart into *in and judge its header h (read here when NULL); *why
 * on failure. Garbage is refused here, before any key or fetch.
 */
apr_status_t ot_jose_parse_compact(ot_jose_in_t *in, const char **why, const char *compact,
                                   apr_size_t len, const ot_jose_header_t *h, apr_pool_t *p);

/**
 * Verify in with the keys of jwks: parsed here, or taken from ps (this thread's parsed copy of
 * the same text) when not NULL. *no_key: no key of the set could even be tried.
 */
ot_jose_result_t ot_jose_verify_in(ot_jws_t *jws, const char **why, int *no_key,
                                   const char *jwks, apr_size_t jwks_len, ot_jose_parsed_t *ps,
                                   const ot_jose_in_t *in, apr_pool_t *p);

/** Why a JWS whose signature verifies is still refused (compared by address). */
extern const char ot_jose_not_an_object[];

#endif
