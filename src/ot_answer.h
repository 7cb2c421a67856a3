/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_answer.h
 * @brief The issuer's introspection answer: what it says, and whether this location accepts it.
 *
 * ot_answer_parse turns an HTTP body into an answer (or refuses it as unparseable); ot_answer_judge
 * applies the contract's rules: activity, time, issuer, audience and the kind of token.
 */
#ifndef OT_ANSWER_H
#define OT_ANSWER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "ot_claims.h"

/** Largest answer accepted from the issuer. */
#define OT_ANSWER_MAX (256 * 1024)

typedef enum { OT_KIND_ACCESS = 0, OT_KIND_OFFLINE = 1 } ot_kind_t;

/**
 * One introspection answer: the fields the checks use, and the top-level claims ready for the
 * environment. An answer read back from the cache has no JSON tree until something asks for one
 * (ot_answer_json: `Require offtok-claim`, dotted claim names).
 */
typedef struct {
    int active;
    ot_kind_t kind;       /**< by the contract's rules; meaningful when active */
    int kind_refused;     /**< a typ other than Bearer, DPoP or Offline */
    apr_int64_t exp;      /**< seconds since the epoch; 0 when absent or not a sane date */
    apr_int64_t nbf;
    apr_int64_t iat;
    unsigned has_exp:1, has_nbf:1, has_iss:1, has_cnf:1;  /**< the member is there at all */
    const char *iss;      /**< string members; NULL when absent or not a string */
    const char *sub;
    const char *sid;
    const char *scope;
    const char *typ;      /**< "typ", else "token_type" (for logs), may be NULL */
    const char *cnf_jkt;  /**< cnf.jkt: bound to a DPoP key (RFC 9449 §6) */
    const char *cnf_x5t;  /**< cnf."x5t#S256": bound to a client certificate (RFC 8705 §3) */
    unsigned cnf_unknown:1;  /**< cnf is not an object of jkt and x5t#S256 strings only */
    unsigned typ_dpop:1;  /**< typ or token_type is DPoP */
    const ot_claim_t *aud;
    const ot_claim_t *claims;  /**< every top-level member, in the issuer's order */
    int nclaims;
    json_t *json;         /**< the whole answer; use ot_answer_json() */
    apr_pool_t *pool;
} ot_answer_t;

/**
 * Parse body as an introspection answer: a JSON object whose `active` is a boolean. NULL and a
 * reason in *err (from p) otherwise. The kind is decided here, once.
 */
ot_answer_t *ot_answer_parse(const char *body, apr_size_t len, const char **err, apr_pool_t *p);

/**
 * ot_answer_parse through jansson alone. ot_answer_parse first tries a reader of its own for
 * plain answers, which builds no JSON tree (json stays NULL until ot_answer_json()); the fuzzers
 * hold the two to the same answers.
 */
ot_answer_t *ot_answer_parse_tree(const char *body, apr_size_t len, const char **err,
                                  apr_pool_t *p);

/** Wrap an already-parsed JSON object. Same checks as ot_answer_parse. */
ot_answer_t *ot_answer_from_json(json_t *json, const char **err, apr_pool_t *p);

/** An inactive answer, as the negative cache gives it back. */
ot_answer_t *ot_answer_inactive(apr_pool_t *p);

/**
 * The cache's form of a positive answer: its claims, typed and with their text, so that a cache
 * hit needs no JSON parser (the format is in ot_answer.c). NULL when a is inactive or does not
 * fit the format (over 65535 claims); such an answer is simply not cached.
 */
const char *ot_answer_digest(const ot_answer_t *a, apr_size_t *len, apr_pool_t *p);

/**
 * The answer a digest describes. The strings point into buf, which must live as long as p.
 * NULL when buf is not a well-formed digest of a positive answer.
 */
ot_answer_t *ot_answer_from_digest(const char *buf, apr_size_t len, apr_pool_t *p);

/**
 * A positive answer made of a JWT access token's own verified claims (local validation): no
 * `active` is required or added, and the kind is access. The cnf and typ rules apply as for an
 * introspection answer. NULL with *err when payload is not an object or a claim holds a NUL.
 */
ot_answer_t *ot_answer_from_jwt(json_t *payload, const char **err, apr_pool_t *p);

/** The answer a digest of an ot_answer_from_jwt() answer describes, or NULL. */
ot_answer_t *ot_answer_from_jwt_digest(const char *buf, apr_size_t len, apr_pool_t *p);

