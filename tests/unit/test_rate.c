/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * Unit tests of ot_rate.c: the token buckets of OfftokMissRate and OfftokIssuerMaxRate, on an
 * area in private memory and a clock the tests set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ot_rate.h"
#include "ot_unit.h"

#define T0 apr_time_from_sec(1000000)

static void *make_area(void)
{
    void *area = NULL;

    ck_assert_int_eq(posix_memalign(&area, 64, ot_rate_area_size()), 0);
    memset(area, 0, ot_rate_area_size());
    ck_assert_int_eq(ot_rate_init(area), APR_SUCCESS);
    return area;
}

static ot_rate_verdict_t take(void *area, const char *ip, const ot_rate_t *cl,
                              const ot_rate_t *srv, apr_time_t now, apr_interval_time_t *retry)
{
    unsigned char key[OT_RATE_KEY_LEN];

    ot_rate_addr_key(key, ip);
    return ot_rate_take(area, key, cl, srv, now, retry);
}

static const ot_rate_t off = { 0, 0 };

/* A full bucket gives its burst at once, then one token per 1/rate seconds. */
START_TEST(test_burst_and_refill)
{
    void *area = make_area();
    ot_rate_t cl = { 2, 5 };
    apr_interval_time_t retry;
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0, &retry), OT_RATE_OK);
    }
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(retry, apr_time_from_sec(1));
    /* Half a second later one token is back (2 a second), and only one. */
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0 + apr_time_from_msec(500), &retry),
                     OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0 + apr_time_from_msec(500), &retry),
                     OT_RATE_CLIENT);
    /* An hour later the bucket holds its burst, no more. */
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0 + apr_time_from_sec(3600),
                              &retry), OT_RATE_OK);
    }
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &off, T0 + apr_time_from_sec(3600), &retry),
                     OT_RATE_CLIENT);
    free(area);
}
END_TEST

