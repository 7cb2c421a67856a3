/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Sentinel: finding the master and following it across failovers (OfftokRedis
 * redis-sentinel://host:port,.../master-name/db), the way Redis's client guidelines describe it.
 *
 *   a data connection      connect to the master last found and ask ROLE; when it is gone or
 *                          says it is not the master, ask the Sentinels in turn (starting with
 *                          the one that answered last) SENTINEL get-master-addr-by-name, connect
 *                          to what they name and ask ROLE again; remember it
 *   READONLY on a write    the master was demoted: forget it (ot_redis_sentinel_forget), so the
 *                          next connection asks the Sentinels
 *   +switch-master         the subscriber keeps one more connection, to a Sentinel, SUBSCRIBEd
 *                          to +switch-master; a message for our master records the new address
 *                          and makes the subscriber start over (and catch up) on the new master
 *
 * Idle data connections to an address that is no longer the master are freed when taken or
 * given back (ot_redis_sentinel_current). Sentinels get the same AUTH as the data nodes; one
 * that refuses it (a Sentinel without a password) is asked anyway, and its answer decides.
 * What Sentinels say is not authenticated: a false master could withhold revocations, never
 * forge them or an answer (every value carries its MAC), and a node it names must say "master".
 */
#include <stdlib.h>
#include <string.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include "ot_redis_int.h"

#define SCHEME "redis-sentinel://"
#define DB_MAX 1000000
#define USAGE "redis-sentinel://host[:port][,host[:port]...]/master-name[/db]"

/* ---- the URL -------------------------------------------------------------------------------- */

static int host_char(char ch, int bracketed)
{
    return apr_isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || (bracketed && ch == ':');
}

/** "host[:port]" or "[v6]:port", n bytes at s, into a; NULL or a message. */
static const char *parse_addr(ot_redis_addr_t *a, const char *s, apr_size_t n, apr_pool_t *p)
{
    const char *end = s + n, *h = s, *h_end, *colon;
    const char *q;
    char *port_str, *e;
    long port = OT_REDIS_SENTINEL_PORT;

    if (*s == '[') {
        h = s + 1;
        h_end = memchr(s, ']', n);
        colon = h_end && h_end + 1 < end ? h_end + 1 : NULL;
        if (h_end == NULL || (colon && *colon != ':')) {
            return "a bracketed IPv6 address must be [address] or [address]:port";
        }
    }
    else {
        colon = memchr(s, ':', n);
        h_end = colon ? colon : end;
    }
    for (q = h; q < h_end; q++) {
        if (!host_char(*q, *s == '[')) {
            return "a Sentinel's host may hold letters, digits, '.', '-' and '_' only";
        }
    }
    if (h_end == h) {
        return "a Sentinel without a host";
    }
    if (colon) {
        port_str = apr_pstrmemdup(p, colon + 1, (apr_size_t)(end - colon - 1));
        port = strtol(port_str, &e, 10);
        if (e == port_str || *e || port < 1 || port > 65535) {
            return "a Sentinel's port must be a number from 1 to 65535";
        }
    }
    a->host = apr_pstrmemdup(p, h, (apr_size_t)(h_end - h));
    a->port = (int)port;
    return NULL;
}

/** "master-name[/db]" into conf; NULL or a message. */
static const char *parse_master(ot_redis_conf_t *conf, const char *s, apr_pool_t *p)
{
    const char *slash = strchr(s, '/'), *q;
    apr_size_t n = slash ? (apr_size_t)(slash - s) : strlen(s);
    char *e;
    long db = 0;

    for (q = s; q < s + n; q++) {
        if (!host_char(*q, 0)) {
            return "the master's name may hold letters, digits, '.', '-' and '_' only";
        }
    }
    if (n == 0) {
        return "no master name: " USAGE;
    }
    if (slash && slash[1]) {
        db = strtol(slash + 1, &e, 10);
        if (e == slash + 1 || *e || db < 0 || db > DB_MAX) {
            return apr_psprintf(p, "the database must be a number from 0 to %d", DB_MAX);
        }
    }
    conf->master = apr_pstrmemdup(p, s, n);
    conf->db = (int)db;
    return NULL;
}

const char *ot_redis_sentinel_parse(ot_redis_conf_t *conf, const char *url, apr_pool_t *p)
{
    const char *s = url + strlen(SCHEME), *slash = strchr(s, '/'), *comma, *err;
    apr_size_t n;

    if (slash == NULL) {
        return apr_psprintf(p, "'%s' names no master: " USAGE, url);
    }
    if (memchr(s, '@', (apr_size_t)(slash - s)) != NULL) {
        return "put the password in OfftokRedisPassword, not in the URL";
    }
    conf->n_sentinels = 0;
    while (s <= slash) {
        comma = memchr(s, ',', (apr_size_t)(slash - s));
        n = (apr_size_t)((comma ? comma : slash) - s);
        if (conf->n_sentinels == OT_REDIS_SENTINELS_MAX) {
            return apr_psprintf(p, "'%s': at most %d Sentinels", url, OT_REDIS_SENTINELS_MAX);
        }
        if ((err = parse_addr(&conf->sentinels[conf->n_sentinels], s, n, p)) != NULL) {
            return apr_psprintf(p, "'%s': %s", url, n ? err : "an empty Sentinel address");
        }
        conf->n_sentinels++;
        s += n + 1;
    }
    if ((err = parse_master(conf, slash + 1, p)) != NULL) {
        return apr_psprintf(p, "'%s': %s", url, err);
    }
    conf->host = NULL;
    conf->port = 0;
    conf->tls = 0;
    return NULL;
}

/* ---- the master ----------------------------------------------------------------------------- */

static void set_master(ot_redis_t *r, const char *host, int port)
{
    apr_thread_mutex_lock(r->mutex);
    apr_cpystrn(r->master_host, host, sizeof(r->master_host));
    r->master_port = port;
    apr_thread_mutex_unlock(r->mutex);
}

/** Copy the master last found into host; 0 when none is known. */
static int get_master(ot_redis_t *r, char *host, apr_size_t n, int *port)
{
    apr_thread_mutex_lock(r->mutex);
    apr_cpystrn(host, r->master_host, n);
    *port = r->master_port;
    apr_thread_mutex_unlock(r->mutex);
    return *host != '\0';
}

const char *ot_redis_master(ot_redis_t *r, apr_pool_t *p)
{
    char host[sizeof(r->master_host)];
    int port;

    if (r->conf.master == NULL || !get_master(r, host, sizeof(host), &port)) {
        return NULL;
    }
    return apr_psprintf(p, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void ot_redis_sentinel_forget(ot_redis_t *r)
{
    set_master(r, "", 0);
}

int ot_redis_sentinel_current(ot_redis_t *r, const redisContext *c)
{
    int same;

    if (r->conf.master == NULL) {
        return 1;
    }
    apr_thread_mutex_lock(r->mutex);
    same = c->tcp.host != NULL && strcmp(c->tcp.host, r->master_host) == 0
        && c->tcp.port == r->master_port;
    apr_thread_mutex_unlock(r->mutex);
    return same;
}

/** 1 when the node behind c says it is a master (ROLE). */
static int is_master(ot_redis_t *r, redisContext *c)
{
    const char *argv[] = { "ROLE" };
    redisReply *reply = ot_redis_command(c, 1, argv);
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
        && reply->element[0]->type == REDIS_REPLY_STRING
        && strcmp(reply->element[0]->str, "master") == 0;

    if (!ok) {
        ot_redis_note(r, "ROLE", reply == NULL ? c->errstr
                      : reply->type == REDIS_REPLY_ERROR ? reply->str
                      : "the node the Sentinels named is not the master (a failover under way?)");
    }
    if (reply) {
        freeReplyObject(reply);
    }
    return ok;
}

/** Ask one Sentinel where the master is; 1 with host and port. */
static int ask(ot_redis_t *r, const ot_redis_addr_t *a, char *host, apr_size_t n, int *port)
{
    redisContext *c = ot_redis_open(r, a->host, a->port, 0);
    const char *argv[] = { "SENTINEL", "get-master-addr-by-name", NULL };
    redisReply *reply;
    int ok;

    if (c == NULL) {
        return 0;
    }
    argv[2] = r->conf.master;
    reply = ot_redis_command(c, 3, argv);
    ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < n;
    if (ok) {
        apr_cpystrn(host, reply->element[0]->str, n);
        *port = atoi(reply->element[1]->str);
        ok = *port > 0 && *port < 65536;
    }
    if (!ok) {
        ot_redis_note(r, "SENTINEL get-master-addr-by-name", reply == NULL ? c->errstr
                      : reply->type == REDIS_REPLY_ERROR ? reply->str
                      : "this Sentinel does not know the master's name");
    }
    if (reply) {
        freeReplyObject(reply);
    }
    redisFree(c);
    return ok;
}

/** Ask the Sentinels in turn, the last one that answered first; 1 with host and port. */
static int discover(ot_redis_t *r, char *host, apr_size_t n, int *port)
{
    int i, first, k;

    apr_thread_mutex_lock(r->mutex);
    first = r->sentinel_next;
    apr_thread_mutex_unlock(r->mutex);
    for (i = 0; i < r->conf.n_sentinels; i++) {
        k = (first + i) % r->conf.n_sentinels;
        if (ask(r, &r->conf.sentinels[k], host, n, port)) {
            apr_thread_mutex_lock(r->mutex);
            r->sentinel_next = k;
            apr_thread_mutex_unlock(r->mutex);
            set_master(r, host, *port);
            return 1;
        }
    }
    return 0;
}

/** A data connection to host:port if it is the master, else NULL. */
static redisContext *open_master(ot_redis_t *r, const char *host, int port)
{
    redisContext *c = ot_redis_open(r, host, port, 1);

    if (c != NULL && !is_master(r, c)) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

redisContext *ot_redis_sentinel_connect(ot_redis_t *r)
{
    char host[sizeof(r->master_host)];
    int port;
    redisContext *c;

    if (get_master(r, host, sizeof(host), &port) && (c = open_master(r, host, port)) != NULL) {
        return c;
    }
    if (!discover(r, host, sizeof(host), &port)) {
        return NULL;
    }
    if ((c = open_master(r, host, port)) == NULL) {
        ot_redis_sentinel_forget(r);
    }
    return c;
}

/* ---- +switch-master ------------------------------------------------------------------------- */

redisContext *ot_redis_sentinel_watch(ot_redis_t *r)
{
    const char *argv[] = { "SUBSCRIBE", "+switch-master" };
    redisContext *c;
    redisReply *reply;
    int i, ok;

    for (i = 0; i < r->conf.n_sentinels; i++) {
        c = ot_redis_open(r, r->conf.sentinels[i].host, r->conf.sentinels[i].port, 0);
        if (c == NULL) {
            continue;
        }
        reply = ot_redis_command(c, 2, argv);
        ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
            && reply->element[0]->type == REDIS_REPLY_STRING
            && strcmp(reply->element[0]->str, "subscribe") == 0;
        if (reply) {
            freeReplyObject(reply);
        }
        if (ok) {
            return c;
        }
        redisFree(c);
    }
    return NULL;
}

/** "<name> <old ip> <old port> <new ip> <new port>": record the new master if name is ours. */
static int switched(ot_redis_t *r, const redisReply *m)
{
    char buf[600], *f[5], *last = NULL;
    int i, port;

    if (m->type != REDIS_REPLY_STRING || m->len >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, m->str, m->len);
    buf[m->len] = '\0';
    for (i = 0; i < 5; i++) {
        if ((f[i] = apr_strtok(i == 0 ? buf : NULL, " ", &last)) == NULL) {
            return 0;
        }
    }
    port = atoi(f[4]);
    if (strcmp(f[0], r->conf.master) != 0 || port < 1 || port > 65535
        || strlen(f[3]) >= sizeof(r->master_host)) {
        return 0;
    }
    set_master(r, f[3], port);
    return 1;
}

int ot_redis_sentinel_heard(ot_redis_t *r, redisContext *w, apr_size_t *fed, int *moved)
{
    void *v = NULL;
    redisReply *reply;

    *moved = 0;
    if (ot_redis_feed(w, fed) != REDIS_OK) {
        return 0;
    }
    while (ot_redis_take_fed(w, &v, fed) == REDIS_OK && v != NULL) {
        reply = v;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
            && reply->element[0]->type == REDIS_REPLY_STRING
            && strcmp(reply->element[0]->str, "message") == 0
            && switched(r, reply->element[2])) {
            *moved = 1;
        }
        freeReplyObject(reply);
        v = NULL;
    }
    /* An unfinished message longer than any +switch-master: not a Sentinel of ours. */
    if (w->err == 0 && *fed > OT_REDIS_REPLY_SMALL) {
        ot_redis_note(r, "Sentinel", "a message longer than any +switch-master");
        return 0;
    }
    return w->err == 0;
}
