/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Revocations through Redis: publication, the queue of what could not be published yet, and what
 * a node reads when it catches up.
 *
 *   offtok:<kid>:rev   sorted set of sub and sid tombstones, scored by `until` (ms): a message is
 *                      in force while its score is in the future; each publication drops the
 *                      expired ones (ZREMRANGEBYSCORE), and readers ask only for the rest
 *   offtok:<kid>:nb    hash of not-before policies, one field per (issuer, client): the last
 *                      one pushed replaces the previous one, here as in every node's table, and
 *                      stays until replaced (a policy is not a tombstone and does not expire)
 *   channel offtok:<kid>:rev   every message, as it is published
 *
 * Each publication is one MULTI/EXEC: store, then PUBLISH. A subscriber that subscribes and
 * then reads the store therefore sees every message in one place or the other, or both
 * (applying one twice changes nothing). A message is the same bytes everywhere, MAC'd as
 * ot_redis_seal.c describes.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "ot_redis_int.h"

/** Add the message where it is kept (see ot_redis_pend_t) and publish it: one MULTI/EXEC. */
static apr_status_t send_rev(ot_redis_t *r, const ot_redis_pend_t *item, apr_time_t now)
{
    const char *msg = item->buf + item->field_len;
    char score[24], floor[24];
    ot_redis_cmd_t cmds[5] = { { 0 } };
    redisReply *replies[5];
    apr_status_t rv;
    int n = 0;

    apr_snprintf(score, sizeof(score), "%" APR_INT64_T_FMT, ot_redis_ms(item->until));
    apr_snprintf(floor, sizeof(floor), "(%" APR_INT64_T_FMT, ot_redis_ms(now));
    ot_redis_arg_str(&cmds[n++], "MULTI");
    if (item->field_len) {
        ot_redis_arg_str(&cmds[n], "HSET");
        ot_redis_arg_str(&cmds[n], r->nb_key);
        ot_redis_arg(&cmds[n], item->buf, item->field_len);
        ot_redis_arg(&cmds[n++], msg, item->len);
    }
    else {
        ot_redis_arg_str(&cmds[n], "ZADD");
        ot_redis_arg_str(&cmds[n], r->rev_key);
        ot_redis_arg_str(&cmds[n], score);
        ot_redis_arg(&cmds[n++], msg, item->len);
        ot_redis_arg_str(&cmds[n], "ZREMRANGEBYSCORE");
        ot_redis_arg_str(&cmds[n], r->rev_key);
        ot_redis_arg_str(&cmds[n], "-inf");
        ot_redis_arg_str(&cmds[n++], floor);
    }
    ot_redis_arg_str(&cmds[n], "PUBLISH");
    ot_redis_arg_str(&cmds[n], r->channel);
    ot_redis_arg(&cmds[n++], msg, item->len);
    ot_redis_arg_str(&cmds[n++], "EXEC");
    if ((rv = ot_redis_run(r, n, cmds, replies)) != APR_SUCCESS) {
        return rv;
    }
    rv = (ot_redis_refused(r, replies[0], "MULTI") || ot_redis_refused(r, replies[n - 1], "EXEC")
          || replies[n - 1]->type != REDIS_REPLY_ARRAY) ? APR_EGENERAL : APR_SUCCESS;
    ot_redis_free_replies(n, replies);
    return rv;
}

/**
 * Queue a copy of item for later, at the back (a new one) or at the front (one that failed
 * again). When the queue is full the oldest goes: the head, or item itself when it goes first.
 */
static void enqueue(ot_redis_t *r, const ot_redis_pend_t *item, int front)
{
    ot_redis_pend_t copy = *item;
    apr_size_t n = item->field_len + item->len;

    if ((copy.buf = malloc(n)) == NULL) {
        return;
    }
    memcpy(copy.buf, item->buf, n);
    apr_thread_mutex_lock(r->mutex);
    if (r->pend_count == OT_REDIS_PENDING_MAX && front) {
        free(copy.buf);
        copy.buf = NULL;
    }
    else if (r->pend_count == OT_REDIS_PENDING_MAX) {
        free(r->pend[r->pend_head].buf);
        r->pend_head = (r->pend_head + 1) % OT_REDIS_PENDING_MAX;
        r->pend_count--;
    }
    if (copy.buf && front) {
        r->pend_head = (r->pend_head + OT_REDIS_PENDING_MAX - 1) % OT_REDIS_PENDING_MAX;
        r->pend[r->pend_head] = copy;
        r->pend_count++;
    }
    else if (copy.buf) {
        r->pend[(r->pend_head + r->pend_count) % OT_REDIS_PENDING_MAX] = copy;
        r->pend_count++;
    }
    apr_thread_mutex_unlock(r->mutex);
}

