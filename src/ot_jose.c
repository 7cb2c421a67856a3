/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose.c
 * @brief Compact JWS checked against the issuer's JWKS (the key cache is ot_jose_cache.c's).
 *
 * The header is read here, before cjose sees the token, so that the algorithm is judged by our
 * rules (ot_jose.h) and not by whatever cjose happens to support. A key is picked from the JWKS
 * by `kid` and by fitting the algorithm (imported with cjose, as before); OpenSSL then checks the
 * signature with that key alone (ot_jose_evp.c, on a context made once per thread and key).
 */
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <cjose/cjose.h>

#include "ot_dpop_key.h"
#include "ot_jose.h"
#include "ot_jose_int.h"
#include "ot_json.h"
#include "ot_util.h"

#define MIN_RSA_BITS 2048

/** One accepted algorithm and the key it needs. */
struct ot_jose_alg_t {
    const char *name;
    cjose_jwk_kty_t kty;
    const char *kty_name;
    int curve;            /**< cjose_jwk_ec_curve for EC, else 0 */
    int okp;              /**< 1: an OKP key, verified by ot_jose_okp.c (kty is unused) */
};
typedef struct ot_jose_alg_t alg_t;

static const alg_t algs[OT_JOSE_ALGS] = {
    { "RS256", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "RS384", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "RS512", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "PS256", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "PS384", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "PS512", CJOSE_JWK_KTY_RSA, "RSA", 0, 0 },
    { "ES256", CJOSE_JWK_KTY_EC, "EC", CJOSE_JWK_EC_P_256, 0 },
    { "ES384", CJOSE_JWK_KTY_EC, "EC", CJOSE_JWK_EC_P_384, 0 },
    { "ES512", CJOSE_JWK_KTY_EC, "EC", CJOSE_JWK_EC_P_521, 0 },
    { "EdDSA", CJOSE_JWK_KTY_OCT, "OKP", 0, 1 },
};

typedef ot_jose_in_t jws_in_t;

/* ---- the token ----------------------------------------------------------------------------- */

/** s when it is short and plain enough for a log line, else a stand-in. */
static const char *loggable(const char *s, apr_pool_t *p)
{
    const char *c;

    for (c = s; *c; c++) {
        if (c - s >= 80 || !(apr_isalnum(*c) || strchr("-_.~+/=:", *c))) {
            return "(not printable)";
        }
    }
    return apr_pstrcat(p, "'", s, "'", NULL);
}

static const alg_t *find_alg(const char *name)
{
    apr_size_t i;

    for (i = 0; name && i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (strcmp(algs[i].name, name) == 0) {
            return &algs[i];
        }
    }
    return NULL;
}