/* Retry-After is how long until one token is back, rounded up to whole seconds. */
START_TEST(test_retry_after)
{
    void *area = make_area();
    ot_rate_t cl = { 0.1, 1 };
    apr_interval_time_t retry;

    ck_assert_int_eq(take(area, "192.0.2.9", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.9", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(retry, apr_time_from_sec(10));
    ck_assert_int_eq(take(area, "192.0.2.9", &cl, &off, T0 + apr_time_from_msec(2500), &retry),
                     OT_RATE_CLIENT);
    ck_assert_int_eq(retry, apr_time_from_sec(8));
    free(area);
}
END_TEST

/* Addresses have buckets of their own; the server's bucket is shared by all. */
START_TEST(test_addresses_and_server)
{
    void *area = make_area();
    ot_rate_t cl = { 1, 2 }, srv = { 1, 3 };
    apr_interval_time_t retry;

    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &srv, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &srv, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.1", &cl, &srv, T0, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(take(area, "192.0.2.2", &cl, &srv, T0, &retry), OT_RATE_OK);
    /* The server's three are gone although this address has two. */
    ck_assert_int_eq(take(area, "192.0.2.3", &cl, &srv, T0, &retry), OT_RATE_SERVER);
    ck_assert_int_eq(retry, apr_time_from_sec(1));
    /* A refusal by the server took nothing from the client: both of 192.0.2.3's are there. */
    ck_assert_int_eq(take(area, "192.0.2.3", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.3", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.3", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    /* Off and off: everything passes. */
    ck_assert_int_eq(take(area, "192.0.2.3", &off, &off, T0, &retry), OT_RATE_OK);
    free(area);
}
END_TEST

/* Key fetches count against the server's bucket, even into debt, but are never refused. */
START_TEST(test_server_charge)
{
    void *area = make_area();
    ot_rate_t srv = { 1, 2 };
    apr_interval_time_t retry;
    int i;

    for (i = 0; i < 5; i++) {
        ot_rate_charge_server(area, &srv, T0);
    }
    ck_assert_int_eq(take(area, "192.0.2.1", &off, &srv, T0, &retry), OT_RATE_SERVER);
    ck_assert_int_eq(retry, apr_time_from_sec(3));          /* from -2 to 1 */
    ck_assert_int_eq(take(area, "192.0.2.1", &off, &srv, T0 + apr_time_from_sec(3), &retry),
                     OT_RATE_OK);
    free(area);
}
END_TEST

/* IPv6 is counted per /64; IPv4-mapped addresses are their IPv4 address. */
START_TEST(test_ipv6_prefix)
{
    void *area = make_area();
    ot_rate_t cl = { 1, 1 };
    unsigned char a[OT_RATE_KEY_LEN], b[OT_RATE_KEY_LEN];
    apr_interval_time_t retry;

    ot_rate_addr_key(a, "2001:db8:1:2::1");
    ot_rate_addr_key(b, "2001:db8:1:2:ffff:ffff:ffff:ffff");
    ck_assert_mem_eq(a, b, OT_RATE_KEY_LEN);
    ot_rate_addr_key(b, "2001:db8:1:3::1");
    ck_assert(memcmp(a, b, OT_RATE_KEY_LEN) != 0);
    ot_rate_addr_key(a, "::ffff:192.0.2.7");
    ot_rate_addr_key(b, "192.0.2.7");
    ck_assert_mem_eq(a, b, OT_RATE_KEY_LEN);
    ot_rate_addr_key(a, "64:ff9b::192.0.2.7");           /* NAT64: the IPv4 client */
    ck_assert_mem_eq(a, b, OT_RATE_KEY_LEN);
    ot_rate_addr_key(a, "64:ff9b::192.0.2.8");
    ck_assert(memcmp(a, b, OT_RATE_KEY_LEN) != 0);
    ot_rate_addr_key(a, "not an address");
    ck_assert_int_ne(a[0], 0);

    ck_assert_int_eq(take(area, "2001:db8:1:2::1", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "2001:db8:1:2::9", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(take(area, "2001:db8:1:3::1", &cl, &off, T0, &retry), OT_RATE_OK);
    free(area);
}
END_TEST

/*
 * The table is bounded: with every slot holding a bucket that is still refilling, new addresses
 * share the overflow bucket; once buckets have filled up again their slots are free again.
 */
START_TEST(test_overflow_bucket)
{
    void *area = make_area();
    ot_rate_t cl = { 1, 1 };
    apr_interval_time_t retry;
    char ip[64];
    int i, refused = 0;

    /* Four times as many addresses as slots: with a random slot hash (the seed differs from run
     * to run), that leaves a slot free with a chance of about e^-24 each. */
    for (i = 0; i < OT_RATE_SLOTS * 4; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        refused += take(area, ip, &cl, &off, T0, &retry) != OT_RATE_OK;
    }
    /* Every slot is taken, and the overflow bucket gave its one token, then refused. */
    ck_assert_uint_gt(ot_rate_overflows(area), OT_RATE_SLOTS - 1);
    ck_assert_int_ge(refused, OT_RATE_SLOTS - 1);
    ck_assert_int_le(refused, (int)ot_rate_overflows(area));
    /* An address that has a slot keeps its own bucket. */
    ck_assert_int_eq(take(area, "10.0.0.0", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    /* A new address goes to the overflow bucket, which is empty. */
    ck_assert_int_eq(take(area, "172.16.0.1", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    /* A second later every bucket is full again: the new address gets a slot and a token. */
    ck_assert_int_eq(take(area, "172.16.0.1", &cl, &off, T0 + apr_time_from_sec(1), &retry),
                     OT_RATE_OK);
    ck_assert_int_eq(take(area, "172.16.0.1", &cl, &off, T0 + apr_time_from_sec(1), &retry),
                     OT_RATE_CLIENT);
    ck_assert_int_eq(take(area, "172.16.0.2", &cl, &off, T0 + apr_time_from_sec(1), &retry),
                     OT_RATE_OK);
    free(area);
}
END_TEST

/*
 * The clock going back (an NTP step) gives no tokens, and takes none either: a bucket emptied
 * just before refills from the new time on, rather than refusing until the clock has caught up
 * with its stamp (an hour of 429s for every address that had spent its budget, and for the
 * whole server when its bucket was empty).
 */
START_TEST(test_clock_going_back)
{
    void *area = make_area();
    ot_rate_t cl = { 1, 2 }, srv = { 1, 1 };
    apr_time_t back = T0 - apr_time_from_sec(3600);
    apr_interval_time_t retry;

    ck_assert_int_eq(take(area, "192.0.2.5", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.5", &cl, &off, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.5", &cl, &off, T0, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(take(area, "192.0.2.5", &cl, &off, back, &retry), OT_RATE_CLIENT);
    ck_assert_int_eq(take(area, "192.0.2.5", &cl, &off, back + apr_time_from_sec(1), &retry),
                     OT_RATE_OK);
    /* The server's bucket too. */
    ck_assert_int_eq(take(area, "192.0.2.6", &off, &srv, T0, &retry), OT_RATE_OK);
    ck_assert_int_eq(take(area, "192.0.2.6", &off, &srv, back, &retry), OT_RATE_SERVER);
    ck_assert_int_eq(take(area, "192.0.2.6", &off, &srv, back + apr_time_from_sec(1), &retry),
                     OT_RATE_OK);
    free(area);
}
END_TEST

/*
 * A table whose slots were all stamped before the clock went back (or by a build that used the
 * wall clock, when a graceful restart keeps the segment) frees its slots again once they have
 * refilled from the new time on; they looked busy until the clock caught up, and every new
 * address shared the overflow bucket meanwhile.
 */
START_TEST(test_table_after_clock_going_back)
{
    void *area = make_area();
    ot_rate_t cl = { 1, 1 };
    apr_time_t back = T0 - apr_time_from_sec(3600);
    apr_interval_time_t retry;
    apr_uint64_t overflows;
    char ip[64];
    int i;

    for (i = 0; i < OT_RATE_SLOTS * 4; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        take(area, ip, &cl, &off, T0, &retry);
    }
    ck_assert_int_eq(take(area, "172.16.0.1", &cl, &off, back, &retry), OT_RATE_CLIENT);
    overflows = ot_rate_overflows(area);
    ck_assert_int_eq(take(area, "172.16.0.1", &cl, &off, back + apr_time_from_sec(1), &retry),
                     OT_RATE_OK);
    ck_assert_uint_eq(ot_rate_overflows(area), overflows);      /* a slot of its own */
    free(area);
}
END_TEST

/** The slot an address's probes started at when the slot hash was FNV-1a with its public seed. */
static unsigned public_slot(const char *ip)
{
    unsigned char key[OT_RATE_KEY_LEN];
    const unsigned char *d = key;
    apr_uint64_t h = 0xcbf29ce484222325ULL;
    int n = OT_RATE_KEY_LEN;

    ot_rate_addr_key(key, ip);
    while (n--) {
        h ^= *d++;
        h *= 0x100000001b3ULL;
    }
    return (unsigned)(h & (OT_RATE_SLOTS - 1));
}

/*
 * A client cannot push another address into the overflow bucket by choosing addresses whose
 * slots cover that address's eight: with a hash anyone could compute (it was FNV-1a with a
 * fixed seed), nine addresses starting at the victim's slot filled its eight slots and drained
 * the overflow bucket, and the victim's first unknown token got 429. The hash is keyed with a
 * random seed now.
 */
START_TEST(test_slots_not_predictable)
{
    void *area = make_area();
    ot_rate_t cl = { 0.001, 1 };
    apr_interval_time_t retry;
    unsigned victim = public_slot("192.0.2.77");
    char ip[64];
    int i, found = 0;

    for (i = 0; found < OT_RATE_PROBES + 1 && i < (1 << 24); i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        if (public_slot(ip) == victim) {
            found++;
            take(area, ip, &cl, &off, T0, &retry);    /* its slot (or the overflow) drained */
        }
    }
    ck_assert_int_eq(found, OT_RATE_PROBES + 1);
    ck_assert_int_eq(take(area, "192.0.2.77", &cl, &off, T0, &retry), OT_RATE_OK);
    free(area);
}
END_TEST

START_TEST(test_parse)
{
    ot_rate_t r;

    ck_assert_ptr_null(ot_rate_parse(&r, "Off", NULL, ot_test_pool));
    ck_assert(r.rate == 0);
    ck_assert_ptr_null(ot_rate_parse(&r, "5", NULL, ot_test_pool));
    ck_assert(r.rate == 5 && r.burst == 5);
    ck_assert_ptr_null(ot_rate_parse(&r, "0.5", NULL, ot_test_pool));
    ck_assert(r.rate == 0.5 && r.burst == 1);
    ck_assert_ptr_null(ot_rate_parse(&r, "2", "20", ot_test_pool));
    ck_assert(r.rate == 2 && r.burst == 20);
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "0", NULL, ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "-1", NULL, ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "fast", NULL, ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "nan", NULL, ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "5", "0.5", ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "5", "x", ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "Off", "5", ot_test_pool));
    ck_assert_ptr_nonnull(ot_rate_parse(&r, "2000000", NULL, ot_test_pool));
}
END_TEST

Suite *suite_rate(void)
{
    Suite *s = suite_create("rate");
    TCase *tc = tcase_create("rate");

    tcase_add_checked_fixture(tc, ot_test_setup, ot_test_teardown);
    tcase_add_test(tc, test_burst_and_refill);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_addresses_and_server);
    tcase_add_test(tc, test_server_charge);
    tcase_add_test(tc, test_ipv6_prefix);
    tcase_add_test(tc, test_overflow_bucket);
    tcase_add_test(tc, test_clock_going_back);
    tcase_add_test(tc, test_table_after_clock_going_back);
    tcase_add_test(tc, test_slots_not_predictable);
    tcase_add_test(tc, test_parse);
    suite_add_tcase(s, tc);
    return s;
}
