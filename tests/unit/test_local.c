/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * ot_discovery and ot_jwt_verify: the metadata URLs and checks, the metadata cache (fake
 * fetcher, fake clock), which JWTs are judged locally, their time rules and pushed revocations.
 */
#include <string.h>
#include <openssl/evp.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_answer.h"
#include "ot_cache.h"
#include "ot_revoke.h"
#include "ot_shm.h"
#include "ot_discovery.h"
#include "ot_docs.h"
#include "ot_jose.h"
#include "ot_json.h"
#include "ot_jwt_verify.h"
#include "ot_util.h"

#define T0 apr_time_from_sec(1796015000)
#define ISS "https://kc.example:8443/realms/test"
#define OIDC ISS "/.well-known/openid-configuration"
#define RFC8414 "https://kc.example:8443/.well-known/oauth-authorization-server/realms/test"

/* ---- metadata ------------------------------------------------------------------------------ */

START_TEST(metadata_urls)
{
    apr_pool_t *p = ot_test_pool;

    ck_assert_str_eq(ot_metadata_url(ISS, 0, p), OIDC);
    ck_assert_str_eq(ot_metadata_url(ISS "/", 0, p), OIDC);
    ck_assert_str_eq(ot_metadata_url(ISS, 1, p), RFC8414);
    ck_assert_str_eq(ot_metadata_url(ISS "/", 1, p), RFC8414);
    ck_assert_str_eq(ot_metadata_url("https://op.example", 1, p),
                     "https://op.example/.well-known/oauth-authorization-server");
    ck_assert_str_eq(ot_metadata_url("http://op.example/", 0, p),
                     "http://op.example/.well-known/openid-configuration");
    ck_assert_ptr_null(ot_metadata_url("op.example", 0, p));
    ck_assert_ptr_null(ot_metadata_url("ftp://op.example/x", 0, p));
    ck_assert_ptr_null(ot_metadata_url("https://op.example/x?y=1", 0, p));
    ck_assert_ptr_null(ot_metadata_url("https://op.example/x#f", 1, p));
    ck_assert_ptr_null(ot_metadata_url(NULL, 0, p));
}
END_TEST

static apr_status_t parse(ot_metadata_t *m, const char **why, const char *doc)
{
    return ot_metadata_parse(m, why, doc, strlen(doc), ISS, ot_test_pool);
}

START_TEST(metadata_checks)
{
    ot_metadata_t m;
    const char *why = NULL;

    ck_assert_int_eq(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"introspection_endpoint\":"
                           "\"https://kc.example/i\",\"jwks_uri\":\"https://kc.example/k\"}"),
                     APR_SUCCESS);
    ck_assert_str_eq(m.introspection_endpoint, "https://kc.example/i");
    ck_assert_str_eq(m.jwks_uri, "https://kc.example/k");
    ck_assert_int_eq(parse(&m, &why, "{\"issuer\":\"" ISS "\"}"), APR_SUCCESS);
    ck_assert_ptr_null(m.introspection_endpoint);
    ck_assert_ptr_null(m.jwks_uri);
    /* The issuer must be OfftokIssuer exactly: not with a slash more, not another case. */
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "/\"}"), APR_SUCCESS);
    ck_assert_str_eq(why, "its issuer is not OfftokIssuer exactly");
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"https://KC.example:8443/realms/test\"}"),
                     APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\\u0000x\"}"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":1}"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{}"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "[]"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"issuer\":\"x\"}"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "not json"), APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"jwks_uri\":\"file:///etc/x\"}"),
                     APR_SUCCESS);
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"jwks_uri\":7}"), APR_SUCCESS);
    /* Attack: an https issuer's metadata naming http endpoints (keys or credentials in clear). */
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"jwks_uri\":"
                           "\"http://kc.example/k\"}"), APR_SUCCESS);
    ck_assert_str_eq(why, "its jwks_uri is not https while the issuer is");
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"introspection_endpoint\":"
                           "\"http://kc.example/i\"}"), APR_SUCCESS);
    ck_assert_int_eq(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"jwks_uri\":"
                           "\"HTTPS://other.example/k\"}"), APR_SUCCESS);
    {
        const char *plain = "{\"issuer\":\"http://op.example\","
                            "\"jwks_uri\":\"http://op.example/k\"}";
        ck_assert_int_eq(ot_metadata_parse(&m, &why, plain, strlen(plain), "http://op.example",
                                           ot_test_pool), APR_SUCCESS);
    }
    ck_assert_int_ne(parse(&m, &why, "{\"issuer\":\"" ISS "\",\"introspection_endpoint\":"
                           "\"https://u:p@kc.example/i\"}"), APR_SUCCESS);
}
END_TEST

