/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file rogue_srv.h
 * @brief A Redis that is not ours, for the tests of test_redis_rogue*.c: a thread of the test
 *        that listens on a loopback port, takes one connection, reads one request and answers it
 *        with what the test says (then holds the connection, or streams a body, or drips it).
 */
#ifndef ROGUE_SRV_H
#define ROGUE_SRV_H

#include <apr_thread_proc.h>
#include <hiredis/hiredis.h>

struct ot_redis_t;

/** What the rogue server streams at most before it stops on its own. */
#define ROGUE_TOTAL (64 * 1024 * 1024)

typedef struct {
    int listener;
    int port;
    const char *head;           /**< what it answers first (NULL: a gigabyte's bulk header) */
    apr_size_t head_len;
    int hold;                   /**< after head: wait for the client to hang up, not stream */
    const char *body;           /**< streamed after head, again and again (NULL: 'x's) */
    apr_size_t body_len;
    apr_size_t total;           /**< the body is streamed until this many bytes went */
    apr_size_t sent;            /**< bytes the client took before it hung up */
    volatile int hung_up;       /**< hold: the client closed the connection */
    apr_interval_time_t drip;   /**< between two sends of body (0: none) */
} rogue_t;

/** The server's thread: one connection, as rg says (for a second server on rg's listener). */
void *APR_THREAD_FUNC rogue_main(apr_thread_t *t, void *baton);

/** Start the rogue server set up in rg: listen on a free port, answer in a thread. */
apr_thread_t *rogue_run(rogue_t *rg);

/** A rogue server that answers head and then holds the connection (hold), or streams. */
apr_thread_t *rogue_answering(rogue_t *rg, const char *head, apr_size_t head_len, int hold);

/** A rogue server that answers head, then streams body again and again (total bytes). */
apr_thread_t *rogue_streaming(rogue_t *rg, const char *head, const char *body,
                              apr_size_t body_len, apr_size_t total);

/** The rogue server of the first tests: a bulk string it says is a gigabyte long, streamed. */
apr_thread_t *rogue_start(rogue_t *rg);

/** Wait for the server's thread and close its listener. */
void rogue_stop(rogue_t *rg, apr_thread_t *t);

/** n arrays of n small integers each, after a head: elements without end, each array in bound. */
char *arrays_of_integers(const char *head, int arrays, int n, apr_size_t *len);

/**
 * A Sentinel watch on port, as the subscriber makes it (ot_redis_open, so bounded as the
 * module's are), its SUBSCRIBE +switch-master written.
 */
redisContext *rogue_watch(struct ot_redis_t *r, int port);

#endif
