/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The subscriber: one connection SUBSCRIBEd to the revocation channel, in a thread of its own.
 *
 *   connect, AUTH, SELECT, SUBSCRIBE        (the subscription is confirmed before going on)
 *   publish what waited in the queue        (revocations this process applied while cut off)
 *   read the store (tombstones and not-before policies), hand every revocation over, in the
 *   order they were applied
 *   up()                                    every revocation in force has been handed over
 *   listen: poll() the socket and a wake-up pipe; feed ot_redis_feed and take replies with
 *   ot_redis_take_fed (an unfinished reply that took over PARTIAL_MAX counts as a loss); PING
 *   every second, and a PING unanswered for 2 s counts as a loss (Redis gone silent: a
 *   partition, a hung server) as much as a closed connection does
 *   on any failure: down(), wait (backoff 100 ms doubling to 5 s, with jitter), start over;
 *   but when only reading the store fails (Redis refuses it: more than a node reads, put there
 *   by whoever can write to Redis), down() and listen anyway, trying the store again after
 *   1 s doubling to 30 s, and up() once it is read: live revocations keep arriving meanwhile
 *
 * The channel also carries key tombstones (an inactive answer replaced a positive one in Redis):
 * handed over live through key_dead(), never stored, so never read when catching up.
 *
 * With Sentinel, a second connection, to a Sentinel, is SUBSCRIBEd to +switch-master (opened
 * when missing, retried after 1 s doubling to 30 s, kept across reconnections). A switch of our
 * master ends the subscription (and a nap) at once: the subscriber starts over on the new master
 * and catches up there, exactly as after an outage.
 *
 * Nothing here reads with a timeout (hiredis 0.14 would leave the context in error for good):
 * poll() says when there is something to read. A revocation published before the SUBSCRIBE was
 * processed is in the store (it is stored before it is published, in one MULTI), so the store
 * read after the subscription was confirmed, plus what arrives on the channel, covers
 * everything: that is what up() promises.
 *
 * ot_redis_sub_stop() sets a flag, writes to the pipe and shuts the socket down, so that a
 * poll(), a nap or a blocking read in progress returns at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <apr_strings.h>

#include "ot_redis_int.h"

#define PING_EVERY apr_time_from_sec(1)
#define PING_WAIT apr_time_from_sec(2)
#define NAP_MIN apr_time_from_msec(100)
#define NAP_MAX apr_time_from_sec(5)
/**
 * Most bytes of an unfinished reply the subscriber buffers: a message is at most
 * OT_REDIS_REV_MAX, so more is someone with write access to Redis publishing junk, and the
 * connection is dropped (and made again) rather than the junk read whole.
 */
#define PARTIAL_MAX (64 * 1024)

struct ot_redis_sub_t {
    ot_redis_t *r;
    ot_redis_sub_fns_t fns;
    void *baton;
    apr_pool_t *pool;
    int wake[2];                   /**< self-pipe: stop writes, the loop polls */
    apr_thread_mutex_t *mutex;     /**< guards fd */
    int fd;                        /**< the subscribed socket, -1 when none */
    int stopping;                  /**< atomic */
    apr_time_t ping_sent;          /**< when the unanswered PING went out; 0 when none */
    apr_uint32_t seed;             /**< for the jitter */
    redisContext *watch;           /**< Sentinel: subscribed to +switch-master, or NULL */
    apr_size_t watch_fed;          /**< bytes of the watch's unfinished message (ot_redis_feed) */
    apr_size_t fed;                /**< bytes of the subscription's unfinished reply */
    apr_time_t watch_tried;        /**< when a watch connection was last tried */
    apr_interval_time_t watch_every; /**< between tries: 1 s, doubling to 30 s while failing */
    int behind;                    /**< subscribed, but the store could not be read yet */
    apr_time_t catch_up_at;        /**< when behind: the next try to read the store */
    apr_interval_time_t catch_up_every; /**< between tries: 1 s, doubling to 30 s */
};

