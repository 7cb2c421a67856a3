/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file mod_offtok.h
 * @brief The httpd glue's shared declarations: configuration, the per-request state and the
 *        per-process context.
 *
 *   mod_offtok.c         module record, every hook registered in one function
 *   mod_offtok_proc.c    start-up and the per-process context
 *   mod_offtok_config.c  every directive (the command table) and its checks; the handlers of
 *                        two families beside it, mod_offtok_config_client.c (client
 *                        authentication) and mod_offtok_config_server.c (server-wide, Redis's)
 *   mod_offtok_defaults.c  each section's settings made unset, merged, and their defaults
 *   mod_offtok_authn.c   the authentication hook: token → issuer (or cache) → verdict
 *   mod_offtok_authz.c   Require offtok-scope / offtok-claim
 *   mod_offtok_outcome.c what a refused request is told: WWW-Authenticate, Retry-After
 *   mod_offtok_env.c     what the back end receives: REMOTE_USER, OFFTOK_CLAIM_*, headers
 *   mod_offtok_handlers.c  offtok-backchannel-logout, offtok-keycloak-admin (pushed revocation)
 *   mod_offtok_status.c  offtok-status: the counters as JSON or Prometheus text
 *   mod_offtok_redis.c   OfftokRedis: answers and pushed revocations shared between nodes
 *
 * and more: docs/architecture.md names every file.
 */
#ifndef MOD_OFFTOK_H
#define MOD_OFFTOK_H

#include <httpd.h>
#include <http_config.h>
#include <mod_auth.h>
#include <apr_tables.h>

#include "ot_answer.h"
#include "ot_judge.h"
#include "ot_cache.h"
#include "ot_revoke.h"
#include "ot_flight.h"
#include "ot_introspect.h"
#include "ot_rate.h"
#include "ot_token.h"

#ifndef OT_VERSION
#define OT_VERSION "unknown"
#endif

extern module AP_MODULE_DECLARE_DATA offtok_module;

/** OfftokAlwaysValidate */
typedef enum { OT_ALWAYS_OFF = 0, OT_ALWAYS_ON = 1, OT_ALWAYS_OFFLINE = 2 } ot_always_t;

/** Credentials for one client: the default ones or an OfftokClientFor line. */
typedef struct {
    const char *azp;        /**< NULL for the default */
    const char *id;
    const char *secret;
    const char *secret_file;   /**< the file the secret came from (file:PATH), else NULL */
} offtok_client_t;

struct evp_pkey_st;

/** OfftokClientKey: the file, and what it held at start-up. */
typedef struct {
    const char *file;
    const char *kid;           /**< NULL: no kid in the assertions' header */
    const char *pem;
    apr_size_t pem_len;
    struct evp_pkey_st *pkey;
} offtok_key_t;

/** OfftokClientCertificate: the files, and what they held at start-up. */
typedef struct {
    const char *cert_file;
    const char *key_file;
    const char *cert;
    apr_size_t cert_len;
    const char *key;
    apr_size_t key_len;
} offtok_cert_t;

/** One OfftokPassHeader line. */
typedef struct {
    const char *header;
    const char *claim;
} offtok_pass_t;

/**
 * Per-directory configuration. Every field starts unset (NULL or -1) so that merging is one line
 * per field: the child's value when it set one, else the parent's.
 */
typedef struct {
    const char *url;
    const char *client_id;
    const char *client_secret;
    apr_array_header_t *client_for;    /**< offtok_client_t, adds up */
    int client_auth;                   /**< ot_client_auth_t */
    const char *ca_file;
    int ssl_verify;
    apr_interval_time_t connect_timeout;
    apr_interval_time_t total_timeout;
    int always;                        /**< ot_always_t */
    int cache_ttl;
    int neg_ttl;
    int offline;                       /**< OfftokOfflineTokens: 1 Allow, 0 Deny */
    int hint_mode;                     /**< ot_hint_mode_t */
    const char *issuer;
    const char *audience;
    const char *user_claim;
    apr_array_header_t *pass;          /**< offtok_pass_t, adds up */
    int forward_token;
    const char *jwks_url;              /**< OfftokJWKSURL: keys for pushed logouts and actions */
    apr_array_header_t *logout_aud;    /**< OfftokLogoutAudience (const char *); NULL: unset */
    apr_array_header_t *offline_clients; /**< OfftokOfflineClients (const char *); NULL: any */
    int clock_skew;                    /**< OfftokClockSkew, seconds */
    int dpop;                          /**< OfftokDPoP: ot_bind_mode_t */
    apr_array_header_t *dpop_algs;     /**< OfftokDPoPAlgorithms: const char *, replaced */
    int dpop_max_age;                  /**< OfftokDPoPMaxAge, seconds */
    int dpop_nonce;                    /**< OfftokDPoPNonce */
    int mtls;                          /**< OfftokMTLS: ot_bind_mode_t */
    const char *client_secret_file;    /**< OfftokClientSecret file:PATH (read again on
                                            invalid_client), else NULL */
    const offtok_key_t *client_key;    /**< OfftokClientKey */
    const char *assertion_aud;         /**< OfftokClientAssertionAudience */
    const offtok_cert_t *client_cert;  /**< OfftokClientCertificate */
    int signed_answers;                /**< OfftokSignedAnswers */
    int access_tokens;                 /**< OfftokAccessTokens: 0 Introspect, 1 Local */
    apr_array_header_t *needed_claims; /**< const char *: Require offtok-claim names, adds up */
    int needs_scope;                   /**< a Require offtok-scope line applies here */
} offtok_dir_conf;

/** Server-wide settings (OfftokCacheSize and friends: server config only). */
typedef struct {
    apr_size_t cache_size;
    int max_pending;                   /**< requests that may wait on the issuer per process; 0: auto */
    const char *redis_url;             /**< OfftokRedis; NULL: nothing is shared */
    const char *redis_password;        /**< OfftokRedisPassword, resolved */
    const char *redis_user;            /**< OfftokRedisUser */
    const char *redis_key;             /**< OfftokRedisKey, resolved */
    ot_rate_t miss_rate;               /**< OfftokMissRate; rate 0: Off */
    ot_rate_t issuer_rate;             /**< OfftokIssuerMaxRate; rate 0: Off */
    int miss_rate_set, issuer_rate_set;
    apr_uint32_t dpop_replay_size;     /**< OfftokDPoPReplaySize; 0: OT_REPLAY_SLOTS */
} offtok_srv_conf;

/** A per-directory field not set by any directive yet (merge takes the base's value). */
#define OFFTOK_UNSET (-1)
/** Defaults, applied when reading an unset field (mod_offtok_defaults.c). */
#define OT_DEFAULT_CACHE_TTL 60
#define OT_DEFAULT_NEG_TTL 10
#define OT_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(2)
#define OT_DEFAULT_TOTAL_TIMEOUT apr_time_from_sec(5)
#define OT_DEFAULT_CACHE_SIZE (16 * 1024 * 1024)
#define OT_DEFAULT_CLOCK_SKEW 30
#define OT_DEFAULT_DPOP_MAX_AGE 60
/** Pushed logouts are kept this long beyond the longest TTL and timeout. */
#define OT_TOMB_MARGIN apr_time_from_sec(60)
/**
 * Where a location says OfftokAccessTokens Local, pushed logouts are kept at least this long, so
 * that a locally judged token that lives no longer is refused by them (ot_jwt_verify.h).
 */
#define OT_LOCAL_MAX_LIFETIME 3600

/* ---- effective values of a merged per-directory configuration (mod_offtok_defaults.c) ------ */

/** 1 when r is protected with AuthType offtok. */
int offtok_is_ours(request_rec *r);

int offtok_cache_ttl(const offtok_dir_conf *c);
int offtok_neg_ttl(const offtok_dir_conf *c);
ot_always_t offtok_always(const offtok_dir_conf *c);
/** 1 when OfftokAccessTokens Local applies. */
int offtok_local(const offtok_dir_conf *c);
apr_interval_time_t offtok_connect_timeout(const offtok_dir_conf *c);
apr_interval_time_t offtok_total_timeout(const offtok_dir_conf *c);
int offtok_clock_skew(const offtok_dir_conf *c);
int offtok_dpop_max_age(const offtok_dir_conf *c);
ot_bind_mode_t offtok_dpop_mode(const offtok_dir_conf *c);
ot_bind_mode_t offtok_mtls_mode(const offtok_dir_conf *c);
/** OfftokDPoPAlgorithms, or the default list. */
const apr_array_header_t *offtok_dpop_algs(const offtok_dir_conf *c);
/** OfftokSSLVerify (default On). */
int offtok_ssl_verify(const offtok_dir_conf *c);
/** OfftokOfflineTokens Allow (the default) or Deny. */
int offtok_allow_offline(const offtok_dir_conf *c);
/** OfftokForwardToken (default On). */
int offtok_forward_token(const offtok_dir_conf *c);
/** OfftokSignedAnswers (default Off). */
int offtok_signed_answers(const offtok_dir_conf *c);
/** OfftokDPoPNonce (default Off). */
int offtok_dpop_nonce(const offtok_dir_conf *c);
/** OfftokTokenTypeHint (default auto). */
ot_hint_mode_t offtok_hint_mode(const offtok_dir_conf *c);
/** OfftokClientAuth (default client_secret_basic). */
ot_client_auth_t offtok_client_auth(const offtok_dir_conf *c);
/**
 * A request to the issuer as c's settings make it: CA file, verification, timeouts; the rest
 * (URL, body, deadline, limits) zero for the caller to fill in.
 */
void offtok_http_req(ot_http_req_t *req, const offtok_dir_conf *c);
/**
 * The name under which this process caches the keys of c's OfftokJWKSURL (the url given to
 * ot_jose_verify and ot_jose_known_forgery): the URL, told apart by how c trusts TLS (as cached
 * answers are), so that keys fetched without verifying the issuer, or trusting another CA file,
 * never verify anything for a location that trusts otherwise (the URL's own fragment, never
 * fetched, is left out: no URL can hold that text). NULL without OfftokJWKSURL.
 */
const char *offtok_jwks_key(const offtok_dir_conf *c, apr_pool_t *p);

/** Creating and merging a section's configuration. */
void *offtok_create_dir_conf(apr_pool_t *p, char *dir);
void *offtok_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
void *offtok_create_srv_conf(apr_pool_t *p, server_rec *s);
void *offtok_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

/* ---- the directives, and the figures they raise as they are read (mod_offtok_config.c) ----- */

/**
 * Every directive. The handlers of two families are beside: mod_offtok_config_client.c's and
 * mod_offtok_config_server.c's.
 */
extern const command_rec offtok_cmds[];
/** The longest OfftokCacheTTL of any section read so far (entries are kept that long). */
int offtok_longest_ttl(void);
/** The longest total OfftokTimeout of any section read so far (an issuer call lasts no longer). */
apr_interval_time_t offtok_longest_timeout(void);
/** 1 when any section read so far says OfftokAccessTokens Local. */
int offtok_any_local(void);
/**
 * The longest a DPoP proof passes under any section of this generation, in seconds: the longest
 * OfftokDPoPMaxAge + the longest OfftokClockSkew in effect anywhere + 1 (s: the main server; the
 * defaults count only where it leaves a value unset). The replay table keeps every proof that
 * long, whichever section it passed under.
 */
int offtok_dpop_longest_life(server_rec *s);
/** How long a pushed logout is kept (the handlers' `until` − `at`), see ot_jwt_verify.h. */
apr_interval_time_t offtok_revocation_keep(void);

/* ---- per request -------------------------------------------------------------------------- */

/** The outcome of checking a request's token, computed once and shared by every hook. */
typedef struct {
    int status;                 /**< OK, or the HTTP status to answer */
    const char *error;          /**< RFC 6750 error code for WWW-Authenticate, or NULL */
    const char *scope_needed;   /**< set when an offtok provider denies ("" for a claim) */
    ot_answer_t *answer;        /**< the accepted answer when status is OK */
    const char *token;          /**< the bearer token, once read */
    unsigned char key[OT_KEY_LEN]; /**< the cache key it was looked up under (with `seen`) */
    ot_answer_t *seen;          /**< the answer found (cache or issuer) before this location
                                     judged it; NULL when none was had */
    apr_time_t fetched;         /**< when the issuer call behind `seen` started */
    const char *user;           /**< REMOTE_USER */
    apr_array_header_t *headers;/**< name, value pairs for OfftokPassHeader */
    int applied;                /**< environment and headers were set on this request */
    int retry_after;            /**< seconds for Retry-After with a 429 */
    ot_scheme_t scheme;         /**< the scheme the credentials came under */
    const char *jkt;            /**< the verified DPoP proof's key thumbprint (RFC 7638) */
    struct ot_dpop_proof_t *proof; /**< the verified proof, until its jti is recorded */
    const char *binding;        /**< OFFTOK_TOKEN_BINDING once accepted: dpop, mtls or none */
    int local;                  /**< the answer is the token's own claims, verified here */
    int held;                   /**< a first sight's check of the token with the keys held
                                     (mod_offtok_local.c): 0 none, 1 ot_jose_known_forgery
                                     would say 0, 2 it would say 1 (offtok_flood_certain) */
} offtok_req_t;

/** Check the request's token once (or reuse the initial request's result). Never NULL. */
offtok_req_t *offtok_check(request_rec *r);


/** Set REMOTE_USER's companions: OFFTOK_CLAIM_*, OFFTOK_TOKEN_KIND, headers, token removal. */
void offtok_env_apply(request_rec *r, offtok_req_t *st);

/**
 * Fill st->user and st->headers from the answer. Returns 0 when a value breaks the contract's
 * limits (then st is set to 401 invalid_token).
 */
int offtok_env_prepare(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c);

/** Remove client-sent copies of the headers OfftokPassHeader names (header_parser hook). */
int offtok_strip_headers(request_rec *r);

/**
 * handler hook, first: when r's configuration changed after its headers were scrubbed (mod_dir
 * and mod_negotiation hand a subrequest's configuration to r: ap_internal_fast_redirect), scrub
 * them for the new one, and give r what that subrequest accepted under it.
 */
int offtok_fast_redirected(request_rec *r);

/* ---- what a refused request is told (mod_offtok_outcome.c) -------------------------------- */

/** Retry-After of a request's 503 (the issuer, Redis or the keys could not be had). */
#define OFFTOK_RETRY_AFTER "5"
/** Retry-After of a push's 503 (docs/directives.md: the push handlers). */
#define OFFTOK_RETRY_AFTER_PUSH "10"

/**
 * Write st's outcome: the WWW-Authenticate (or Proxy-Authenticate) challenges of a 401 or 403,
 * Bearer and DPoP as OfftokDPoP asks, with DPoP-Nonce when the client must use one; Retry-After
 * for a 503 or 429; nothing for a 500.
 */
void offtok_set_challenge(request_rec *r, const offtok_req_t *st);

/** insert_error_filter: mod_authz_core answers a first-pass denial with 403 itself; add ours. */
void offtok_insert_error_filter(request_rec *r);

/* ---- hooks and providers of the other files, registered by mod_offtok.c --------------------- */

/** The `Require offtok-scope` and `Require offtok-claim` providers (mod_offtok_authz.c). */
extern const authz_provider offtok_scope_provider;
extern const authz_provider offtok_claim_provider;

/** check_config of OfftokClientAuth and companions (mod_offtok_config_client.c). */
int offtok_client_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                               server_rec *s);