/** Judge in's header h, read from its first hlen bytes (read here when h is NULL). */
static apr_status_t parse_header(jws_in_t *in, const char **why, apr_size_t hlen,
                                 const ot_jose_header_t *h, apr_pool_t *p)
{
    ot_jose_header_t own;

    if (h == NULL) {
        ot_jose_header_read(&own, in->compact, hlen, p);
        h = &own;
    }
    in->hlen = hlen;
    if (!h->object) {
        *why = "its header is not a JSON object";
        return APR_EINVAL;
    }
    if ((in->alg = find_alg(h->alg)) == NULL) {
        *why = apr_psprintf(p, "alg %s is not accepted", h->alg ? loggable(h->alg, p) : "(none)");
        return APR_EINVAL;
    }
    in->kid = h->kid;
    in->typ = h->typ;
    if (h->bad_kid || h->bad_typ) {
        *why = "its kid or typ is not a string";
        return APR_EINVAL;
    }
    if (h->crit) {
        *why = "it names critical header extensions (crit)";
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t ot_jose_parse_compact(jws_in_t *in, const char **why, const char *compact,
                                   apr_size_t len, const ot_jose_header_t *h, apr_pool_t *p)
{
    apr_size_t hlen = 0;

    memset(in, 0, sizeof(*in));
    if (compact == NULL || len == 0) {
        *why = "it is empty";
        return APR_EINVAL;
    }
    if (!ot_jws_compact_shape(compact, len, &hlen)) {
        *why = "it is not a signed compact JWS (three non-empty base64url parts)";
        return APR_EINVAL;
    }
    in->compact = apr_pstrmemdup(p, compact, len);
    in->len = len;
    in->scratch = p;
    return parse_header(in, why, hlen, h, p);
}

/** The header of a verified in as JSON (for callers that want it; not for the text form). */
static json_t *header_json(const jws_in_t *in, apr_pool_t *p)
{
    char *raw;
    apr_size_t raw_len;

    if (in->text || ot_b64url_decode(&raw, &raw_len, in->compact, in->hlen, p) != APR_SUCCESS) {
        return NULL;
    }
    return ot_json_parse(raw, raw_len, NULL, p);
}

/* ---- keys ---------------------------------------------------------------------------------- */

static apr_status_t jwk_cleanup(void *data)
{
    cjose_jwk_release(data);
    return APR_SUCCESS;
}

/** 1 when key_ops is absent or allows "verify". */
static int ops_allow_verify(const json_t *key)
{
    const json_t *ops = json_object_get(key, "key_ops"), *op;
    size_t i;

    if (ops == NULL) {
        return 1;
    }
    json_array_foreach(ops, i, op) {
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) {
            return 1;
        }
    }
    return 0;
}

/**
 * 1 when the JWKS member key may check a token of algorithm a, whatever its kid. A key
 * published with its private part (`d`) never does: anyone who read the JWKS could sign.
 */
static int key_fits_alg(const json_t *key, const alg_t *a)
{
    const char *kty = ot_json_string(key, "kty"), *use = ot_json_string(key, "use");
    const char *kalg = ot_json_string(key, "alg");

    return json_is_object(key) && kty && strcmp(kty, a->kty_name) == 0
        && json_object_get(key, "d") == NULL
        && (json_object_get(key, "use") == NULL || (use && strcmp(use, "sig") == 0))
        && (json_object_get(key, "alg") == NULL || (kalg && strcmp(kalg, a->name) == 0))
        && ops_allow_verify(key);
}

/** key_fits_alg for the algorithm of index a (ot_jose_parsed_fits keeps its answers). */
static int key_fits_at(const json_t *key, int a)
{
    return key_fits_alg(key, &algs[a]);
}

/** 1 when kid (NULL: any key) names the JWKS member key. */
static int kid_names(const json_t *key, const char *kid)
{
    const char *kkid = ot_json_string(key, "kid");

    return kid == NULL || (kkid && strcmp(kid, kkid) == 0);
}

/** 1 when the JWKS member key may check a token of algorithm a with kid (NULL: any key). */
static int key_fits(const json_t *key, const alg_t *a, const char *kid)
{
    return key_fits_alg(key, a) && kid_names(key, kid);
}

/**
 * 1 when every base64url member of key (RFC 7518 §6) that cjose decodes is valid base64url.
 * cjose 0.6.2 asserts, aborting the process, on a '=' after a single character of a group.
 */
static int key_members_decode(const json_t *key, apr_pool_t *p)
{
    static const char *const names[] = { "n", "e", "d", "p", "q", "dp", "dq", "qi", "x", "y", "k" };
    const json_t *v;
    char *raw;
    apr_size_t i, len;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        v = json_object_get(key, names[i]);
        if (json_is_string(v) && ot_b64url_decode(&raw, &len, json_string_value(v),
                                                  json_string_length(v), p) != APR_SUCCESS) {
            return 0;
        }
    }
    return 1;
}

/** The cjose key for the JWKS member key, for the caller to release; NULL if it does not import. */
static cjose_jwk_t *import_own(json_t *key, apr_pool_t *scratch)
{
    cjose_err err;

    if (!key_members_decode(key, scratch)) {
        return NULL;
    }
    return cjose_jwk_import_json((cjose_header_t *)key, &err);
}

/** The cjose key for the JWKS member key, owned by p; NULL when it does not import. */
static cjose_jwk_t *import_raw(json_t *key, apr_pool_t *p)
{
    cjose_jwk_t *jwk = import_own(key, p);

    if (jwk != NULL) {
        apr_pool_cleanup_register(p, jwk, jwk_cleanup, apr_pool_cleanup_null);
    }
    return jwk;
}

/** jwk when it really is what a needs (type, size, curve); else NULL. */
static cjose_jwk_t *fitting(cjose_jwk_t *jwk, const alg_t *a)
{
    cjose_err err;

    if (jwk == NULL || cjose_jwk_get_kty(jwk, &err) != a->kty
        || (a->kty == CJOSE_JWK_KTY_RSA && cjose_jwk_get_keysize(jwk, &err) < MIN_RSA_BITS)
        || (a->kty == CJOSE_JWK_KTY_EC && (int)cjose_jwk_EC_get_curve(jwk, &err) != a->curve)) {
        return NULL;
    }
    return jwk;
}

/** The cjose key for key, when it really is what a needs (type, size, curve); else NULL. */
static cjose_jwk_t *import_key(json_t *key, const alg_t *a, apr_pool_t *p)
{
    return fitting(import_raw(key, p), a);
}

