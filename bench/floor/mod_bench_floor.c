/*
 * mod_bench_floor: the benchmark's floors (bench/bench02.py), not part of the module and never
 * installed. Each mode does the one thing its scenario cannot avoid and nothing else, so that
 * "floor / unauthenticated" is the best ratio any module can reach on this machine and
 * "module / floor" is what mod_offtok's extra work costs. A request that does not verify gets
 * 401, so a floor cannot skip its work unnoticed (bench checks a 200 and a 401 first, and counts
 * non-2xx answers). Signatures are checked as cheaply as mod_offtok does: a verify context
 * prepared once per thread and copied per request.
 *
 * - es256-floor (dpop-cached; `BenchFloorKey PEM`, a P-256 public key): verify the ES256
 *   signature of the request's `DPoP` proof, in a fixups hook. No JSON, no claims, no replay
 *   table, no token, no environment.
 * - rs256-floor (local-unique; `BenchFloorBearerKey PEM`, an RSA public key, and `AuthType
 *   benchfloor` + `Require valid-user` where it applies): httpd's own auth phase (a check_authn
 *   hook, as mod_offtok's), `Authorization: Bearer <jwt>` whose RS256 signature is verified;
 *   r->user is a fixed name. No JSON, no header or claim checks, no cache, no environment.
 * - hit-floor (local-4k; the same plus `BenchFloorRemember On`): a per-process table keyed by
 *   the token's bytes (apr_hash under a read-write lock). On a miss the signature is verified,
 *   the payload's top-level string and number claims are rendered once into OFFTOK_CLAIM_*
 *   pairs and kept with `sub`; on a hit r->user and the kept pairs are set (apr_table_addn on
 *   r->subprocess_env, as mod_offtok does when the names are distinct). No shared memory, no
 *   digest of the token, no exp, issuer, audience or revocation checks: less than a module that
 *   keeps verdicts must do, which is what makes it a floor.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE                 /* memrchr */
#endif
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "apr_hash.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "apr_thread_rwlock.h"
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"

module AP_MODULE_DECLARE_DATA bench_floor_module;

#define AUTH_TYPE "benchfloor"
#define FIXED_USER "bench-floor"
#define REMEMBER_MAX 100000         /* tokens kept per process; beyond, verified every time */

static EVP_PKEY *floor_key;         /* es256-floor: the DPoP proofs' P-256 key */
static EVP_PKEY *bearer_key;        /* rs256-floor and hit-floor: the token signer's RSA key */
static int remember;                /* hit-floor */
static __thread EVP_MD_CTX *kept;   /* per thread: DigestVerifyInit done once */
static __thread EVP_MD_CTX *kept_rsa;

/* hit-floor's per-process table: token bytes -> verdict (sub and rendered claims). */
typedef struct {
    const char *user;
    int n;
    const char **env;               /* n pairs: name, value, name, value, ... */
} verdict_t;

static apr_pool_t *table_pool;
static apr_hash_t *table;
static apr_thread_rwlock_t *table_lock;

static const char *read_pem(cmd_parms *cmd, const char *path, EVP_PKEY **key, int type)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        return apr_psprintf(cmd->pool, "%s: cannot open %s", cmd->cmd->name, path);
    }
    *key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (*key == NULL || EVP_PKEY_base_id(*key) != type) {
        return apr_psprintf(cmd->pool, "%s: not a PEM %s public key", cmd->cmd->name,
                            type == EVP_PKEY_RSA ? "RSA" : "EC");
    }
    return NULL;
}

static const char *set_key(cmd_parms *cmd, void *dc, const char *path)
{
    (void)dc;
    return read_pem(cmd, path, &floor_key, EVP_PKEY_EC);
}

static const char *set_bearer_key(cmd_parms *cmd, void *dc, const char *path)
{
    (void)dc;
    return read_pem(cmd, path, &bearer_key, EVP_PKEY_RSA);
}

static const char *set_remember(cmd_parms *cmd, void *dc, int on)
{
    (void)cmd;
    (void)dc;
    remember = on;
    return NULL;
}

