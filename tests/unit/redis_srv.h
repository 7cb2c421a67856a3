/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file redis_srv.h
 * @brief A redis-server of the tests' own: a loopback port, a temporary directory, nothing
 *        saved, and killed when the process that started it dies.
 */
#ifndef REDIS_SRV_H
#define REDIS_SRV_H

#include <sys/types.h>
#include <hiredis/hiredis.h>
#include <apr_pools.h>

#include "ot_entry.h"

struct ot_redis_t;
struct ot_stats_t;

typedef struct {
    pid_t pid;
    int port;
    char dir[64];
} redis_srv_t;

/** The server a test case shares: started by the runner (unchecked fixture), before forking. */
extern redis_srv_t redis_shared;
void redis_shared_start(void);
void redis_shared_stop(void);

/** 1 when redis-server is installed (says once on stderr that live tests are skipped if not). */
int redis_available(void);

/** A loopback port nobody listens on right now. */
int redis_free_port(void);

/** Start redis-server on port (0: any free one), with requirepass when pass; 1 once it answers. */
int redis_srv_start(redis_srv_t *sv, int port, const char *pass);

/** Kill it (SIGKILL: as abrupt as a crash) and wait for it. */
void redis_srv_stop(redis_srv_t *sv);

/** A raw hiredis connection, to look behind the client's back; NULL when nothing answers. */
redisContext *redis_raw(int port);

/**
 * A client of port whose OfftokRedisKey is made from `test`, so that every test has names of
 * its own on a shared server. Command timeout 300 ms; counters go to *stats.
 */
struct ot_redis_t *redis_client(const char *test, int port, const char *password,
                                struct ot_stats_t *stats, apr_pool_t *p);

/**
 * An answer to store: active ("alice" of REDIS_TEST_ISS, a small digest stand-in) or inactive,
 * fetched at `fetched` and kept 300 s.
 */
ot_cache_entry_t redis_test_answer(int active, apr_time_t fetched);

#define REDIS_TEST_ISS "https://sso.example.org/realms/test"

#endif
