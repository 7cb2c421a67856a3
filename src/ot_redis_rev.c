/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Revocations through Redis: publication, the queue of what could not be published yet, and what
 * a node reads when it catches up.
 *
 *   offtok:<kid>:rev   sorted set of sub and sid tombstones, scored by `until` (ms): a message is
 *                      in force while its score is in the future; each publication drops the
 *                      expired ones (ZREMRANGEBYSCORE), and readers ask only for the rest
 *   offtok:<kid>:nb    hash of not-before policies, one field per (issuer, client): a policy
 *                      replaces the stored one only when it is newer (its order, the Keycloak
 *                      action's expiration, then its not-before: a script compares them in
 *                      place), here as in every node's table, and stays until replaced (a
 *                      policy is not a tombstone and does not expire)
 *   channel offtok:<kid>:rev   every message, as it is published
 *
 * Each publication is one MULTI/EXEC (a tombstone) or one script (a policy): store, then
 * PUBLISH. A subscriber that subscribes and then reads the store therefore sees every message
 * in one place or the other, or both (applying one twice changes nothing). A message is the same bytes everywhere, MAC'd as
 * ot_redis_seal.c describes.
 *
 * Catching up reads the store through a script that refuses to hand over more than
 * OT_REDIS_STORED_MAX messages or OT_REDIS_STORED_BYTES, and replaces any message longer than
 * this module writes by an empty one, so that whoever can write to Redis cannot make a node pull
 * gigabytes.
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "ot_redis_int.h"

/**
 * Store a not-before policy unless the stored one for its field is as new or newer, and publish
 * it either way. Newer: a greater order, then a greater not_before, both big-endian at
 * OT_REDIS_REV_ORDER and OT_REDIS_REV_NB (58 and 50, 0-based; Lua counts from 1), compared byte
 * by byte (Lua's string < follows the server's locale). A stored value of another length or
 * version is not a policy of this format, and is replaced. A script runs whole, so publishing
 * first changes nothing for subscribers, and a hash that someone replaced by another type cannot
 * keep the policy from the nodes that are listening; only a demoted master (READONLY) fails it,
 * so that it is sent again to the new one.
 */
static const char NB_SCRIPT[] =
    "local m = ARGV[2]\n"
    "local cur = redis.pcall('HGET', KEYS[1], ARGV[1])\n"
    "local keep = false\n"
    "if type(cur) == 'string' and #cur == #m and cur:byte(1) == m:byte(1) then\n"
    "  local a, b = cur:sub(59, 66) .. cur:sub(51, 58), m:sub(59, 66) .. m:sub(51, 58)\n"
    "  keep = true\n"
    "  for i = 1, 16 do\n"
    "    local x, y = a:byte(i), b:byte(i)\n"
    "    if x ~= y then keep = x > y; break end\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', KEYS[2], m)\n"
    "if not keep then\n"
    "  local ok = redis.pcall('HSET', KEYS[1], ARGV[1], m)\n"
    "  if type(ok) == 'table' and ok.err and string.find(ok.err, 'READONLY') then\n"
    "    return redis.error_reply(ok.err)\n"
    "  end\n"
    "end\n"
    "return keep and 0 or 1\n";

_Static_assert(OT_REDIS_REV_ORDER == 58 && OT_REDIS_REV_NB == 50,
               "NB_SCRIPT compares the policy's order and not_before at these offsets");

/** What a node reads to catch up, within bounds (see the top of this file). */
static const char STORED_SCRIPT[] =
    "local most, bytes, each = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') + redis.call('HLEN', KEYS[2]) > most then\n"
    "  return redis.error_reply('offtok: more revocations stored than a node reads')\n"
    "end\n"
    "local z = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')\n"
    "local h = redis.call('HVALS', KEYS[2])\n"
    "local total = 0\n"
    "for _, t in ipairs({z, h}) do\n"
    "  for i, m in ipairs(t) do\n"
    "    if #m > each then t[i] = '' end\n"
    "    total = total + #t[i]\n"
    "  end\n"
    "end\n"
    "if total > bytes then\n"
    "  return redis.error_reply('offtok: the revocations stored are larger than a node reads')\n"
    "end\n"
    "return {z, h}\n";

/** Store and publish a not-before policy (the script above). */
static apr_status_t send_policy(ot_redis_t *r, const ot_redis_pend_t *item)
{
    ot_redis_cmd_t cmd = { 0 };
    redisReply *reply;
    apr_status_t rv;

    ot_redis_arg_str(&cmd, "EVAL");
    ot_redis_arg_str(&cmd, NB_SCRIPT);
    ot_redis_arg_str(&cmd, "2");
    ot_redis_arg_str(&cmd, r->nb_key);
    ot_redis_arg_str(&cmd, r->channel);
    ot_redis_arg(&cmd, item->buf, item->field_len);
    ot_redis_arg(&cmd, item->buf + item->field_len, item->len);
    if ((rv = ot_redis_run(r, 1, &cmd, &reply, OT_REDIS_REPLY_SMALL)) != APR_SUCCESS) {
        return rv;
    }
    rv = ot_redis_refused(r, reply, "EVAL (store a not-before policy)") ? APR_EGENERAL
        : APR_SUCCESS;
    ot_redis_free_replies(1, &reply);
    return rv;
}

