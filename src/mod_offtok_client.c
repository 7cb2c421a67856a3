/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * How the module proves itself to the issuer, and what it requires of the answer (the
 * directives of client authentication are read and checked in mod_offtok_config_client.c):
 *
 *   the call      offtok_call_fetch: the leader's issuer call with a fresh assertion
 *                 (private_key_jwt, client_secret_jwt) or the client certificate
 *                 (tls_client_auth); on invalid_client the credential files are read again
 *                 (ot_cred.h) and a call refused only for an old credential is made once more
 *   the answer    offtok_call_result: RFC 9701 signed answers under OfftokSignedAnswers On
 *
 * Nothing here logs a secret, a key or an assertion: paths and method names only.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <openssl/evp.h>

#include "mod_offtok.h"
#include "ot_assert.h"
#include "ot_cred.h"
#include "ot_jose.h"
#include "ot_json.h"
#include "ot_signed.h"

APLOG_USE_MODULE(offtok);

/** Indexes of offtok_call_t.gen. */
enum { GEN_SECRET = 0, GEN_KEY = 1, GEN_CERT = 2 };

/* ---- the call ----------------------------------------------------------------------------- */

void offtok_call_init(offtok_call_t *call, request_rec *r, const offtok_dir_conf *c,
                      const ot_introspect_t *in, const char *secret_file,
                      const ot_http_req_t *req)
{
    memset(call, 0, sizeof(*call));
    call->r = r;
    call->conf = c;
    call->in = *in;
    call->secret_file = secret_file;
    call->req = *req;
}

/** The assertion's aud: OfftokClientAssertionAudience, else the issuer identifier. */
static const char *assertion_aud(const offtok_dir_conf *c)
{
    return c->assertion_aud ? c->assertion_aud : c->issuer;
}

/** One POST as post_once makes it, kept for a retry that needs a new assertion. */
typedef struct {
    offtok_call_t *call;
    ot_introspect_t in;
    struct evp_pkey_st *key;    /**< private_key_jwt: the key of this moment */
} post_t;

/** A new assertion into post->in (the JWT methods); NULL, or why not. */
static const char *sign_assertion(post_t *post, apr_pool_t *p)
{
    const offtok_dir_conf *c = post->call->conf;
    ot_assert_claims_t claims;
    const char *err = NULL;

    claims.client_id = post->in.client_id;
    claims.aud = assertion_aud(c);
    claims.now = apr_time_now();
    claims.lifetime = OT_ASSERTION_LIFETIME;
    post->in.assertion = ot_assertion_make(&claims, post->key,
                                           post->key ? c->client_key->kid : NULL,
                                           post->in.client_secret, &err, p);
    return post->in.assertion ? NULL : err;
}

/** Fill in the credentials of this moment (the store's newer ones, if any) and sign. */
static const char *current_credentials(post_t *post, ot_http_req_t *req, apr_pool_t *p)
{
    offtok_call_t *call = post->call;
    ot_introspect_t *in = &post->in;
    const offtok_dir_conf *c = call->conf;
    ot_cred_store_t *store = offtok_proc()->creds;
    unsigned gen2 = 0;
    apr_size_t len;

    if (in->auth == OT_AUTH_KEY_JWT) {
        post->key = c->client_key ? ot_cred_get_key(store, c->client_key->file,
                                                    c->client_key->pkey, &call->gen[GEN_KEY], p)
                                  : NULL;
        if (post->key == NULL) {
            return "no OfftokClientKey to sign with";
        }
    }
    else if (in->auth == OT_AUTH_TLS) {
        req->client_cert = ot_cred_get(store, c->client_cert->cert_file, c->client_cert->cert,
                                       c->client_cert->cert_len, &req->client_cert_len,
                                       &call->gen[GEN_CERT], p);
        req->client_key = ot_cred_get(store, c->client_cert->key_file, c->client_cert->key,
                                      c->client_cert->key_len, &req->client_key_len, &gen2, p);
        call->gen[GEN_CERT] += gen2;
    }
    else if (call->secret_file) {
        in->client_secret = ot_cred_get(store, call->secret_file, in->client_secret,
                                        strlen(in->client_secret), &len, &call->gen[GEN_SECRET],
                                        p);
    }
    if (in->auth != OT_AUTH_SECRET_JWT && in->auth != OT_AUTH_KEY_JWT) {
        return NULL;
    }
    return sign_assertion(post, p);
}