static int stopping(ot_redis_sub_t *s)
{
    return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

static apr_status_t close_pipe(void *baton)
{
    ot_redis_sub_t *s = baton;

    close(s->wake[0]);
    close(s->wake[1]);
    return APR_SUCCESS;
}

apr_status_t ot_redis_sub_create(ot_redis_sub_t **ps, ot_redis_t *r,
                                 const ot_redis_sub_fns_t *fns, void *baton, apr_pool_t *p)
{
    ot_redis_sub_t *s = apr_pcalloc(p, sizeof(*s));
    apr_status_t rv;
    int i;

    s->r = r;
    s->fns = *fns;
    s->baton = baton;
    s->pool = p;
    s->fd = -1;
    s->watch_every = apr_time_from_sec(1);
    s->seed = (apr_uint32_t)getpid() ^ (apr_uint32_t)apr_time_now();
    if ((rv = apr_thread_mutex_create(&s->mutex, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS) {
        return rv;
    }
    if (pipe(s->wake) != 0) {
        return errno;
    }
    for (i = 0; i < 2; i++) {
        fcntl(s->wake[i], F_SETFD, FD_CLOEXEC);
        fcntl(s->wake[i], F_SETFL, O_NONBLOCK);
    }
    apr_pool_cleanup_register(p, s, close_pipe, apr_pool_cleanup_null);
    *ps = s;
    return APR_SUCCESS;
}

void ot_redis_sub_stop(ot_redis_sub_t *s)
{
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    if (write(s->wake[1], "x", 1) < 0) {
        /* Full: a wake-up is already pending. */
    }
    apr_thread_mutex_lock(s->mutex);
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_RDWR);
    }
    apr_thread_mutex_unlock(s->mutex);
}

static void set_fd(ot_redis_sub_t *s, int fd)
{
    apr_thread_mutex_lock(s->mutex);
    s->fd = fd;
    apr_thread_mutex_unlock(s->mutex);
}

/**
 * Sentinel: watch for +switch-master when not watching yet; after a failed try, not again for
 * 1 s, doubling to 30 s (a try may block for the connect timeout of each Sentinel).
 */
static void watch(ot_redis_sub_t *s)
{
    apr_time_t now = apr_time_now();

    if (s->r->conf.master == NULL || s->watch != NULL || now - s->watch_tried < s->watch_every) {
        return;
    }
    s->watch_tried = now;
    s->watch = ot_redis_sentinel_watch(s->r);
    s->watch_fed = s->watch ? ot_redis_buffered(s->watch) : 0;
    s->watch_every = s->watch ? apr_time_from_sec(1)
        : s->watch_every * 2 > apr_time_from_sec(30) ? apr_time_from_sec(30) : s->watch_every * 2;
}

/** What the watch connection brought: 1 when our master moved. */
static int heard(ot_redis_sub_t *s)
{
    int moved = 0;

    if (!ot_redis_sentinel_heard(s->r, s->watch, &s->watch_fed, &moved)) {
        redisFree(s->watch);
        s->watch = NULL;
    }
    return moved;
}

/**
 * Wait until fd (or -1: nothing) is readable, the pipe is, or `until` passes. 1: fd readable;
 * 0: time is up; -1: stopping; 2: a Sentinel said our master moved.
 */
static int wait_for(ot_redis_sub_t *s, int fd, apr_time_t until)
{
    struct pollfd pf[3];
    apr_interval_time_t left;
    int n, i;

    for (;;) {
        left = until - apr_time_now();
        pf[0].fd = s->wake[0];
        pf[1].fd = fd;
        pf[2].fd = s->watch ? s->watch->fd : -1;
        for (i = 0; i < 3; i++) {
            pf[i].events = POLLIN;
            pf[i].revents = 0;
        }
        n = poll(pf, 3, left > 0 ? (int)((left + 999) / 1000) : 0);
        if (stopping(s) || (n > 0 && pf[0].revents)) {
            return -1;
        }
        if (n > 0 && pf[2].revents && heard(s)) {
            return 2;
        }
        if (n <= 0 || pf[1].revents) {
            return n > 0 ? 1 : 0;
        }
        /* Only the watch spoke: one that never stops (a Sentinel not ours) must not keep the
         * wait past its time, or the subscriber would never try Redis again. */
        if (apr_time_now() >= until) {
            return 0;
        }
    }
}

/** Write what hiredis has buffered; 1 when all of it went. */
static int flush(redisContext *c)
{
    int done = 0;

    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            return 0;
        }
    }
    return 1;
}

/* ---- replies ------------------------------------------------------------------------------- */

/** 1 when reply is a push of this kind ("message", "subscribe", "pong"). */
static int is_push(const redisReply *reply, const char *kind)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
        && reply->element[0]->type == REDIS_REPLY_STRING
        && strcasecmp(reply->element[0]->str, kind) == 0;
}