/** A fake issuer: status and body per URL, and a count of fetches. */
typedef struct {
    int oidc_status, rfc_status, fail;
    const char *doc;
    int calls;
    const char *last_url;
} fake_t;

static apr_status_t fake_fetch(void *baton, const char *url, int *status, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p)
{
    fake_t *f = baton;

    f->calls++;
    f->last_url = apr_pstrdup(ot_test_pool, url);
    if (f->fail) {
        *why = "connect";
        return APR_EGENERAL;
    }
    *status = strcmp(url, OIDC) == 0 ? f->oidc_status : strcmp(url, RFC8414) == 0
        ? f->rfc_status : 404;
    *body = f->doc;
    *len = strlen(f->doc);
    return APR_SUCCESS;
}

#define DOC "{\"issuer\":\"" ISS "\",\"introspection_endpoint\":\"https://kc.example/i\"}"

START_TEST(fetch_falls_back_on_404_only)
{
    fake_t f = { 404, 200, 0, DOC, 0, NULL };
    ot_metadata_t m;
    const char *why = NULL;

    ck_assert_int_eq(ot_disc_fetch(&m, &why, ISS, fake_fetch, &f, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_str_eq(f.last_url, RFC8414);
    ck_assert_str_eq(m.introspection_endpoint, "https://kc.example/i");
    f = (fake_t){ 500, 200, 0, DOC, 0, NULL };
    ck_assert_int_ne(ot_disc_fetch(&m, &why, ISS, fake_fetch, &f, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 1);
    f = (fake_t){ 404, 404, 0, DOC, 0, NULL };
    ck_assert_int_ne(ot_disc_fetch(&m, &why, ISS, fake_fetch, &f, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 2);
    f = (fake_t){ 200, 200, 0, "{\"issuer\":\"https://evil.example\"}", 0, NULL };
    ck_assert_int_ne(ot_disc_fetch(&m, &why, ISS, fake_fetch, &f, ot_test_pool), APR_SUCCESS);
    ck_assert(strstr(why, "not OfftokIssuer exactly") != NULL);
}
END_TEST

START_TEST(cache_refreshes_rate_limits_and_keeps_stale_copies)
{
    fake_t f = { 200, 200, 0, DOC, 0, NULL };
    ot_disc_t *d;
    ot_metadata_t m;
    const char *why = NULL;
    int fetched;
    apr_time_t t = T0;

    ck_assert_int_eq(ot_disc_create(&d, apr_time_from_sec(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f, t, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_int_eq(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f, t + 1,
                                 ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 1);
    /* Older than an hour: fetched again; when that fails, the old copy is used ... */
    f.fail = 1;
    t += OT_META_MAX_AGE;
    ck_assert_int_eq(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f, t, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_str_eq(m.introspection_endpoint, "https://kc.example/i");
    /* ... without another try within 10 s ... */
    ck_assert_int_eq(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f,
                                 t + apr_time_from_sec(5), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 2);
    /* ... and no longer than a day after it was fetched. */
    ck_assert_int_ne(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f,
                                 T0 + OT_META_MAX_STALE, ot_test_pool), APR_SUCCESS);
    f.fail = 0;
    ck_assert_int_eq(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f,
                                 T0 + OT_META_MAX_STALE + apr_time_from_sec(11), ot_test_pool),
                     APR_SUCCESS);
}
END_TEST

START_TEST(cache_without_a_copy_fails_and_waits)
{
    fake_t f = { 503, 503, 0, DOC, 0, NULL };
    ot_disc_t *d;
    ot_metadata_t m;
    const char *why = NULL;
    int fetched;

    ck_assert_int_eq(ot_disc_create(&d, apr_time_from_sec(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_ne(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f, T0, ot_test_pool),
                     APR_SUCCESS);
    ck_assert_int_ne(ot_disc_get(&m, &why, &fetched, d, ISS, fake_fetch, &f,
                                 T0 + apr_time_from_sec(1), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(fetched, 0);
    ck_assert_int_eq(f.calls, 1);
}
END_TEST

/*
 * Attack: a location with OfftokSSLVerify Off (or another OfftokCAFile) and the same OfftokIssuer
 * fetches the metadata first, through a man in the middle that names its own introspection
 * endpoint and keys. A location that verifies must not take that copy: it fetches its own.
 */
#define DOC_EVIL "{\"issuer\":\"" ISS "\",\"introspection_endpoint\":\"https://evil.example/i\"," \
    "\"jwks_uri\":\"https://evil.example/k\"}"

START_TEST(cache_is_per_trust_scope)
{
    fake_t f = { 200, 200, 0, DOC_EVIL, 0, NULL };
    ot_disc_t *d;
    ot_metadata_t m;
    const char *why = NULL;
    int fetched;

    ck_assert_int_eq(ot_disc_create(&d, apr_time_from_sec(10), ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_disc_get_scoped(&m, &why, &fetched, d, ISS, "|0", fake_fetch, &f, T0,
                                        ot_test_pool), APR_SUCCESS);
    ck_assert_str_eq(m.introspection_endpoint, "https://evil.example/i");
    f.doc = DOC;
    ck_assert_int_eq(ot_disc_get_scoped(&m, &why, &fetched, d, ISS, "|1", fake_fetch, &f, T0 + 1,
                                        ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_int_eq(f.calls, 2);
    ck_assert_str_eq(m.introspection_endpoint, "https://kc.example/i");
    ck_assert_ptr_null(m.jwks_uri);
    /* Each scope keeps its own copy. */
    ck_assert_int_eq(ot_disc_get_scoped(&m, &why, &fetched, d, ISS, "/ca.pem|1", fake_fetch, &f,
                                        T0 + 2, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 3);
    ck_assert_int_eq(ot_disc_get_scoped(&m, &why, &fetched, d, ISS, "|1", fake_fetch, &f, T0 + 3,
                                        ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(f.calls, 3);
    ck_assert_str_eq(m.introspection_endpoint, "https://kc.example/i");
}
END_TEST

/* ---- documents shared by every process (ot_docs) ------------------------------------------ */

typedef struct {
    int status, fail, calls;
    const char *body;
} get_fake_t;

static apr_status_t fake_get(void *baton, const char *url, int *status, const char **body,
                             apr_size_t *len, const char **why, apr_pool_t *p)
{
    get_fake_t *g = baton;

    g->calls++;
    if (g->fail) {
        *why = "connect";
        return APR_EGENERAL;
    }
    *status = g->status;
    *body = g->body;
    *len = strlen(g->body);
    return APR_SUCCESS;
}

static apr_status_t docs(ot_shm_t *s, get_fake_t *g, apr_time_t now, const char **body,
                         int *fetched)
{
    int status = 0;
    apr_size_t len = 0;
    const char *why = NULL;

    *body = NULL;
    return ot_docs_fetch(s, "https://kc/certs", "ca|1", now, 0, fake_get, g, &status, body,
                         &len, &why, fetched, ot_test_pool);
}

START_TEST(documents_fetched_once_for_all_processes)
{
    ot_shm_t *s;
    get_fake_t g = { 200, 0, 0, "{\"keys\":[1]}" };
    const char *body;
    int fetched;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(docs(s, &g, T0, &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_str_eq(body, "{\"keys\":[1]}");
    /* Within 10 s every process gets that copy, without a call. */
    g.body = "{\"keys\":[2]}";
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(9), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 0);
    ck_assert_str_eq(body, "{\"keys\":[1]}");
    ck_assert_int_eq(g.calls, 1);
    /* Then one fetches; a failure gives the copy there is ... */
    g.fail = 1;
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(11), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_str_eq(body, "{\"keys\":[1]}");
    /* ... and nobody tries again within 10 s of that attempt. */
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(15), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 0);
    ck_assert_int_eq(g.calls, 2);
    g.fail = 0;
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(22), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_str_eq(body, "{\"keys\":[2]}");
    /* A day-old copy is not given out when fetching fails. */
    g.fail = 1;
    ck_assert_int_ne(docs(s, &g, T0 + apr_time_from_sec(22) + OT_DOCS_MAX_STALE, &body,
                          &fetched), APR_SUCCESS);
}
END_TEST

START_TEST(documents_rate_limited_without_a_copy)
{
    ot_shm_t *s;
    get_fake_t g = { 500, 0, 0, "oops" };
    const char *body;
    int fetched;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    /* A 500 is an answer, given to the caller but not shared. */
    ck_assert_int_eq(docs(s, &g, T0, &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(1), &body, &fetched), APR_EAGAIN);
    ck_assert_int_eq(g.calls, 1);
    /* A 404 is shared (discovery falls back on it). */
    g.status = 404;
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(11), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(docs(s, &g, T0 + apr_time_from_sec(12), &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 0);
    ck_assert_str_eq(body, "oops");
    /* Without a segment, every call is a fetch. */
    ck_assert_int_eq(docs(NULL, &g, T0, &body, &fetched), APR_SUCCESS);
    ck_assert_int_eq(fetched, 1);
    ck_assert_int_eq(g.calls, 3);
}
END_TEST

START_TEST(cache_claim_is_exclusive)
{
    ot_shm_t *s;
    unsigned char key[OT_KEY_LEN];
    ot_cache_entry_t e;
    apr_time_t held = 0;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    memset(key, 7, sizeof(key));
    memset(&e, 0, sizeof(e));
    e.active = 1;
    e.claims = "";
    e.fetched = T0;
    e.drop_after = T0 + apr_time_from_sec(10);
    ck_assert_int_eq(ot_cache_claim(s, key, &e, T0, T0 - apr_time_from_sec(10), &held,
                                    ot_test_pool), APR_SUCCESS);
    e.fetched = T0 + 1;
    ck_assert_int_eq(ot_cache_claim(s, key, &e, T0 + 1, T0 + 1 - apr_time_from_sec(10), &held,
                                    ot_test_pool), APR_EEXIST);
    ck_assert(held == T0);
    /* Once the claim is older than the interval, a new one is taken. */
    e.fetched = T0 + apr_time_from_sec(11);
    e.drop_after = e.fetched + apr_time_from_sec(10);
    ck_assert_int_eq(ot_cache_claim(s, key, &e, e.fetched, T0 + apr_time_from_sec(1), &held,
                                    ot_test_pool), APR_SUCCESS);
}
END_TEST

/* ---- which JWTs are judged here ------------------------------------------------------------ */

static const char *b64u(const char *s)
{
    char *t = apr_pstrdup(ot_test_pool, ot_b64_encode(s, strlen(s), ot_test_pool)), *c;

    for (c = t; *c; c++) {
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    }
    if ((c = strchr(t, '=')) != NULL) {
        *c = '\0';
    }
    return t;
}

static const char *jwt(const char *header, const char *payload)
{
    return apr_pstrcat(ot_test_pool, b64u(header), ".", b64u(payload), ".c2ln", NULL);
}

START_TEST(candidates)
{
    const char *why;
    apr_pool_t *p = ot_test_pool;

    ck_assert(ot_local_candidate(jwt("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", "{}"), &why, p));
    ck_assert(ot_local_candidate(jwt("{\"alg\":\"ES256\",\"typ\":\"application/AT+JWT\"}", "{}"),
                                 &why, p));
    ck_assert(ot_local_candidate(jwt("{\"alg\":\"PS512\"}", "{\"typ\":\"Bearer\"}"), &why, p));
    ck_assert(ot_local_candidate(jwt("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"typ\":\"DPoP\"}"),
                                 &why, p));
    /* Offline and refresh tokens, ID tokens, other header types: the issuer judges them. */
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                                      "{\"typ\":\"Offline\"}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"RS256\"}", "{\"typ\":\"ID\"}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"RS256\"}", "{\"sub\":\"a\"}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"RS256\",\"typ\":\"dpop+jwt\"}",
                                      "{\"typ\":\"Bearer\"}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"RS256\",\"typ\":7}", "{\"typ\":\"Bearer\"}"),
                                  &why, p));
    /* none, HMAC and what this build cannot verify. */
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"none\",\"typ\":\"at+jwt\"}", "{}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"HS512\"}", "{\"typ\":\"Bearer\"}"), &why, p));
    ck_assert(ot_local_candidate(jwt("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}", "{}"), &why, p));
    ck_assert(!ot_local_candidate(jwt("{\"alg\":\"Ed25519\",\"typ\":\"at+jwt\"}", "{}"), &why,
                                  p));
    ck_assert(!ot_local_candidate(jwt("{\"typ\":\"at+jwt\"}", "{}"), &why, p));
    /* Not JWTs at all. */
    ck_assert(!ot_local_candidate("opaque-token", &why, p));
    ck_assert(!ot_local_candidate("a.b", &why, p));
    ck_assert(!ot_local_candidate("a.b.c.d", &why, p));
    ck_assert(!ot_local_candidate(apr_pstrcat(p, b64u("{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}"),
                                              ".e30.", NULL), &why, p));
    ck_assert(!ot_local_candidate("e30.e30.c2ln", &why, p));
    ck_assert(!ot_local_candidate("!!!.e30.c2ln", &why, p));
}
END_TEST

/* ---- times and revocations ----------------------------------------------------------------- */

static ot_answer_t *claims(const char *json)
{
    const char *err = NULL;
    ot_answer_t *a = ot_answer_from_jwt(ot_json_parse(json, strlen(json), NULL, ot_test_pool),
                                        &err, ot_test_pool);

    ck_assert_ptr_nonnull(a);
    return a;
}

#define NOW 1796015000

START_TEST(times)
{
    ot_local_fail_t f;

    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015001}"), NOW, 30, &f),
                     OT_LOCAL_ACCEPT);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015000}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(f, OT_LOCAL_FAIL_EXPIRED);
    ck_assert_int_eq(ot_local_times(claims("{\"sub\":\"a\"}"), NOW, 30, &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":\"1796015100\"}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"nbf\":1796015030}"), NOW, 30,
                                    &f), OT_LOCAL_ACCEPT);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"nbf\":1796015031}"), NOW, 30,
                                    &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(f, OT_LOCAL_FAIL_NOT_YET);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"iat\":1796015031}"), NOW, 30,
                                    &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"iat\":\"x\"}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"iat\":1796015031}"), NOW, 0,
                                    &f), OT_LOCAL_REFUSE);
    /* Hostile dates: milliseconds, huge, negative, not finite, fractional. */
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100000}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":9223372036854775807}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1e300}"), NOW, 30, &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":-1796015100}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":null}"), NOW, 30, &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":true}"), NOW, 30, &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015000.9}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015001.5}"), NOW, 30, &f),
                     OT_LOCAL_ACCEPT);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"nbf\":-1}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"nbf\":null}"), NOW, 30,
                                    &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"iat\":1e308}"), NOW, 30,
                                    &f), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":1796015100,\"iat\":0}"), NOW, 30, &f),
                     OT_LOCAL_REFUSE);
    /* The largest skew with the latest date: no overflow. */
    ck_assert_int_eq(ot_local_times(claims("{\"exp\":253402300799,\"nbf\":1796018600}"), NOW,
                                    3600, &f), OT_LOCAL_ACCEPT);
}
END_TEST