apr_status_t ot_redis_publish(ot_redis_t *r, const ot_redis_rev_t *rev, apr_time_t now,
                              apr_pool_t *p)
{
    ot_redis_pend_t item;
    char *msg, *field = NULL;
    apr_size_t flen = 0;
    apr_status_t rv = ot_redis_rev_seal(r, rev, &msg, &item.len, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (rev->kind == OT_REDIS_REV_NOT_BEFORE) {
        field = apr_psprintf(p, "%" APR_SIZE_T_FMT ":%s%s", strlen(rev->iss ? rev->iss : ""),
                             rev->iss ? rev->iss : "", rev->value ? rev->value : "");
        flen = strlen(field);
    }
    item.buf = apr_palloc(p, flen + item.len);
    if (flen) {
        memcpy(item.buf, field, flen);
    }
    memcpy(item.buf + flen, msg, item.len);
    item.field_len = flen;
    item.until = rev->until;
    /* Behind what already waits, to keep the order in which they were applied. */
    if (ot_redis_pending(r) == 0 && send_rev(r, &item, now) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    enqueue(r, &item, 0);
    return APR_EAGAIN;
}

int ot_redis_pending(ot_redis_t *r)
{
    int n;

    apr_thread_mutex_lock(r->mutex);
    n = r->pend_count;
    apr_thread_mutex_unlock(r->mutex);
    return n;
}

apr_status_t ot_redis_flush_pending(ot_redis_t *r, apr_time_t now)
{
    ot_redis_pend_t item;
    apr_status_t rv;

    for (;;) {
        apr_thread_mutex_lock(r->mutex);
        if (r->pend_count == 0) {
            apr_thread_mutex_unlock(r->mutex);
            return APR_SUCCESS;
        }
        item = r->pend[r->pend_head];
        r->pend_head = (r->pend_head + 1) % OT_REDIS_PENDING_MAX;
        r->pend_count--;
        apr_thread_mutex_unlock(r->mutex);
        rv = item.until <= now && !item.field_len ? APR_SUCCESS : send_rev(r, &item, now);
        if (rv != APR_SUCCESS) {
            enqueue(r, &item, 1);
        }
        free(item.buf);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

static int by_at(const void *a, const void *b)
{
    const ot_redis_rev_t *x = a, *y = b;

    return x->at < y->at ? -1 : x->at > y->at;
}

/** Decode the messages among reply's elements (every `step`-th from `first`) into out. */
static void collect(ot_redis_t *r, const redisReply *reply, size_t first, size_t step,
                    apr_array_header_t *out, apr_pool_t *p)
{
    ot_redis_rev_t rev;
    size_t i;

    for (i = first; i < reply->elements; i += step) {
        const redisReply *m = reply->element[i];

        if (m->type == REDIS_REPLY_STRING
            && ot_redis_rev_open(r, m->str, m->len, &rev, p) == APR_SUCCESS) {
            APR_ARRAY_PUSH(out, ot_redis_rev_t) = rev;
        }
        else {
            ot_redis_note(r, "catching up", "a stored revocation failed its MAC check");
        }
    }
}

apr_status_t ot_redis_stored(ot_redis_t *r, apr_array_header_t **revs, apr_time_t now,
                             apr_pool_t *p)
{
    char floor[24];
    ot_redis_cmd_t cmds[2] = { { 0 } };
    redisReply *replies[2];
    apr_array_header_t *out;
    apr_status_t rv;

    apr_snprintf(floor, sizeof(floor), "(%" APR_INT64_T_FMT, ot_redis_ms(now));
    ot_redis_arg_str(&cmds[0], "ZRANGEBYSCORE");
    ot_redis_arg_str(&cmds[0], r->rev_key);
    ot_redis_arg_str(&cmds[0], floor);
    ot_redis_arg_str(&cmds[0], "+inf");
    ot_redis_arg_str(&cmds[1], "HGETALL");
    ot_redis_arg_str(&cmds[1], r->nb_key);
    if ((rv = ot_redis_run(r, 2, cmds, replies)) != APR_SUCCESS) {
        return rv;
    }
    if (ot_redis_refused(r, replies[0], "ZRANGEBYSCORE") || ot_redis_refused(r, replies[1], "HGETALL")
        || replies[0]->type != REDIS_REPLY_ARRAY || replies[1]->type != REDIS_REPLY_ARRAY) {
        ot_redis_free_replies(2, replies);
        return APR_EGENERAL;
    }
    out = apr_array_make(p, 16, sizeof(ot_redis_rev_t));
    collect(r, replies[0], 0, 1, out, p);
    collect(r, replies[1], 1, 2, out, p);
    ot_redis_free_replies(2, replies);
    qsort(out->elts, (size_t)out->nelts, sizeof(ot_redis_rev_t), by_at);
    *revs = out;
    return APR_SUCCESS;
}
