/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * TLS to Redis (rediss://), where hiredis >= 1.0 comes with hiredis_ssl (configure defines
 * HAVE_HIREDIS_SSL). The SSL_CTX is ours, not redisCreateSSLContext's: it verifies the server's
 * chain against OpenSSL's default CA store and, which hiredis does not do, that the certificate
 * names the host we connected to (SSL_set1_host; for an address, its IP names). Elsewhere
 * rediss:// is refused when the configuration is read (ot_redis_parse_url), and these answer
 * APR_ENOTIMPL.
 */
#include "ot_redis_int.h"

#ifdef HAVE_HIREDIS_SSL
#include <arpa/inet.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static apr_status_t free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
    return APR_SUCCESS;
}

apr_status_t ot_redis_tls_init(ot_redis_t *r, apr_pool_t *p)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        return APR_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, ctx, free_ctx, apr_pool_cleanup_null);
    r->tls = ctx;
    return APR_SUCCESS;
}

/** 1 when host is an IPv4 or IPv6 address (checked against the certificate's IP names). */
static int is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

apr_status_t ot_redis_tls_start(ot_redis_t *r, redisContext *c, const char *host)
{
    SSL *ssl = SSL_new(r->tls);
    int ok;

    if (ssl == NULL) {
        ot_redis_note(r, "TLS", "out of memory");
        return APR_ENOMEM;
    }
    if (is_ip(host)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    }
    else {
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    }
    if (ok != 1) {
        SSL_free(ssl);
        ot_redis_note(r, "TLS", "cannot set the name to verify");
        return APR_EGENERAL;
    }
    /* On success the context owns ssl (redisFree frees it); on failure hiredis leaves it. */
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        ot_redis_note(r, "TLS", c->errstr);
        SSL_free(ssl);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}
#else
apr_status_t ot_redis_tls_init(ot_redis_t *r, apr_pool_t *p)
{
    return APR_ENOTIMPL;
}

apr_status_t ot_redis_tls_start(ot_redis_t *r, redisContext *c, const char *host)
{
    ot_redis_note(r, "TLS", "this build has no TLS to Redis");
    return APR_ENOTIMPL;
}
#endif