/** One message on the channel: a revocation or a key tombstone (told apart by version byte). */
static void message(ot_redis_sub_t *s, const redisReply *m, apr_pool_t *p)
{
    ot_redis_rev_t rev;
    ot_redis_ktomb_t k;

    if (m->type == REDIS_REPLY_STRING && m->len > 0
        && (unsigned char)m->str[0] == OT_REDIS_KTOMB_VERSION
        && ot_redis_ktomb_open(s->r, m->str, m->len, &k, p) == APR_SUCCESS) {
        if (s->fns.key_dead) {
            s->fns.key_dead(s->baton, &k, p);
        }
    }
    else if (m->type == REDIS_REPLY_STRING
             && ot_redis_rev_open(s->r, m->str, m->len, &rev, p) == APR_SUCCESS) {
        s->fns.revoked(s->baton, &rev, p);
    }
    else {
        ot_redis_note(s->r, "message", "a published revocation failed its MAC check");
    }
}

/** One reply on the subscribed connection; 0 when it says something went wrong. */
static int handle(ot_redis_sub_t *s, const redisReply *reply, apr_pool_t *p)
{
    if (is_push(reply, "message") && reply->elements == 3) {
        message(s, reply->element[2], p);
        return 1;
    }
    if (is_push(reply, "pong")) {
        s->ping_sent = 0;
        return 1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        ot_redis_note(s->r, "subscription", reply->str);
        return 0;
    }
    return 1;
}

/**
 * Read what arrived and handle every complete reply (allocating from tmp); 0 on failure, with
 * *why from p.
 */
static int drain(ot_redis_sub_t *s, redisContext *c, int *subscribed, const char **why,
                 apr_pool_t *tmp, apr_pool_t *p)
{
    void *reply = NULL;
    int ok = 1;

    if (ot_redis_feed(c, &s->fed) != REDIS_OK) {
        *why = apr_pstrdup(p, c->errstr);
        return 0;
    }
    while (ok && ot_redis_take_fed(c, &reply, &s->fed) == REDIS_OK && reply != NULL) {
        if (subscribed && is_push(reply, "subscribe")) {
            *subscribed = 1;
        }
        ok = handle(s, reply, tmp);
        freeReplyObject(reply);
        reply = NULL;
    }
    if (c->err) {
        *why = apr_pstrdup(p, c->errstr);
        return 0;
    }
    /* Not the unparsed bytes: an unfinished array's elements are parsed, and their bytes
     * dropped, as they come (ot_redis_feed). */
    if (ok && s->fed > PARTIAL_MAX) {
        *why = "a message on the channel is longer than any revocation";
        ot_redis_note(s->r, "subscription", *why);
        return 0;
    }
    if (!ok) {
        *why = "Redis answered with an error";
    }
    return ok;
}

/* ---- the phases ---------------------------------------------------------------------------- */

/** Connect and subscribe; the context once the subscription is confirmed, else NULL. */
static redisContext *subscribe(ot_redis_sub_t *s, const char **why, apr_pool_t *p)
{
    redisContext *c = ot_redis_connect(s->r);
    apr_time_t sent = apr_time_now(), deadline = sent + 2 * PING_WAIT;
    apr_pool_t *round;
    int subscribed = 0, ready;

    if (c == NULL) {
        *why = ot_redis_last_error(s->r, p);
        return NULL;
    }
    /* What each read brings is handled in a pool of its own, as when listening: a server that
     * is not ours could send messages, each copied to check its MAC, until the deadline. */
    apr_pool_create(&round, p);
    set_fd(s, c->fd);
    s->fed = ot_redis_buffered(c);
    redisAppendCommand(c, "SUBSCRIBE %s", s->r->channel);
    if (!flush(c)) {
        *why = apr_pstrdup(p, c->errstr);
    }
    while (*why == NULL && !subscribed) {
        ready = wait_for(s, c->fd, deadline);
        if (ready < 0) {
            *why = "stopping";
        }
        else if (ready == 0) {
            *why = "no answer to SUBSCRIBE";
        }
        else if (ready == 2) {
            *why = "Sentinel switched the master";
        }
        else {
            drain(s, c, &subscribed, why, round, p);
            apr_pool_clear(round);
        }
    }
    apr_pool_destroy(round);
    if (*why != NULL) {
        set_fd(s, -1);
        redisFree(c);
        return NULL;
    }
    return c;
}

/** Publish what waited, hand over what is stored; 1 when caught up. */
static int catch_up(ot_redis_sub_t *s, const char **why, apr_pool_t *p)
{
    apr_array_header_t *revs;
    int i;

    ot_redis_mark_up(s->r);
    if (ot_redis_flush_pending(s->r, apr_time_now()) != APR_SUCCESS
        || ot_redis_stored(s->r, &revs, apr_time_now(), p) != APR_SUCCESS) {
        *why = ot_redis_last_error(s->r, p);
        return 0;
    }
    for (i = 0; i < revs->nelts; i++) {
        s->fns.revoked(s->baton, &APR_ARRAY_IDX(revs, i, ot_redis_rev_t), p);
    }
    return 1;
}

