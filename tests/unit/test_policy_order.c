/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * Issue 13, hole 4, in shared memory: a not-before policy replaces the previous one for the same
 * (issuer, client) only when its action is newer (its expiration, then its not-before), so a
 * delayed, queued or replayed older one never lowers a newer one, and a clear is remembered.
 */
#include <apr_strings.h>
#include "ot_unit.h"
#include "ot_revoke.h"
#include "ot_shm.h"

#define ISS "https://sso.example.org/realms/test"
#define T0 apr_time_from_sec(1700000000)

static ot_shm_t *segment(void)
{
    ot_shm_t *s;

    ck_assert_int_eq(ot_shm_create(&s, 1024 * 1024, ot_test_pool), APR_SUCCESS);
    return s;
}

/** 1 when an answer with iat at T0 + iat seconds is refused by the policy of "app". */
static int refused(ot_shm_t *s, apr_int64_t iat)
{
    ot_cache_entry_t e;

    memset(&e, 0, sizeof(e));
    e.fetched = T0 + apr_time_from_sec(1000);
    e.drop_after = e.fetched + apr_time_from_sec(300);
    e.iat = T0 + apr_time_from_sec(iat);
    e.active = 1;
    e.iss = ISS;
    return ot_revoke_applies(s, ISS, "app", &e);
}

static apr_status_t set(ot_shm_t *s, apr_int64_t nb, apr_int64_t order)
{
    return ot_revoke_set_not_before(s, ISS, "app", nb ? apr_time_sec(T0) + nb : 0, order,
                                    T0 + apr_time_from_sec(900));
}

START_TEST(test_older_policy_never_lowers_newer)
{
    ot_shm_t *s = segment();

    ck_assert_int_eq(set(s, 100, 5000), APR_SUCCESS);
    ck_assert(refused(s, 99) && !refused(s, 100));
    /* A replayed or queued older action, with a lower or even a higher not-before. */
    ck_assert_int_eq(set(s, 50, 4999), APR_EEXIST);
    ck_assert_int_eq(set(s, 200, 4999), APR_EEXIST);
    ck_assert(refused(s, 99) && !refused(s, 100));
    /* The same action time: the higher not-before wins, never the lower. */
    ck_assert_int_eq(set(s, 90, 5000), APR_EEXIST);
    ck_assert_int_eq(set(s, 100, 5000), APR_EEXIST);
    ck_assert_int_eq(set(s, 120, 5000), APR_SUCCESS);
    ck_assert(refused(s, 119) && !refused(s, 120));
    /* A clear only when newer; then an older policy does not come back. */
    ck_assert_int_eq(set(s, 0, 4000), APR_EEXIST);
    ck_assert(refused(s, 119));
    ck_assert_int_eq(set(s, 0, 5001), APR_SUCCESS);
    ck_assert(!refused(s, 1));
    ck_assert_int_eq(set(s, 300, 5000), APR_EEXIST);
    ck_assert(!refused(s, 1));
    ck_assert_int_eq(set(s, 30, 5002), APR_SUCCESS);
    ck_assert(refused(s, 29) && !refused(s, 30));
}
END_TEST

START_TEST(test_cleared_slots_are_reused)
{
    ot_shm_t *s = segment();
    int i;

    for (i = 0; i < 64; i++) {          /* the table full of cleared policies */
        ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, apr_psprintf(ot_test_pool, "c%d", i),
                                                  0, 10, T0), APR_SUCCESS);
    }
    ck_assert_int_eq(set(s, 100, 5000), APR_SUCCESS);
    ck_assert(refused(s, 99) && !refused(s, 100));
    for (i = 0; i < 63; i++) {          /* then full of policies in force */
        ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, apr_psprintf(ot_test_pool, "c%d", i),
                                                  apr_time_sec(T0), 11, T0), APR_SUCCESS);
    }
    ck_assert_int_eq(ot_revoke_set_not_before(s, ISS, "one-more", apr_time_sec(T0), 11, T0),
                     APR_ENOSPC);
}
END_TEST

Suite *suite_policy_order(void)
{
    Suite *s = suite_create("policy_order");
    TCase *tc = tcase_create("policy_order");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, test_older_policy_never_lowers_newer);
    tcase_add_test(tc, test_cleared_slots_are_reused);
    suite_add_tcase(s, tc);
    return s;
}
