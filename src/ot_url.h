/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/**
 * @file ot_url.h
 * @brief An http(s) URL reduced to the form in which two spellings of one resource compare
 *        equal: RFC 3986 §6.2.2 (case, percent-encoding, dot segments) and §6.2.3 (default
 *        port, empty path), without its query and fragment. Used for a DPoP proof's `htu`.
 */
#ifndef OT_URL_H
#define OT_URL_H

#include <apr_pools.h>

/** Longest URL normalised; a longer one is refused. */
#define OT_URL_MAX 8192

/**
 * The normal form of url (from p): lower-case scheme and host, no default port (80 for http,
 * 443 for https) and no leading zeros in another, percent-encodings of unreserved characters
 * decoded and the others in upper case, dot segments removed, "/" for an empty path, and no
 * query or fragment. NULL when url is not an absolute http or https URL with a host, carries
 * user information, has a malformed percent-encoding or port, a control character or space, or
 * is longer than OT_URL_MAX.
 */
const char *ot_url_normalize(const char *url, apr_pool_t *p);

#endif
