/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_cred.h
 * @brief Credentials read from files that may change while httpd runs (rotation).
 *
 * A `file:` client secret, an OfftokClientKey and an OfftokClientCertificate are read at start-up
 * (as root) into the configuration. When the issuer refuses the client (invalid_client), the glue
 * asks this per-process store to read the file again; from then on the store's newer content
 * overrides what the configuration holds, in this process, until the next restart re-reads the
 * configuration. A file is read again at most once per min_interval, and only when its
 * modification time, size or inode changed since it was last looked at. Safe between threads;
 * content is copied out under the store's lock, so a reload never frees what a caller uses.
 */
#ifndef OT_CRED_H
#define OT_CRED_H

#include <apr_pools.h>
#include <apr_time.h>

struct evp_pkey_st;

/** How a file's content is taken. */
typedef enum {
    OT_CRED_SECRET = 0,   /**< a client secret: one trailing newline removed, no NUL allowed */
    OT_CRED_PEM = 1,      /**< a PEM certificate or key, as it is */
    OT_CRED_KEY = 2       /**< a PEM private key that signs assertions (parsed when read) */
} ot_cred_kind_t;

/** Largest credential file read. */
#define OT_CRED_MAX (64 * 1024)

typedef struct ot_cred_store_t ot_cred_store_t;

/** Make an empty store that lives in p (an own allocator; p is not touched afterwards). */
apr_status_t ot_cred_store_create(ot_cred_store_t **ps, apr_interval_time_t min_interval,
                                  apr_pool_t *p);

/**
 * The current content of path: the store's newer copy when a reload found one (*gen > 0), else
 * initial (*gen 0). The copy comes from p; s may be NULL (then initial).
 */
const char *ot_cred_get(ot_cred_store_t *s, const char *path, const char *initial,
                        apr_size_t initial_len, apr_size_t *len, unsigned *gen, apr_pool_t *p);

/**
 * The current private key of path: the store's (parsed when the file was read again), else
 * initial. The key returned is freed when p is cleared (a reference of its own).
 */
struct evp_pkey_st *ot_cred_get_key(ot_cred_store_t *s, const char *path,
                                    struct evp_pkey_st *initial, unsigned *gen, apr_pool_t *p);

/**
 * Read path again unless it was looked at less than min_interval ago or has not changed.
 * APR_SUCCESS with *gen the generation now current (greater than before when the content
 * changed; initial, what the configuration holds, is generation 0); APR_EAGAIN when it is too
 * early to look again; otherwise an error with *err (from p) saying why, never quoting the
 * content (APR_EACCES: the process may not read it).
 */
apr_status_t ot_cred_reload(ot_cred_store_t *s, const char *path, ot_cred_kind_t kind,
                            const char *initial, apr_size_t initial_len, apr_time_t now,
                            unsigned *gen, const char **err, apr_pool_t *p);

/**
 * Read a credential file now (start-up): its content from p, or NULL with *err. Secrets lose one
 * trailing newline.
 */
const char *ot_cred_read(const char *path, ot_cred_kind_t kind, apr_size_t *len,
                         const char **err, apr_pool_t *p);

#endif
