/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The directives of client authentication at the issuer, registered in mod_offtok_config.c's
 * command table (as every directive is):
 *
 *   OfftokClientAuth         the method, by its RFC 8414 name
 *   OfftokClientKey          a private key for private_key_jwt, read (as root) and parsed now
 *   OfftokClientCertificate  a certificate and its key for tls_client_auth, read now and checked
 *                            to be a pair
 *
 * and what each method needs: offtok_client_missing (at request time, OT0005) and check_config
 * (apachectl -t, OT0505). The call that uses them is mod_offtok_client.c's.
 *
 * Nothing here logs a secret or a key: paths and method names only.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <apr_strings.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mod_offtok.h"
#include "ot_assert.h"
#include "ot_cred.h"

APLOG_USE_MODULE(offtok);

/* ---- argument handlers -------------------------------------------------------------------- */

const char *offtok_set_client_auth(cmd_parms *cmd, void *dc, const char *arg)
{
    offtok_dir_conf *c = dc;
    int i;

    for (i = OT_AUTH_BASIC; i <= OT_AUTH_TLS; i++) {
        if (strcasecmp(arg, ot_client_auth_name((ot_client_auth_t)i)) == 0) {
            c->client_auth = i;
            return NULL;
        }
    }
    return apr_psprintf(cmd->pool, "%s: '%s' is not client_secret_basic, client_secret_post, "
                        "client_secret_jwt, private_key_jwt or tls_client_auth",
                        cmd->cmd->name, arg);
}

/** A file named in a directive, read now (as root): its content, or an error for cmd. */
static const char *read_file(cmd_parms *cmd, const char *arg, ot_cred_kind_t kind,
                             const char **path, apr_size_t *len, const char **err)
{
    const char *data;

    *path = ap_server_root_relative(cmd->pool, arg);
    if (*path == NULL) {
        *err = apr_psprintf(cmd->pool, "%s: '%s' is not a valid path", cmd->cmd->name, arg);
        return NULL;
    }
    data = ot_cred_read(*path, kind, len, err, cmd->pool);
    if (data == NULL) {
        *err = apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, *err);
    }
    return data;
}

const char *offtok_set_client_key(cmd_parms *cmd, void *dc, const char *file, const char *kid)
{
    offtok_dir_conf *c = dc;
    offtok_key_t *k = apr_pcalloc(cmd->pool, sizeof(*k));
    const char *err = NULL;

    if (strncmp(file, "file:", 5) != 0) {
        return apr_psprintf(cmd->pool, "%s: give the key as file:PATH", cmd->cmd->name);
    }
    k->pem = read_file(cmd, file + 5, OT_CRED_PEM, &k->file, &k->pem_len, &err);
    if (k->pem == NULL) {
        return err;
    }
    k->pkey = ot_assert_key_parse(k->pem, k->pem_len, &err, cmd->pool);
    if (k->pkey == NULL) {
        return apr_psprintf(cmd->pool, "%s: %s: %s", cmd->cmd->name, k->file, err);
    }
    k->kid = kid;
    c->client_key = k;
    return NULL;
}

/** NULL when cert (PEM) and key (PEM) are a certificate and its private key. */
static const char *cert_pair_problem(const char *cert, apr_size_t cert_len, const char *key,
                                     apr_size_t key_len)
{
    BIO *cb = BIO_new_mem_buf(cert, (int)cert_len), *kb = BIO_new_mem_buf(key, (int)key_len);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, (void *)"") : NULL;
    const char *problem = x == NULL ? "the certificate file holds no PEM certificate"
        : k == NULL ? "the key file holds no PEM private key (an encrypted key is not accepted)"
        : X509_check_private_key(x, k) != 1 ? "the key does not belong to the certificate"
        : NULL;

    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return problem;
}

