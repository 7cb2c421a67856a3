/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Answers in Redis: reading one (GETRANGE within a cap and PTTL, which puts its fetched time on
 * this node's clock) and storing one by a script that keeps the newer and, when an inactive
 * answer replaces a positive one, publishes a key tombstone.
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/rand.h>

#include "ot_redis_int.h"
#include "ot_entry.h"
#include "ot_stats.h"

/*
 * Newer wins: the value stays when the one already there was fetched later. Both carry their
 * fetched time in plain, big-endian, at the same offset (ARGV[3], 0-based), covered by their MAC,
 * which Redis cannot check: a stored time later than the writer's clock allows (ARGV[4], now plus
 * OT_REDIS_SKEW) is not believed, so junk cannot hold the name for longer than that. Bytes are
 * compared one by one (Lua's string < follows the server's locale).
 *
 * An inactive answer comes with a key tombstone (ARGV[6]) and the offset of the entry's flags
 * (ARGV[5], whose lowest bit is "active"): when the value it replaces was a positive answer of
 * the same format, the script publishes the tombstone on the channel (KEYS[2]) and returns 2, in
 * the same atomic step, so that the other nodes drop their own copies of that positive answer.
 * Nothing else is published: a token that never had a positive answer here costs no message.
 */
static const char PUT_SCRIPT[] =
    "local v, o, lim = ARGV[1], tonumber(ARGV[3]), ARGV[4]\n"
    "local function cmp(a, ai, b, bi)\n"
    "  for i = 0, 7 do\n"
    "    local x, y = a:byte(ai + i), b:byte(bi + i)\n"
    "    if x ~= y then return x < y and -1 or 1 end\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local cur = redis.pcall('GET', KEYS[1])\n"
    "local ours = type(cur) == 'string' and #cur >= o + 8 and cur:byte(1) == v:byte(1)\n"
    "if ours and cmp(cur, o + 1, lim, 1) <= 0 and cmp(cur, o + 1, v, o + 1) > 0 then\n"
    "  return 0\n"
    "end\n"
    "redis.call('SET', KEYS[1], v, 'PX', ARGV[2])\n"
    "if ARGV[6] and ours and cur:byte(tonumber(ARGV[5]) + 1) % 2 == 1 then\n"
    "  redis.call('PUBLISH', KEYS[2], ARGV[6])\n"
    "  return 2\n"
    "end\n"
    "return 1\n";

/**
 * Put e->fetched on this node's clock (see ot_redis_get). pttl_ms: what Redis says the value has
 * left to live, -1 when it does not say.
 */
static void rebase_fetched(ot_cache_entry_t *e, apr_time_t now, apr_int64_t pttl_ms)
{
    apr_time_t f = e->fetched, late;

    /* Longer than any answer lives (2^40 ms, 34 years): as good as none said, and in ms a
     * count apr_time_from_msec does not overflow (the server's to say: one not ours says any). */
    if (pttl_ms >= 0 && pttl_ms < ((apr_int64_t)1 << 40)) {
        /* Redis drops it at now + pttl on our clock, which is the writer's drop_after on its. */
        late = now + apr_time_from_msec(pttl_ms) - (e->drop_after - e->fetched);
        f = late < f ? late : f;
    }
    if (!e->active) {
        late = f + OT_REDIS_SKEW < now ? f + OT_REDIS_SKEW : now;
        f = late > f ? late : f;
    }
    f = f < now ? f : now;
    if (f < e->fetched) {
        e->drop_after -= e->fetched - f;      /* the same lifetime, from the earlier start */
    }
    e->fetched = f;
}

apr_status_t ot_redis_get(ot_redis_t *r, const unsigned char key[OT_KEY_LEN], apr_time_t now,
                          ot_cache_entry_t *e, apr_pool_t *p)
{
    const char *name = ot_redis_answer_name(r, key, p);
    char cap[24];
    redisReply *replies[2], *reply;
    ot_redis_cmd_t cmds[2] = { { 0 } };
    apr_status_t rv;

    /* At most one byte more than the cap: a value that long is not ours, and is not pulled. */
    apr_snprintf(cap, sizeof(cap), "%d", OT_REDIS_ANSWER_CAP);
    ot_redis_arg_str(&cmds[0], "GETRANGE");
    ot_redis_arg_str(&cmds[0], name);
    ot_redis_arg_str(&cmds[0], "0");
    ot_redis_arg_str(&cmds[0], cap);
    ot_redis_arg_str(&cmds[1], "PTTL");
    ot_redis_arg_str(&cmds[1], name);
    if ((rv = ot_redis_run(r, 2, cmds, replies, OT_REDIS_REPLY_ANSWER)) != APR_SUCCESS) {
        return rv;
    }
    reply = replies[0];
    if (ot_redis_refused(r, reply, "GETRANGE")) {
        rv = APR_EGENERAL;
    }
    else if (reply->type != REDIS_REPLY_STRING || reply->len == 0) {
        rv = APR_NOTFOUND;
    }
    else if (reply->len > OT_REDIS_ANSWER_CAP) {
        ot_redis_note(r, "GET", "a value is longer than any answer this module stores");
        rv = APR_EINVAL;
    }
    else if (ot_redis_open_answer(r, name, reply->str, reply->len, e, p) != APR_SUCCESS) {
        ot_redis_note(r, "GET", "a value failed its MAC check or did not decode");
        rv = APR_EINVAL;
    }
    else {
        rebase_fetched(e, now, replies[1]->type == REDIS_REPLY_INTEGER
                       ? (apr_int64_t)replies[1]->integer : -1);
        rv = e->drop_after <= now ? APR_NOTFOUND : APR_SUCCESS;
    }
    ot_redis_free_replies(2, replies);
    return rv;
}

/**
 * The key tombstone that goes with an inactive answer e (fetched as e says), from p; NULL when
 * there are no random bytes for its nonce (then nothing is published).
 */
static const char *ktomb_of(const ot_redis_t *r, const unsigned char key[OT_KEY_LEN],
                            const ot_cache_entry_t *e, apr_size_t *len, apr_pool_t *p)
{
    ot_redis_ktomb_t k;
    char *msg;

    memcpy(k.key, key, OT_KEY_LEN);
    k.fetched = e->fetched;
    if (RAND_bytes(k.nonce, (int)sizeof(k.nonce)) != 1
        || ot_redis_ktomb_seal(r, &k, &msg, len, p) != APR_SUCCESS) {
        return NULL;
    }
    return msg;
}

apr_status_t ot_redis_put(ot_redis_t *r, const unsigned char key[OT_KEY_LEN],
                          const ot_cache_entry_t *e, apr_time_t now, int *told, apr_pool_t *p)
{
    const char *name = ot_redis_answer_name(r, key, p), *kt = NULL;
    apr_int64_t ms = (apr_int64_t)((e->drop_after - now + 999) / 1000);
    char *val, px[24], off[8], lim[8], flags[8];
    apr_size_t kt_len = 0;
    apr_uint64_t t = (apr_uint64_t)(now + OT_REDIS_SKEW);
    int i;
    apr_size_t len;
    redisReply *reply;
    ot_redis_cmd_t cmd = { 0 };
    apr_status_t rv;

    if (told) {
        *told = 0;
    }
    if (e->drop_after <= now) {
        return APR_SUCCESS;
    }
    if ((rv = ot_redis_seal_answer(r, name, e, &val, &len, p)) != APR_SUCCESS) {
        return rv;
    }
    if (len > OT_REDIS_ANSWER_CAP) {
        return APR_ENOSPC;
    }
    apr_snprintf(px, sizeof(px), "%" APR_INT64_T_FMT, ms > 1000 ? ms : 1000);
    apr_snprintf(off, sizeof(off), "%d", OT_REDIS_SEAL_LEN + OT_BLOB_FETCHED);
    for (i = 7; i >= 0; i--, t >>= 8) {
        lim[i] = (char)(t & 0xff);
    }
    apr_snprintf(flags, sizeof(flags), "%d", OT_REDIS_SEAL_LEN + OT_BLOB_FLAGS);
    ot_redis_arg_str(&cmd, "EVAL");
    ot_redis_arg_str(&cmd, PUT_SCRIPT);
    ot_redis_arg_str(&cmd, "2");
    ot_redis_arg_str(&cmd, name);
    ot_redis_arg_str(&cmd, r->channel);
    ot_redis_arg(&cmd, val, len);
    ot_redis_arg_str(&cmd, px);
    ot_redis_arg_str(&cmd, off);
    ot_redis_arg(&cmd, lim, sizeof(lim));
    if (!e->active && (kt = ktomb_of(r, key, e, &kt_len, p)) != NULL) {
        ot_redis_arg_str(&cmd, flags);
        ot_redis_arg(&cmd, kt, kt_len);
    }
    if ((rv = ot_redis_run(r, 1, &cmd, &reply, OT_REDIS_REPLY_SMALL)) != APR_SUCCESS) {
        return rv;
    }
    rv = ot_redis_refused(r, reply, "EVAL (store an answer)") ? APR_EGENERAL
        : reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 ? APR_EEXIST : APR_SUCCESS;
    if (told && rv == APR_SUCCESS) {
        *told = reply->type == REDIS_REPLY_INTEGER && reply->integer == 2;
    }
    ot_redis_free_replies(1, &reply);
    return rv;
}
