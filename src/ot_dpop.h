/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_dpop.h
 * @brief DPoP proofs (RFC 9449): every check of §4.3 but replay, the RFC 7638 thumbprint of the
 *        proof's key, server nonces (§8-9), and the RFC 8705 thumbprint of a client certificate.
 *
 * Core code (APR, jansson, cjose, OpenSSL; no httpd). The caller gives what the request looks
 * like to the server (method, URL, the access token) and the time; the verifier says whether the
 * proof fits and, if so, the thumbprint that the token's `cnf.jkt` must equal and the jti that
 * the replay table must see once (ot_replay.h).
 */
#ifndef OT_DPOP_H
#define OT_DPOP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** Longest DPoP header accepted. */
#define OT_DPOP_MAX (8 * 1024)
/** Longest jti accepted. */
#define OT_DPOP_JTI_MAX 256
/** Length of a nonce key. */
#define OT_DPOP_KEY_LEN 32
/** A nonce belongs to a window of this many seconds; the current and the previous one pass. */
#define OT_DPOP_NONCE_WINDOW 120

/** What the request looks like, and what the location accepts. */
typedef struct {
    const char *method;            /**< the initial request's method, compared with htm */
    const char *url;               /**< the URL the client sent the request to (normalised here) */
    const char *token;             /**< the access token, for ath */
    apr_time_t now;
    apr_int64_t max_age;           /**< OfftokDPoPMaxAge, seconds */
    apr_int64_t skew;              /**< OfftokClockSkew, seconds */
    const apr_array_header_t *algs;/**< OfftokDPoPAlgorithms: const char * names */
    const unsigned char *nonce_key;/**< OT_DPOP_KEY_LEN bytes; NULL: nonces are not required */
} ot_dpop_ask_t;

/** A proof that passed. */
typedef struct ot_dpop_proof_t {
    const char *jkt;               /**< RFC 7638 thumbprint of its jwk, base64url */
    const char *jti;
    const char *htu;               /**< normalised */
    apr_int64_t iat;
    int nonce_old;                 /**< its nonce is the previous window's: hand out a new one */
    void *key_new;                 /**< its key (EVP_PKEY, the pool's) when made for this proof,
                                        not kept yet: see ot_dpop_proof_accepted; else NULL */
} ot_dpop_proof_t;

typedef enum {
    OT_DPOP_OK = 0,
    OT_DPOP_INVALID,               /**< 401 error="invalid_dpop_proof" */
    OT_DPOP_NONCE                  /**< 401 error="use_dpop_nonce" with a fresh DPoP-Nonce */
} ot_dpop_result_t;

/**
 * Check header (the DPoP request header's value) against ask. On OT_DPOP_OK *out is filled
 * (from p); otherwise *why (from p) says why, for the log, and never holds the proof or token.
 * A value holding a comma is several headers (httpd joins them) and refused.
 */
ot_dpop_result_t ot_dpop_verify(ot_dpop_proof_t *out, const char **why, const ot_dpop_ask_t *ask,
                                const char *header, apr_pool_t *p);

/**
 * The proof (OT_DPOP_OK from ot_dpop_verify) was accepted: every check, the token's binding and
 * the replay table passed. Its key joins the per-process cache (ot_dpop_key.h), so that the
 * client's next proofs skip making it; the key of a proof never accepted is never kept, so
 * proofs that fail (or that no token is bound to) cannot evict the keys of clients that pass.
 * Call it before the pool given to ot_dpop_verify is cleared.
 */
void ot_dpop_proof_accepted(const ot_dpop_proof_t *proof);

/** 1 when name is an algorithm OfftokDPoPAlgorithms may name (asymmetric, supported here). */
int ot_dpop_alg_known(const char *name);

/** The nonce of the window that holds now, from p. */
const char *ot_dpop_nonce(const unsigned char key[OT_DPOP_KEY_LEN], apr_time_t now,
                          apr_pool_t *p);

/** Derive a nonce key from a secret (OfftokRedisKey) so that every node holding it agrees. */
void ot_dpop_nonce_key(unsigned char key[OT_DPOP_KEY_LEN], const char *secret, apr_size_t len);

/**
 * The replay key of a proof: SHA-256 over its jti and its normalised htu. 0 when the digest
 * cannot be made (out of memory): key is then not set, and the proof must be refused.
 */
int ot_dpop_replay_key(unsigned char key[32], const ot_dpop_proof_t *proof);

/**
 * RFC 7638 thumbprint (base64url of SHA-256) of a public JWK given as JSON text; NULL when it is
 * not an RSA, EC or OKP key with its required members as strings, each in base64url's one
 * encoding of its bytes, and coordinates of its curve's size (P-256/384/521, Ed25519, Ed448,
 * X25519, X448). Tests only: a proof's key
 * is thumbprinted from its header's parsed JWK, by the same code.
 */
const char *ot_dpop_jwk_thumbprint(const char *jwk_json, apr_size_t len, apr_pool_t *p);

/**
 * RFC 8705 §3.1 x5t#S256 of a certificate given in PEM (as mod_ssl's SSL_CLIENT_CERT):
 * base64url(SHA-256(DER)). NULL when pem holds no certificate.
 */
const char *ot_cert_thumbprint(const char *pem, apr_pool_t *p);

/** base64url without padding of n bytes, from p. */
const char *ot_dpop_b64url(const unsigned char *in, apr_size_t n, apr_pool_t *p);

#endif