#define TOKEN(sub, sid) "{\"iss\":\"" ISS "\",\"sub\":\"" sub "\",\"sid\":\"" sid "\"," \
    "\"azp\":\"app\",\"iat\":1796015000,\"exp\":1796015300}"

START_TEST(revocations_are_deny_rules)
{
    ot_shm_t *s;
    apr_interval_time_t keep = apr_time_from_sec(3600);
    apr_time_t iat = apr_time_from_sec(NOW), until = iat + keep;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("ada", "s1")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ACCEPT);
    /* Longer-lived than revocations are kept, or without iat: the issuer judges it. */
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("ada", "s1")), ISS, "rs",
                                         apr_time_from_sec(299), ot_test_pool), OT_LOCAL_ASK);
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"x\",\"exp\":1796015300}"), ISS,
                                         "rs", keep, ot_test_pool), OT_LOCAL_ASK);
    /* Hostile lifetimes: the longest, exp before iat, a date out of range: never accepted. */
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"x\",\"iat\":1,"
                                                   "\"exp\":253402300799}"), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ASK);
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"x\",\"iat\":1796015300,"
                                                   "\"exp\":1796015000}"), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ASK);
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"x\",\"iat\":1796015000,"
                                                   "\"exp\":1e300}"), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ASK);
    /* A logout of session s1 (recorded with its sub, as back-channel logouts are). */
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SID, ISS, "s1", iat, until), APR_SUCCESS);
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS, "ada", iat, until), APR_SUCCESS);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("ada", "s1")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("ada", "s2")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ASK);
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"ada\",\"iat\":1796015000,"
                                                   "\"exp\":1796015300}"), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_REFUSE);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("bob", "s3")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ACCEPT);
    /* Another issuer's logout does not apply. */
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("ada", "s1")), "https://other", "rs",
                                         keep, ot_test_pool), OT_LOCAL_ACCEPT);
    /* A token issued after the logout is not refused by it. */
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"ada\",\"sid\":\"s1\","
                                                   "\"iat\":1796015001,\"exp\":1796015300}"),
                                         ISS, "rs", keep, ot_test_pool), OT_LOCAL_ACCEPT);
    /* Every session of bob: refused whatever its sid. */
    ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SID, ISS, OT_REVOKE_ALL_SESSIONS "bob", iat,
                                   until), APR_SUCCESS);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("bob", "s3")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_REFUSE);
    /* A not-before for the location's client, or for the token's azp. */
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "app", NOW + 1, NOW + 30, iat),
                     APR_SUCCESS);
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("cy", "s4")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_REFUSE);
}
END_TEST

