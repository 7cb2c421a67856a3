/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Once across all nodes: ids that must be accepted a single time wherever they arrive
 * (back-channel logout jtis, Keycloak action ids, and later DPoP proof jtis).
 *
 *   SET offtok:<kid>:once:<hex HMAC(k_name, "once" 0 table 0 iss 0 id)> 1 NX EX <seconds>
 *
 * "OK" means this node is the first; a nil reply means some node set it before. The name is
 * keyed like an answer's (k_name), so Redis shows neither the id nor the issuer, and the table
 * label keeps a jti of one kind from colliding with an id of another. The value carries
 * nothing: whoever can write to Redis can make an id look seen (a refusal, never an accept) or
 * delete it (then only the local table stops a replay on the same node).
 */
#include <string.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ot_redis_int.h"

#define LABEL "once"

const char *ot_redis_once_name(const ot_redis_t *r, const char *table, const char *iss,
                               const char *id, apr_pool_t *p)
{
    static const char digits[] = "0123456789abcdef";
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
    for (i = 0; i < sizeof(d); i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * sizeof(d)] = '\0';
    return apr_pstrcat(p, "offtok:", r->kid, ":once:", hex, NULL);
}

apr_status_t ot_redis_once(ot_redis_t *r, const char *table, const char *iss, const char *id,
                           apr_time_t until, apr_time_t now, apr_pool_t *p)
{
    apr_int64_t secs = (apr_int64_t)apr_time_sec(until - now + APR_USEC_PER_SEC - 1);
    char ex[24];
    redisReply *reply;
    ot_redis_cmd_t cmd = { 0 };
    apr_status_t rv;

    if (id == NULL || *id == '\0') {
        return APR_EINVAL;
    }
    apr_snprintf(ex, sizeof(ex), "%" APR_INT64_T_FMT, secs > 0 ? secs : 1);
    ot_redis_arg_str(&cmd, "SET");
    ot_redis_arg_str(&cmd, ot_redis_once_name(r, table, iss, id, p));
    ot_redis_arg_str(&cmd, "1");
    ot_redis_arg_str(&cmd, "NX");
    ot_redis_arg_str(&cmd, "EX");
    ot_redis_arg_str(&cmd, ex);
    if ((rv = ot_redis_run(r, 1, &cmd, &reply)) != APR_SUCCESS) {
        return APR_EAGAIN;
    }
    rv = ot_redis_refused(r, reply, "SET NX") ? APR_EAGAIN
        : reply->type == REDIS_REPLY_NIL ? APR_EEXIST : APR_SUCCESS;
    ot_redis_free_replies(1, &reply);
    return rv;
}
