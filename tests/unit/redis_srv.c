/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <apr_strings.h>

#include "ot_unit.h"
#include "ot_redis.h"
#include "redis_srv.h"

redis_srv_t redis_shared;

int redis_available(void)
{
    static int have = -1;

    if (have < 0) {
        have = system("command -v redis-server >/dev/null 2>&1") == 0;
        if (!have) {
            fprintf(stderr, "SKIPPED: redis-server is not installed, so the tests against a live "
                    "Redis pass without running (apt-get install redis-server)\n");
        }
    }
    return have;
}

int redis_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

redisContext *redis_raw(int port)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

static void srv_exec(const redis_srv_t *sv, const char *pass)
{
    char port[16];

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) {
        _exit(127);
    }
    snprintf(port, sizeof(port), "%d", sv->port);
    if (pass) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--dir", sv->dir, "--requirepass", pass, (char *)NULL);
    }
    execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", sv->dir, (char *)NULL);
    _exit(127);
}

int redis_srv_start(redis_srv_t *sv, int port, const char *pass)
{
    redisContext *c = NULL;
    int i;

    if (!redis_available()) {
        return 0;
    }
    if (sv->dir[0] == '\0') {
        strcpy(sv->dir, "/tmp/ot-unit-redis-XXXXXX");
        ck_assert(mkdtemp(sv->dir) != NULL);
    }
    sv->port = port ? port : redis_free_port();
    sv->pid = fork();
    if (sv->pid == 0) {
        srv_exec(sv, pass);
    }
    for (i = 0; i < 250 && (c = redis_raw(sv->port)) == NULL; i++) {
        usleep(20000);
    }
    ck_assert_msg(c != NULL, "redis-server did not start on port %d", sv->port);
    redisFree(c);
    return 1;
}

void redis_srv_stop(redis_srv_t *sv)
{
    if (sv->pid > 0) {
        kill(sv->pid, SIGKILL);
        waitpid(sv->pid, NULL, 0);
        sv->pid = 0;
    }
}

void redis_shared_start(void)
{
    signal(SIGPIPE, SIG_IGN);
    redis_srv_start(&redis_shared, 0, NULL);
}

void redis_shared_stop(void)
{
    redis_srv_stop(&redis_shared);
    if (redis_shared.dir[0]) {
        rmdir(redis_shared.dir);
        redis_shared.dir[0] = '\0';
    }
}

struct ot_redis_t *redis_client(const char *test, int port, const char *password,
                                struct ot_stats_t *stats, apr_pool_t *p)
{
    ot_redis_conf_t conf;
    ot_redis_t *r;

    memset(&conf, 0, sizeof(conf));
    conf.host = "127.0.0.1";
    conf.port = port;
    conf.password = password;
    conf.key = apr_pstrcat(p, "unit-test-key-", test, NULL);
    conf.key_len = strlen(conf.key);
    conf.command_timeout = apr_time_from_msec(300);
    ck_assert_int_eq(ot_redis_create(&r, &conf, 4, stats, p), APR_SUCCESS);
    return r;
}

ot_cache_entry_t redis_test_answer(int active, apr_time_t fetched)
{
    ot_cache_entry_t e;

    memset(&e, 0, sizeof(e));
    e.fetched = fetched;
    e.drop_after = fetched + apr_time_from_sec(300);
    e.active = active;
    if (active) {
        e.iss = REDIS_TEST_ISS;
        e.sub = "alice";
        e.claims = "{\"active\":true}";
        e.claims_len = strlen(e.claims);
    }
    return e;
}
