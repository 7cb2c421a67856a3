/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The Redis client of one process: connections, the breaker, answers, publication.
 *
 * Connections are blocking hiredis contexts with a connect timeout and a command timeout
 * (SO_RCVTIMEO/SO_SNDTIMEO). A context that failed in any way, a timeout included, is freed,
 * never reused: hiredis 0.14 leaves it in error for good. Between uses a context waits on a
 * mutex-guarded stack, so each is used by one thread at a time. A command that fails on a kept
 * connection (Redis restarted, an idle connection closed) is tried once more on a new one.
 *
 * The breaker: a failure to reach Redis closes it for a backoff (250 ms, doubling to 5 s), during
 * which every call answers APR_EAGAIN at once, so requests never queue behind an unreachable
 * Redis; the first call after the backoff tries again. The subscriber reopens it as soon as it
 * gets through (ot_redis_mark_up).
 */
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <openssl/rand.h>

#include "ot_redis_int.h"
#include "ot_entry.h"
#include "ot_stats.h"

#define BACKOFF_MIN apr_time_from_msec(250)
#define BACKOFF_MAX apr_time_from_sec(5)
#define DEFAULT_PORT 6379
#define DB_MAX 1000000
/** Shortest OfftokRedisKey accepted. */
#define KEY_MIN 16

void ot_redis_arg(ot_redis_cmd_t *c, const char *s, apr_size_t n)
{
    c->argv[c->argc] = s;
    c->lens[c->argc++] = n;
}

void ot_redis_arg_str(ot_redis_cmd_t *c, const char *s)
{
    ot_redis_arg(c, s, strlen(s));
}

apr_int64_t ot_redis_ms(apr_time_t t)
{
    return t / 1000;
}

/* ---- configuration ------------------------------------------------------------------------- */

int ot_redis_have_tls(void)
{
#ifdef HAVE_HIREDIS_SSL
    return 1;
#else
    return 0;
#endif
}

const char *ot_redis_parse_url(ot_redis_conf_t *conf, const char *url, apr_pool_t *p)
{
    apr_uri_t uri;
    char *end;
    long db = 0, port;

    if (strncasecmp(url, "redis-sentinel://", 17) == 0) {
        return ot_redis_sentinel_parse(conf, url, p);
    }
    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || uri.scheme == NULL
        || (strcasecmp(uri.scheme, "redis") != 0 && strcasecmp(uri.scheme, "rediss") != 0)
        || uri.hostname == NULL || !*uri.hostname) {
        return apr_psprintf(p, "'%s' is not a redis://host[:port][/db] URL", url);
    }
    if (strcasecmp(uri.scheme, "rediss") == 0 && !ot_redis_have_tls()) {
        return "rediss:// (TLS) needs hiredis 1.0 or later with hiredis_ssl, and this build "
               "has a hiredis without TLS (Debian 12 ships 0.14): use redis:// on a private "
               "network or a tunnel (stunnel, WireGuard), or build against hiredis >= 1.0";
    }
    if (uri.user || uri.password) {
        return "put the password in OfftokRedisPassword, not in the URL";
    }
    if (uri.query || uri.fragment) {
        return apr_psprintf(p, "'%s': a query or fragment means nothing here", url);
    }
    if (uri.path && *uri.path && strcmp(uri.path, "/") != 0) {
        db = strtol(uri.path + 1, &end, 10);
        if (end == uri.path + 1 || *end || db < 0 || db > DB_MAX) {
            return apr_psprintf(p, "'%s': the database must be a number from 0 to %d", url, DB_MAX);
        }
    }
    port = uri.port_str ? strtol(uri.port_str, &end, 10) : DEFAULT_PORT;
    if (uri.port_str && (end == uri.port_str || *end || port < 1 || port > 65535)) {
        return apr_psprintf(p, "'%s': the port must be a number from 1 to 65535", url);
    }
    conf->host = uri.hostname;
    conf->port = (int)port;
    conf->db = (int)db;
    conf->tls = strcasecmp(uri.scheme, "rediss") == 0;
    return NULL;
}

