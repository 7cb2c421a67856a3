/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What a refused request is told, written in one place: offtok_set_challenge() sets the
 * WWW-Authenticate (or Proxy-Authenticate) challenges of a 401 or 403, Bearer and DPoP as
 * OfftokDPoP asks (RFC 6750 §3, RFC 9449 §7.1), and Retry-After on a 503 or 429. It is called
 * from the check_authn, note_auth_failure and fixups hooks (mod_offtok.c) and from the error
 * filter that a 403 of mod_authz_core goes through (mod_offtok_authz.c). The status itself is
 * decided by offtok_check() (mod_offtok_authn.c) and kept in offtok_req_t.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "mod_offtok.h"

/** AuthName as a quoted-string value. */
static const char *quoted(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i;
    char *out = apr_palloc(p, 2 * n + 1), *o = out;

    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            *o++ = '\\';
        }
        *o++ = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    }
    *o = '\0';
    return out;
}

/**
 * The DPoP challenge (RFC 9449 §7.1): realm, the error when the client used DPoP, the scope
 * for a 403, algs. A nonce request is the contract's `DPoP error="use_dpop_nonce"` as it is.
 */
static const char *dpop_challenge(request_rec *r, const offtok_req_t *st, const char *realm,
                                  const offtok_dir_conf *c)
{
    const apr_array_header_t *algs = offtok_dpop_algs(c);
    int mine = st->scheme == OT_SCHEME_DPOP;
    const char *v = "DPoP", *sep = " ";
    int i;

    if (mine && st->error && strcmp(st->error, "use_dpop_nonce") == 0) {
        return "DPoP error=\"use_dpop_nonce\"";
    }
    if (realm) {
        v = apr_pstrcat(r->pool, v, sep, "realm=\"", realm, "\"", NULL);
        sep = ", ";
    }
    if (mine && st->error) {
        v = apr_pstrcat(r->pool, v, sep, "error=\"", st->error, "\"", NULL);
        sep = ", ";
    }
    if (mine && st->scope_needed && *st->scope_needed
        && strpbrk(st->scope_needed, "\"\\") == NULL) {
        v = apr_pstrcat(r->pool, v, sep, "scope=\"", st->scope_needed, "\"", NULL);
    }
    v = apr_pstrcat(r->pool, v, sep, "algs=\"", NULL);
    for (i = 0; i < algs->nelts; i++) {
        v = apr_pstrcat(r->pool, v, i ? " " : "", APR_ARRAY_IDX(algs, i, const char *), NULL);
    }
    return apr_pstrcat(r->pool, v, "\"", NULL);
}

/** Which of the Bearer and DPoP challenges go out, under OfftokDPoP, and DPoP-Nonce. */
static void challenges(request_rec *r, const offtok_req_t *st, const char *bearer,
                       const char *realm)
{
    const offtok_dir_conf *c = ap_get_module_config(r->per_dir_config, &offtok_module);
    const char *name = r->proxyreq == PROXYREQ_PROXY ? "Proxy-Authenticate" : "WWW-Authenticate";
    ot_bind_mode_t mode = offtok_dpop_mode(c);

    if (mode == OT_BIND_OFF || (st->scheme == OT_SCHEME_BEARER
                                && st->status != HTTP_UNAUTHORIZED)) {
        apr_table_setn(r->err_headers_out, name, bearer);
        return;
    }
    if (mode == OT_BIND_ALLOW && st->status == HTTP_UNAUTHORIZED) {
        if (st->scheme == OT_SCHEME_DPOP) {
            bearer = realm ? apr_pstrcat(r->pool, "Bearer realm=\"", realm, "\"", NULL)
                           : "Bearer";
        }
        apr_table_setn(r->err_headers_out, name, bearer);
        apr_table_addn(r->err_headers_out, name, dpop_challenge(r, st, realm, c));
    }
    else {
        apr_table_setn(r->err_headers_out, name, dpop_challenge(r, st, realm, c));
    }
    if (st->error && strcmp(st->error, "use_dpop_nonce") == 0) {
        offtok_dpop_send_nonce(r);
    }
}

void offtok_set_challenge(request_rec *r, const offtok_req_t *st)
{
    const char *realm = ap_auth_name(r);
    const char *v = "Bearer";
    const char *sep = " ";

    if (st->status == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->err_headers_out, "Retry-After", OFFTOK_RETRY_AFTER);
        return;
    }
    if (st->status == HTTP_TOO_MANY_REQUESTS) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_itoa(r->pool, st->retry_after > 0 ? st->retry_after : 1));
        return;
    }
    if (st->status == HTTP_INTERNAL_SERVER_ERROR) {
        return;
    }
    if (realm) {
        v = apr_pstrcat(r->pool, v, sep, "realm=\"", quoted(realm, r->pool), "\"", NULL);
        sep = ", ";
    }
    if (st->error) {
        v = apr_pstrcat(r->pool, v, sep, "error=\"", st->error, "\"", NULL);
        sep = ", ";
    }
    if (st->scope_needed && *st->scope_needed) {
        v = apr_pstrcat(r->pool, v, sep, "scope=\"", quoted(st->scope_needed, r->pool), "\"",
                        NULL);
    }
    challenges(r, st, v, realm ? quoted(realm, r->pool) : NULL);
}

/** mod_authz_core answers a first-pass denial with 403 itself: add our challenge to it. */
void offtok_insert_error_filter(request_rec *r)
{
    const offtok_req_t *st = ap_get_module_config(r->request_config, &offtok_module);

    if (r->status == HTTP_FORBIDDEN && st != NULL && st->scope_needed != NULL
        && offtok_is_ours(r)) {
        offtok_count_answer(r, HTTP_FORBIDDEN, st->scope_needed[0] ? "scope" : "claim");
        offtok_set_challenge(r, st);
    }
}
