/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_util.h
 * @brief Small helpers of the core: digests, encodings, secrets and argument parsing.
 */
#ifndef OT_UTIL_H
#define OT_UTIL_H

#include <apr_pools.h>
#include <apr_time.h>

/** Write the low n bytes of x at p, most significant first (big-endian). */
static APR_INLINE void ot_be_put(unsigned char *p, apr_uint64_t x, int n)
{
    while (n--) {
        p[n] = (unsigned char)(x & 0xff);
        x >>= 8;
    }
}

/** The n-byte big-endian number at p. */
static APR_INLINE apr_uint64_t ot_be_get(const unsigned char *p, int n)
{
    apr_uint64_t x = 0;

    while (n--) {
        x = (x << 8) | *p++;
    }
    return x;
}

/** Length of a SHA-256 digest. */
#define OT_SHA256_LEN 32

/**
 * This thread's digest context, made on its first use and freed with the thread; NULL when none
 * can be had. Each user runs a whole EVP_DigestInit_ex .. EVP_DigestFinal_ex on it without
 * calling out in between (the cache key, a JWS's signed input), so one context serves them all.
 */
struct evp_md_ctx_st *ot_thread_md_ctx(void);

/** "sha256:" and the first 12 hex digits of the token's digest: what logs show of a token. */
const char *ot_token_fingerprint(const char *token, apr_pool_t *p);

/**
 * Decode base64url (RFC 4648 §5, padding optional) into a NUL-terminated buffer from p.
 * APR_EINVAL on any character outside the alphabet or an impossible length.
 */
apr_status_t ot_b64url_decode(char **out, apr_size_t *out_len, const char *in, apr_size_t in_len,
                              apr_pool_t *p);

/** Lower-case hex of n bytes into out (2n + 1 chars, NUL-terminated). */
void ot_hex(char *out, const unsigned char *in, apr_size_t n);

/**
 * 1 when s[0..len) is a compact JWS's shape: three non-empty base64url parts joined by two dots
 * and nothing else; *hlen is then the first part's length.
 */
int ot_jws_compact_shape(const char *s, apr_size_t len, apr_size_t *hlen);

/** Standard base64 with padding. */
const char *ot_b64_encode(const char *in, apr_size_t len, apr_pool_t *p);

/** application/x-www-form-urlencoded encoding of s (RFC 6749 Appendix B). */
const char *ot_form_encode(const char *s, apr_pool_t *p);

/**
 * Resolve a secret given as a literal, `env:VAR` or `file:PATH` (read now, one trailing newline
 * removed). On failure returns NULL and sets *err to a message that never contains the secret.
 */
const char *ot_secret_resolve(const char *spec, const char **err, apr_pool_t *p);

/** Parse "2", "0.5", "1.25" seconds (0 < value <= 3600). NULL on success, else a message. */
const char *ot_parse_seconds(const char *arg, apr_interval_time_t *out, apr_pool_t *p);

/** Parse a whole number of seconds in [0, max]. NULL on success, else a message. */
const char *ot_parse_ttl(const char *arg, int max, int *out, apr_pool_t *p);

/** Parse a byte size with an optional K, M or G suffix (powers of 1024). */
const char *ot_parse_size(const char *arg, apr_size_t min, apr_size_t max, apr_size_t *out,
                          apr_pool_t *p);

/** 1 when the query string carries a parameter named `name` (form-decoded name comparison). */
int ot_query_has_param(const char *args, const char *name);

#endif