/** post_config: the DPoP replay table and nonce secret, kept across restarts. */
int offtok_dpop_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s);

/** check_config of OfftokAccessTokens Local's directives (mod_offtok_local_config.c). */
int offtok_local_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s);

#ifdef HAVE_HIREDIS
/** check_config, child_init and child_stopping of the Redis tier (mod_offtok_redis.c). */
int offtok_redis_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                              server_rec *s);
void offtok_redis_child_init(apr_pool_t *pchild, server_rec *s);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
void offtok_redis_child_stopping(apr_pool_t *pchild, int graceful);
#endif
#endif


/* ---- sender-constrained tokens (mod_offtok_dpop.c) ---------------------------------------- */

/**
 * Read the Authorization header for the schemes this location takes (and the DPoP header's
 * presence). 1 with *token set; 0 when st is set (401 without error, or 400).
 */
int offtok_dpop_credentials(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                            const char **token);

/**
 * For the DPoP scheme: check the proof (RFC 9449 §4.3, all but replay) before the token is
 * looked up; a subrequest or internal redirect reuses the initial request's verified
 * thumbprint. 1 to go on; 0 when st is set (401 invalid_dpop_proof or use_dpop_nonce).
 */
int offtok_dpop_prove(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                      const char *token);

/** Fill bound (modes, scheme, proven thumbprints) for judging answer a here. */
void offtok_dpop_bound(request_rec *r, const offtok_req_t *st, const offtok_dir_conf *c,
                       const ot_answer_t *a, ot_bound_t *bound);

