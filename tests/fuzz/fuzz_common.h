/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file fuzz_common.h
 * @brief What every libFuzzer target shares: APR set up once, a fresh pool per input, exact-size
 *        copies of the input, and a check that stops the run when an invariant does not hold.
 *
 * Every allocation from the pool of an input is its own malloc() block (fuzz_common.c replaces
 * apr_palloc for that pool), so AddressSanitizer sees a write or read past any pool buffer, not
 * only past the 8 KiB blocks APR would carve it from.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>

/** The pool for one input; everything allocated from it is freed by fuzz_end(). */
apr_pool_t *fuzz_begin(void);

/** Destroy the pool of this input (its cleanups run) and free its blocks. */
void fuzz_end(void);

/** data[0..size) up to its first NUL, as a string of exactly that size (freed by fuzz_end). */
const char *fuzz_cstr(const uint8_t *data, size_t size);

/** data[0..size) as a buffer of exactly size bytes and no terminator (freed by fuzz_end). */
const char *fuzz_bytes(const uint8_t *data, size_t size);

/** data[0..size) and a NUL after it, as ot_http hands over a body (freed by fuzz_end). */
const char *fuzz_body(const uint8_t *data, size_t size);

/**
 * Split data at its first '\n' into two strings (each up to its first NUL); without a '\n',
 * *second is "".
 */
void fuzz_split(const uint8_t *data, size_t size, const char **first, const char **second);

/** Abort (a crash libFuzzer reports, with the input) when ok is 0. */
void fuzz_require(int ok, const char *what);

#endif
