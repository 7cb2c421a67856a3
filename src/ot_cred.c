/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ot_assert.h"
#include "ot_cred.h"

/** What the store knows of one file. data is malloc'd and replaced whole on a change. */
typedef struct {
    char *data;
    apr_size_t len;
    EVP_PKEY *key;            /**< OT_CRED_KEY: data parsed */
    unsigned gen;             /**< 0: nothing newer than the configuration's */
    apr_time_t looked;        /**< when the file was last looked at (0: never) */
    apr_time_t mtime;
    apr_off_t size;
    apr_ino_t inode;
} entry_t;

struct ot_cred_store_t {
    apr_pool_t *pool;         /**< entries and their paths; used under mutex only */
    apr_thread_mutex_t *mutex;
    apr_hash_t *entries;      /**< path -> entry_t */
    apr_interval_time_t min_interval;
};

/** Free what e holds, the secret overwritten first. */
static void forget(entry_t *e)
{
    if (e->data) {
        OPENSSL_cleanse(e->data, e->len);
        free(e->data);
        e->data = NULL;
    }
    EVP_PKEY_free(e->key);
    e->key = NULL;
}

static apr_status_t store_cleanup(void *baton)
{
    ot_cred_store_t *s = baton;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, s->entries); hi; hi = apr_hash_next(hi)) {
        forget(apr_hash_this_val(hi));
    }
    apr_pool_destroy(s->pool);
    return APR_SUCCESS;
}

apr_status_t ot_cred_store_create(ot_cred_store_t **ps, apr_interval_time_t min_interval,
                                  apr_pool_t *p)
{
    ot_cred_store_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv = apr_pool_create_unmanaged_ex(&s->pool, NULL, NULL);

    *ps = NULL;
    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&s->mutex, APR_THREAD_MUTEX_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            apr_pool_destroy(s->pool);
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->entries = apr_hash_make(s->pool);
    s->min_interval = min_interval;
    apr_pool_cleanup_register(p, s, store_cleanup, apr_pool_cleanup_null);
    *ps = s;
    return APR_SUCCESS;
}

static const char *why_unreadable(apr_status_t rv, const char *path, apr_pool_t *p)
{
    if (APR_STATUS_IS_EACCES(rv)) {
        return apr_psprintf(p, "%s cannot be read by this process (permission denied): httpd "
                            "reads it again as its unprivileged user, so make it readable by "
                            "httpd's group (e.g. chgrp www-data, mode 0640)", path);
    }
    if (APR_STATUS_IS_ENOENT(rv)) {
        return apr_psprintf(p, "%s does not exist", path);
    }
    return apr_psprintf(p, "%s cannot be read (error %d)", path, rv);
}

/** A buffer that held a credential, overwritten when its pool is cleared. */
typedef struct {
    char *buf;
    apr_size_t len;
} wipe_t;

static apr_status_t wipe(void *baton)
{
    wipe_t *w = baton;

    OPENSSL_cleanse(w->buf, w->len);
    return APR_SUCCESS;
}

/**
 * Read path into a buffer from p (overwritten when p is cleared): *fi describes the file that was opened (not whatever the path
 * names a moment later). Only a regular file is read, and opening never waits: a FIFO or device
 * put in a credential file's place would otherwise hold the store's lock for good.
 */
