/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A token's binding (cnf, typ DPoP) against what the request proved: the contract's
 * "Sender-constrained tokens" as a verdict. The answer's cnf is read in ot_answer.c (ot_answer_derive);
 * the proof and the certificate are checked by the glue (ot_dpop.c, mod_offtok_dpop.c).
 */
#include <string.h>

#include "ot_judge.h"

ot_verdict_t ot_bound_judge(const ot_answer_t *a, const ot_bound_t *pol)
{
    int dpop_bound = a->cnf_jkt != NULL || a->typ_dpop;

    if (a->has_cnf && a->cnf_unknown) {
        return OT_VERDICT_CNF_UNKNOWN;
    }
    if (a->typ_dpop && a->cnf_jkt == NULL) {
        return OT_VERDICT_DPOP_NO_JKT;
    }
    if (dpop_bound && pol->dpop == OT_BIND_OFF) {
        return OT_VERDICT_DPOP_OFF;
    }
    if (a->cnf_x5t && pol->mtls == OT_BIND_OFF) {
        return OT_VERDICT_MTLS_OFF;
    }
    if (pol->scheme_dpop) {
        if (!dpop_bound && a->cnf_x5t == NULL) {
            return OT_VERDICT_UNBOUND_DPOP;
        }
        if (a->cnf_jkt && (pol->jkt == NULL || strcmp(a->cnf_jkt, pol->jkt) != 0)) {
            return OT_VERDICT_DPOP_KEY;
        }
    }
    else if (dpop_bound) {
        return OT_VERDICT_BOUND;
    }
    if (a->cnf_x5t && (pol->x5t == NULL || strcmp(a->cnf_x5t, pol->x5t) != 0)) {
        return OT_VERDICT_CERT;
    }
    if ((pol->dpop == OT_BIND_REQUIRE || pol->mtls == OT_BIND_REQUIRE)
        && !(pol->dpop == OT_BIND_REQUIRE && a->cnf_jkt)
        && !(pol->mtls == OT_BIND_REQUIRE && a->cnf_x5t)) {
        return OT_VERDICT_UNBOUND;
    }
    return OT_VERDICT_OK;
}

const char *ot_answer_binding(const ot_answer_t *a, const ot_bound_t *bound)
{
    if (a->cnf_jkt && bound->scheme_dpop) {
        return "dpop";
    }
    return a->cnf_x5t ? "mtls" : "none";
}
