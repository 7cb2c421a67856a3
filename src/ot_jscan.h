/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_jscan.h
 * @brief The one JSON scanner of the core: reads JSON in place, building nothing, for the request
 * path (the JWT peek, the plain answer reader, and whatever else must not pay for a jansson tree).
 *
 * It is a pull scanner over a buffer: the caller asks for the next value, enters objects and
 * arrays and walks their members and elements, or reads a value whole (a container is then
 * checked to its end and skipped). It holds itself to jansson as ot_json_parse() calls it
 * (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES), and ends every scan in one of three states:
 *
 * - OT_JS_OK: jansson reads the same document, with the same names, strings and integers;
 * - OT_JS_BAD: jansson refuses it too (grammar, UTF-8, a control character or bad escape in a
 *   string, \u0000, a lone surrogate, a name twice in one object, bytes after the value);
 * - OT_JS_UNSURE: the scanner cannot vouch for it and the caller must ask jansson: nesting
 *   deeper than OT_JS_DEPTH, an object of more than OT_JS_MEMBERS members (duplicates are then
 *   not checked), an exponent or an integer part of more than 18 digits (jansson may find it
 *   out of range), a NUL byte right after a number or a word (jansson loses it and reads on).
 *
 * Once a scan is BAD or UNSURE it stays so and every call returns 0. tests/fuzz/fuzz_jscan.c
 * holds it to jansson on any input.
 *
 *     ot_jscan_t sc;
 *     ot_jobj_t o;
 *     ot_jval_t name, v;
 *
 *     ot_jscan_init(&sc, buf, len);
 *     if (ot_jscan_object(&sc, &o)) {
 *         while (ot_jscan_member(&sc, &o, &name)) {
 *             if (ot_jval_is(&name, "exp")) ot_jscan_value(&sc, &v);   ... ot_jval_int(&v, &exp)
 *             else ot_jscan_value(&sc, NULL);                           (skipped, still checked)
 *         }
 *     }
 *     if (!ot_jscan_end(&sc)) ... sc.status says BAD (refuse) or UNSURE (ask jansson)
 */
#ifndef OT_JSCAN_H
#define OT_JSCAN_H

#include <apr_pools.h>

/** Nesting the scanner follows (jansson's is 2048); deeper is OT_JS_UNSURE. */
#define OT_JS_DEPTH 32
/** Members of one object checked for duplicate names; more is OT_JS_UNSURE. */
#define OT_JS_MEMBERS 64

typedef enum { OT_JS_OK = 0, OT_JS_BAD, OT_JS_UNSURE } ot_jstatus_t;

/** What a value is (OT_JS_NONE: nothing was read). */
typedef enum {
    OT_JS_NONE = 0, OT_JS_OBJECT, OT_JS_ARRAY, OT_JS_STRING, OT_JS_INTEGER, OT_JS_REAL,
    OT_JS_TRUE, OT_JS_FALSE, OT_JS_NULL
} ot_jtype_t;

/** The scanner over one buffer; its fields are its own (read status after a scan). */
typedef struct {
    const unsigned char *s, *end;
    int depth;
    ot_jstatus_t status;
} ot_jscan_t;

/** A value as found in the buffer (nothing is copied). */
typedef struct {
    ot_jtype_t type;
    const char *raw;      /**< its source text; of a string, what is between the quotes */
    apr_size_t raw_len;
    int escaped;          /**< a string (or, read whole, a container) holds an escape */
    /**
     * Read whole: the value's text is its JSON as jansson writes it back compactly once white
     * space is dropped: every string in it printable ASCII without escapes, every number an
     * integer of at most 18 digits that is not -0.
     */
    int plain;
    int flat;             /**< an array read whole: each element a string, integer or boolean */
} ot_jval_t;