/** The top-level claim `name`, or NULL. */
const ot_claim_t *ot_answer_claim(const ot_answer_t *a, const char *name);

/** The client the token was issued to: the string azp, else the string client_id; or NULL. */
const char *ot_answer_client(const ot_answer_t *a);

/** The whole answer as a JSON object, built on first use (from the answer's pool). */
const json_t *ot_answer_json(ot_answer_t *a);

/** What one location requires of an answer. */
typedef struct {
    const char *issuer;    /**< OfftokIssuer, or NULL */
    const char *audience;  /**< OfftokAudience, or NULL */
    int allow_offline;     /**< OfftokOfflineTokens Allow */
    const apr_array_header_t *offline_clients; /**< OfftokOfflineClients (const char *), or
                                                    NULL for any client */
    apr_int64_t skew;      /**< OfftokClockSkew: seconds an nbf may be ahead of now */
} ot_policy_t;

/** OfftokDPoP and OfftokMTLS. Zero is the default, so that a zeroed ot_bound_t is Allow. */
typedef enum { OT_BIND_ALLOW = 0, OT_BIND_OFF = 1, OT_BIND_REQUIRE = 2 } ot_bind_mode_t;

/**
 * What a location requires of a token's binding (cnf), and what the request proved. All zero:
 * OfftokDPoP and OfftokMTLS Allow, the Bearer scheme, no proof and no client certificate.
 */
typedef struct {
    ot_bind_mode_t dpop;   /**< OfftokDPoP */
    ot_bind_mode_t mtls;   /**< OfftokMTLS */
    int scheme_dpop;       /**< the token came as `Authorization: DPoP` */
    const char *jkt;       /**< the thumbprint of the verified DPoP proof's key, or NULL */
    const char *x5t;       /**< x5t#S256 of this connection's client certificate, or NULL */
} ot_bound_t;

typedef enum {
    OT_VERDICT_OK = 0,
    OT_VERDICT_INACTIVE,
    OT_VERDICT_EXPIRED,
    OT_VERDICT_NOT_YET,
    OT_VERDICT_ISSUER,
    OT_VERDICT_AUDIENCE,
    OT_VERDICT_BOUND,
    OT_VERDICT_KIND,
    OT_VERDICT_OFFLINE_DENIED,
    OT_VERDICT_OFFLINE_CLIENT,
    OT_VERDICT_CNF_UNKNOWN,    /**< cnf holds what this server cannot check */
    OT_VERDICT_DPOP_NO_JKT,    /**< typed DPoP, without cnf.jkt */
    OT_VERDICT_DPOP_OFF,       /**< DPoP-bound, under OfftokDPoP Off */
    OT_VERDICT_DPOP_KEY,       /**< the proof's key is not cnf.jkt */
    OT_VERDICT_UNBOUND_DPOP,   /**< an unbound token sent as DPoP */
    OT_VERDICT_CERT,           /**< certificate-bound, and not to this connection's certificate */
    OT_VERDICT_MTLS_OFF,       /**< certificate-bound, under OfftokMTLS Off */
    OT_VERDICT_UNBOUND         /**< not bound as OfftokDPoP or OfftokMTLS Require asks */
} ot_verdict_t;

/** The binding part of ot_answer_judge_bound: OT_VERDICT_OK or a binding verdict (ot_bound.c). */
ot_verdict_t ot_bound_judge(const ot_answer_t *a, const ot_bound_t *bound);

/** The binding an accepted answer was held to: "dpop", "mtls" or "none" (OFFTOK_TOKEN_BINDING). */
const char *ot_answer_binding(const ot_answer_t *a, const ot_bound_t *bound);

/** Judge a at `now` (seconds since the epoch) for policy, as a Bearer token with no proof. */
ot_verdict_t ot_answer_judge(const ot_answer_t *a, const ot_policy_t *policy, apr_int64_t now);

/**
 * ot_answer_judge for a request that proved what `bound` says (the contract's Sender-constrained
 * tokens: cnf.jkt against the DPoP proof, cnf.x5t#S256 against the client certificate, typ
 * DPoP, the schemes and the Require/Off modes).
 */
ot_verdict_t ot_answer_judge_bound(const ot_answer_t *a, const ot_policy_t *policy,
                                   const ot_bound_t *bound, apr_int64_t now);

/** A short phrase for a verdict, for the log ("token expired", ...). */
const char *ot_verdict_text(ot_verdict_t v);

/** "access" or "offline". */
const char *ot_kind_name(ot_kind_t kind);

#endif
