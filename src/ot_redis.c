/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The Redis client of one process: connections and the breaker (its answers: ot_redis_answer.c).
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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "ot_redis_int.h"
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

/** The command timeout of c's socket (redisSetTimeout's SO_RCVTIMEO); 0 when it has none. */
static apr_interval_time_t socket_timeout(const redisContext *c)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);

    if (getsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) != 0) {
        return 0;
    }
    return apr_time_from_sec(tv.tv_sec) + tv.tv_usec;
}

/**
 * The reply ot_redis_read reads whole: its arrays' counts are tallied against one bound. When
 * timed, it fails once it has taken longer than the command timeout: that timeout bounds each
 * read, and a server that sends a byte just before each would end keeps a request for as long
 * as its budget lasts (an answer's 257 KiB at 0.5 s a byte: 36 hours), the breaker never tripped.
 */
static int read_whole(redisContext *c, void **got, apr_size_t *budget, int timed)
{
    apr_size_t read;
    apr_time_t start = timed ? apr_time_now() : 0;
    apr_interval_time_t most = 0;
    int reads = 0;

    if (ot_redis_take(c, got) != REDIS_OK) {
        return REDIS_ERR;
    }
    while (*got == NULL) {
        /* Most replies come in one read: the socket is asked for its timeout after that. */
        if (timed && reads++ > 0 && (most = most ? most : socket_timeout(c)) > 0
            && apr_time_now() - start > most) {
            c->err = REDIS_ERR_PROTOCOL;
            apr_cpystrn(c->errstr, "a reply slower than the command timeout",
                        sizeof(c->errstr));
            return REDIS_ERR;
        }
        read = 0;
        if (ot_redis_feed(c, &read) != REDIS_OK) {
            return REDIS_ERR;
        }
        if (read > *budget) {
            c->err = REDIS_ERR_PROTOCOL;
            apr_cpystrn(c->errstr, "a reply longer than any this module asks for",
                        sizeof(c->errstr));
            return REDIS_ERR;
        }
        *budget -= read;
        if (ot_redis_take(c, got) != REDIS_OK) {
            return REDIS_ERR;
        }
    }
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

/* ---- arrays in replies --------------------------------------------------------------------- */

#if HIREDIS_MAJOR >= 1
typedef size_t array_count_t;
#else
typedef int array_count_t;
#endif

static pthread_mutex_t bounded_mutex = PTHREAD_MUTEX_INITIALIZER;
/** hiredis's own reply functions, but for an array's: bounded_array in front of it. */
static redisReplyObjectFunctions bounded;
static void *(*own_array)(const redisReadTask *, array_count_t);
/** Why bounded_array refused a count, during this thread's current ot_redis_take; or NULL. */
static __thread const char *refused;
/** Set while ot_redis_read reads a reply whole: its arrays may hold elements_left more. */
static __thread int tallying;
static __thread apr_size_t elements_left;

/**
 * NULL (hiredis then fails the reader as out of memory) for a count no reply of ours has, or,
 * in a reply ot_redis_read reads, for more elements in all than any reply of ours has: an
 * element of a few bytes costs a reply object of some 60, and the catch-up's 32 MiB budget
 * filled with them asked for some 800 MB.
 */
static void *bounded_array(const redisReadTask *task, array_count_t n)
{
    const redisReadTask *up;
    int depth = 1;

    /* A negative count (0.14 passes what it read as an int) is as large as any, unsigned. */
    if ((unsigned long long)n > OT_REDIS_ARRAY_MAX) {
        refused = "an array longer than any reply this module asks for";
        return NULL;
    }
    /* Each open array may have a table of OT_REDIS_ARRAY_MAX: hiredis >= 1.0 nests without
     * end (0.14 stops at 7), and a read without a tally (the subscriber's, the watch's) would
     * otherwise hold one per 8 bytes of a message. */
    for (up = task->parent; up != NULL; up = up->parent) {
        if (++depth > OT_REDIS_DEPTH_MAX) {
            refused = "a reply nested deeper than any this module asks for";
            return NULL;
        }
    }
    if (tallying) {
        if ((apr_size_t)n > elements_left) {
            refused = "a reply with more elements than any this module asks for";
            return NULL;
        }
        elements_left -= (apr_size_t)n;
    }
    return own_array(task, n);
}

int ot_redis_bound_arrays(redisContext *c)
{
    if (c->reader == NULL || c->reader->fn == NULL) {
        return 0;
    }
    /* Every reader hiredis makes has the same functions: copied from the first, no allocation
     * of our own that could fail (and then fail every connection for good). */
    pthread_mutex_lock(&bounded_mutex);
    if (own_array == NULL && c->reader->fn->createArray != bounded_array) {
        bounded = *c->reader->fn;
        own_array = bounded.createArray;
        bounded.createArray = bounded_array;
    }
    pthread_mutex_unlock(&bounded_mutex);
    if (own_array == NULL) {
        return 0;
    }
    c->reader->fn = &bounded;
    return 1;
}

int ot_redis_take(redisContext *c, void **reply)
{
    int rc;

    refused = NULL;
    rc = redisGetReplyFromReader(c, reply);
    if (rc != REDIS_OK && refused != NULL) {
        /* hiredis said "Out of memory": say what it was. */
        c->err = REDIS_ERR_PROTOCOL;
        apr_cpystrn(c->errstr, refused, sizeof(c->errstr));
    }
    return rc;
}

int ot_redis_read(redisContext *c, redisReply **reply, apr_size_t *budget)
{
    void *got = NULL;
    int rc;

    /* Read whole in this call on this thread, nothing else read in between: tally it here. */
    elements_left = *budget > OT_REDIS_REPLY_ANSWER ? OT_REDIS_ELEMENTS_MAX
        : OT_REDIS_ELEMENTS_SMALL;
    tallying = 1;
    /* The catch-up (the subscriber's, up to 32 MiB) may take longer; nothing else may. */
    rc = read_whole(c, &got, budget, *budget <= OT_REDIS_REPLY_ANSWER);
    tallying = 0;
    if (rc == REDIS_OK) {
        *reply = got;
    }
    return rc;
}

int ot_redis_feed(redisContext *c, apr_size_t *fed)
{
    size_t before = c->reader->len;

    /* A read only appends to the reader's buffer (which starts over when it was empty). */
    if (redisBufferRead(c) != REDIS_OK) {
        return REDIS_ERR;
    }
    *fed += c->reader->len >= before ? c->reader->len - before : c->reader->len;
    return REDIS_OK;
}

int ot_redis_take_fed(redisContext *c, void **reply, apr_size_t *fed)
{
    int rc = ot_redis_take(c, reply);

    if (rc == REDIS_OK && *reply != NULL) {
        /* The reply ends where the reader is: what is buffered past it is the next one's. */
        *fed = ot_redis_buffered(c);
    }
    return rc;
}

apr_size_t ot_redis_buffered(const redisContext *c)
{
    return c->reader->len - c->reader->pos;
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

    if (c == NULL || c->err || !ot_redis_bound_arrays(c)) {
        ot_redis_note(r, "connect", c && c->err ? c->errstr : "out of memory");
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

/**
 * Send n commands at once and read their n replies within *cap bytes (then lowered by what was
 * read); 1 when all arrived.
 */
static int pipeline(redisContext *c, int n, ot_redis_cmd_t *cmds, redisReply **replies,
                    apr_size_t *cap)
{
    int i, got = 0;
    redisReply *reply;

    for (i = 0; i < n; i++) {
        redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].lens);
    }
    for (i = 0; i < n && (i > 0 || write_all(c) == REDIS_OK)
                && ot_redis_read(c, &reply, cap) == REDIS_OK; i++) {
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
    apr_size_t left;
    int attempt, kept = 0;

    for (attempt = 0; attempt < 2; attempt++) {
        if ((c = take(r, &kept)) == NULL) {
            return APR_EAGAIN;
        }
        left = cap;
        if (pipeline(c, n, cmds, replies, &left)) {
            if (!(r->conf.master && demoted(n, replies))) {
                /* hiredis keeps its read buffer as large as the reply was until the next
                 * read: a connection that read more than any answer (the catch-up, up to
                 * 32 MiB) is not kept idle with it. An answer's (at most twice 257 KiB) is:
                 * closing after each large answer made every request for such a token open
                 * a connection, and their TIME_WAITs run out of ports at ~470 a second. */
                if (cap - left > OT_REDIS_REPLY_ANSWER) {
                    redisFree(c);
                }
                else {
                    give(r, c);
                }
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