/**
 * After every other check passed: record the proof's jti in every process (and with
 * OfftokRedis on every node). 1 when accepted; 0 when st is set (401 replay, 503).
 */
int offtok_dpop_accept(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c);

/** DPoP-Nonce on an answer, with Cache-Control: no-store (RFC 9449 §8.2). */
void offtok_dpop_send_nonce(request_rec *r);

/* ---- discovery and local validation (mod_offtok_local.c) ---------------------------------- */

/**
 * Discovery: *pc stays, or becomes a copy (from r->pool) whose introspection URL (and JWKS URL,
 * when unset) come from the issuer's metadata. OK; otherwise st is set (500 for a location
 * without OfftokIntrospectionURL and OfftokIssuer, OT0001, or Local without issuer or audience,
 * OT0600; 503 when the metadata cannot be had, OT0601) and its status returned.
 */
int offtok_local_resolve(request_rec *r, offtok_req_t *st, const offtok_dir_conf **pc);

/** What offtok_local_check decided. */
typedef enum {
    OFFTOK_LOCAL_ASK = 0,   /**< not judged here: introspect it as before */
    OFFTOK_LOCAL_ANSWER,    /**< verified here: *pa holds the token's claims, to be judged */
    OFFTOK_LOCAL_DONE       /**< refused here, or no keys: st is set (401 or 503) */
} offtok_local_t;

