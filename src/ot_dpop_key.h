/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_dpop_key.h
 * @brief The key of a DPoP proof as an OpenSSL key, and a proof's signature checked with it.
 *
 * Core code (APR, OpenSSL). A proof's `jwk` is made into an EVP_PKEY from its public
 * members (a SubjectPublicKeyInfo built here, so that OpenSSL checks an EC point is on its
 * curve), and kept in a small per-process cache keyed by the key's RFC 7638 thumbprint: a client
 * signs every proof with the same key, and making the key (the curve's group above all) costs
 * as much as a fifth of the proof. The thumbprint is a SHA-256 over every member that defines the
 * key, so two keys with one thumbprint are the same key. A key is kept only once a proof signed
 * with it was accepted (ot_dpop_proof_accepted: every check, the token's binding and the replay
 * table), and a verification context only for a kept key whose signature verified: proofs that
 * fail, or keys no token is bound to, never evict the keys of clients that pass. Safe between
 * threads.
 */
#ifndef OT_DPOP_KEY_H
#define OT_DPOP_KEY_H

#include <apr_pools.h>
#include <openssl/evp.h>

#include "ot_dpop_read.h"

/** Entries of the per-process key cache. */
#define OT_DPOP_KEY_CACHE 64

/**
 * The EVP_PKEY of jwk (already checked: public, kty/crv fit the algorithm, members base64url),
 * whose thumbprint is jkt; freed with p. *kept is 1 when it came from the cache, 0 when it was
 * made now (ot_dpop_key_keep keeps it). NULL when OpenSSL refuses it (an EC point not on its
 * curve, say).
 */
EVP_PKEY *ot_dpop_key_get(const char *jkt, const ot_dpop_jwk_t *jwk, int *kept, apr_pool_t *p);

/**
 * Keep key (the cache takes its own reference) as jkt's, in place of what its slot held: only
 * for the key of a proof that was accepted.
 */
void ot_dpop_key_keep(const char *jkt, EVP_PKEY *key);

/** 1 when the cache holds jkt's key. Tests only. */
int ot_dpop_key_kept(const char *jkt);

/**
 * The EVP_PKEY of an RSA or EC public JWK (checked as for ot_dpop_key_get), uncached, for the
 * caller to free with EVP_PKEY_free; NULL when it is not one or OpenSSL refuses it.
 */
EVP_PKEY *ot_jwk_pkey_new(const json_t *jwk, apr_pool_t *p);

/** The same from the members read already (ot_dpop_read.h), uncached. */
EVP_PKEY *ot_jwk_pkey_of(const ot_dpop_jwk_t *jwk, apr_pool_t *p);

/** SHA-256, -384 or -512 (bits), fetched once per process where OpenSSL 3 would on every use. */
const EVP_MD *ot_dpop_md(int bits);

/**
 * An ES signature (r||s, each size bytes) as the DER ECDSA-Sig-Value OpenSSL verifies, for the
 * caller to free with OPENSSL_free (*der_len bytes); NULL on failure.
 */
unsigned char *ot_ecdsa_der(int *der_len, const unsigned char *sig, apr_size_t size);

/**
 * 1 when sig (raw, as in the JWS: r||s for ES, as RFC 7518 §3.4 says) is alg's signature of
 * tbs with key. alg is one of ES256/384/512, RS256/384/512, PS256/384/512.
 */
int ot_dpop_sig_ok(EVP_PKEY *key, const char *alg, const char *tbs, apr_size_t tbs_len,
                   const unsigned char *sig, apr_size_t sig_len);

/**
 * The same; a context made for it is kept for key and alg only when keep is set and the
 * signature verified (ot_dpop_sig_ok: keep 1). ot_dpop_verify keeps one only for a kept key.
 */
/** 1 when a verification context is kept for key and alg. Tests only. */
int ot_dpop_vctx_kept(const EVP_PKEY *key, const char *alg);

int ot_dpop_sig_check(EVP_PKEY *key, const char *alg, const char *tbs, apr_size_t tbs_len,
                      const unsigned char *sig, apr_size_t sig_len, int keep);

#endif
