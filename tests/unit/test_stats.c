/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* ot_stats: the table of answers by status and reason (offtok_answers_total). */
#include <string.h>

#include "ot_unit.h"
#include "ot_stats.h"

static const int statuses[] = { 200, 400, 401, 403, 429, 500, 503 };

START_TEST(answers_every_status_has_its_other_row)
{
    size_t i;
    int row;

    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        row = ot_stats_answer_index(statuses[i], "other");
        ck_assert_int_ge(row, 0);
        ck_assert_int_eq(ot_stats_answer_rows[row].status, statuses[i]);
        /* A reason the table does not know counts there, and so does none. */
        ck_assert_int_eq(ot_stats_answer_index(statuses[i], "no-such-reason"), row);
        ck_assert_int_eq(ot_stats_answer_index(statuses[i], NULL), row);
    }
    ck_assert_int_eq(ot_stats_answer_index(302, "granted"), -1);
    ck_assert_int_eq(ot_stats_answer_index(204, NULL), -1);
}
END_TEST

START_TEST(answers_rows_are_unique_and_named)
{
    int i, j;

    for (i = 0; i < OT_ANSWER_ROWS; i++) {
        ck_assert_ptr_nonnull(ot_stats_answer_rows[i].reason);
        ck_assert_int_gt((int)strlen(ot_stats_answer_rows[i].reason), 0);
        /* Prometheus label values are written unescaped: keep them plain. */
        ck_assert_int_eq((int)strspn(ot_stats_answer_rows[i].reason,
                                     "abcdefghijklmnopqrstuvwxyz_"),
                         (int)strlen(ot_stats_answer_rows[i].reason));
        ck_assert_int_eq(ot_stats_answer_index(ot_stats_answer_rows[i].status,
                                               ot_stats_answer_rows[i].reason), i);
        for (j = 0; j < i; j++) {
            ck_assert(ot_stats_answer_rows[i].status != ot_stats_answer_rows[j].status
                      || strcmp(ot_stats_answer_rows[i].reason, ot_stats_answer_rows[j].reason));
        }
    }
}
END_TEST

START_TEST(answers_503_has_every_issuer_error_kind)
{
    int k, row;

    for (k = 0; k < OT_ERR_KINDS; k++) {
        row = ot_stats_answer_index(503, ot_stats_error_names[k]);
        ck_assert_int_ge(row, 0);
        ck_assert_str_eq(ot_stats_answer_rows[row].reason, ot_stats_error_names[k]);
    }
    ck_assert_str_eq(ot_stats_answer_rows[ot_stats_answer_index(429, "miss_rate")].reason,
                     "miss_rate");
    ck_assert_str_eq(ot_stats_answer_rows[ot_stats_answer_index(429, "issuer_rate")].reason,
                     "issuer_rate");
}
END_TEST

Suite *suite_stats(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("answers");

    tcase_add_test(tc, answers_every_status_has_its_other_row);
    tcase_add_test(tc, answers_rows_are_unique_and_named);
    tcase_add_test(tc, answers_503_has_every_issuer_error_kind);
    suite_add_tcase(s, tc);
    return s;
}
