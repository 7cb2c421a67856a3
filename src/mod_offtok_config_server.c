/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * The server-wide directives' handlers, registered in mod_offtok_config.c's command table (as
 * every directive is). Each is read in the main server's configuration only (GLOBAL_ONLY) and
 * checked when it is read, so that `apachectl -t` names a typo:
 *
 *   OfftokCacheSize         bytes of the shared segment
 *   OfftokIssuerMaxPending  requests that may wait on the issuer at once in one process
 *   OfftokDPoPReplaySize    proofs the shared replay table holds
 *   OfftokMissRate          issuer calls for unknown tokens per client address
 *   OfftokIssuerMaxRate     issuer calls for the whole server
 *   OfftokRedis, OfftokRedisUser, OfftokRedisPassword, OfftokRedisKey
 *                           the Redis tier (its check_config is mod_offtok_redis.c's); where
 *                           hiredis is absent, one handler refuses the four with a clear message
 */
#include <stdlib.h>
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "mod_offtok.h"
#include "ot_replay.h"
#include "ot_util.h"
#ifdef HAVE_HIREDIS
#include "ot_redis.h"
#endif

/**
 * The main server's configuration, where every directive of this file goes; *err says so when
 * cmd stands anywhere else (a <VirtualHost>, a <Location>, ...).
 */
static offtok_srv_conf *global_conf(cmd_parms *cmd, const char **err)
{
    *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    return ap_get_module_config(cmd->server->module_config, &offtok_module);
}

const char *offtok_set_cache_size(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err;
    offtok_srv_conf *sc = global_conf(cmd, &err);

    if (err) {
        return err;
    }
    err = ot_parse_size(arg, (apr_size_t)1 << 20, (apr_size_t)64 << 30, &sc->cache_size,
                        cmd->pool);
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

/** The whole numbers offtok_set_count reads: the range, and what its refusal calls a value. */
static const struct {
    long min, max;
    const char *what;
} counts[] = {
    { 1, 100000, "a number" },                                            /* pending */
    { OT_REPLAY_SLOTS_MIN, OT_REPLAY_SLOTS_MAX, "a number of proofs" },   /* replay */
};

const char *offtok_set_count(cmd_parms *cmd, void *dc, const char *arg)
{
    int replay = cmd->info != NULL;
    const char *err;
    offtok_srv_conf *sc = global_conf(cmd, &err);
    char *end;
    long v;

    if (err) {
        return err;
    }
    v = strtol(arg, &end, 10);
    if (end == arg || *end || v < counts[replay].min || v > counts[replay].max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not %s from %ld to %ld", cmd->cmd->name,
                            arg, counts[replay].what, counts[replay].min, counts[replay].max);
    }
    if (replay) {
        sc->dpop_replay_size = (apr_uint32_t)v;
    }
    else {
        sc->max_pending = (int)v;
    }
    return NULL;
}

const char *offtok_set_rate(cmd_parms *cmd, void *dc, const char *rate, const char *burst)
{
    int miss = cmd->info != NULL;
    const char *err;
    offtok_srv_conf *sc = global_conf(cmd, &err);

    if (err) {
        return err;
    }
    err = ot_rate_parse(miss ? &sc->miss_rate : &sc->issuer_rate, rate, burst, cmd->pool);
    if (err) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    *(miss ? &sc->miss_rate_set : &sc->issuer_rate_set) = 1;
    return NULL;
}

#ifdef HAVE_HIREDIS
/* ---- the Redis tier (mod_offtok_redis.c), where hiredis is ---------------------------------- */

/** Shortest OfftokRedisKey. */
#define REDIS_KEY_MIN 16

const char *offtok_set_redis(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err;
    offtok_srv_conf *sc = global_conf(cmd, &err);
    ot_redis_conf_t conf;

    if (err == NULL && (err = ot_redis_parse_url(&conf, arg, cmd->pool)) == NULL) {
        sc->redis_url = arg;
        return NULL;
    }
    return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
}

const char *offtok_set_redis_password(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err;
    offtok_srv_conf *sc = global_conf(cmd, &err);

    if (err == NULL && (sc->redis_password = ot_secret_resolve(arg, &err, cmd->pool)) != NULL) {
        return NULL;
    }
    return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
}

const char *offtok_set_redis_user(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err, *q;
    offtok_srv_conf *sc = global_conf(cmd, &err);

    for (q = arg; err == NULL && *q; q++) {
        if (!apr_isgraph(*q)) {
            err = "a Redis user name has no spaces or control characters";
        }
    }
    if (err == NULL && *arg == '\0') {
        err = "an empty user name";
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    sc->redis_user = arg;
    return NULL;
}

const char *offtok_set_redis_key(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err, *key;
    offtok_srv_conf *sc = global_conf(cmd, &err);

    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (strncmp(arg, "env:", 4) != 0 && strncmp(arg, "file:", 5) != 0) {
        return apr_psprintf(cmd->pool, "%s: give the key as env:VAR or file:PATH, not in the "
                            "configuration itself", cmd->cmd->name);
    }
    if ((key = ot_secret_resolve(arg, &err, cmd->pool)) == NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (strlen(key) < REDIS_KEY_MIN) {
        return apr_psprintf(cmd->pool, "%s: the key is shorter than %d bytes (e.g. openssl rand "
                            "-hex 32 > key)", cmd->cmd->name, REDIS_KEY_MIN);
    }
    sc->redis_key = key;
    return NULL;
}
#else
const char *offtok_refuse_redis(cmd_parms *cmd, void *dc, const char *arg)
{
    return apr_psprintf(cmd->pool, "%s: this build of mod_offtok has no Redis support (it was "
                        "built without hiredis: install libhiredis-dev and build it again)",
                        cmd->cmd->name);
}
#endif
