/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_judge.h
 * @brief Whether a location accepts an answer: its policy, what the request proved about the
 * token's binding, and the verdict (ot_judge.c; the binding part in ot_judge_bound.c).
 */
#ifndef OT_JUDGE_H
#define OT_JUDGE_H

#include <apr_tables.h>

#include "ot_answer.h"

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

/** The binding part of ot_answer_judge_bound: OT_VERDICT_OK or a binding verdict (ot_judge_bound.c). */
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

#endif