static struct timeval to_tv(apr_interval_time_t t)
{
    struct timeval tv;

    tv.tv_sec = (time_t)apr_time_sec(t);
    tv.tv_usec = (suseconds_t)apr_time_usec(t);
    return tv;
}

apr_status_t ot_redis_create(ot_redis_t **pr, const ot_redis_conf_t *conf, int max_idle,
                             struct ot_stats_t *stats, apr_pool_t *p)
{
    ot_redis_t *r = apr_pcalloc(p, sizeof(*r));
    apr_status_t rv;

    if ((conf->host == NULL && conf->master == NULL) || conf->key == NULL
        || conf->key_len < KEY_MIN) {
        return APR_EINVAL;
    }
    r->conf = *conf;
    r->connect_tv = to_tv(conf->connect_timeout ? conf->connect_timeout
                          : OT_REDIS_CONNECT_TIMEOUT);
    r->command_tv = to_tv(conf->command_timeout ? conf->command_timeout
                          : OT_REDIS_COMMAND_TIMEOUT);
    ot_redis_derive_keys(r);
    r->rev_key = apr_pstrcat(p, "offtok:", r->kid, ":rev", NULL);
    r->nb_key = apr_pstrcat(p, "offtok:", r->kid, ":nb", NULL);
    r->channel = r->rev_key;
    r->where = conf->master ? apr_psprintf(p, "%s via Sentinel %s:%d/%d", conf->master,
                                            conf->sentinels[0].host, conf->sentinels[0].port,
                                            conf->db)
        : apr_psprintf(p, "%s:%d/%d", conf->host, conf->port, conf->db);
    if (conf->tls && (rv = ot_redis_tls_init(r, p)) != APR_SUCCESS) {
        return rv;
    }
    r->stats = stats;
    r->max_idle = max_idle < 1 ? 1 : max_idle > 64 ? 64 : max_idle;
    r->idle = apr_pcalloc(p, sizeof(*r->idle) * (apr_size_t)r->max_idle);
    rv = apr_thread_mutex_create(&r->mutex, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pr = r;
    return APR_SUCCESS;
}

void ot_redis_close(ot_redis_t *r)
{
    int i;

    apr_thread_mutex_lock(r->mutex);
    for (i = 0; i < r->n_idle; i++) {
        redisFree(r->idle[i]);
    }
    r->n_idle = 0;
    while (r->pend_count > 0) {
        free(r->pend[r->pend_head].buf);
        r->pend_head = (r->pend_head + 1) % OT_REDIS_PENDING_MAX;
        r->pend_count--;
    }
    apr_thread_mutex_unlock(r->mutex);
}

const char *ot_redis_rev_name(const ot_redis_t *r)
{
    return r->rev_key;
}

const char *ot_redis_where(const ot_redis_t *r)
{
    return r->where;
}

const char *ot_redis_last_error(ot_redis_t *r, apr_pool_t *p)
{
    const char *s;

    apr_thread_mutex_lock(r->mutex);
    s = apr_pstrdup(p, r->err[0] ? r->err : "no error");
    apr_thread_mutex_unlock(r->mutex);
    return s;
}

void ot_redis_note(ot_redis_t *r, const char *what, const char *detail)
{
    apr_thread_mutex_lock(r->mutex);
    apr_snprintf(r->err, sizeof(r->err), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    apr_thread_mutex_unlock(r->mutex);
    if (r->stats) {
        OT_STAT_ADD(r->stats->redis_errors, 1);
    }
}

/* ---- the breaker ---------------------------------------------------------------------------- */

void ot_redis_mark_up(ot_redis_t *r)
{
    apr_thread_mutex_lock(r->mutex);
    r->backoff = 0;
    r->down_until = 0;
    apr_thread_mutex_unlock(r->mutex);
}

static void trip(ot_redis_t *r)
{
    apr_thread_mutex_lock(r->mutex);
    r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_MIN;
    r->backoff = r->backoff > BACKOFF_MAX ? BACKOFF_MAX : r->backoff;
    r->down_until = apr_time_now() + r->backoff;
    apr_thread_mutex_unlock(r->mutex);
}

/* ---- connections ---------------------------------------------------------------------------- */

/** Write what hiredis has buffered on blocking context c; REDIS_OK when all of it went. */
static int write_all(redisContext *c)
{
    int done = 0;

    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            return REDIS_ERR;
        }
    }
    return REDIS_OK;
}

