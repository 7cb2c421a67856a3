/*
 * mod_bench_floor: the benchmark's floor for dpop-cached (bench/bench02.py), not part of the
 * module and never installed.
 *
 * It does the one thing a DPoP check cannot avoid on every request and nothing else: verify the
 * ES256 signature of the request's `DPoP` proof with a public key read at start-up
 * (`BenchFloorKey`). No JSON, no claims, no replay table, no token, no environment. The
 * signature check is as cheap as mod_offtok's (a verify context prepared once per thread and
 * copied per request), so "module / floor" is what everything else in mod_offtok's DPoP path
 * costs, and "floor / unauthenticated" is the best ratio any DPoP-checking module can reach on
 * this machine. A proof that does not verify gets 401, so the floor cannot skip its work
 * unnoticed (bench checks a 200 first, and counts non-2xx answers).
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "http_request.h"

module AP_MODULE_DECLARE_DATA bench_floor_module;

static EVP_PKEY *floor_key;
static __thread EVP_MD_CTX *kept;   /* per thread: DigestVerifyInit done once */

static const char *set_key(cmd_parms *cmd, void *dc, const char *path)
{
    FILE *f = fopen(path, "r");

    (void)dc;
    if (f == NULL) {
        return apr_psprintf(cmd->pool, "BenchFloorKey: cannot open %s", path);
    }
    floor_key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    return floor_key ? NULL : "BenchFloorKey: not a PEM public key";
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

static int verify(const char *proof)
{
    const char *dot = strrchr(proof, '.');
    unsigned char raw[64], der[80], *p = der;
    EVP_MD_CTX *ctx;
    ECDSA_SIG *sig;
    int len, ok;

    if (dot == NULL || b64url(dot + 1, strlen(dot + 1), raw, sizeof(raw)) != 64) {
        return 0;
    }
    sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    len = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    if (kept == NULL) {
        kept = EVP_MD_CTX_new();
        if (EVP_DigestVerifyInit(kept, NULL, EVP_sha256(), NULL, floor_key) != 1) {
            EVP_MD_CTX_free(kept);
            kept = NULL;
            return 0;
        }
    }
    ctx = EVP_MD_CTX_new();
    ok = len > 0 && EVP_MD_CTX_copy_ex(ctx, kept) == 1
         && EVP_DigestVerify(ctx, der, (size_t)len, (const unsigned char *)proof,
                             (size_t)(dot - proof)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
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

static const command_rec floor_cmds[] = {
    AP_INIT_TAKE1("BenchFloorKey", set_key, NULL, RSRC_CONF,
                  "PEM public key (P-256) that signs the benchmark's DPoP proofs"),
    {NULL}
};

static void floor_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_fixups(floor_fixups, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(bench_floor) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, floor_cmds, floor_hooks
};
