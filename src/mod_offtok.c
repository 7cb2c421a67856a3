/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * mod_offtok: bearer tokens checked at the issuer's RFC 7662 introspection endpoint, the answer
 * kept briefly in shared memory, the identity handed to CGI scripts and proxied back ends.
 *
 * This file holds the module record and registers every hook; it calls down into the other
 * mod_offtok_*.c files and none of them calls it:
 *
 *   post_config (parent)  make or reuse the shared segment (mod_offtok_proc.c)
 *   child_init            the issuer link of this process (mod_offtok_proc.c)
 *   header_parser         remove client-sent copies of OfftokPassHeader headers
 *   check_authn           token → cache or issuer → REMOTE_USER and the environment
 *   force_authn           run authentication when an offtok provider already granted access
 *   note_auth_failure     WWW-Authenticate: Bearer ... for AuthType offtok
 *   fixups                the environment for subrequests and internal redirects
 *   handler               first: after mod_dir's or mod_negotiation's fast redirect, scrub and
 *                         set the headers for the configuration the request now has
 *                         (mod_offtok_env.c); then pushed revocations and the status page
 *                         (mod_offtok_handlers.c)
 *   check_config, child_init, child_stopping: the Redis tier, when OfftokRedis is set
 *                         (mod_offtok_redis.c)
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <apr_strings.h>
#include <apr_optional_hooks.h>
#include <mod_status.h>

#include "mod_offtok.h"

static int offtok_authn(request_rec *r)
{
    offtok_req_t *st;

    if (!offtok_is_ours(r)) {
        return DECLINED;
    }
    st = offtok_check(r);
    if (st->status != OK) {
        offtok_set_challenge(r, st);
        return st->status;
    }
    offtok_env_apply(r, st);
    return OK;
}

/** An offtok provider granted access in the user-less pass: authenticate to set REMOTE_USER. */
static int offtok_force_authn(request_rec *r)
{
    offtok_req_t *st;

    if (!offtok_is_ours(r)) {
        return DECLINED;
    }
    st = ap_get_module_config(r->request_config, &offtok_module);
    return (st != NULL && st->status == OK) ? OK : DECLINED;
}

static int offtok_note_auth_failure(request_rec *r, const char *auth_type)
{
    offtok_req_t *st;

    if (strcasecmp(auth_type, "offtok") != 0) {
        return DECLINED;
    }
    st = offtok_check(r);
    offtok_count_answer(r, HTTP_UNAUTHORIZED, st->scope_needed == NULL ? NULL
                        : st->scope_needed[0] ? "scope" : "claim");
    offtok_set_challenge(r, st);
    return OK;
}

/** 1 when httpd gave r the user of the request it came from and skipped authentication. */
static int inherited_user(const request_rec *r)
{
    if (r->prev != NULL && r->prev->per_dir_config == r->per_dir_config) {
        return 1;
    }
    return r->main != NULL && r->main->per_dir_config == r->per_dir_config;
}

/**
 * Subrequests and internal redirects that skipped authentication (httpd copies the user when the
 * configuration is the same) get the environment too, or the refusal when the token, checked
 * again here, is no longer accepted (a logout pushed meanwhile).
 */
static int offtok_fixups(request_rec *r)
{
    offtok_req_t *st;

    if (r->user == NULL || !offtok_is_ours(r)) {
        return DECLINED;
    }
    st = offtok_check(r);
    if (st->status != OK && inherited_user(r)) {
        r->user = NULL;
        offtok_set_challenge(r, st);
        return st->status;
    }
    offtok_env_apply(r, st);
    return DECLINED;
}

/**
 * Subrequests skip the header_parser hook (httpd runs it for initial requests and internal
 * redirects only), but carry a copy of the client's headers: scrub them once their own
 * location's configuration is known, before they are authenticated.
 */
static int offtok_strip_sub_headers(request_rec *r)
{
    return r->main != NULL ? offtok_strip_headers(r) : DECLINED;
}

/** Every hook and provider of the module, in the order they run among their peers. */
static void offtok_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(offtok_proc_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(offtok_proc_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_header_parser(offtok_strip_headers, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_post_perdir_config(offtok_strip_sub_headers, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_check_authn(offtok_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_force_authn(offtok_force_authn, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_note_auth_failure(offtok_note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(offtok_fixups, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(offtok_answers_fixups, NULL, NULL, APR_HOOK_LAST);
    APR_OPTIONAL_HOOK(ap, status_hook, offtok_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(offtok_fast_redirected, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(offtok_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(offtok_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "offtok-scope", AUTHZ_PROVIDER_VERSION,
                              &offtok_scope_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "offtok-claim", AUTHZ_PROVIDER_VERSION,
                              &offtok_claim_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_config(offtok_client_check_config, NULL, NULL, APR_HOOK_MIDDLE);
#ifdef HAVE_HIREDIS
    ap_hook_check_config(offtok_redis_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(offtok_redis_child_init, NULL, NULL, APR_HOOK_LAST);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
    ap_hook_child_stopping(offtok_redis_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
#endif
#endif
    ap_hook_post_config(offtok_dpop_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(offtok_local_check_config, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(offtok) = {
    STANDARD20_MODULE_STUFF,
    offtok_create_dir_conf,
    offtok_merge_dir_conf,
    offtok_create_srv_conf,
    offtok_merge_srv_conf,
    offtok_cmds,
    offtok_register_hooks,
    AP_MODULE_FLAG_NONE
};