int ot_redis_read(redisContext *c, redisReply **reply, apr_size_t *budget)
{
    void *got = NULL;
    size_t before, read;

    if (redisGetReplyFromReader(c, &got) != REDIS_OK) {
        return REDIS_ERR;
    }
    while (got == NULL) {
        /* A read only appends to the reader's buffer (which starts over when it was empty). */
        before = c->reader->len;
        if (redisBufferRead(c) != REDIS_OK) {
            return REDIS_ERR;
        }
        read = c->reader->len >= before ? c->reader->len - before : c->reader->len;
        if (read > *budget) {
            c->err = REDIS_ERR_PROTOCOL;
            apr_cpystrn(c->errstr, "a reply longer than any this module asks for",
                        sizeof(c->errstr));
            return REDIS_ERR;
        }
        *budget -= read;
        if (redisGetReplyFromReader(c, &got) != REDIS_OK) {
            return REDIS_ERR;
        }
    }
    *reply = got;
    return REDIS_OK;
}

redisReply *ot_redis_command(redisContext *c, int argc, const char **argv)
{
    apr_size_t budget = OT_REDIS_REPLY_SMALL;
    redisReply *reply = NULL;

    if (redisAppendCommandArgv(c, argc, argv, NULL) != REDIS_OK || write_all(c) != REDIS_OK
        || ot_redis_read(c, &reply, &budget) != REDIS_OK) {
        return NULL;
    }
    return reply;
}

/** Run one command on a fresh context during set-up; 0 when it was answered without error. */
static int setup_command(ot_redis_t *r, redisContext *c, int argc, const char **argv,
                         const char *what)
{
    redisReply *reply = ot_redis_command(c, argc, argv);
    int ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;

    if (!ok) {
        ot_redis_note(r, what, reply ? reply->str : c->errstr);
    }
    if (reply) {
        freeReplyObject(reply);
    }
    return ok;
}

/** AUTH with the user when there is one; 1 when Redis accepted it. */
static int authenticate(ot_redis_t *r, redisContext *c)
{
    const char *argv[] = { "AUTH", r->conf.user, r->conf.password };

    if (r->conf.user == NULL) {
        argv[1] = r->conf.password;
        return setup_command(r, c, 2, argv, "AUTH");
    }
    return setup_command(r, c, 3, argv, "AUTH");
}