/**
 * 1 when jwk verifies in; *payload is then its payload parsed (NULL if not JSON), or with
 * in->text its text in *text (from p).
 */
static int check_with(json_t **payload, const char **text, apr_size_t *text_len,
                      const jws_in_t *in, const cjose_jwk_t *jwk, apr_pool_t *p)
{
    cjose_err err;
    cjose_jws_t *jws = cjose_jws_import(in->compact, in->len, &err);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int ok;

    if (jws == NULL) {
        return 0;
    }
    ok = cjose_jws_verify(jws, jwk, &err)
        && cjose_jws_get_plaintext(jws, &plain, &plain_len, &err);
    if (ok && in->text) {
        *text = apr_pstrmemdup(p, (const char *)plain, plain_len);
        *text_len = plain_len;
    }
    else if (ok) {
        *payload = ot_json_parse((const char *)plain, plain_len, NULL, p);
    }
    cjose_jws_release(jws);
    return ok;
}

/**
 * 0 when in is ES and its signature is not r||s of exactly the curve's size (RFC 7518 §3.4):
 * cjose 0.6.2 accepts an ES384 signature with a byte more.
 */
static int es_size_ok(const jws_in_t *in)
{
    const char *sig = strrchr(in->compact, '.') + 1;
    char *raw;
    apr_size_t len;

    return in->alg->kty != CJOSE_JWK_KTY_EC
        || (ot_b64url_decode(&raw, &len, sig, strlen(sig), in->scratch) == APR_SUCCESS
            && len == (in->alg->curve == CJOSE_JWK_EC_P_256 ? 64u
                       : in->alg->curve == CJOSE_JWK_EC_P_384 ? 96u : 132u));
}

/**
 * check_with, with OpenSSL alone (ot_jose_evp.c) on kept, this thread's context for in->alg, or
 * when kept is NULL on tmpl, a context made ready for it.
 */
static int check_evp(json_t **payload, const char **text, apr_size_t *text_len,
                     const jws_in_t *in, const EVP_MD_CTX *tmpl, EVP_PKEY_CTX *kept,
                     apr_pool_t *p)
{
    const char *plain;
    apr_size_t plain_len;

    if (!ot_jose_evp_verify(tmpl, kept, in->alg->name, in->compact, in->len, &plain, &plain_len,
                            p)) {
        return 0;
    }
    if (in->text) {
        *text = plain;
        *text_len = plain_len;
    }
    else {
        *payload = ot_json_parse(plain, plain_len, NULL, p);
    }
    return 1;
}

static apr_status_t ctx_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
    return APR_SUCCESS;
}

/**
 * The verification context of member i (key) for in's algorithm: this thread's, made once per
 * JWKS version, when ps is not NULL; else made now and freed with p. NULL: no OpenSSL key.
 */
static const EVP_MD_CTX *evp_ctx(json_t *key, size_t i, ot_jose_parsed_t *ps,
                                 const jws_in_t *in, apr_pool_t *p)
{
    EVP_PKEY *pk;
    EVP_MD_CTX *ctx;

    if (ps != NULL) {
        pk = ot_jose_parsed_pkey(ps, i, in->alg->okp, p);
        return ot_jose_parsed_ctx(ps, i, (int)(in->alg - algs), in->alg->name, pk);
    }
    pk = in->alg->okp ? ot_jose_okp_pkey(key, p) : ot_jwk_pkey_new(key, p);
    ctx = pk ? ot_jose_evp_ctx(pk, in->alg->name) : NULL;
    EVP_PKEY_free(pk);              /* the context holds its own reference */
    if (ctx != NULL) {
        apr_pool_cleanup_register(p, ctx, ctx_cleanup, apr_pool_cleanup_null);
    }
    return ctx;
}

/**
 * 1 when member i (key) of the set verifies in, with the key made once for this thread (ps) and
 * OpenSSL, else as before (cjose, or ot_jose_okp.c for EdDSA); -1 when the member cannot be
 * tried (it does not import, or is not what the algorithm needs).
 */
