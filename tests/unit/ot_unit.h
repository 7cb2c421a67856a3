/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/** Unit tests of the core (Check). One suite per core file; ot_unit.c runs them all. */
#ifndef OT_UNIT_H
#define OT_UNIT_H

#include <check.h>
#include <apr_pools.h>

/** A pool for one test, made in the fixture and destroyed after it. */
extern apr_pool_t *ot_test_pool;
void ot_test_setup(void);
void ot_test_teardown(void);

Suite *suite_util(void);
Suite *suite_jscan(void);
Suite *suite_token(void);
Suite *suite_answer(void);
Suite *suite_claims(void);
Suite *suite_claims_env(void);
Suite *suite_http(void);
Suite *suite_flight(void);
Suite *suite_flight_issuers(void);
Suite *suite_rate(void);
Suite *suite_cache(void);
Suite *suite_jose(void);
Suite *suite_jose_kept(void);
Suite *suite_logout(void);
Suite *suite_stats(void);
Suite *suite_dpop(void);
Suite *suite_dpop_read(void);
Suite *suite_dpop_vctx(void);
Suite *suite_dpop_keys(void);
Suite *suite_assert(void);
Suite *suite_policy_order(void);
Suite *suite_local(void);
Suite *suite_entry_of(void);
Suite *suite_hit(void);
Suite *suite_key(void);
#ifdef HAVE_HIREDIS
Suite *suite_redis(void);
Suite *suite_redis_sub(void);
Suite *suite_redis_sentinel(void);
Suite *suite_redis_newer(void);
Suite *suite_redis_ktomb(void);
Suite *suite_redis_rogue(void);
Suite *suite_redis_rogue_watch(void);
#endif

#endif
