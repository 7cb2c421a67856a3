/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Every directive: the command table (offtok_cmds), Redis's directives included, and the
 * handlers of the per-directory directives. Each is checked when it is read, so that
 * `apachectl -t` names a typo. The handlers of two families are beside this file:
 * mod_offtok_config_client.c (client authentication at the issuer) and
 * mod_offtok_config_server.c (the server-wide directives, Redis's among them). Fields start
 * unset and merge in mod_offtok_defaults.c.
 *
 * The generation-wide figures the directives raise as they are read (the longest OfftokCacheTTL
 * and OfftokTimeout, whether any section says OfftokAccessTokens Local) are kept here too.
 */
#include <string.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_lib.h>

#include "mod_offtok.h"
#include "ot_claims.h"
#include "ot_dpop.h"
#include "ot_util.h"

APLOG_USE_MODULE(offtok);

#define MAX_TTL 86400

/** The longest OfftokCacheTTL read in this configuration generation. */
static int longest_ttl = OT_DEFAULT_CACHE_TTL;

int offtok_longest_ttl(void)
{
    return longest_ttl;
}

/** The longest total OfftokTimeout read in this configuration generation. */
static apr_interval_time_t longest_timeout = OT_DEFAULT_TOTAL_TIMEOUT;

apr_interval_time_t offtok_longest_timeout(void)
{
    return longest_timeout;
}

/* ---- directive handlers ------------------------------------------------------------------- */

/** NULL when arg is an http(s) URL with a host and no credentials, else the error. */
static const char *check_url(cmd_parms *cmd, const char *arg)
{
    apr_uri_t uri;

    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || uri.hostname == NULL
        || uri.scheme == NULL
        || (strcasecmp(uri.scheme, "https") != 0 && strcasecmp(uri.scheme, "http") != 0)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an http:// or https:// URL",
                            cmd->cmd->name, arg);
    }
    if (uri.user || uri.password) {
        return apr_psprintf(cmd->pool, "%s: a URL with a user name or password is refused; the "
                            "issuer's credentials go in OfftokClientID and OfftokClientSecret",
                            cmd->cmd->name);
    }
    return NULL;
}

/** A checked URL into the field at cmd->info (OfftokIntrospectionURL, OfftokJWKSURL). */
static const char *set_url(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_url(cmd, arg);

    if (err == NULL) {
        *(const char **)((char *)dc + (apr_size_t)cmd->info) = arg;
    }
    return err;
}

/**
 * A client secret (OfftokClientSecret, OfftokClientFor): a literal, env:VAR or file:PATH, read now
 * (NULL, with *err, when it cannot be); *file is the path it is read again from after
 * invalid_client, or NULL.
 */
static const char *read_secret(cmd_parms *cmd, const char *arg, const char **file,
                               const char **err)
{
    *file = strncmp(arg, "file:", 5) == 0 ? arg + 5 : NULL;
    return ot_secret_resolve(arg, err, cmd->pool);
}

static const char *set_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    offtok_dir_conf *c = dc;
    const char *err;

    c->client_secret = read_secret(cmd, arg, &c->client_secret_file, &err);
    return c->client_secret ? NULL : apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
}

static const char *set_client_for(cmd_parms *cmd, void *dc, const char *azp, const char *id,
                                  const char *secret)
{
    offtok_dir_conf *c = dc;
    offtok_client_t *cl;
    const char *err;

    if (c->client_for == NULL) {
        c->client_for = apr_array_make(cmd->pool, 2, sizeof(offtok_client_t));
    }
    cl = apr_array_push(c->client_for);
    cl->azp = azp;
    cl->id = id;
    cl->secret = read_secret(cmd, secret, &cl->secret_file, &err);
    return cl->secret ? NULL : apr_psprintf(cmd->pool, "%s %s: %s", cmd->cmd->name, azp, err);
}

static const char *set_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    offtok_dir_conf *c = dc;
    apr_finfo_t fi;
    const char *path = ap_server_root_relative(cmd->pool, arg);

    if (path == NULL || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    }
    c->ca_file = path;
    return NULL;
}

static const char *set_timeout(cmd_parms *cmd, void *dc, const char *conn, const char *total)
{
    offtok_dir_conf *c = dc;
    apr_interval_time_t ct, tt = OT_DEFAULT_TOTAL_TIMEOUT;
    const char *err = ot_parse_seconds(conn, &ct, cmd->pool);

    if (err == NULL && total) {
        err = ot_parse_seconds(total, &tt, cmd->pool);
    }
    if (err) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (!total && tt < ct) {
        tt = ct;
    }
    if (tt < ct) {
        return apr_psprintf(cmd->pool, "%s: the total time (%s) is shorter than the connect "
                            "time (%s)", cmd->cmd->name, total, conn);
    }
    c->connect_timeout = ct;
    c->total_timeout = tt;
    if (tt > longest_timeout) {
        longest_timeout = tt;
    }
    return NULL;
}