/**
 * The body for the HTTP client's retry after a connection broke mid-answer: the issuer may have
 * read the first assertion and would refuse its jti again, so the retry carries a new one.
 */
static const char *fresh_body(void *baton, apr_size_t *len, apr_pool_t *p)
{
    post_t *post = baton;
    ot_http_req_t form;

    if (sign_assertion(post, p) != NULL) {
        return NULL;
    }
    memset(&form, 0, sizeof(form));
    ot_introspect_request(&form, &post->in, p);
    *len = form.body_len;
    return form.body;
}

/** One POST with the credentials of this moment. */
static void post_once(offtok_call_t *call, ot_http_resp_t *resp, apr_pool_t *p)
{
    post_t post;
    ot_http_req_t req = call->req;
    const char *err;

    memset(&post, 0, sizeof(post));
    post.call = call;
    post.in = call->in;
    err = current_credentials(&post, &req, p);
    if (err != NULL) {
        memset(resp, 0, sizeof(*resp));
        resp->err = OT_HTTP_EINTERNAL;
        resp->errmsg = apr_pstrcat(p, "cannot make the client assertion: ", err, NULL);
        return;
    }
    ot_introspect_request(&req, &post.in, p);
    if (post.in.assertion) {
        req.rebody = fresh_body;
        req.rebody_baton = &post;
    }
    ot_http_post(offtok_proc()->http, &req, resp, p);
}

/** Read one credential file again; 1 when what it holds now is newer than what was used. */
static int reread(offtok_call_t *call, const char *path, ot_cred_kind_t kind,
                  const char *initial, apr_size_t initial_len, unsigned used, apr_pool_t *p)
{
    ot_cred_store_t *store = offtok_proc()->creds;
    const char *err = NULL;
    unsigned gen = 0;
    apr_status_t rv;

    rv = ot_cred_reload(store, path, kind, initial, initial_len, apr_time_now(), &gen, &err, p);
    if (rv != APR_SUCCESS && rv != APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, call->r, "OT0501: the issuer refused the client "
                      "(%s) and the credential file cannot be read again: %s",
                      ot_client_auth_name(call->in.auth), err);
        return 0;
    }
    return gen != used;
}

/** The generations of the certificate and key files, added up. */
static unsigned pair_gen(const offtok_cert_t *t, apr_pool_t *p)
{
    ot_cred_store_t *store = offtok_proc()->creds;
    unsigned cert_gen = 0, key_gen = 0;
    apr_size_t len;

    ot_cred_get(store, t->cert_file, t->cert, t->cert_len, &len, &cert_gen, p);
    ot_cred_get(store, t->key_file, t->key, t->key_len, &len, &key_gen, p);
    return cert_gen + key_gen;
}

/** After invalid_client: read the method's files again; 1 when one has changed. */
static int reread_credentials(offtok_call_t *call, apr_pool_t *p)
{
    const offtok_dir_conf *c = call->conf;
    const offtok_cert_t *t = c->client_cert;
    int changed = 0;

    if (offtok_proc()->creds == NULL) {
        return 0;
    }
    switch (call->in.auth) {
    case OT_AUTH_KEY_JWT:
        return reread(call, c->client_key->file, OT_CRED_KEY, c->client_key->pem,
                      c->client_key->pem_len, call->gen[GEN_KEY], p);
    case OT_AUTH_TLS:
        /* Generations of the pair add up, as in current_credentials. */
        changed = reread(call, t->cert_file, OT_CRED_PEM, t->cert, t->cert_len, 0, p);
        changed |= reread(call, t->key_file, OT_CRED_PEM, t->key, t->key_len, 0, p);
        return changed && call->gen[GEN_CERT] != pair_gen(t, p);
    default:
        return call->secret_file
            && reread(call, call->secret_file, OT_CRED_SECRET, call->in.client_secret,
                      strlen(call->in.client_secret), call->gen[GEN_SECRET], p);
    }
}

void offtok_call_fetch(void *baton, ot_http_resp_t *resp, apr_pool_t *p)
{
    offtok_call_t *call = baton;
    apr_time_t started = apr_time_now();

    post_once(call, resp, p);
    /* Under tls_client_auth a certificate the issuer refuses may end the handshake. */
    if ((ot_introspect_invalid_client(resp, p)
         || (resp->err == OT_HTTP_ETLS && call->in.auth == OT_AUTH_TLS))
        && reread_credentials(call, p)) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, call->r, "OT0500: the issuer refused the "
                      "client (%s); its credential file has changed since it was read: asking "
                      "again with the new one", ot_client_auth_name(call->in.auth));
        post_once(call, resp, p);
    }
    resp->started = started;     /* copied to every request the call answers */
}

