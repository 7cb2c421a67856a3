/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <jansson.h>

#include "fuzz_common.h"

typedef void *(*palloc_fn)(apr_pool_t *p, apr_size_t size);

static palloc_fn real_palloc;
static apr_pool_t *root;
static apr_pool_t *current;     /* the pool of the input being run, or NULL */
static void **blocks;           /* what was handed out for it, freed by fuzz_end */
static size_t nblocks, cap;

static void *keep(void *b)
{
    if (b == NULL) {
        abort();
    }
    if (nblocks == cap) {
        cap = cap ? 2 * cap : 1024;
        blocks = realloc(blocks, cap * sizeof(*blocks));
        if (blocks == NULL) {
            abort();
        }
    }
    blocks[nblocks++] = b;
    return b;
}

/*
 * Replaces libapr's apr_palloc (libapr calls it through its PLT too, so apr_pstrdup, apr_pstrcat,
 * apr_array_push and the rest come here as well). Pools other than the input's keep APR's.
 */
void *apr_palloc(apr_pool_t *p, apr_size_t size)
{
    if (real_palloc == NULL) {
        real_palloc = (palloc_fn)dlsym(RTLD_NEXT, "apr_palloc");
    }
    if (current != NULL && apr_pool_is_ancestor(current, p)) {
        return keep(malloc(size ? size : 1));
    }
    return real_palloc(p, size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    apr_pool_create(&root, NULL);
    json_object_seed(1);        /* the same hash order in every run: crashes reproduce */
    return 0;
}

apr_pool_t *fuzz_begin(void)
{
    apr_pool_create(&current, root);
    return current;
}

void fuzz_end(void)
{
    apr_pool_t *p = current;

    /* Cleanups (json_decref) still read blocks of the pool: free those only afterwards. */
    current = NULL;
    apr_pool_destroy(p);
    while (nblocks > 0) {
        free(blocks[--nblocks]);
    }
}

const char *fuzz_cstr(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *s = keep(malloc(n + 1));

    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

const char *fuzz_bytes(const uint8_t *data, size_t size)
{
    char *b = keep(malloc(size ? size : 1));

    if (size) {
        memcpy(b, data, size);
    }
    return b;
}

const char *fuzz_body(const uint8_t *data, size_t size)
{
    char *b = keep(malloc(size + 1));

    if (size) {
        memcpy(b, data, size);
    }
    b[size] = '\0';
    return b;
}

void fuzz_split(const uint8_t *data, size_t size, const char **first, const char **second)
{
    const uint8_t *nl = memchr(data, '\n', size);

    if (nl == NULL) {
        *first = fuzz_cstr(data, size);
        *second = "";
        return;
    }
    *first = fuzz_cstr(data, (size_t)(nl - data));
    *second = fuzz_cstr(nl + 1, size - (size_t)(nl - data) - 1);
}

void fuzz_require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: invariant broken: %s\n", what);
        abort();
    }
}