/** OfftokAccessTokens Local: judge token here when it is a JWT access token (see the file). */
offtok_local_t offtok_local_check(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                                  const char *token, ot_answer_t **pa);

/**
 * The JWKS URL of c: OfftokJWKSURL, else the jwks_uri of OfftokIssuer's metadata; NULL when
 * neither can be had (the reason is logged).
 */
const char *offtok_local_jwks_url(request_rec *r, const offtok_dir_conf *c);

/**
 * A Require offtok-claim name (claim) or offtok-scope (NULL) line in cmd's section
 * (mod_offtok_local_config.c).
 */
void offtok_local_note_require(cmd_parms *cmd, const char *claim);



/** The handlers offtok-backchannel-logout, offtok-keycloak-admin and offtok-status. */
int offtok_handler(request_rec *r);

/**
 * Count an answer the module decided (offtok_answers_total): status and a reason of
 * ot_stats_answer_rows (an unknown reason counts as that status's "other"). Only a client
 * request's first decision counts; subrequests never do. mod_offtok_answers.c.
 */
void offtok_count_answer(request_rec *r, int status, const char *reason);

/** The reason offtok_count_answer takes for an ot_verdict_t refusal. */
const char *offtok_verdict_reason(int verdict);

/** fixups hook: a request whose token was accepted and that passed every check counts as 200. */
int offtok_answers_fixups(request_rec *r);