static int b64url_val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* base64url without padding into out (at most cap bytes); -1 on a bad character or size. */
static int b64url(const char *s, size_t n, unsigned char *out, size_t cap)
{
    size_t i, o = 0;
    unsigned acc = 0;
    int bits = 0;

    for (i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);

        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

/* sig over data[0..len) with key, through the thread's kept context *slot (made on first use). */
static int verify_with(EVP_MD_CTX **slot, EVP_PKEY *key, const unsigned char *sig, size_t siglen,
                       const char *data, size_t len)
{
    EVP_MD_CTX *ctx;
    int ok;

    if (*slot == NULL) {
        *slot = EVP_MD_CTX_new();
        if (EVP_DigestVerifyInit(*slot, NULL, EVP_sha256(), NULL, key) != 1) {
            EVP_MD_CTX_free(*slot);
            *slot = NULL;
            return 0;
        }
    }
    ctx = EVP_MD_CTX_new();
    ok = EVP_MD_CTX_copy_ex(ctx, *slot) == 1
         && EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int verify(const char *proof)
{
    const char *dot = strrchr(proof, '.');
    unsigned char raw[64], der[80], *p = der;
    ECDSA_SIG *sig;
    int len;

    if (dot == NULL || b64url(dot + 1, strlen(dot + 1), raw, sizeof(raw)) != 64) {
        return 0;
    }
    sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    len = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    return len > 0 && verify_with(&kept, floor_key, der, (size_t)len, proof,
                                  (size_t)(dot - proof));
}

/* The RS256 signature of a compact JWS (the bytes after its last dot, over those before). */
static int verify_rs256(const char *jwt, size_t n)
{
    const char *dot = memrchr(jwt, '.', n);
    unsigned char sig[512];
    int len;

    if (dot == NULL) {
        return 0;
    }
    len = b64url(dot + 1, n - (size_t)(dot + 1 - jwt), sig, sizeof(sig));
    return len == EVP_PKEY_get_size(bearer_key)
           && verify_with(&kept_rsa, bearer_key, sig, (size_t)len, jwt, (size_t)(dot - jwt));
}

static int floor_fixups(request_rec *r)
{
    const char *proof;

    if (floor_key == NULL || r->main != NULL) {
        return DECLINED;
    }
    proof = apr_table_get(r->headers_in, "DPoP");
    return proof != NULL && verify(proof) ? DECLINED : HTTP_UNAUTHORIZED;
}

/* "OFFTOK_CLAIM_" + name, letters, digits and '_' kept, all else '_' (as mod_offtok names). */
static const char *env_name(const char *name, apr_pool_t *p)
{
    char *out = apr_pstrcat(p, "OFFTOK_CLAIM_", name, NULL), *c;

    for (c = out + 13; *c; c++) {
        if ((unsigned char)*c > 0x7f || !apr_isalnum(*c)) {
            *c = '_';
        }
    }
    return out;
}

/* The verdict of a verified token, in r->pool: its payload's top-level strings and numbers. */
static verdict_t *render(request_rec *r, const char *jwt, size_t n)
{
    const char *d1 = memchr(jwt, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - jwt)) : NULL;
    verdict_t *v = apr_pcalloc(r->pool, sizeof(*v));
    unsigned char *raw;
    const char *key;
    json_t *payload, *val;
    int len, i = 0;

    v->user = FIXED_USER;
    if (d2 == NULL) {
        return v;
    }
    raw = apr_palloc(r->pool, (apr_size_t)(d2 - d1));
    len = b64url(d1 + 1, (size_t)(d2 - d1 - 1), raw, (size_t)(d2 - d1));
    payload = len > 0 ? json_loadb((const char *)raw, (size_t)len, 0, NULL) : NULL;
    if (!json_is_object(payload)) {
        json_decref(payload);
        return v;
    }
    v->env = apr_palloc(r->pool, sizeof(char *) * 2 * json_object_size(payload));
    json_object_foreach(payload, key, val) {
        const char *text = json_is_string(val) ? apr_pstrdup(r->pool, json_string_value(val))
            : json_is_integer(val) ? apr_psprintf(r->pool, "%" JSON_INTEGER_FORMAT,
                                                  json_integer_value(val))
            : json_is_real(val) ? apr_psprintf(r->pool, "%.17g", json_real_value(val)) : NULL;

        if (text != NULL) {
            v->env[i++] = env_name(key, r->pool);
            v->env[i++] = text;
            if (strcmp(key, "sub") == 0 && json_is_string(val)) {
                v->user = text;
            }
        }
    }
    v->n = i / 2;
    json_decref(payload);
    return v;
}

/* Keep a copy of v (made in r->pool) under the token's bytes; the kept copy, or v when full. */
static const verdict_t *keep(const char *jwt, size_t n, const verdict_t *v)
{
    verdict_t *k = (verdict_t *)v;
    int i;

    apr_thread_rwlock_wrlock(table_lock);
    if (apr_hash_get(table, jwt, (apr_ssize_t)n) == NULL
        && apr_hash_count(table) < REMEMBER_MAX) {
        k = apr_palloc(table_pool, sizeof(*k));
        k->user = apr_pstrdup(table_pool, v->user);
        k->n = v->n;
        k->env = apr_palloc(table_pool, sizeof(char *) * 2 * (apr_size_t)(v->n ? v->n : 1));
        for (i = 0; i < 2 * v->n; i++) {
            k->env[i] = apr_pstrdup(table_pool, v->env[i]);
        }
        apr_hash_set(table, apr_pstrmemdup(table_pool, jwt, n), (apr_ssize_t)n, k);
    }
    apr_thread_rwlock_unlock(table_lock);
    return k;
}

/* The bearer floors: AuthType benchfloor, in httpd's own authentication phase. */
static int floor_authn(request_rec *r)
{
    const char *auth, *type = ap_auth_type(r), *jwt;
    const verdict_t *v = NULL;
    size_t n;
    int i;

    if (bearer_key == NULL || type == NULL || strcasecmp(type, AUTH_TYPE) != 0) {
        return DECLINED;
    }
    auth = apr_table_get(r->headers_in, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return HTTP_UNAUTHORIZED;
    }
    jwt = auth + 7;
    n = strlen(jwt);
    if (remember) {
        apr_thread_rwlock_rdlock(table_lock);
        v = apr_hash_get(table, jwt, (apr_ssize_t)n);
        apr_thread_rwlock_unlock(table_lock);
    }
    if (v == NULL) {
        if (!verify_rs256(jwt, n)) {
            return HTTP_UNAUTHORIZED;
        }
        if (!remember) {
            r->user = FIXED_USER;
            return OK;
        }
        v = keep(jwt, n, render(r, jwt, n));
    }
    r->user = (char *)v->user;
    for (i = 0; i < v->n; i++) {
        apr_table_addn(r->subprocess_env, v->env[2 * i], v->env[2 * i + 1]);
    }
    return OK;
}

static void floor_child_init(apr_pool_t *p, server_rec *s)
{
    (void)s;
    if (remember) {
        apr_pool_create(&table_pool, p);
        table = apr_hash_make(table_pool);
        apr_thread_rwlock_create(&table_lock, p);
    }
}

static const command_rec floor_cmds[] = {
    AP_INIT_TAKE1("BenchFloorKey", set_key, NULL, RSRC_CONF,
                  "PEM public key (P-256) that signs the benchmark's DPoP proofs"),
    AP_INIT_TAKE1("BenchFloorBearerKey", set_bearer_key, NULL, RSRC_CONF,
                  "PEM public key (RSA) that signs the benchmark's RS256 access tokens"),
    AP_INIT_FLAG("BenchFloorRemember", set_remember, NULL, RSRC_CONF,
                 "On: keep each verified token's verdict per process (hit-floor)"),
    {NULL}
};

static void floor_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_fixups(floor_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_authn(floor_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_child_init(floor_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(bench_floor) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, floor_cmds, floor_hooks
};