static const char *read_file(const char *path, ot_cred_kind_t kind, apr_size_t *len,
                             apr_finfo_t *fi, const char **err, apr_pool_t *p)
{
    apr_file_t *f;
    apr_size_t n = 0;
    wipe_t *w;
    char *buf = apr_palloc(p, OT_CRED_MAX + 1);
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY
                                    | APR_FOPEN_NONBLOCK, 0, p);

    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(fi, APR_FINFO_TYPE | APR_FINFO_MTIME | APR_FINFO_SIZE
                               | APR_FINFO_INODE, f);
        if (rv == APR_SUCCESS && fi->filetype != APR_REG) {
            apr_file_close(f);
            *err = apr_psprintf(p, "%s is not a regular file", path);
            return NULL;
        }
        if (rv == APR_SUCCESS) {
            rv = apr_file_read_full(f, buf, OT_CRED_MAX + 1, &n);
            w = apr_palloc(p, sizeof(*w));
            w->buf = buf;
            w->len = n;
            apr_pool_cleanup_register(p, w, wipe, apr_pool_cleanup_null);
        }
        apr_file_close(f);
        rv = APR_STATUS_IS_EOF(rv) ? APR_SUCCESS : rv;
    }
    if (rv != APR_SUCCESS) {
        *err = why_unreadable(rv, path, p);
        return NULL;
    }
    if (n > OT_CRED_MAX) {
        *err = apr_psprintf(p, "%s is larger than %d bytes", path, OT_CRED_MAX);
        return NULL;
    }
    if (kind == OT_CRED_SECRET) {
        if (n > 0 && buf[n - 1] == '\n') {
            n--;
        }
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
        if (n == 0 || memchr(buf, '\0', n)) {
            *err = apr_psprintf(p, "%s is empty or holds a NUL byte", path);
            return NULL;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

const char *ot_cred_read(const char *path, ot_cred_kind_t kind, apr_size_t *len,
                         const char **err, apr_pool_t *p)
{
    apr_finfo_t fi;

    return read_file(path, kind, len, &fi, err, p);
}

const char *ot_cred_get(ot_cred_store_t *s, const char *path, const char *initial,
                        apr_size_t initial_len, apr_size_t *len, unsigned *gen, apr_pool_t *p)
{
    const char *out = initial;
    entry_t *e;

    *len = initial_len;
    *gen = 0;
    if (s == NULL || path == NULL) {
        return initial;
    }
    apr_thread_mutex_lock(s->mutex);
    e = apr_hash_get(s->entries, path, APR_HASH_KEY_STRING);
    if (e && e->gen > 0) {
        out = apr_pstrmemdup(p, e->data, e->len);
        *len = e->len;
        *gen = e->gen;
    }
    apr_thread_mutex_unlock(s->mutex);
    return out;
}

static apr_status_t key_free(void *key)
{
    EVP_PKEY_free(key);
    return APR_SUCCESS;
}

EVP_PKEY *ot_cred_get_key(ot_cred_store_t *s, const char *path, EVP_PKEY *initial,
                          unsigned *gen, apr_pool_t *p)
{
    EVP_PKEY *key = initial;
    entry_t *e;

    *gen = 0;
    if (s != NULL && path != NULL) {
        apr_thread_mutex_lock(s->mutex);
        e = apr_hash_get(s->entries, path, APR_HASH_KEY_STRING);
        if (e && e->gen > 0 && e->key) {
            key = e->key;
            *gen = e->gen;
        }
        if (key) {
            EVP_PKEY_up_ref(key);
        }
        apr_thread_mutex_unlock(s->mutex);
    }
    else if (key) {
        EVP_PKEY_up_ref(key);
    }
    if (key) {
        apr_pool_cleanup_register(p, key, key_free, apr_pool_cleanup_null);
    }
    return key;
}

/** The entry for path, made when missing (under the mutex). */
static entry_t *entry_for(ot_cred_store_t *s, const char *path)
{
    entry_t *e = apr_hash_get(s->entries, path, APR_HASH_KEY_STRING);

    if (e == NULL) {
        e = apr_pcalloc(s->pool, sizeof(*e));
        apr_hash_set(s->entries, apr_pstrdup(s->pool, path), APR_HASH_KEY_STRING, e);
    }
    return e;
}

/** Take new content into e: a new generation when it differs from what e (or nothing) held. */
static apr_status_t take(entry_t *e, ot_cred_kind_t kind, const char *data, apr_size_t len,
                         const char **err)
{
    EVP_PKEY *key = NULL;
    char *copy;

    if (e->data && e->len == len && memcmp(e->data, data, len) == 0) {
        return APR_SUCCESS;
    }
    if (kind == OT_CRED_KEY && (key = ot_assert_key_read(data, len, err)) == NULL) {
        return APR_EINVAL;
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        EVP_PKEY_free(key);
        *err = "out of memory";
        return APR_ENOMEM;
    }
    memcpy(copy, data, len);
    copy[len] = '\0';
    forget(e);
    e->data = copy;
    e->len = len;
    e->key = key;
    e->gen++;
    return APR_SUCCESS;
}

apr_status_t ot_cred_reload(ot_cred_store_t *s, const char *path, ot_cred_kind_t kind,
                            const char *initial, apr_size_t initial_len, apr_time_t now,
                            unsigned *gen, const char **err, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv;
    const char *data;
    apr_size_t len = 0;
    entry_t *e;

    apr_thread_mutex_lock(s->mutex);
    e = entry_for(s, path);
    if (e->data == NULL && initial && (e->data = malloc(initial_len + 1)) != NULL) {
        /* What the configuration holds is generation 0: reading it back is no change. */
        memcpy(e->data, initial, initial_len);
        e->data[initial_len] = '\0';
        e->len = initial_len;
    }
    *gen = e->gen;
    if (e->looked && now - e->looked < s->min_interval) {
        apr_thread_mutex_unlock(s->mutex);
        return APR_EAGAIN;
    }
    e->looked = now;
    rv = apr_stat(&fi, path, APR_FINFO_MTIME | APR_FINFO_SIZE | APR_FINFO_INODE, p);
    if (rv == APR_SUCCESS && e->mtime && fi.mtime == e->mtime && fi.size == e->size
        && fi.inode == e->inode) {
        apr_thread_mutex_unlock(s->mutex);
        return APR_SUCCESS;
    }
    /* What is recorded is what was read: the opened file's own details, not the stat's. */
    data = read_file(path, kind, &len, &fi, err, p);
    rv = data ? take(e, kind, data, len, err) : APR_EACCES;
    if (data && rv == APR_SUCCESS) {
        e->mtime = fi.mtime;
        e->size = fi.size;
        e->inode = fi.inode;
    }
    else if (data) {
        *err = apr_psprintf(p, "%s: %s", path, *err);
    }
    if (data) {
        OPENSSL_cleanse((char *)data, len);
    }
    *gen = e->gen;
    apr_thread_mutex_unlock(s->mutex);
    return rv;
}