/** Map arg onto one of names[] (case-insensitive); the index goes into the int at offset. */
static const char *set_keyword(cmd_parms *cmd, void *dc, const char *arg,
                               const char *const *names, int count)
{
    const char *choices = names[0];
    int i;

    for (i = 0; i < count; i++) {
        if (strcasecmp(arg, names[i]) == 0) {
            *(int *)((char *)dc + (apr_size_t)cmd->info) = i;
            return NULL;
        }
        if (i > 0) {
            choices = apr_pstrcat(cmd->pool, choices, ", ", names[i], NULL);
        }
    }
    return apr_psprintf(cmd->pool, "%s: '%s' is not one of %s", cmd->cmd->name, arg, choices);
}

static const char *set_always(cmd_parms *cmd, void *dc, const char *arg)
{
    static const char *const names[] = { "Off", "On", "Offline" };
    return set_keyword(cmd, dc, arg, names, 3);
}

static const char *set_offline(cmd_parms *cmd, void *dc, const char *arg)
{
    static const char *const names[] = { "Deny", "Allow" };
    return set_keyword(cmd, dc, arg, names, 2);
}

static const char *set_hint(cmd_parms *cmd, void *dc, const char *arg)
{
    /* Same order as ot_hint_mode_t. */
    static const char *const names[] = { "auto", "access_token", "refresh_token", "none" };
    return set_keyword(cmd, dc, arg, names, 4);
}

/** OfftokDPoP and OfftokMTLS, in the order of ot_bind_mode_t. */
static const char *set_bind_mode(cmd_parms *cmd, void *dc, const char *arg)
{
    static const char *const names[] = { "Allow", "Off", "Require" };
    return set_keyword(cmd, dc, arg, names, 3);
}

/**
 * One value of a list directive into the array at cmd->info (OfftokDPoPAlgorithms,
 * OfftokLogoutAudience, OfftokOfflineClients). A section's own lines replace what it inherits;
 * several lines in one section add up.
 */
static const char *append(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_array_header_t **list = (apr_array_header_t **)((char *)dc + (apr_size_t)cmd->info);

    if (*list == NULL) {
        *list = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(*list, const char *) = arg;
    return NULL;
}

static const char *set_dpop_alg(cmd_parms *cmd, void *dc, const char *arg)
{
    if (!ot_dpop_alg_known(arg)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not an asymmetric algorithm this module "
                            "checks (ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, "
                            "RS512; never none or HS*)", cmd->cmd->name, arg);
    }
    return append(cmd, dc, arg);
}

/** The longest OfftokDPoPMaxAge and OfftokClockSkew set in this configuration generation. */
static int longest_dpop_age = 0, longest_skew = 0;

/*
 * A section that sets neither inherits them from the sections around it, and in the end from
 * the main server's: the defaults are in effect somewhere only when the main server leaves the
 * value unset (every section then that sets none).
 */
int offtok_dpop_longest_life(server_rec *s)
{
    const offtok_dir_conf *main = ap_get_module_config(s->lookup_defaults, &offtok_module);
    int age = longest_dpop_age, skew = longest_skew;

    if (main->dpop_max_age == OFFTOK_UNSET && age < OT_DEFAULT_DPOP_MAX_AGE) {
        age = OT_DEFAULT_DPOP_MAX_AGE;
    }
    if (main->clock_skew == OFFTOK_UNSET && skew < OT_DEFAULT_CLOCK_SKEW) {
        skew = OT_DEFAULT_CLOCK_SKEW;
    }
    return age + skew + 1;
}

/**
 * A whole number of seconds into the int at cmd->info: 1..3600 (0..3600 for the skew). Never in
 * .htaccess, even where AllowOverrideList names it: the replay table's lifetime is the longest
 * read at start-up, and a directory whose file said more would accept a proof seen under
 * another section once more after its record lapsed.
 */