/* ---- EdDSA (ot_jose_okp.c) ----------------------------------------------------------------- */

static const char *b64u_raw(const unsigned char *data, size_t len)
{
    char *t = apr_pstrdup(ot_test_pool, ot_b64_encode((const char *)data, len, ot_test_pool));
    char *c;

    for (c = t; *c; c++) {
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    }
    if ((c = strchr(t, '=')) != NULL) {
        *c = '\0';
    }
    return t;
}

/** header.payload signed with an Ed25519 key; *jwk is its public JWK (with extra members). */
static const char *ed25519_token(const char **jwk, const char *extra, const char *header,
                                 const char *payload)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char pub[32], sig[64];
    size_t pub_len = sizeof(pub), sig_len = sizeof(sig);
    const char *input = apr_pstrcat(ot_test_pool, b64u(header), ".", b64u(payload), NULL);

    ck_assert_ptr_nonnull(key);
    ck_assert_int_eq(EVP_PKEY_get_raw_public_key(key, pub, &pub_len), 1);
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input,
                                    strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    *jwk = apr_psprintf(ot_test_pool, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed1\","
                        "\"x\":\"%s\"%s}", b64u_raw(pub, pub_len), extra);
    return apr_pstrcat(ot_test_pool, input, ".", b64u_raw(sig, sig_len), NULL);
}