/** mod_status's status_hook: the module's section of server-status (mod_offtok_status_html.c). */
int offtok_status_hook(request_rec *r, int flags);

/** The offtok-status handler's answer (JSON, or Prometheus text on ?format=prometheus). */
int offtok_status(request_rec *r);

/* ---- client authentication: its directives (mod_offtok_config_client.c) ------------------- */

/** OfftokClientKey, OfftokClientCertificate, OfftokClientAuth (in offtok_cmds). */
const char *offtok_set_client_key(cmd_parms *cmd, void *dc, const char *file, const char *kid);
const char *offtok_set_client_cert(cmd_parms *cmd, void *dc, const char *cert,
                                   const char *key);
const char *offtok_set_client_auth(cmd_parms *cmd, void *dc, const char *arg);

/** NULL when c has what its OfftokClientAuth needs, else what is missing (for OT0005). */
const char *offtok_client_missing(const offtok_dir_conf *c);

/* ---- the server-wide directives (mod_offtok_config_server.c) ------------------------------- */

/** OfftokCacheSize, OfftokMissRate and OfftokIssuerMaxRate (cmd->info non-NULL: the miss rate). */
const char *offtok_set_cache_size(cmd_parms *cmd, void *dc, const char *arg);
const char *offtok_set_rate(cmd_parms *cmd, void *dc, const char *rate, const char *burst);
/**
 * OfftokIssuerMaxPending and OfftokDPoPReplaySize (cmd->info non-NULL: the replay table's): a
 * whole number in the directive's range.
 */