static const char *set_seconds(cmd_parms *cmd, void *dc, const char *arg)
{
    int *field = (int *)((char *)dc + (apr_size_t)cmd->info);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_HTACCESS);
    int *longest = strcmp(cmd->cmd->name, "OfftokClockSkew") == 0 ? &longest_skew
                   : strcmp(cmd->cmd->name, "OfftokDPoPMaxAge") == 0 ? &longest_dpop_age : NULL;

    if (err != NULL) {
        return err;
    }
    err = ot_parse_ttl(arg, 3600, field, cmd->pool);
    if (err == NULL && *field == 0 && strcmp(cmd->cmd->name, "OfftokClockSkew") != 0) {
        err = "must be at least 1";
    }
    if (err == NULL && longest != NULL && *field > *longest) {
        *longest = *field;
    }
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

/** Whether any section of this generation said OfftokAccessTokens Local. */
static int any_local = 0;

int offtok_any_local(void)
{
    return any_local;
}

apr_interval_time_t offtok_revocation_keep(void)
{
    int keep = longest_ttl;

    /* Kept beyond the longest TTL plus the timeout, for calls that queued before they started;
     * with Local, at least as long as a locally judged token may live. */
    if (any_local && keep < OT_LOCAL_MAX_LIFETIME) {
        keep = OT_LOCAL_MAX_LIFETIME;
    }
    return apr_time_from_sec(keep) + longest_timeout + OT_TOMB_MARGIN;
}

/**
 * 1 when cmd is read from a .htaccess file: in one process, at request time. The generation-wide
 * figures (longest TTL, any Local) are not raised from there, or this process would keep or trust
 * pushed revocations for longer than the process that stored them kept them.
 */
static int in_htaccess(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_HTACCESS) != NULL;
}

static const char *set_access_tokens(cmd_parms *cmd, void *dc, const char *arg)
{
    static const char *const names[] = { "Introspect", "Local" };
    const char *err = set_keyword(cmd, dc, arg, names, 2);

    if (err == NULL && ((offtok_dir_conf *)dc)->access_tokens == 1 && !in_htaccess(cmd)) {
        any_local = 1;
    }
    return err;
}

static const char *set_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    int *field = (int *)((char *)dc + (apr_size_t)cmd->info);
    const char *err = ot_parse_ttl(arg, MAX_TTL, field, cmd->pool);

    if (err) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (*field > longest_ttl && !in_htaccess(cmd)) {
        longest_ttl = *field;
    }
    return NULL;
}

static int is_token_char(char ch)
{
    return apr_isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/**
 * Headers OfftokPassHeader may not set: removing the client's copy of Content-Length or
 * Transfer-Encoding before the body is read would let the body pass for another request, and the
 * others carry credentials or steer the connection.
 */
static int is_reserved_header(const char *name)
{
    static const char *const reserved[] = {
        "Authorization", "Proxy-Authorization", "Content-Length", "Transfer-Encoding",
        "Content-Type", "Content-Encoding", "Host", "Connection", "Keep-Alive",
        "Proxy-Connection", "TE", "Trailer", "Upgrade", "Expect", "Cookie"
    };
    apr_size_t i;

    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (ot_header_name_eq(name, reserved[i])) {
            return 1;
        }
    }
    return 0;
}

static const char *set_pass_header(cmd_parms *cmd, void *dc, const char *header,
                                   const char *claim)
{
    offtok_dir_conf *c = dc;
    offtok_pass_t *ph;
    const char *ch;

    for (ch = header; *ch; ch++) {
        if (!is_token_char(*ch)) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not a valid header name",
                                cmd->cmd->name, header);
        }
    }
    if (*header == '\0' || is_reserved_header(header)) {
        return apr_psprintf(cmd->pool, "%s: '%s' cannot be used: httpd or the back end reads it "
                            "to frame, route or authenticate the request", cmd->cmd->name, header);
    }
    if (c->pass == NULL) {
        c->pass = apr_array_make(cmd->pool, 2, sizeof(offtok_pass_t));
    }
    ph = apr_array_push(c->pass);
    ph->header = header;
    ph->claim = claim;
    return NULL;
}

/** One client id of OfftokLogoutAudience or OfftokOfflineClients (see append). */
static const char *set_client_list(cmd_parms *cmd, void *dc, const char *arg)
{
    if (*arg == '\0') {
        return apr_psprintf(cmd->pool, "%s: an empty client id", cmd->cmd->name);
    }
    return append(cmd, dc, arg);
}

static const char *set_flag(cmd_parms *cmd, void *dc, int on)
{
    *(int *)((char *)dc + (apr_size_t)cmd->info) = on;
    return NULL;
}

#define DIR_OFFSET(f) ((void *)APR_OFFSETOF(offtok_dir_conf, f))
#define WHERE (RSRC_CONF | ACCESS_CONF)
#define POLICY (RSRC_CONF | ACCESS_CONF | OR_AUTHCFG)