static ot_jose_result_t ed_check(const char *jwk, const char *tok, int *no_key)
{
    const char *jwks = apr_pstrcat(ot_test_pool, "{\"keys\":[", jwk, "]}", NULL), *why;
    ot_jws_t jws;

    return ot_jose_verify_jwks(&jws, &why, no_key, jwks, strlen(jwks), tok, strlen(tok),
                               ot_test_pool);
}

START_TEST(revocation_overflow_asks_the_issuer)
{
    ot_shm_t *s;
    apr_interval_time_t keep = apr_time_from_sec(3600);
    apr_time_t iat = apr_time_from_sec(NOW), at = iat + apr_time_from_sec(5);
    int i;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    /* More logouts in force than the table holds: the oldest becomes the overflow marker. */
    for (i = 0; i <= 4096; i++) {
        ck_assert_int_eq(ot_revoke_add(s, OT_REVOKE_SUB, ISS,
                                       apr_psprintf(ot_test_pool, "user%d", i), at + i,
                                       at + keep), APR_SUCCESS);
    }
    ck_assert(ot_revoke_stale_marker(s) >= at);
    /* A token issued before the marker is not refused wholesale: the issuer decides. */
    ck_assert_int_eq(ot_local_revocation(s, claims(TOKEN("bob", "s9")), ISS, "rs", keep,
                                         ot_test_pool), OT_LOCAL_ASK);
    /* One issued after it is judged as usual. */
    ck_assert_int_eq(ot_local_revocation(s, claims("{\"sub\":\"bob\",\"sid\":\"s9\","
                                                   "\"iat\":1796016000,\"exp\":1796016300}"),
                                         ISS, "rs", keep, ot_test_pool), OT_LOCAL_ACCEPT);
}
END_TEST

