/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What the configuration says about local validation (OfftokAccessTokens Local), at start-up:
 *
 *   offtok_local_note_require  a Require offtok-claim / offtok-scope line notes, in its section's
 *                              configuration, the claims a locally verified token must carry
 *                              (a token without them goes to the issuer: mod_offtok_local.c)
 *   offtok_local_check_config  `apachectl -t` refuses Local without OfftokIssuer and
 *                              OfftokAudience, at server level and in every section
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <apr_strings.h>

#include "mod_offtok.h"

APLOG_USE_MODULE(offtok);

/* ---- what the configuration says ----------------------------------------------------------- */

void offtok_local_note_require(cmd_parms *cmd, const char *claim)
{
    offtok_dir_conf *c;

    if (cmd->context == NULL) {
        return;
    }
    /* The section's own configuration of this module, made now if none of ours came first. */
    c = ap_set_config_vectors(cmd->server, cmd->context, cmd->path, &offtok_module, cmd->pool);
    if (c == NULL) {
        return;
    }
    if (claim == NULL) {
        c->needs_scope = 1;
        return;
    }
    if (c->needed_claims == NULL) {
        c->needed_claims = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(c->needed_claims, const char *) = apr_pstrdup(cmd->pool, claim);
}

/** The name of a section, for a message. */
static const char *section_name(ap_conf_vector_t *v)
{
    core_dir_config *core = ap_get_core_module_config(v);

    return core && core->d ? core->d : "server";
}

/** Local in a section (merged over its server's defaults) without issuer or audience. */
static int check_sections(server_rec *s, apr_array_header_t *sections, apr_pool_t *ptemp)
{
    offtok_dir_conf *base = ap_get_module_config(s->lookup_defaults, &offtok_module), *c;
    int i, bad = 0;

    for (i = 0; sections && i < sections->nelts; i++) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(sections, i, ap_conf_vector_t *);
        offtok_dir_conf *own = ap_get_module_config(v, &offtok_module);

        if (own == NULL) {
            continue;
        }
        c = base ? offtok_merge_dir_conf(ptemp, base, own) : own;
        if (offtok_local(c) && (c->issuer == NULL || c->audience == NULL)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OT0600: OfftokAccessTokens Local in "
                         "<%s> needs OfftokIssuer and OfftokAudience", section_name(v));
            bad = 1;
        }
    }
    return bad;
}

int offtok_local_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s)
{
    int bad = 0;

    for (; s; s = s->next) {
        core_server_config *sc = ap_get_core_module_config(s->module_config);
        offtok_dir_conf *c = ap_get_module_config(s->lookup_defaults, &offtok_module);

        if (c && offtok_local(c) && (c->issuer == NULL || c->audience == NULL)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "OT0607: OfftokAccessTokens Local at "
                         "server level needs OfftokIssuer and OfftokAudience");
            bad = 1;
        }
        bad |= check_sections(s, sc->sec_dir, ptemp);
        bad |= check_sections(s, sc->sec_url, ptemp);
    }
    return bad ? HTTP_INTERNAL_SERVER_ERROR : OK;
}
