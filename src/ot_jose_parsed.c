/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jose_parsed.c
 * @brief Each thread's parsed copy of the key sets it verifies with, made once per JWKS version.
 *
 * ot_jose.c keeps each JWKS as text and used to parse it, and import the key it needed with
 * cjose, at every verification. A thread now keeps, per key cache, URL and version (the key
 * set's generation, a new one at every fetch), the parsed set and each key it imported: a new
 * version is parsed again on first use, so a rotation is seen at once. A version names one
 * text: the cache never gives a generation twice, and starts each cache's at a random number, so
 * a key cache made anew at the address of an old one never finds the old one's keys (the text is
 * no longer compared at every verification, nor copied: ot_jose_parsed_held). The copies are
 * the thread's own (no cjose or jansson object is ever shared between threads), in plain heap
 * memory (no pool outlives a request here), freed with the thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ot_dpop_key.h"
#include "ot_jose_int.h"

/** Key sets one thread keeps at once (locations with other JWKS URLs or trust settings). */
#define PARSED_SETS 4

struct ot_jose_parsed_t {
    const void *owner;      /**< the ot_jose_keys_t the set came from */
    char *url;
    apr_uint64_t gen;
    apr_size_t len;         /**< of the JWKS text parsed */
    json_t *set;
    size_t nkeys;
    cjose_jwk_t **jwk;      /**< per member of "keys": the imported key, or NULL */
    char *imported;         /**< per member: import tried */
    EVP_PKEY **pkey;        /**< per member: its OpenSSL key, or NULL */
    char *made;             /**< per member: pkey tried */
    EVP_MD_CTX **ctx;       /**< per member and algorithm: ot_jose_evp_ctx, or NULL */
    char *ctx_made;         /**< per member and algorithm: ctx tried */
    EVP_PKEY_CTX **pctx;    /**< per member and algorithm: ot_jose_evp_pctx, or NULL */
    char *pctx_made;        /**< per member and algorithm: pctx tried */
    char *fit;              /**< per member and algorithm: 0 not asked, 1 no, 2 fits */
};

typedef struct {
    ot_jose_parsed_t *sets[PARSED_SETS];
    unsigned next;          /**< the slot replaced next */
} thread_sets_t;

/* The thread's sets: found through a thread-local pointer, freed at the thread's end by the
 * key's destructor. */
static __thread thread_sets_t *mine;
static pthread_key_t sets_key;
static pthread_once_t sets_once = PTHREAD_ONCE_INIT;
static int sets_ok;

static void parsed_free(ot_jose_parsed_t *ps)
{
    size_t i;

    if (ps == NULL) {
        return;
    }
    for (i = 0; ps->jwk && i < ps->nkeys; i++) {
        if (ps->jwk[i] != NULL) {
            cjose_jwk_release(ps->jwk[i]);
        }
        EVP_PKEY_free(ps->pkey ? ps->pkey[i] : NULL);
    }
    for (i = 0; ps->ctx && i < ps->nkeys * OT_JOSE_ALGS; i++) {
        EVP_MD_CTX_free(ps->ctx[i]);
    }
    for (i = 0; ps->pctx && i < ps->nkeys * OT_JOSE_ALGS; i++) {
        EVP_PKEY_CTX_free(ps->pctx[i]);
    }
    json_decref(ps->set);
    free(ps->jwk);
    free(ps->imported);
    free(ps->pkey);
    free(ps->made);
    free(ps->ctx);
    free(ps->ctx_made);
    free(ps->pctx);
    free(ps->pctx_made);
    free(ps->fit);
    free(ps->url);
    free(ps);
}

static void sets_free(void *v)
{
    thread_sets_t *t = v;
    int i;

    for (i = 0; i < PARSED_SETS; i++) {
        parsed_free(t->sets[i]);
    }
    free(t);
    mine = NULL;
}

static void sets_init(void)
{
    sets_ok = pthread_key_create(&sets_key, sets_free) == 0;
}