/** Add the message where it is kept (see ot_redis_pend_t) and publish it. */
static apr_status_t send_rev(ot_redis_t *r, const ot_redis_pend_t *item, apr_time_t now)
{
    const char *msg = item->buf + item->field_len;
    char score[24], floor[24];
    ot_redis_cmd_t cmds[5] = { { 0 } };
    redisReply *replies[5];
    apr_status_t rv;
    int n = 0;

    if (item->field_len) {
        return send_policy(r, item);
    }
    apr_snprintf(score, sizeof(score), "%" APR_INT64_T_FMT, ot_redis_ms(item->until));
    apr_snprintf(floor, sizeof(floor), "(%" APR_INT64_T_FMT, ot_redis_ms(now));
    ot_redis_arg_str(&cmds[n++], "MULTI");
    ot_redis_arg_str(&cmds[n], "ZADD");
    ot_redis_arg_str(&cmds[n], r->rev_key);
    ot_redis_arg_str(&cmds[n], score);
    ot_redis_arg(&cmds[n++], msg, item->len);
    ot_redis_arg_str(&cmds[n], "ZREMRANGEBYSCORE");
    ot_redis_arg_str(&cmds[n], r->rev_key);
    ot_redis_arg_str(&cmds[n], "-inf");
    ot_redis_arg_str(&cmds[n++], floor);
    ot_redis_arg_str(&cmds[n], "PUBLISH");
    ot_redis_arg_str(&cmds[n], r->channel);
    ot_redis_arg(&cmds[n++], msg, item->len);
    ot_redis_arg_str(&cmds[n++], "EXEC");
    if ((rv = ot_redis_run(r, n, cmds, replies, OT_REDIS_REPLY_SMALL)) != APR_SUCCESS) {
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

/** Decode the messages in reply (an array) into out. */
static void collect(ot_redis_t *r, const redisReply *reply, apr_array_header_t *out,
                    apr_pool_t *p)
{
    ot_redis_rev_t rev;
    size_t i;

    for (i = 0; i < reply->elements; i++) {
        const redisReply *m = reply->element[i];

        if (m->type == REDIS_REPLY_STRING
            && ot_redis_rev_open(r, m->str, m->len, &rev, p) == APR_SUCCESS) {
            APR_ARRAY_PUSH(out, ot_redis_rev_t) = rev;
        }
        else {
            ot_redis_note(r, "catching up", "a stored revocation failed its MAC check or was "
                          "longer than any this module writes");
        }
    }
}

/** 1 when reply is what STORED_SCRIPT returns: an array of two arrays. */
static int stored_shape(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_ARRAY
        && reply->element[1]->type == REDIS_REPLY_ARRAY;
}

apr_status_t ot_redis_stored(ot_redis_t *r, apr_array_header_t **revs, apr_time_t now,
                             apr_pool_t *p)
{
    char floor[24], most[24], bytes[24], each[24];
    ot_redis_cmd_t cmd = { 0 };
    redisReply *reply;
    apr_array_header_t *out;
    apr_status_t rv;

    apr_snprintf(floor, sizeof(floor), "(%" APR_INT64_T_FMT, ot_redis_ms(now));
    apr_snprintf(most, sizeof(most), "%d", OT_REDIS_STORED_MAX);
    apr_snprintf(bytes, sizeof(bytes), "%d", OT_REDIS_STORED_BYTES);
    apr_snprintf(each, sizeof(each), "%d", OT_REDIS_REV_MAX);
    ot_redis_arg_str(&cmd, "EVAL");
    ot_redis_arg_str(&cmd, STORED_SCRIPT);
    ot_redis_arg_str(&cmd, "2");
    ot_redis_arg_str(&cmd, r->rev_key);
    ot_redis_arg_str(&cmd, r->nb_key);
    ot_redis_arg_str(&cmd, floor);
    ot_redis_arg_str(&cmd, most);
    ot_redis_arg_str(&cmd, bytes);
    ot_redis_arg_str(&cmd, each);
    if ((rv = ot_redis_run(r, 1, &cmd, &reply, OT_REDIS_REPLY_STORED)) != APR_SUCCESS) {
        return rv;
    }
    if (ot_redis_refused(r, reply, "catching up") || !stored_shape(reply)) {
        ot_redis_free_replies(1, &reply);
        return APR_EGENERAL;
    }
    out = apr_array_make(p, 16, sizeof(ot_redis_rev_t));
    collect(r, reply->element[0], out, p);
    collect(r, reply->element[1], out, p);
    ot_redis_free_replies(1, &reply);
    qsort(out->elts, (size_t)out->nelts, sizeof(ot_redis_rev_t), by_at);
    *revs = out;
    return APR_SUCCESS;
}