/** Subscribed, but the store could not be read: say so, listen anyway, try again later. */
static void fall_behind(ot_redis_sub_t *s, const char *why)
{
    s->fns.down(s->baton, why ? why : "catching up failed");
    s->behind = 1;
    s->catch_up_every = apr_time_from_sec(1);
    s->catch_up_at = apr_time_now() + s->catch_up_every;
}

/** While behind: read the store again when it is time (in a pool of its own); up() once read. */
static void retry_catch_up(ot_redis_sub_t *s, apr_time_t now, apr_pool_t *p)
{
    apr_pool_t *tmp;
    const char *why = NULL;

    if (!s->behind || now < s->catch_up_at) {
        return;
    }
    apr_pool_create(&tmp, p);
    if (catch_up(s, &why, tmp)) {
        s->behind = 0;
        s->fns.up(s->baton);
    }
    else {
        s->catch_up_every = s->catch_up_every * 2 > apr_time_from_sec(30)
            ? apr_time_from_sec(30) : s->catch_up_every * 2;
        s->catch_up_at = apr_time_now() + s->catch_up_every;
    }
    apr_pool_destroy(tmp);
}

/** Every second: a PING, and what is still queued. 0 when the last PING went unanswered. */
static int tick(ot_redis_sub_t *s, redisContext *c, apr_time_t now, const char **why,
                apr_pool_t *p)
{
    watch(s);                           /* first: it may block, and the PING is not sent yet */
    if (s->ping_sent && now - s->ping_sent >= PING_WAIT) {
        *why = "no answer to PING";
        return 0;
    }
    if (!s->ping_sent) {
        redisAppendCommand(c, "PING");
        if (!flush(c)) {
            *why = apr_pstrdup(p, c->errstr);
            return 0;
        }
        s->ping_sent = apr_time_now();
    }
    if (ot_redis_pending(s->r) > 0) {
        ot_redis_flush_pending(s->r, now);
    }
    retry_catch_up(s, now, p);
    return 1;
}

/** Listen until something fails (*why) or the subscriber stops. */
static void listen_loop(ot_redis_sub_t *s, redisContext *c, const char **why, apr_pool_t *p)
{
    apr_pool_t *round;
    apr_time_t next = apr_time_now() + PING_EVERY, now;
    int ready;

    apr_pool_create(&round, p);
    s->ping_sent = 0;
    while (*why == NULL) {
        now = apr_time_now();
        if (now >= next) {
            if (!tick(s, c, now, why, p)) {
                break;
            }
            next = apr_time_now() + PING_EVERY;   /* time to read the answer, whatever tick took */
        }
        ready = wait_for(s, c->fd, next);
        if (ready < 0) {
            *why = "stopping";
        }
        else if (ready == 2) {
            *why = "Sentinel switched the master";
        }
        else if (ready > 0) {
            drain(s, c, NULL, why, round, p);
        }
        apr_pool_clear(round);
    }
    apr_pool_destroy(round);
}

/** Pause between attempts: d with ±25% jitter, cut short by a stop. */
static void nap(ot_redis_sub_t *s, apr_interval_time_t d)
{
    s->seed = s->seed * 1103515245u + 12345u;
    d = d * 3 / 4 + (apr_interval_time_t)((s->seed >> 8) % (apr_uint32_t)(d / 2 + 1));
    watch(s);
    wait_for(s, -1, apr_time_now() + d);
}

void ot_redis_sub_run(ot_redis_sub_t *s)
{
    apr_interval_time_t backoff = NAP_MIN;
    apr_pool_t *p;
    redisContext *c;
    const char *why;

    apr_pool_create(&p, s->pool);
    while (!stopping(s)) {
        why = NULL;
        c = subscribe(s, &why, p);
        s->behind = 0;
        if (c != NULL && catch_up(s, &why, p)) {
            s->fns.up(s->baton);
            backoff = NAP_MIN;
            listen_loop(s, c, &why, p);
        }
        else if (c != NULL && c->err == 0) {
            fall_behind(s, why);          /* the store, not the subscription, failed */
            why = NULL;
            listen_loop(s, c, &why, p);
        }
        if (c != NULL) {
            set_fd(s, -1);
            redisFree(c);
        }
        if (stopping(s)) {
            break;
        }
        s->fns.down(s->baton, why ? why : "unknown");
        apr_pool_clear(p);
        nap(s, backoff);
        backoff = backoff * 2 > NAP_MAX ? NAP_MAX : backoff * 2;
    }
    if (s->watch != NULL) {
        redisFree(s->watch);
        s->watch = NULL;
    }
    apr_pool_destroy(p);
}