static thread_sets_t *thread_sets(void)
{
    thread_sets_t *t;

    if (mine != NULL) {
        return mine;
    }
    pthread_once(&sets_once, sets_init);
    if (!sets_ok || (t = calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    if (pthread_setspecific(sets_key, t) != 0) {
        free(t);
        return NULL;
    }
    mine = t;
    return t;
}

/** The set parsed from jwks[0..len) (as ot_json_parse parses); NULL when out of memory. */
static ot_jose_parsed_t *parse(const void *owner, const char *url, apr_uint64_t gen,
                               const char *jwks, apr_size_t len)
{
    ot_jose_parsed_t *ps = calloc(1, sizeof(*ps));
    json_t *keys;

    if (ps == NULL) {
        return NULL;
    }
    ps->owner = owner;
    ps->gen = gen;
    ps->len = len;
    ps->url = strdup(url);
    ps->set = json_loadb(jwks, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    keys = json_object_get(ps->set, "keys");
    ps->nkeys = json_is_array(keys) ? json_array_size(keys) : 0;
    ps->jwk = calloc(ps->nkeys + 1, sizeof(*ps->jwk));
    ps->imported = calloc(ps->nkeys + 1, 1);
    ps->pkey = calloc(ps->nkeys + 1, sizeof(*ps->pkey));
    ps->made = calloc(ps->nkeys + 1, 1);
    ps->ctx = calloc((ps->nkeys + 1) * OT_JOSE_ALGS, sizeof(*ps->ctx));
    ps->ctx_made = calloc((ps->nkeys + 1) * OT_JOSE_ALGS, 1);
    ps->pctx = calloc((ps->nkeys + 1) * OT_JOSE_ALGS, sizeof(*ps->pctx));
    ps->pctx_made = calloc((ps->nkeys + 1) * OT_JOSE_ALGS, 1);
    ps->fit = calloc((ps->nkeys + 1) * OT_JOSE_ALGS, 1);
    if (ps->url == NULL || ps->jwk == NULL || ps->imported == NULL
        || ps->pkey == NULL || ps->made == NULL || ps->ctx == NULL || ps->ctx_made == NULL
        || ps->pctx == NULL || ps->pctx_made == NULL || ps->fit == NULL) {
        parsed_free(ps);
        return NULL;
    }
    return ps;
}

ot_jose_parsed_t *ot_jose_parsed_held(const void *owner, const char *url, apr_uint64_t gen,
                                      apr_size_t len)
{
    thread_sets_t *t = mine;
    ot_jose_parsed_t *ps;
    int i;

    for (i = 0; t != NULL && i < PARSED_SETS; i++) {
        ps = t->sets[i];
        if (ps != NULL && ps->owner == owner && ps->gen == gen && ps->len == len
            && strcmp(ps->url, url) == 0) {
            return ps;
        }
    }
    return NULL;
}

ot_jose_parsed_t *ot_jose_parsed(const void *owner, const char *url, apr_uint64_t gen,
                                 const char *jwks, apr_size_t len)
{
    thread_sets_t *t = thread_sets();
    ot_jose_parsed_t *ps;
    int i;

    if (t == NULL || jwks == NULL) {
        return NULL;
    }
    if ((ps = ot_jose_parsed_held(owner, url, gen, len)) != NULL) {
        return ps;
    }
    for (i = 0; i < PARSED_SETS; i++) {   /* an older version of the same set goes first */
        ps = t->sets[i];
        if (ps != NULL && ps->owner == owner && strcmp(ps->url, url) == 0) {
            break;
        }
    }
    if (i == PARSED_SETS) {
        i = (int)(t->next++ % PARSED_SETS);
    }
    parsed_free(t->sets[i]);
    t->sets[i] = parse(owner, url, gen, jwks, len);
    return t->sets[i];
}

json_t *ot_jose_parsed_set(const ot_jose_parsed_t *ps)
{
    return ps->set;
}

cjose_jwk_t *ot_jose_parsed_jwk(ot_jose_parsed_t *ps, size_t i, ot_jose_import_fn *import,
                                apr_pool_t *scratch)
{
    json_t *key = json_array_get(json_object_get(ps->set, "keys"), i);

    if (i >= ps->nkeys || key == NULL) {
        return NULL;
    }
    if (!ps->imported[i]) {
        ps->imported[i] = 1;
        ps->jwk[i] = import(key, scratch);
    }
    return ps->jwk[i];
}

EVP_PKEY *ot_jose_parsed_pkey(ot_jose_parsed_t *ps, size_t i, int okp, apr_pool_t *scratch)
{
    json_t *key = json_array_get(json_object_get(ps->set, "keys"), i);

    if (i >= ps->nkeys || key == NULL) {
        return NULL;
    }
    if (!ps->made[i]) {
        ps->made[i] = 1;
        ps->pkey[i] = okp ? ot_jose_okp_pkey(key, scratch) : ot_jwk_pkey_new(key, scratch);
    }
    return ps->pkey[i];
}

EVP_MD_CTX *ot_jose_parsed_ctx(ot_jose_parsed_t *ps, size_t i, int a, const char *alg,
                               EVP_PKEY *pk)
{
    size_t at = i * OT_JOSE_ALGS + (size_t)a;

    if (i >= ps->nkeys || a < 0 || a >= OT_JOSE_ALGS || pk == NULL) {
        return NULL;
    }
    if (!ps->ctx_made[at]) {
        ps->ctx_made[at] = 1;
        ps->ctx[at] = ot_jose_evp_ctx(pk, alg);
    }
    return ps->ctx[at];
}

EVP_PKEY_CTX *ot_jose_parsed_pctx(ot_jose_parsed_t *ps, size_t i, int a, const char *alg,
                                  EVP_PKEY *pk)
{
    size_t at = i * OT_JOSE_ALGS + (size_t)a;

    if (i >= ps->nkeys || a < 0 || a >= OT_JOSE_ALGS || pk == NULL) {
        return NULL;
    }
    if (!ps->pctx_made[at]) {
        ps->pctx_made[at] = 1;
        ps->pctx[at] = ot_jose_evp_pctx(pk, alg);
    }
    return ps->pctx[at];
}

int ot_jose_parsed_fits(ot_jose_parsed_t *ps, size_t i, int a, ot_jose_fits_fn *fits)
{
    size_t at = i * OT_JOSE_ALGS + (size_t)a;
    json_t *key;

    if (i >= ps->nkeys || a < 0 || a >= OT_JOSE_ALGS) {
        return 0;
    }
    if (ps->fit[at] == 0) {
        key = json_array_get(json_object_get(ps->set, "keys"), i);
        ps->fit[at] = key != NULL && fits(key, a) ? 2 : 1;
    }
    return ps->fit[at] == 2;
}
