/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_answer.h
 * @brief The issuer's introspection answer: what it says.
 *
 * ot_answer_parse (ot_answer_read.c) turns an HTTP body into an answer (or refuses it as
 * unparseable); ot_answer.c holds the model and decides the kind of token; whether a location
 * accepts an answer is ot_judge.h's; the form the cache keeps (the digest) is ot_entry.h's.
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
 * For the readers of answers (ot_answer_read.c, ot_entry.c's digest): read the fields the checks
 * use off a's claims and decide its kind, once, the same way for fresh and cached answers.
 */
void ot_answer_derive(ot_answer_t *a);

/**
 * A positive answer made of a JWT access token's own verified claims (local validation): no
 * `active` is required or added, and the kind is access. The cnf and typ rules apply as for an
 * introspection answer. NULL with *err when payload is not an object or a claim holds a NUL.
 */
ot_answer_t *ot_answer_from_jwt(json_t *payload, const char **err, apr_pool_t *p);

/**
 * ot_answer_from_jwt of the payload's text: the same answer (claims, their texts, the derived
 * fields), read by ot_answer_parse's plain reader where it can (no JSON tree; a->json is then
 * made on demand by ot_answer_json), else by jansson. NULL with *err as ot_answer_from_jwt.
 */
ot_answer_t *ot_answer_from_jwt_text(const char *text, apr_size_t len, const char **err,
                                     apr_pool_t *p);

/** The top-level claim `name`, or NULL. */
const ot_claim_t *ot_answer_claim(const ot_answer_t *a, const char *name);

/** The client the token was issued to: the string azp, else the string client_id; or NULL. */
const char *ot_answer_client(const ot_answer_t *a);

/** The whole answer as a JSON object, built on first use (from the answer's pool). */
const json_t *ot_answer_json(ot_answer_t *a);

/** "access" or "offline". */
const char *ot_kind_name(ot_kind_t kind);

#endif
