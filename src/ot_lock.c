/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* Robust process-shared locks and the segment's hash (ot_lock.h). */
#include <errno.h>
#include <string.h>
#include "ot_lock.h"

apr_status_t ot_lock_init(ot_lock_t *l)
{
    pthread_mutexattr_t attr;
    int rc;

    memset(l, 0, sizeof(*l));
    rc = pthread_mutexattr_init(&attr);
    if (rc != 0) {
        return APR_FROM_OS_ERROR(rc);
    }
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(&l->m, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return APR_FROM_OS_ERROR(rc);
}

apr_status_t ot_lock_take(ot_lock_t *l, void (*recover)(void *baton), void *baton)
{
    int rc = pthread_mutex_lock(&l->m);

    if (rc == EOWNERDEAD) {
        recover(baton);
        rc = pthread_mutex_consistent(&l->m);
        if (rc != 0) {
            pthread_mutex_unlock(&l->m);
        }
    }
    return APR_FROM_OS_ERROR(rc);
}

void ot_lock_release(ot_lock_t *l)
{
    pthread_mutex_unlock(&l->m);
}

apr_uint64_t ot_hash64(apr_uint64_t h, const void *data, apr_size_t n)
{
    const unsigned char *d = data;

    while (n--) {
        h ^= *d++;
        h *= 0x100000001b3ULL;
    }
    return h;
}
