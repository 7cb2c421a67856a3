/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/** What ot_jscan.c and ot_jscan_val.c share inside the scanner; nothing else includes it. */
#ifndef OT_JSCAN_INT_H
#define OT_JSCAN_INT_H

#include <apr.h>

/** Four hex digits at h into *v; 0 when one is not a hex digit. */
int ot_jscan_hex4(const unsigned char *h, unsigned *v);

/** One character of a checked string at *pp (moved past it): its UTF-8 bytes in out, how many. */
int ot_jscan_decode_one(const unsigned char **pp, unsigned char out[4]);

/** a and b are the same text: each a checked string's content decoded (aesc, besc), or bytes. */
int ot_jscan_same_text(const char *a, apr_size_t alen, int aesc, const char *b, apr_size_t blen,
                       int besc);

/** A hash of the text s[0..len): a checked string's content decoded (esc), or bytes. */
apr_uint64_t ot_jscan_text_hash(const char *s, apr_size_t len, int esc);

#endif