redisContext *ot_redis_open(ot_redis_t *r, const char *host, int port, int data)
{
    redisContext *c = redisConnectWithTimeout(host, port, r->connect_tv);
    char db[16];
    const char *select[] = { "SELECT", db };

    if (c == NULL || c->err) {
        ot_redis_note(r, "connect", c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    apr_snprintf(db, sizeof(db), "%d", r->conf.db);
    if (redisSetTimeout(c, r->command_tv) != REDIS_OK) {
        ot_redis_note(r, "set-up", c->errstr);
    }
    else if (r->tls && ot_redis_tls_start(r, c, host) != APR_SUCCESS) {
        /* noted */
    }
    else if ((!r->conf.password || authenticate(r, c) || !data)
             && (!data || r->conf.db == 0 || setup_command(r, c, 2, select, "SELECT"))) {
        return c;
    }
    redisFree(c);
    return NULL;
}

redisContext *ot_redis_connect(ot_redis_t *r)
{
    if (r->conf.master != NULL) {
        return ot_redis_sentinel_connect(r);
    }
    return ot_redis_open(r, r->conf.host, r->conf.port, 1);
}

/** Free every idle connection: one of them failed, the others are from the same era. */
static void drop_idle(ot_redis_t *r)
{
    redisContext *gone[64];
    int n = 0;

    apr_thread_mutex_lock(r->mutex);
    while (r->n_idle > 0 && n < 64) {
        gone[n++] = r->idle[--r->n_idle];
    }
    apr_thread_mutex_unlock(r->mutex);
    while (n > 0) {
        redisFree(gone[--n]);
    }
}

/** A context to use; *kept when it was used before. NULL (breaker closed or connect failed). */
static redisContext *take(ot_redis_t *r, int *kept)
{
    redisContext *c = NULL;

    apr_thread_mutex_lock(r->mutex);
    if (apr_time_now() < r->down_until) {
        apr_thread_mutex_unlock(r->mutex);
        return NULL;
    }
    if (r->n_idle > 0) {
        c = r->idle[--r->n_idle];
    }
    apr_thread_mutex_unlock(r->mutex);
    if (c != NULL && !ot_redis_sentinel_current(r, c)) {
        redisFree(c);                 /* to a master that is no more: so are the others */
        drop_idle(r);
        c = NULL;
    }
    *kept = c != NULL;
    if (c == NULL && (c = ot_redis_connect(r)) == NULL) {
        trip(r);
    }
    return c;
}

static void give(ot_redis_t *r, redisContext *c)
{
    int current = ot_redis_sentinel_current(r, c);

    apr_thread_mutex_lock(r->mutex);
    if (current && r->n_idle < r->max_idle) {
        r->idle[r->n_idle++] = c;
        c = NULL;
    }
    r->backoff = 0;
    apr_thread_mutex_unlock(r->mutex);
    if (c) {
        redisFree(c);
    }
}

/** Send n commands at once and read their n replies within cap bytes; 1 when all arrived. */
static int pipeline(redisContext *c, int n, ot_redis_cmd_t *cmds, redisReply **replies,
                    apr_size_t cap)
{
    int i, got = 0;
    redisReply *reply;

    for (i = 0; i < n; i++) {
        redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].lens);
    }
    for (i = 0; i < n && (i > 0 || write_all(c) == REDIS_OK)
                && ot_redis_read(c, &reply, &cap) == REDIS_OK; i++) {
        replies[got++] = reply;
    }
    if (got == n && c->err == 0) {
        return 1;
    }
    while (got > 0) {
        freeReplyObject(replies[--got]);
    }
    return 0;
}

/** 1 when one of the n replies says the server is a replica now (a failover demoted it). */
static int demoted(int n, redisReply **replies)
{
    int i;

    for (i = 0; i < n; i++) {
        /* A script's write says so inside its error (Redis 6: "ERR Error running script ..."). */
        if (replies[i]->type == REDIS_REPLY_ERROR && strstr(replies[i]->str, "READONLY") != NULL) {
            return 1;
        }
    }
    return 0;
}

apr_status_t ot_redis_run(ot_redis_t *r, int n, ot_redis_cmd_t *cmds, redisReply **replies,
                          apr_size_t cap)
{
    redisContext *c;
    int attempt, kept = 0;

    for (attempt = 0; attempt < 2; attempt++) {
        if ((c = take(r, &kept)) == NULL) {
            return APR_EAGAIN;
        }
        if (pipeline(c, n, cmds, replies, cap)) {
            if (!(r->conf.master && demoted(n, replies))) {
                give(r, c);
                return APR_SUCCESS;
            }
            ot_redis_free_replies(n, replies);
            ot_redis_sentinel_forget(r);
            kept = 1;
        }
        ot_redis_note(r, "command", c->err ? c->errstr : "READONLY: the master became a replica");
        redisFree(c);
        if (!kept) {
            break;
        }
        drop_idle(r);
    }
    trip(r);
    return APR_EAGAIN;
}

void ot_redis_free_replies(int n, redisReply **replies)
{
    while (n > 0) {
        freeReplyObject(replies[--n]);
    }
}

int ot_redis_refused(ot_redis_t *r, const redisReply *reply, const char *what)
{
    if (reply->type != REDIS_REPLY_ERROR) {
        return 0;
    }
    ot_redis_note(r, what, reply->str);
    return 1;
}

/* ---- answers ------------------------------------------------------------------------------- */

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

    if (pttl_ms >= 0) {
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