const char *offtok_set_count(cmd_parms *cmd, void *dc, const char *arg);
#ifdef HAVE_HIREDIS
/** OfftokRedis, OfftokRedisUser, OfftokRedisPassword, OfftokRedisKey. */
const char *offtok_set_redis(cmd_parms *cmd, void *dc, const char *arg);
const char *offtok_set_redis_user(cmd_parms *cmd, void *dc, const char *arg);
const char *offtok_set_redis_password(cmd_parms *cmd, void *dc, const char *arg);
const char *offtok_set_redis_key(cmd_parms *cmd, void *dc, const char *arg);
#else
/** The four Redis directives' handler in a build without hiredis: a clear refusal. */
const char *offtok_refuse_redis(cmd_parms *cmd, void *dc, const char *arg);
#endif

/* ---- client authentication at the issuer (mod_offtok_client.c) ----------------------------- */

/** One issuer call as the leader makes it: the request, and the credentials of the moment. */
typedef struct {
    request_rec *r;
    const offtok_dir_conf *conf;
    ot_introspect_t in;
    const char *secret_file;           /**< where in.client_secret came from, or NULL */
    ot_http_req_t req;                 /**< transport settings (CA, timeouts, deadline) */
    unsigned gen[3];                   /**< generations used: secret, key, certificate */
} offtok_call_t;

/** Set up call; req holds the transport settings (copied). */
void offtok_call_init(offtok_call_t *call, request_rec *r, const offtok_dir_conf *c,
                      const ot_introspect_t *in, const char *secret_file,
                      const ot_http_req_t *req);

/**
 * The leader's call (an ot_flight_fetch_fn, run without any lock held): a fresh client assertion
 * where the method needs one, the client certificate where it needs one; when the issuer refuses
 * the client, the credential files are read again and, if one changed, the call is made once
 * more with the new one.
 */
void offtok_call_fetch(void *baton, ot_http_resp_t *resp, apr_pool_t *p);

/**
 * ot_introspect_result for call, checking a signed answer first where OfftokSignedAnswers On
 * asks for one. A refused client names its OfftokClientAuth method in *why.
 */
apr_status_t offtok_call_result(offtok_call_t *call, ot_answer_t **answer, ot_err_kind_t *kind,
                                const char **why, const ot_http_resp_t *resp);

/**
 * Fetch a JWKS with a location's TLS settings and timeouts (ot_jose_fetch_fn; baton: conf), once
 * for all processes (ot_docs.h; mod_offtok_local.c): every caller of ot_jose_verify uses it. url
 * may be an offtok_jwks_key: it is fetched as the URL it names.
 */
apr_status_t offtok_fetch_jwks(void *baton, const char *url, const char **body,
                               apr_size_t *len, const char **why, apr_pool_t *p);



/* ---- per process -------------------------------------------------------------------------- */

struct ot_http_t;
struct ot_flight_t;
struct ot_shm_t;
struct ot_stats_t;
struct ot_jose_keys_t;
struct ot_cred_store_t;
struct ot_disc_t;

