/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Once across all nodes: ids that must be accepted a single time wherever they arrive
 * (back-channel logout jtis, Keycloak action ids, and later DPoP proof jtis).
 *
 *   SET offtok:<kid>:once:<hex HMAC(k_name, "once" 0 table 0 iss 0 id)> <marker> NX EX <s>
 *   GET (the same name)
 *
 * "OK" means this node is the first; a nil reply means some node set it before, and the GET
 * says with what. The name is keyed like an answer's (k_name), so Redis shows neither the id
 * nor the issuer, and the table label keeps a jti of one kind from colliding with an id of
 * another. The marker is an HMAC of the name under k_mac: whoever can write to Redis without
 * the key cannot mark an id as seen before it arrives (a value that is not the marker counts
 * as not seen), only delete a marker (then only the local table stops a replay on that node).
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ot_redis_int.h"

#define LABEL "once"
#define MARKER_LABEL "once-marker"
/** Hex digits of the marker (128 bits). */
#define MARKER_LEN 32

/** The value that says "seen" for name: HMAC(k_mac, label 0 name), 32 hex digits. */
static void marker(char out[MARKER_LEN + 1], const ot_redis_t *r, const char *name,
                   apr_pool_t *p)
{
    unsigned char d[OT_SHA256_LEN];
    unsigned int n = sizeof(d);
    const char *msg = apr_pstrcat(p, MARKER_LABEL, "|", name, NULL);

    HMAC(EVP_sha256(), r->k_mac, (int)sizeof(r->k_mac), (const unsigned char *)msg, strlen(msg),
         d, &n);
    ot_hex(out, d, MARKER_LEN / 2);
}

const char *ot_redis_once_name(const ot_redis_t *r, const char *table, const char *iss,
                               const char *id, apr_pool_t *p)
{
    const char *parts[] = { LABEL, table, iss ? iss : "", id };
    unsigned char d[OT_SHA256_LEN], *buf, *b;
    unsigned int n = sizeof(d);
    char hex[2 * OT_SHA256_LEN + 1];
    apr_size_t i, len = 0, l;

    for (i = 0; i < 4; i++) {
        len += strlen(parts[i]) + 1;
    }
    b = buf = apr_palloc(p, len);
    for (i = 0; i < 4; i++) {
        l = strlen(parts[i]) + 1;       /* with its NUL: no two lists give the same bytes */
        memcpy(b, parts[i], l);
        b += l;
    }
    HMAC(EVP_sha256(), r->k_name, (int)sizeof(r->k_name), buf, len, d, &n);
    ot_hex(hex, d, sizeof(d));
    return apr_pstrcat(p, "offtok:", r->kid, ":once:", hex, NULL);
}

/** What a nil SET found under the name: APR_EEXIST for our marker, else APR_SUCCESS (noted). */
static apr_status_t judge(ot_redis_t *r, const redisReply *got, const char *mark)
{
    if (got->type == REDIS_REPLY_STRING && got->len == MARKER_LEN
        && CRYPTO_memcmp(got->str, mark, MARKER_LEN) == 0) {
        return APR_EEXIST;
    }
    if (got->type != REDIS_REPLY_NIL) {   /* nil: it expired between the two commands */
        ot_redis_note(r, "SET NX", "a value that is not our marker (written without "
                      "OfftokRedisKey); taken as not seen");
    }
    return APR_SUCCESS;
}

apr_status_t ot_redis_once(ot_redis_t *r, const char *table, const char *iss, const char *id,
                           apr_time_t until, apr_time_t now, apr_pool_t *p)
{
    apr_int64_t secs = (apr_int64_t)apr_time_sec(until - now + APR_USEC_PER_SEC - 1);
    const char *name;
    char ex[24], mark[MARKER_LEN + 1];
    redisReply *replies[2];
    ot_redis_cmd_t cmds[2];
    apr_status_t rv;

    if (id == NULL || *id == '\0') {
        return APR_EINVAL;
    }
    memset(cmds, 0, sizeof(cmds));
    name = ot_redis_once_name(r, table, iss, id, p);
    marker(mark, r, name, p);
    apr_snprintf(ex, sizeof(ex), "%" APR_INT64_T_FMT, secs > 0 ? secs : 1);
    ot_redis_arg_str(&cmds[0], "SET");
    ot_redis_arg_str(&cmds[0], name);
    ot_redis_arg(&cmds[0], mark, MARKER_LEN);
    ot_redis_arg_str(&cmds[0], "NX");
    ot_redis_arg_str(&cmds[0], "EX");
    ot_redis_arg_str(&cmds[0], ex);
    ot_redis_arg_str(&cmds[1], "GET");
    ot_redis_arg_str(&cmds[1], name);
    if (ot_redis_run(r, 2, cmds, replies, OT_REDIS_REPLY_SMALL) != APR_SUCCESS) {
        return APR_EAGAIN;
    }
    if (ot_redis_refused(r, replies[0], "SET NX") || ot_redis_refused(r, replies[1], "GET")) {
        rv = APR_EAGAIN;
    }
    else {
        rv = replies[0]->type == REDIS_REPLY_NIL ? judge(r, replies[1], mark) : APR_SUCCESS;
    }
    ot_redis_free_replies(2, replies);
    return rv;
}

apr_status_t ot_redis_once_forget(ot_redis_t *r, const char *table, const char *iss,
                                  const char *id, apr_pool_t *p)
{
    redisReply *reply;
    ot_redis_cmd_t cmd = { 0 };
    apr_status_t rv;

    ot_redis_arg_str(&cmd, "DEL");
    ot_redis_arg_str(&cmd, ot_redis_once_name(r, table, iss, id, p));
    if ((rv = ot_redis_run(r, 1, &cmd, &reply, OT_REDIS_REPLY_SMALL)) != APR_SUCCESS) {
        return rv;
    }
    rv = ot_redis_refused(r, reply, "DEL") ? APR_EGENERAL : APR_SUCCESS;
    ot_redis_free_replies(1, &reply);
    return rv;
}