static int try_key(json_t **payload, const char **text, apr_size_t *text_len, json_t *key,
                   size_t i, ot_jose_parsed_t *ps, const jws_in_t *in, apr_pool_t *p)
{
    const EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *kept;
    cjose_jwk_t *jwk;

    if (in->alg->okp) {
        ctx = evp_ctx(key, i, ps, in, p);
        return ctx == NULL ? -1 : check_evp(payload, text, text_len, in, ctx, NULL, p);
    }
    jwk = ps ? fitting(ot_jose_parsed_jwk(ps, i, import_own, p), in->alg)
             : import_key(key, in->alg, p);
    if (jwk == NULL) {
        return -1;
    }
    /* cjose imported it (so the keys tried are those of before); OpenSSL checks the signature,
     * on this thread's kept context when it has one (nothing copied or made per token).
     * cjose only for a key OpenSSL is not given (an RSA exponent over 8 bytes, say). */
    kept = ps ? ot_jose_parsed_pctx(ps, i, (int)(in->alg - algs), in->alg->name,
                                    ot_jose_parsed_pkey(ps, i, 0, p))
              : NULL;
    if (kept != NULL) {
        return check_evp(payload, text, text_len, in, NULL, kept, p);
    }
    ctx = evp_ctx(key, i, ps, in, p);
    return ctx ? check_evp(payload, text, text_len, in, ctx, NULL, p)
               : es_size_ok(in) && check_with(payload, text, text_len, in, jwk, p);
}

/** Why a JWS whose signature verifies is still refused (not a forgery, so compared by address). */
const char ot_jose_not_an_object[] = "its payload is not a JSON object";

const char ot_jose_sig_fails[] = "its signature does not verify with the issuer's key";

/**
 * Verify in with the keys of jwks: parsed and imported here, or taken from ps (this thread's
 * parsed copy of the same text) when not NULL.
 */
ot_jose_result_t ot_jose_verify_in(ot_jws_t *jws, const char **why, int *no_key,
                                   const char *jwks, apr_size_t jwks_len, ot_jose_parsed_t *ps,
                                   const jws_in_t *in, apr_pool_t *p)
{
    json_t *set = ps ? ot_jose_parsed_set(ps) : ot_json_parse(jwks, jwks_len, NULL, p);
    json_t *key, *payload = NULL;
    const char *text = NULL;
    apr_size_t text_len = 0;
    size_t i;
    int tried = 0, ok;

    json_array_foreach(json_object_get(set, "keys"), i, key) {
        /* this thread's parsed set keeps each member's fit per algorithm: the set never
         * changes, so the answer is the same at every token */
        if (!(ps ? ot_jose_parsed_fits(ps, i, (int)(in->alg - algs), key_fits_at)
                   && kid_names(key, in->kid)
                 : key_fits(key, in->alg, in->kid))
            || (ok = try_key(&payload, &text, &text_len, key, i, ps, in, p)) < 0) {
            continue;
        }
        tried++;
        if (ok) {
            if (text == NULL && !json_is_object(payload)) {
                *why = ot_jose_not_an_object;
                *no_key = 0;
                return OT_JOSE_INVALID;
            }
            jws->header = header_json(in, p);
            jws->payload = payload;
            jws->payload_text = text;
            jws->payload_len = text_len;
            jws->alg = in->alg->name;
            jws->kid = in->kid;
            jws->typ = in->typ;
            return OT_JOSE_OK;
        }
    }
    *no_key = tried == 0 || in->kid == NULL;
    *why = tried ? ot_jose_sig_fails
        : apr_psprintf(p, "the issuer has no %s key%s%s", in->alg->name,
                       in->kid ? " with kid " : "", in->kid ? loggable(in->kid, p) : "");
    return OT_JOSE_INVALID;
}

ot_jose_result_t ot_jose_verify_jwks(ot_jws_t *jws, const char **why, int *no_key,
                                     const char *jwks, apr_size_t jwks_len,
                                     const char *compact, apr_size_t len, apr_pool_t *p)
{
    jws_in_t in;

    *no_key = 0;
    if (ot_jose_parse_compact(&in, why, compact, len, NULL, p) != APR_SUCCESS) {
        return OT_JOSE_INVALID;
    }
    return ot_jose_verify_in(jws, why, no_key, jwks, jwks_len, NULL, &in, p);
}

apr_status_t ot_jose_jwks_check(const char *jwks, apr_size_t len, const char **why,
                                apr_pool_t *p)
{
    json_t *set = ot_json_parse(jwks, len, why, p), *key;
    apr_size_t i, a;

    if (set == NULL) {
        return APR_EINVAL;
    }
    if (!json_is_array(json_object_get(set, "keys"))) {
        *why = "it has no \"keys\" array";
        return APR_EINVAL;
    }
    json_array_foreach(json_object_get(set, "keys"), i, key) {
        for (a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
            if (key_fits(key, &algs[a], NULL)
                && (algs[a].okp ? ot_jose_okp_usable(key, p)
                    : import_key(key, &algs[a], p) != NULL)) {
                return APR_SUCCESS;
            }
        }
    }
    *why = "it holds no RSA (2048 bits or more), EC or Ed25519 signing key";
    return APR_EINVAL;
}
