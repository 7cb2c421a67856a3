/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * How a setting's value comes to be: every field starts unset (OFFTOK_UNSET, or NULL) when a
 * section's configuration is made; merging takes the child's value when it set one (repeatable
 * directives, OfftokClientFor and OfftokPassHeader, add up from parent to child); and one
 * accessor per setting resolves its default, so that no caller reads a raw field and no "unset"
 * counts as on or off by accident.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <apr_strings.h>

#include "mod_offtok.h"
#include "ot_http.h"

void *offtok_create_dir_conf(apr_pool_t *p, char *dir)
{
    offtok_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->client_auth = OFFTOK_UNSET;
    c->ssl_verify = OFFTOK_UNSET;
    c->connect_timeout = OFFTOK_UNSET;
    c->total_timeout = OFFTOK_UNSET;
    c->always = OFFTOK_UNSET;
    c->cache_ttl = OFFTOK_UNSET;
    c->neg_ttl = OFFTOK_UNSET;
    c->offline = OFFTOK_UNSET;
    c->hint_mode = OFFTOK_UNSET;
    c->forward_token = OFFTOK_UNSET;
    c->clock_skew = OFFTOK_UNSET;
    c->dpop = OFFTOK_UNSET;
    c->dpop_max_age = OFFTOK_UNSET;
    c->dpop_nonce = OFFTOK_UNSET;
    c->mtls = OFFTOK_UNSET;
    c->signed_answers = OFFTOK_UNSET;
    c->access_tokens = OFFTOK_UNSET;
    return c;
}

#define MERGE_PTR(f) (add->f ? add->f : base->f)
#define MERGE_INT(f) (add->f != OFFTOK_UNSET ? add->f : base->f)

/** first's elements, then then's (either may be NULL). */
static apr_array_header_t *merge_list(apr_pool_t *p, apr_array_header_t *first,
                                      apr_array_header_t *then)
{
    if (first == NULL) return then;
    if (then == NULL) return first;
    return apr_array_append(p, first, then);
}

void *offtok_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    offtok_dir_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));

    c->url = MERGE_PTR(url);
    c->client_id = MERGE_PTR(client_id);
    c->client_secret = MERGE_PTR(client_secret);
    /* The child's lines first: the first OfftokClientFor matching a token's azp is used. */
    c->client_for = merge_list(p, add->client_for, base->client_for);
    c->client_auth = MERGE_INT(client_auth);
    c->ca_file = MERGE_PTR(ca_file);
    c->ssl_verify = MERGE_INT(ssl_verify);
    c->connect_timeout = MERGE_INT(connect_timeout);
    c->total_timeout = MERGE_INT(total_timeout);
    c->always = MERGE_INT(always);
    c->cache_ttl = MERGE_INT(cache_ttl);
    c->neg_ttl = MERGE_INT(neg_ttl);
    c->offline = MERGE_INT(offline);
    c->hint_mode = MERGE_INT(hint_mode);
    c->issuer = MERGE_PTR(issuer);
    c->audience = MERGE_PTR(audience);
    c->user_claim = MERGE_PTR(user_claim);
    c->pass = merge_list(p, base->pass, add->pass);
    c->forward_token = MERGE_INT(forward_token);
    c->jwks_url = MERGE_PTR(jwks_url);
    c->logout_aud = MERGE_PTR(logout_aud);
    c->offline_clients = MERGE_PTR(offline_clients);
    c->clock_skew = MERGE_INT(clock_skew);
    c->dpop = MERGE_INT(dpop);
    c->dpop_algs = MERGE_PTR(dpop_algs);
    c->dpop_max_age = MERGE_INT(dpop_max_age);
    c->dpop_nonce = MERGE_INT(dpop_nonce);
    c->mtls = MERGE_INT(mtls);
    c->client_secret_file = add->client_secret ? add->client_secret_file
                                               : base->client_secret_file;
    c->client_key = MERGE_PTR(client_key);
    c->assertion_aud = MERGE_PTR(assertion_aud);
    c->client_cert = MERGE_PTR(client_cert);
    c->signed_answers = MERGE_INT(signed_answers);
    c->access_tokens = MERGE_INT(access_tokens);
    c->needed_claims = merge_list(p, base->needed_claims, add->needed_claims);
    c->needs_scope = add->needs_scope || base->needs_scope;
    return c;
}

void *offtok_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    offtok_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    c->cache_size = 0;
    c->max_pending = OFFTOK_UNSET;
    return c;
}

void *offtok_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    offtok_srv_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));

    c->cache_size = add->cache_size ? add->cache_size : base->cache_size;
    c->dpop_replay_size = add->dpop_replay_size ? add->dpop_replay_size : base->dpop_replay_size;
    c->max_pending = MERGE_INT(max_pending);
    c->redis_url = MERGE_PTR(redis_url);
    c->redis_password = MERGE_PTR(redis_password);
    c->redis_user = MERGE_PTR(redis_user);
    c->redis_key = MERGE_PTR(redis_key);
    c->miss_rate = add->miss_rate_set ? add->miss_rate : base->miss_rate;
    c->miss_rate_set = add->miss_rate_set || base->miss_rate_set;
    c->issuer_rate = add->issuer_rate_set ? add->issuer_rate : base->issuer_rate;
    c->issuer_rate_set = add->issuer_rate_set || base->issuer_rate_set;
    return c;
}

int offtok_is_ours(request_rec *r)
{
    const char *type = ap_auth_type(r);

    return type != NULL && strcasecmp(type, "offtok") == 0;
}

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

/** What offtok_jwks_key appends to a JWKS URL (a fragment: never part of what is fetched). */
#define JWKS_TRUST "#offtok-trust="

const char *offtok_jwks_key(const offtok_dir_conf *c, apr_pool_t *p)
{
    const char *url = c->jwks_url, *fragment = url ? strchr(url, '#') : NULL;

    /*
     * The URL's own fragment goes (it is never fetched either): only JWKS_TRUST may follow a
     * '#', so that no OfftokJWKSURL (one ending in "#offtok-trust=noverify") names the keys
     * that another location fetched under other trust settings.
     */
    if (fragment != NULL) {
        url = apr_pstrmemdup(p, url, (apr_size_t)(fragment - url));
    }
    if (url == NULL || (offtok_ssl_verify(c) && c->ca_file == NULL)) {
        return url;
    }
    return apr_pstrcat(p, url, JWKS_TRUST, offtok_ssl_verify(c) ? "verify" : "noverify",
                       c->ca_file ? " ca=" : "", c->ca_file ? c->ca_file : "", NULL);
}
