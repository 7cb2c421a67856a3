/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The effective value of every per-directory setting that starts unset (OFFTOK_UNSET, or NULL):
 * one accessor each, which resolves its default, so that no caller reads a raw field and no
 * "unset" counts as on or off by accident. Read from a merged configuration.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>

#include "mod_offtok.h"
#include "ot_http.h"

int offtok_cache_ttl(const offtok_dir_conf *c)
{
    return c->cache_ttl != OFFTOK_UNSET ? c->cache_ttl : OT_DEFAULT_CACHE_TTL;
}

int offtok_neg_ttl(const offtok_dir_conf *c)
{
    return c->neg_ttl != OFFTOK_UNSET ? c->neg_ttl : OT_DEFAULT_NEG_TTL;
}

int offtok_local(const offtok_dir_conf *c)
{
    return c->access_tokens == 1;
}

ot_always_t offtok_always(const offtok_dir_conf *c)
{
    return c->always != OFFTOK_UNSET ? (ot_always_t)c->always : OT_ALWAYS_OFF;
}

apr_interval_time_t offtok_connect_timeout(const offtok_dir_conf *c)
{
    return c->connect_timeout != OFFTOK_UNSET ? c->connect_timeout : OT_DEFAULT_CONNECT_TIMEOUT;
}

apr_interval_time_t offtok_total_timeout(const offtok_dir_conf *c)
{
    return c->total_timeout != OFFTOK_UNSET ? c->total_timeout : OT_DEFAULT_TOTAL_TIMEOUT;
}

int offtok_clock_skew(const offtok_dir_conf *c)
{
    return c->clock_skew != OFFTOK_UNSET ? c->clock_skew : OT_DEFAULT_CLOCK_SKEW;
}

int offtok_dpop_max_age(const offtok_dir_conf *c)
{
    return c->dpop_max_age != OFFTOK_UNSET ? c->dpop_max_age : OT_DEFAULT_DPOP_MAX_AGE;
}

ot_bind_mode_t offtok_dpop_mode(const offtok_dir_conf *c)
{
    return c->dpop != OFFTOK_UNSET ? (ot_bind_mode_t)c->dpop : OT_BIND_ALLOW;
}

ot_bind_mode_t offtok_mtls_mode(const offtok_dir_conf *c)
{
    return c->mtls != OFFTOK_UNSET ? (ot_bind_mode_t)c->mtls : OT_BIND_ALLOW;
}

const apr_array_header_t *offtok_dpop_algs(const offtok_dir_conf *c)
{
    static const char *const names[] = { "ES256", "ES384", "PS256", "RS256" };
    static apr_array_header_t deflt;

    if (c->dpop_algs) {
        return c->dpop_algs;
    }
    deflt.elts = (char *)names;
    deflt.nelts = deflt.nalloc = 4;
    deflt.elt_size = sizeof(const char *);
    return &deflt;
}

int offtok_ssl_verify(const offtok_dir_conf *c)
{
    return c->ssl_verify != OFFTOK_UNSET ? c->ssl_verify : 1;
}

int offtok_allow_offline(const offtok_dir_conf *c)
{
    return c->offline != OFFTOK_UNSET ? c->offline : 1;
}

int offtok_forward_token(const offtok_dir_conf *c)
{
    return c->forward_token != OFFTOK_UNSET ? c->forward_token : 1;
}

int offtok_signed_answers(const offtok_dir_conf *c)
{
    return c->signed_answers != OFFTOK_UNSET ? c->signed_answers : 0;
}

int offtok_dpop_nonce(const offtok_dir_conf *c)
{
    return c->dpop_nonce != OFFTOK_UNSET ? c->dpop_nonce : 0;
}

ot_hint_mode_t offtok_hint_mode(const offtok_dir_conf *c)
{
    return c->hint_mode != OFFTOK_UNSET ? (ot_hint_mode_t)c->hint_mode : OT_HINT_AUTO;
}

ot_client_auth_t offtok_client_auth(const offtok_dir_conf *c)
{
    return c->client_auth != OFFTOK_UNSET ? (ot_client_auth_t)c->client_auth : OT_AUTH_BASIC;
}

void offtok_http_req(ot_http_req_t *req, const offtok_dir_conf *c)
{
    memset(req, 0, sizeof(*req));
    req->ca_file = c->ca_file;
    req->verify = offtok_ssl_verify(c);
    req->connect_timeout = offtok_connect_timeout(c);
    req->total_timeout = offtok_total_timeout(c);
}
