/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Issuer metadata (discovery): the input is an issuer identifier, '\n', a metadata document.
 * ot_metadata_url on the identifier; ot_metadata_parse of the document against a fixed issuer
 * and against the identifier; ot_disc_fetch with a fake fetch that answers 404 to the first URL
 * and the document to the second. What is accepted names the issuer exactly and only http(s)
 * endpoints.
 */
#include <string.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_discovery.h"

#define ISSUER "https://kc.example/realms/test"

static int http_or_null(const char *s)
{
    return s == NULL || strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0;
}

static void check(const char *doc, apr_size_t len, const char *issuer, apr_pool_t *p)
{
    ot_metadata_t m;
    const char *why = NULL;

    if (ot_metadata_parse(&m, &why, doc, len, issuer, p) == APR_SUCCESS) {
        fuzz_require(m.issuer && strcmp(m.issuer, issuer) == 0, "the issuer is the one asked");
        fuzz_require(http_or_null(m.introspection_endpoint) && http_or_null(m.jwks_uri),
                     "endpoints are http(s) URLs");
    }
    else {
        fuzz_require(why != NULL, "a refusal says why");
    }
}

typedef struct {
    const char *doc;
    apr_size_t len;
    int calls;
} fake_t;

static apr_status_t fake_fetch(void *baton, const char *url, int *status, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p)
{
    fake_t *f = baton;

    *status = f->calls++ == 0 ? 404 : 200;
    *body = f->doc;
    *len = f->len;
    return APR_SUCCESS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const char *issuer, *doc, *u0, *u1, *why = NULL;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t off = nl ? (size_t)(nl - data) + 1 : 0;
    ot_metadata_t m;
    fake_t f;

    fuzz_split(data, size, &issuer, &doc);
    doc = fuzz_body(data + off, size - off);
    u0 = ot_metadata_url(issuer, 0, p);
    u1 = ot_metadata_url(issuer, 1, p);
    fuzz_require((u0 == NULL) == (u1 == NULL), "both metadata URLs or neither");
    fuzz_require(u0 == NULL || strstr(u0, "/.well-known/openid-configuration") != NULL,
                 "the OIDC URL is well-known");
    check(doc, size - off, ISSUER, p);
    check(doc, size - off, issuer, p);
    f.doc = doc;
    f.len = size - off;
    f.calls = 0;
    if (ot_disc_fetch(&m, &why, issuer, fake_fetch, &f, p) == APR_SUCCESS) {
        fuzz_require(f.calls == 2 && strcmp(m.issuer, issuer) == 0, "fetched after a 404");
    }
    fuzz_end();
    return 0;
}