const command_rec offtok_cmds[] = {
    AP_INIT_TAKE1("OfftokIntrospectionURL", set_url, DIR_OFFSET(url), WHERE,
                  "RFC 7662 introspection endpoint of the issuer"),
    AP_INIT_TAKE1("OfftokClientID", ap_set_string_slot, DIR_OFFSET(client_id), WHERE,
                  "client id used to authenticate to the issuer"),
    AP_INIT_TAKE1("OfftokClientSecret", set_secret, NULL, WHERE,
                  "client secret: a literal, env:VAR or file:PATH"),
    AP_INIT_TAKE3("OfftokClientFor", set_client_for, NULL, WHERE,
                  "azp client-id secret: introspect tokens of client azp with these credentials"),
    AP_INIT_TAKE1("OfftokClientAuth", offtok_set_client_auth, NULL, WHERE,
                  "client_secret_basic (default), client_secret_post, client_secret_jwt, "
                  "private_key_jwt or tls_client_auth"),
    AP_INIT_TAKE12("OfftokClientKey", offtok_set_client_key, NULL, WHERE,
                   "file:PATH [kid]: PEM private key that signs private_key_jwt assertions"),
    AP_INIT_TAKE1("OfftokClientAssertionAudience", set_url, DIR_OFFSET(assertion_aud), WHERE,
                  "aud of client assertions (default: OfftokIssuer)"),
    AP_INIT_TAKE2("OfftokClientCertificate", offtok_set_client_cert, NULL, WHERE,
                  "cert-file key-file: TLS client certificate for the issuer (tls_client_auth)"),
    AP_INIT_FLAG("OfftokSignedAnswers", set_flag, DIR_OFFSET(signed_answers), WHERE,
                 "On: ask for and require RFC 9701 signed introspection answers"),
    AP_INIT_TAKE1("OfftokCAFile", set_ca_file, NULL, WHERE,
                  "CA bundle for TLS to the issuer (default: the system trust store)"),
    AP_INIT_FLAG("OfftokSSLVerify", set_flag, DIR_OFFSET(ssl_verify), WHERE,
                 "verify the issuer's certificate and host name (default On)"),
    AP_INIT_TAKE12("OfftokTimeout", set_timeout, NULL, WHERE,
                   "connect-seconds [total-seconds] for one issuer call (default 2 5)"),
    AP_INIT_TAKE1("OfftokAlwaysValidate", set_always, DIR_OFFSET(always), POLICY,
                  "On, Off or Offline: ask the issuer on every request"),
    AP_INIT_TAKE1("OfftokCacheTTL", set_ttl, DIR_OFFSET(cache_ttl), POLICY,
                  "seconds a positive answer may be reused here (default 60)"),
    AP_INIT_TAKE1("OfftokNegativeCacheTTL", set_ttl, DIR_OFFSET(neg_ttl), POLICY,
                  "seconds an inactive answer is reused (default 10, 0 disables)"),
    AP_INIT_TAKE1("OfftokOfflineTokens", set_offline, DIR_OFFSET(offline), POLICY,
                  "Allow or Deny offline tokens here"),
    AP_INIT_TAKE1("OfftokTokenTypeHint", set_hint, DIR_OFFSET(hint_mode), POLICY,
                  "auto, access_token, refresh_token or none"),
    AP_INIT_TAKE1("OfftokIssuer", ap_set_string_slot, DIR_OFFSET(issuer), WHERE,
                  "the issuer the answer's iss must name"),
    AP_INIT_TAKE1("OfftokAudience", ap_set_string_slot, DIR_OFFSET(audience), POLICY,
                  "a value an access token's aud must contain"),
    AP_INIT_TAKE1("OfftokRemoteUserClaim", ap_set_string_slot, DIR_OFFSET(user_claim), POLICY,
                  "the claim that becomes REMOTE_USER (default sub)"),
    AP_INIT_TAKE2("OfftokPassHeader", set_pass_header, NULL, POLICY,
                  "header-name claim: set that request header from the claim"),
    AP_INIT_FLAG("OfftokForwardToken", set_flag, DIR_OFFSET(forward_token), POLICY,
                 "Off removes the Authorization header before the back end sees it"),
    AP_INIT_TAKE1("OfftokJWKSURL", set_url, DIR_OFFSET(jwks_url), WHERE,
                  "the issuer's keys (JWKS), for verifying pushed logout tokens and admin actions"),
    AP_INIT_ITERATE("OfftokLogoutAudience", set_client_list, DIR_OFFSET(logout_aud), WHERE,
                    "client-id ...: the clients whose logout tokens the back-channel logout "
                    "handler accepts (default OfftokClientID)"),
    AP_INIT_ITERATE("OfftokOfflineClients", set_client_list, DIR_OFFSET(offline_clients),
                    POLICY, "client-id ...: accept offline tokens only when issued to one of "
                    "these clients (default: any)"),
    AP_INIT_TAKE1("OfftokClockSkew", set_seconds, DIR_OFFSET(clock_skew), WHERE,
                  "seconds of leeway where a token's or proof's time meets this clock (30)"),
    AP_INIT_TAKE1("OfftokDPoP", set_bind_mode, DIR_OFFSET(dpop), POLICY,
                  "Off, Allow or Require: DPoP-bound tokens with proofs (RFC 9449)"),
    AP_INIT_ITERATE("OfftokDPoPAlgorithms", set_dpop_alg, DIR_OFFSET(dpop_algs), WHERE,
                    "proof algorithms accepted (default ES256 ES384 PS256 RS256)"),
    AP_INIT_TAKE1("OfftokDPoPMaxAge", set_seconds, DIR_OFFSET(dpop_max_age), WHERE,
                  "seconds a DPoP proof's iat may lie in the past (default 60)"),
    AP_INIT_FLAG("OfftokDPoPNonce", set_flag, DIR_OFFSET(dpop_nonce), POLICY,
                 "On requires server-provided nonces in DPoP proofs (RFC 9449 section 8)"),
    AP_INIT_TAKE1("OfftokMTLS", set_bind_mode, DIR_OFFSET(mtls), POLICY,
                  "Off, Allow or Require: certificate-bound tokens (RFC 8705) checked against "
                  "this connection's client certificate"),
    AP_INIT_TAKE1("OfftokAccessTokens", set_access_tokens, DIR_OFFSET(access_tokens), POLICY,
                  "Introspect (default) or Local: verify JWT access tokens with the issuer's keys"),
    AP_INIT_TAKE1("OfftokCacheSize", offtok_set_cache_size, NULL, RSRC_CONF,
                  "bytes of shared memory for the cache, with K/M/G (default 16M)"),
    AP_INIT_TAKE1("OfftokDPoPReplaySize", offtok_set_count, (void *)"replay", RSRC_CONF,
                  "DPoP proofs the shared replay table holds, rounded up to a power of two "
                  "(default 1048576)"),
    AP_INIT_TAKE1("OfftokIssuerMaxPending", offtok_set_count, NULL, RSRC_CONF,
                  "requests that may wait on the issuer at once in one process"),
    AP_INIT_TAKE12("OfftokMissRate", offtok_set_rate, (void *)"miss", RSRC_CONF,
                   "per-second [burst] or Off: issuer calls for unknown tokens per client address"),
    AP_INIT_TAKE12("OfftokIssuerMaxRate", offtok_set_rate, NULL, RSRC_CONF,
                   "per-second [burst] or Off: issuer calls for the whole server"),
#ifdef HAVE_HIREDIS
    AP_INIT_TAKE1("OfftokRedis", offtok_set_redis, NULL, RSRC_CONF,
                  "redis://host[:port][/db] or redis-sentinel://host:port,.../master[/db]: share "
                  "answers and pushed revocations with other nodes"),
    AP_INIT_TAKE1("OfftokRedisUser", offtok_set_redis_user, NULL, RSRC_CONF,
                  "Redis ACL user sent with AUTH (with OfftokRedisPassword)"),
    AP_INIT_TAKE1("OfftokRedisPassword", offtok_set_redis_password, NULL, RSRC_CONF,
                  "Redis AUTH password: a literal, env:VAR or file:PATH"),
    AP_INIT_TAKE1("OfftokRedisKey", offtok_set_redis_key, NULL, RSRC_CONF,
                  "env:VAR or file:PATH: the secret that keys and authenticates what is in Redis"),
#else
    AP_INIT_TAKE1("OfftokRedis", offtok_refuse_redis, NULL, RSRC_CONF,
                  "not in this build (no hiredis)"),
    AP_INIT_TAKE1("OfftokRedisPassword", offtok_refuse_redis, NULL, RSRC_CONF,
                  "not in this build (no hiredis)"),
    AP_INIT_TAKE1("OfftokRedisUser", offtok_refuse_redis, NULL, RSRC_CONF,
                  "not in this build (no hiredis)"),
    AP_INIT_TAKE1("OfftokRedisKey", offtok_refuse_redis, NULL, RSRC_CONF,
                  "not in this build (no hiredis)"),
#endif
    { NULL }
};
