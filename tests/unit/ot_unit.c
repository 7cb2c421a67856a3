/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
#include <stdlib.h>
#include <apr_general.h>
#include "ot_unit.h"

apr_pool_t *ot_test_pool;

void ot_test_setup(void)
{
    apr_pool_create(&ot_test_pool, NULL);
}

void ot_test_teardown(void)
{
    apr_pool_destroy(ot_test_pool);
    ot_test_pool = NULL;
}

int main(void)
{
    SRunner *sr;
    int failed;

    apr_initialize();
    sr = srunner_create(suite_util());
    srunner_add_suite(sr, suite_jscan());
    srunner_add_suite(sr, suite_token());
    srunner_add_suite(sr, suite_answer());
    srunner_add_suite(sr, suite_claims());
    srunner_add_suite(sr, suite_claims_env());
    srunner_add_suite(sr, suite_http());
    srunner_add_suite(sr, suite_flight());
    srunner_add_suite(sr, suite_flight_issuers());
    srunner_add_suite(sr, suite_rate());
    srunner_add_suite(sr, suite_cache());
    srunner_add_suite(sr, suite_jose());
    srunner_add_suite(sr, suite_jose_kept());
    srunner_add_suite(sr, suite_logout());
    srunner_add_suite(sr, suite_stats());
    srunner_add_suite(sr, suite_dpop());
    srunner_add_suite(sr, suite_dpop_read());
    srunner_add_suite(sr, suite_dpop_vctx());
    srunner_add_suite(sr, suite_dpop_keys());
    srunner_add_suite(sr, suite_assert());
    srunner_add_suite(sr, suite_policy_order());
    srunner_add_suite(sr, suite_local());
    srunner_add_suite(sr, suite_entry_of());
    srunner_add_suite(sr, suite_hit());
    srunner_add_suite(sr, suite_key());
#ifdef HAVE_HIREDIS
    srunner_add_suite(sr, suite_redis());
    srunner_add_suite(sr, suite_redis_sub());
    srunner_add_suite(sr, suite_redis_sentinel());
    srunner_add_suite(sr, suite_redis_newer());
    srunner_add_suite(sr, suite_redis_ktomb());
    srunner_add_suite(sr, suite_redis_rogue());
    srunner_add_suite(sr, suite_redis_rogue_watch());
#endif
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