/** An object being walked: the names seen, to refuse one twice. */
typedef struct {
    const char *names[OT_JS_MEMBERS];
    apr_size_t lens[OT_JS_MEMBERS];
    int n;
    int escaped;          /**< a name held an escape: names are then compared decoded */
    apr_uint64_t seen[4]; /**< a set of 256 bits: one per name, from its length and bytes */
    /** Once a name held an escape: a hash of each name's decoded text, compared before texts. */
    apr_uint64_t hashes[OT_JS_MEMBERS];
} ot_jobj_t;

/** An array being walked. */
typedef struct {
    int n;
} ot_jarr_t;

/** Start a scan of buf[0..len) (it need not end with NUL). */
void ot_jscan_init(ot_jscan_t *sc, const char *buf, apr_size_t len);

/** The type of the next value from its first byte, without reading it (OT_JS_NONE: none). */
ot_jtype_t ot_jscan_peek(ot_jscan_t *sc);

/**
 * Read the next value whole into v (may be NULL): a scalar, or an object or array checked to its
 * end, whose raw text then spans it. 1 on success.
 */
int ot_jscan_value(ot_jscan_t *sc, ot_jval_t *v);

/** Enter the object that is the next value. 1 when it is one (a '{'), else BAD. */
int ot_jscan_object(ot_jscan_t *sc, ot_jobj_t *o);

/**
 * The next member of the object o: its name in *name, and the scan stands before its value,
 * which the caller must read next (ot_jscan_value, _object or _array). 0 at the end of the object
 * (status OK; the scan is then after its '}') or on error (status not OK).
 */
int ot_jscan_member(ot_jscan_t *sc, ot_jobj_t *o, ot_jval_t *name);

/** Enter the array that is the next value. 1 when it is one, else BAD. */
int ot_jscan_array(ot_jscan_t *sc, ot_jarr_t *a);

/** 1 when the array a has a next element (read it next), 0 at its end or on error. */
int ot_jscan_element(ot_jscan_t *sc, ot_jarr_t *a);

/** 1 when only white space is left and the scan is OK; else 0 (BAD when bytes are left). */
int ot_jscan_end(ot_jscan_t *sc);

/**
 * Find the member `name` (unescaped, as the caller spells it) of the top-level object of
 * buf[0..len), checking the whole document. OT_JS_OK with *v (type OT_JS_NONE when absent).
 */
ot_jstatus_t ot_jscan_find(const char *buf, apr_size_t len, const char *name, ot_jval_t *v);

/** What ot_jscan_pick calls for a member it was asked for: its index in names, its value. */
typedef void ot_jscan_pick_fn(void *baton, int which, const ot_jval_t *v);

/**
 * Scan buf[0..len) as one JSON object, checking the whole document, and call note for each
 * top-level member named in names[0..n) (as the caller spells them) with its value, read whole;
 * other members are skipped. The scan's status: OK, BAD or UNSURE (then ask jansson, and
 * disregard what note was told).
 */
ot_jstatus_t ot_jscan_pick(const char *buf, apr_size_t len, const char *const *names, int n,
                           ot_jscan_pick_fn *note, void *baton);

/** The index in names[0..n) of the string v (compared as decoded), or -1. */
int ot_jval_which(const ot_jval_t *v, const char *const *names, int n);

/** 1 when the string v is exactly `s` (compares the text as decoded). */
int ot_jval_is(const ot_jval_t *v, const char *s);

/**
 * The decoded text of the string v, NUL-terminated, from p (escapes and surrogate pairs turned
 * into UTF-8, as jansson does); *len its length (may be NULL). NULL when v is not a string.
 */
const char *ot_jval_str(const ot_jval_t *v, apr_size_t *len, apr_pool_t *p);

/** The integer v (OT_JS_INTEGER). 1 on success. */
int ot_jval_int(const ot_jval_t *v, apr_int64_t *out);

/** The boolean v. 1 on success (v is true or false). */
int ot_jval_bool(const ot_jval_t *v, int *out);

#endif