const char *offtok_set_client_cert(cmd_parms *cmd, void *dc, const char *cert,
                                   const char *key)
{
    offtok_dir_conf *c = dc;
    offtok_cert_t *t = apr_pcalloc(cmd->pool, sizeof(*t));
    const char *err = NULL;

    t->cert = read_file(cmd, cert, OT_CRED_PEM, &t->cert_file, &t->cert_len, &err);
    if (t->cert != NULL) {
        t->key = read_file(cmd, key, OT_CRED_PEM, &t->key_file, &t->key_len, &err);
    }
    if (t->cert == NULL || t->key == NULL) {
        return err;
    }
    if ((err = cert_pair_problem(t->cert, t->cert_len, t->key, t->key_len)) != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    c->client_cert = t;
    return NULL;
}

/* ---- what a method needs ------------------------------------------------------------------ */

const char *offtok_client_missing(const offtok_dir_conf *c)
{
    ot_client_auth_t auth = offtok_client_auth(c);

    if (c->client_id == NULL) {
        return "OfftokClientID";
    }
    if ((auth == OT_AUTH_KEY_JWT || auth == OT_AUTH_SECRET_JWT) && c->assertion_aud == NULL
        && c->issuer == NULL) {
        return "OfftokIssuer or OfftokClientAssertionAudience (the aud of client assertions)";
    }
    if (auth == OT_AUTH_KEY_JWT) {
        return c->client_key ? NULL : "OfftokClientKey (for private_key_jwt)";
    }
    if (auth == OT_AUTH_TLS) {
        return c->client_cert ? NULL : "OfftokClientCertificate (for tls_client_auth)";
    }
    return c->client_secret ? NULL : "OfftokClientSecret";
}

/** What keeps c (a section, merged with its server's defaults) from working, or NULL. */
static const char *section_problem(const offtok_dir_conf *c, apr_pool_t *p)
{
    ot_client_auth_t auth = offtok_client_auth(c);

    if ((auth == OT_AUTH_KEY_JWT || auth == OT_AUTH_SECRET_JWT) && c->assertion_aud == NULL
        && c->issuer == NULL) {
        return apr_pstrcat(p, "OfftokClientAuth ", ot_client_auth_name(auth),
                           " needs OfftokClientAssertionAudience or OfftokIssuer (the aud of "
                           "its assertions)", NULL);
    }
    if (auth == OT_AUTH_KEY_JWT && c->client_key == NULL) {
        return "OfftokClientAuth private_key_jwt needs OfftokClientKey";
    }
    if (auth == OT_AUTH_TLS && c->client_cert == NULL) {
        return "OfftokClientAuth tls_client_auth needs OfftokClientCertificate";
    }
    if (offtok_signed_answers(c) && c->issuer == NULL) {
        return "OfftokSignedAnswers On needs OfftokIssuer (the iss signed answers must carry)";
    }
    return NULL;
}

/** 1 when a section (or, with sec NULL, its server) names an issuer to introspect at. */
static int introspects(const offtok_dir_conf *sec, const offtok_dir_conf *base)
{
    return (sec && (sec->url || sec->issuer)) || base->url || base->issuer;
}

/** Judge the sections of one server (Directory, Location and friends) merged with base. */
static void check_sections(const char **problem, apr_array_header_t *secs,
                           const offtok_dir_conf *base, apr_pool_t *p)
{
    ap_conf_vector_t **elts;
    const offtok_dir_conf *sec;
    int i;

    if (secs == NULL) {
        return;
    }
    elts = (ap_conf_vector_t **)secs->elts;
    for (i = 0; *problem == NULL && i < secs->nelts; i++) {
        sec = ap_get_module_config(elts[i], &offtok_module);
        if (sec && introspects(sec, base)) {
            *problem = section_problem(offtok_merge_dir_conf(p, (void *)base, (void *)sec), p);
        }
    }
}

/**
 * apachectl -t: every section that introspects (has OfftokIntrospectionURL or OfftokIssuer, its
 * own or its server's) must have what its OfftokClientAuth needs. Sections are judged merged
 * with their server's defaults only, not with enclosing sections: set the directives together.
 */
int offtok_client_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s)
{
    const char *problem = NULL;
    core_server_config *core;
    const offtok_dir_conf *base;

    for (; s != NULL && problem == NULL; s = s->next) {
        base = ap_get_module_config(s->lookup_defaults, &offtok_module);
        if (base && introspects(NULL, base)) {
            problem = section_problem(base, ptemp);
        }
        core = ap_get_core_module_config(s->module_config);
        if (base && problem == NULL) {
            check_sections(&problem, core->sec_dir, base, ptemp);
            check_sections(&problem, core->sec_url, base, ptemp);
        }
    }
    if (problem) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, NULL, "OT0505: %s", problem);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