START_TEST(eddsa_with_openssl)
{
    const char *jwk, *tok, *why, *other_jwk;
    char *bad;
    int no_key;

    tok = ed25519_token(&jwk, "", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\",\"typ\":\"at+jwt\"}",
                        "{\"sub\":\"a\"}");
    ck_assert_int_eq(ed_check(jwk, tok, &no_key), OT_JOSE_OK);
    ck_assert_int_eq(ot_jose_jwks_check(apr_pstrcat(ot_test_pool, "{\"keys\":[", jwk, "]}",
                                                    NULL), strlen(jwk) + 11, &why, ot_test_pool),
                     APR_SUCCESS);
    /* A flipped signature bit, another key with the same kid, a key for another alg. */
    bad = apr_pstrdup(ot_test_pool, tok);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(ed_check(jwk, bad, &no_key), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 0);
    ed25519_token(&other_jwk, "", "{}", "{}");
    ck_assert_int_eq(ed_check(other_jwk, tok, &no_key), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 0);
    ck_assert_int_eq(ed_check(apr_pstrcat(ot_test_pool, "{\"kty\":\"OKP\",\"crv\":\"Ed448\","
                                          "\"kid\":\"ed1\",\"x\":\"AAAA\"}", NULL), tok,
                              &no_key), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    tok = ed25519_token(&jwk, ",\"alg\":\"ES256\"", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}",
                        "{}");
    ck_assert_int_eq(ed_check(jwk, tok, &no_key), OT_JOSE_INVALID);
    /* A JWK with a private part is not taken as a public key. */
    tok = ed25519_token(&jwk, ",\"d\":\"AAAA\"", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", "{}");
    ck_assert_int_eq(ed_check(jwk, tok, &no_key), OT_JOSE_INVALID);
    /* Curve confusion: the same 32 bytes as an X25519 (key agreement) or Ed448 key. */
    tok = ed25519_token(&jwk, "", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", "{}");
    ck_assert_int_eq(ed_check(jwk, tok, &no_key), OT_JOSE_OK);
    other_jwk = apr_pstrdup(ot_test_pool, jwk);
    ck_assert_ptr_nonnull(strstr(other_jwk, "\"Ed25519\""));
    memcpy(strstr(other_jwk, "\"Ed25519\""), "\"X25519\" ", 9);
    ck_assert_int_eq(ed_check(other_jwk, tok, &no_key), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    memcpy(strstr(other_jwk, "\"X25519\" "), "\"Ed448\"  ", 9);
    ck_assert_int_eq(ed_check(other_jwk, tok, &no_key), OT_JOSE_INVALID);
    ck_assert_int_eq(no_key, 1);
    /* "Ed25519" is not an alg name of RFC 8037 (the curve is the key's). */
    tok = ed25519_token(&jwk, "", "{\"alg\":\"Ed25519\",\"kid\":\"ed1\"}", "{}");
    ck_assert_int_eq(ed_check(jwk, tok, &no_key), OT_JOSE_INVALID);
}
END_TEST

Suite *suite_local(void)
{
    Suite *s = suite_create("local");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, metadata_urls);
    tcase_add_test(tc, metadata_checks);
    tcase_add_test(tc, fetch_falls_back_on_404_only);
    tcase_add_test(tc, cache_refreshes_rate_limits_and_keeps_stale_copies);
    tcase_add_test(tc, cache_without_a_copy_fails_and_waits);
    tcase_add_test(tc, cache_is_per_trust_scope);
    tcase_add_test(tc, documents_fetched_once_for_all_processes);
    tcase_add_test(tc, documents_rate_limited_without_a_copy);
    tcase_add_test(tc, cache_claim_is_exclusive);
    tcase_add_test(tc, candidates);
    tcase_add_test(tc, times);
    tcase_add_test(tc, revocations_are_deny_rules);
    tcase_add_test(tc, revocation_overflow_asks_the_issuer);
    tcase_add_test(tc, eddsa_with_openssl);
    suite_add_tcase(s, tc);
    return s;
}
