/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * What a Sentinel sends (fuzz-requires: hiredis), and the URLs that name Sentinels. The input is
 * an OfftokRedis URL, '\n', then raw RESP bytes as a Sentinel's pub/sub connection would carry
 * them (+switch-master messages, anything else). The URL goes through ot_redis_parse_url; the
 * bytes are written into one end of a socket pair whose other end is a hiredis context, read
 * with ot_redis_sentinel_heard as the subscriber does, until the end of the input; and again with
 * ot_redis_read, as every reply to a command is read (a Redis or a Sentinel not ours).
 *
 * Must hold: an accepted URL names a host or 1 to 16 Sentinels, every port in 1..65535, no
 * credentials; a switch is taken only for our master's name, and the master it records is a
 * host and a port in range; a read that fails says why.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "ot_redis_int.h"

#define MASTER "mymaster"

static ot_redis_t *sentinel_client(void)
{
    static ot_redis_t *r;
    static apr_pool_t *p;
    ot_redis_conf_t conf;

    if (r == NULL) {
        apr_pool_create(&p, NULL);
        memset(&conf, 0, sizeof(conf));
        fuzz_require(ot_redis_parse_url(&conf, "redis-sentinel://127.0.0.1:1/" MASTER, p)
                     == NULL, "the client's URL");
        conf.key = "fuzz-key-of-at-least-16-bytes";
        conf.key_len = strlen(conf.key);
        fuzz_require(ot_redis_create(&r, &conf, 1, NULL, p) == APR_SUCCESS, "ot_redis_create");
    }
    return r;
}

static void url(const char *s, apr_pool_t *p)
{
    ot_redis_conf_t conf;
    int i;

    memset(&conf, 0, sizeof(conf));
    if (ot_redis_parse_url(&conf, s, p) != NULL) {
        return;
    }
    if (conf.master == NULL) {
        fuzz_require(conf.host && *conf.host && conf.port >= 1 && conf.port <= 65535, "host");
        return;
    }
    fuzz_require(*conf.master && strpbrk(conf.master, "/@:?# ") == NULL, "master name");
    fuzz_require(conf.n_sentinels >= 1 && conf.n_sentinels <= OT_REDIS_SENTINELS_MAX, "count");
    for (i = 0; i < conf.n_sentinels; i++) {
        fuzz_require(*conf.sentinels[i].host && strpbrk(conf.sentinels[i].host, "/@,") == NULL
                     && conf.sentinels[i].port >= 1 && conf.sentinels[i].port <= 65535,
                     "a Sentinel");
    }
}

/** 1 when what (a string) occurs in bytes[0..n). */
static int contains(const char *bytes, apr_size_t n, const char *what)
{
    apr_size_t i, k = strlen(what);

    for (i = 0; i + k <= n; i++) {
        if (memcmp(bytes + i, what, k) == 0) {
            return 1;
        }
    }
    return 0;
}

/**
 * A connection whose server has sent bytes and closed its side (sv[1] is the caller's to close),
 * bounded as every connection of the module's is (ot_redis_open).
 */
static redisContext *connection_of(const char *bytes, apr_size_t n, int sv[2])
{
    redisContext *c;

    fuzz_require(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    fuzz_require(write(sv[1], bytes, n) == (ssize_t)n, "write");
    shutdown(sv[1], SHUT_WR);
    c = redisConnectFd(sv[0]);
    fuzz_require(c != NULL && c->err == 0, "redisConnectFd");
    fuzz_require(ot_redis_bound_arrays(c), "ot_redis_bound_arrays");
    return c;
}

static void heard(const char *bytes, apr_size_t n, apr_pool_t *p)
{
    ot_redis_t *r = sentinel_client();
    redisContext *c;
    const char *m, *colon;
    apr_size_t fed = 0;
    int sv[2], moved, any = 0;

    ot_redis_sentinel_forget(r);
    c = connection_of(bytes, n, sv);
    while (ot_redis_sentinel_heard(r, c, &fed, &moved)) {
        any |= moved;
    }
    any |= moved;
    m = ot_redis_master(r, p);
    fuzz_require(any == (m != NULL), "a master is recorded exactly when a switch was taken");
    if (m != NULL) {
        fuzz_require(contains(bytes, n, MASTER " "), "our master's name");
        colon = strrchr(m, ':');
        fuzz_require(colon != NULL && colon > m && atoi(colon + 1) >= 1
                     && atoi(colon + 1) <= 65535, "host:port");
    }
    redisFree(c);
    close(sv[1]);
}

/** The bytes as replies to commands: ot_redis_read each, as pipeline() does, until it fails. */
static void replies(const char *bytes, apr_size_t n)
{
    redisContext *c;
    redisReply *reply;
    apr_size_t budget = OT_REDIS_REPLY_SMALL;
    int sv[2];

    c = connection_of(bytes, n, sv);
    for (;;) {
        if (ot_redis_read(c, &reply, &budget) != REDIS_OK) {
            break;
        }
        freeReplyObject(reply);
    }
    fuzz_require(c->err != 0, "a failed read says why");
    redisFree(c);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_begin();
    const uint8_t *nl = memchr(data, '\n', size);
    apr_size_t first = nl ? (apr_size_t)(nl - data) : size;

    if (size > 65536) {
        fuzz_end();
        return 0;
    }
    url(fuzz_cstr(data, first), p);
    if (nl != NULL) {
        heard(fuzz_bytes(nl + 1, size - first - 1), size - first - 1, p);
        replies(fuzz_bytes(nl + 1, size - first - 1), size - first - 1);
    }
    fuzz_end();
    return 0;
}