/**
 * Log lines that a flood or an outage would repeat for every request: each is written at its
 * level once per window of a few seconds per process, and at debug level in between.
 */
typedef enum {
    OFFTOK_QUIET_OT0002 = 0, OFFTOK_QUIET_OT0003, OFFTOK_QUIET_OT0004,
    OFFTOK_QUIET_OT0400, OFFTOK_QUIET_OT0401, OFFTOK_QUIET_OT0402,
    OFFTOK_QUIET_N
} offtok_quiet_t;

/** What lives once per server process: the shared segment's mapping, the issuer link. */
typedef struct {
    struct ot_shm_t *shm;
    struct ot_stats_t *stats;
    struct ot_http_t *http;
    struct ot_flight_t *flight;
    struct ot_jose_keys_t *keys;       /**< the issuers' JWKS: pushes, local validation */
    struct ot_cred_store_t *creds;     /**< credential files read again (rotation) */
    struct ot_disc_t *disc;            /**< the issuers' metadata (discovery) */
    struct offtok_redis_t *redis;      /**< the Redis tier (mod_offtok_redis.c); NULL when off */
    apr_uint32_t quiet_until[OFFTOK_QUIET_N]; /**< a line goes to debug level until then (s) */
    apr_uint32_t quieted[OFFTOK_QUIET_N];     /**< how many went to debug level meanwhile */
    ot_rate_t miss_rate;               /**< OfftokMissRate (rate 0: Off), from the main server */
    ot_rate_t issuer_rate;             /**< OfftokIssuerMaxRate (rate 0: Off) */
} offtok_proc_t;

/** This process's context (its http and flight members are NULL before child_init). */
offtok_proc_t *offtok_proc(void);

/**
 * The level to log the line `which` at: `level` for the first in a window of 10 s per process,
 * APLOG_DEBUG for the rest. *quieted: how many went to debug level since the last line at
 * `level` (for offtok_quieted_text). A line r's LogLevel drops at `level` neither takes the
 * window nor counts.
 */
int offtok_quiet_level(request_rec *r, offtok_quiet_t which, int level, apr_uint32_t *quieted);

/** " (and N more like it at debug level since the last such line)", or "" when quieted is 0. */
const char *offtok_quieted_text(request_rec *r, apr_uint32_t quieted);

/** post_config: make or reuse the shared segment (mod_offtok_proc.c). */
int offtok_proc_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s);

/** child_init: this process's issuer link, key caches and credential store. */
void offtok_proc_child_init(apr_pool_t *pchild, server_rec *s);

/* ---- floods of made-up tokens (mod_offtok_flood.c) ---------------------------------------- */

/** One request's admission to the issuer-call budgets. */
typedef struct {
    unsigned char key[OT_RATE_KEY_LEN];    /**< the client address's */
    ot_rate_verdict_t verdict;             /**< set when the admission was asked */
    apr_interval_time_t retry;             /**< with a refusal: until a token is back */
} offtok_flood_t;

/**
 * 1 when token is certain to fail at this location (a JWT's expired payload, another iss than
 * OfftokIssuer, a refused typ, a signature failing with a cached key of the issuer): st is then
 * the 401, logged as OT0400, and no issuer call is made. Nothing is cached. peek: the token's
 * (ot_jwt_peek), which spares most tokens a jansson parse of their payload.
 */
int offtok_flood_certain(request_rec *r, offtok_req_t *st, const offtok_dir_conf *c,
                         const char *token, const ot_jwt_peek_t *peek);

/**
 * The admission for ot_flight_run (into *out, asking through fl): none for a token with a
 * cached answer of any age (known) or when neither budget is set.
 */
void offtok_flood_admit(request_rec *r, offtok_flood_t *fl, int known, ot_flight_admit_t *out);

/** After ot_flight_run: 1 when a budget refused the call; st is then the 429. */
int offtok_flood_refused(request_rec *r, offtok_req_t *st, const offtok_flood_t *fl);

/** A key or metadata fetch was made: count it against OfftokIssuerMaxRate. */
void offtok_flood_fetched(void);

#endif