/* ---- the answer --------------------------------------------------------------------------- */

/** A short printable form of a Content-Type the issuer sent, for the log. */
static const char *shown_type(const char *ct, apr_pool_t *p)
{
    char *out;
    apr_size_t i;

    if (ct == NULL) {
        return "none";
    }
    out = apr_pstrndup(p, ct, 64);
    for (i = 0; out[i]; i++) {
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e) {
            out[i] = '?';
        }
    }
    return out;
}

/** A 200 answer under OfftokSignedAnswers On: into *plain (its token_introspection), or *why. */
static apr_status_t unwrap_signed(offtok_call_t *call, const ot_http_resp_t *resp,
                                  ot_http_resp_t *plain, const char **why)
{
    request_rec *r = call->r;
    const offtok_dir_conf *c = call->conf;
    offtok_proc_t *proc = offtok_proc();
    ot_signed_rules_t rules;
    ot_jose_result_t res;
    ot_jws_t jws;
    const char *compact;
    apr_size_t n;
    apr_time_t now = apr_time_now();
    apr_interval_time_t skew = apr_time_from_sec(offtok_clock_skew(c));

    if (!ot_signed_content_type(resp->content_type)) {
        *why = apr_psprintf(r->pool, "the issuer sent an unsigned answer (Content-Type %s) where "
                            "OfftokSignedAnswers On requires a signed one",
                            shown_type(resp->content_type, r->pool));
        return APR_EINVAL;
    }
    if (c->jwks_url == NULL || proc->keys == NULL) {
        *why = "OfftokSignedAnswers On needs OfftokJWKSURL (the issuer's keys)";
        return APR_EINVAL;
    }
    ot_signed_trim(&compact, &n, resp->body, resp->body_len);
    res = ot_jose_verify(&jws, why, proc->keys, offtok_jwks_key(c, r->pool), compact, n,
                         offtok_fetch_jwks,
                         (void *)c, now, r->pool);
    if (res != OT_JOSE_OK) {
        *why = apr_pstrcat(r->pool, res == OT_JOSE_NO_KEYS ? "the issuer's keys could not be "
                           "fetched to verify its signed answer: " : "the signed answer does "
                           "not verify: ", *why, NULL);
        return APR_EINVAL;
    }
    rules.issuer = c->issuer;
    rules.client_id = call->in.client_id;
    rules.earliest = (resp->started ? resp->started : now) - skew;
    rules.latest = now + skew;
    rules.token_jti = ot_json_string(ot_jwt_payload(call->in.token, r->pool), "jti");
    *plain = *resp;
    plain->content_type = "application/json";
    if (ot_signed_check(&plain->body, &plain->body_len, why, &jws, &rules, r->pool)
        != APR_SUCCESS) {
        *why = apr_pstrcat(r->pool, "the signed answer is refused: ", *why, NULL);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t offtok_call_result(offtok_call_t *call, ot_answer_t **answer, ot_err_kind_t *kind,
                                const char **why, const ot_http_resp_t *resp)
{
    request_rec *r = call->r;
    ot_http_resp_t plain;
    apr_status_t rv;

    if (call->in.signed_answers && resp->err == OT_HTTP_OK && resp->status == HTTP_OK) {
        if (unwrap_signed(call, resp, &plain, why) != APR_SUCCESS) {
            *answer = NULL;
            *kind = OT_ERR_PARSE;
            return APR_EGENERAL;
        }
        resp = &plain;
    }
    rv = ot_introspect_result(answer, kind, why, resp, r->pool);
    if (rv != APR_SUCCESS && *kind == OT_ERR_CLIENT_AUTH) {
        *why = apr_pstrcat(r->pool, *why, " (OfftokClientAuth ",
                           ot_client_auth_name(call->in.auth), ")", NULL);
    }
    else if (rv != APR_SUCCESS && call->in.auth == OT_AUTH_TLS && *kind == OT_ERR_TLS) {
        *why = apr_pstrcat(r->pool, *why, " (OfftokClientAuth tls_client_auth: is "
                           "OfftokClientCertificate one the issuer accepts?)", NULL);
    }
    return rv;
}
