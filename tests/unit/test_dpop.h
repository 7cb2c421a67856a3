/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/* What the DPoP unit tests share (test_dpop.c makes them): keys cjose makes, proofs signed with
 * them, and the request they are checked against. */
#ifndef TEST_DPOP_H
#define TEST_DPOP_H

#include <cjose/cjose.h>
#include <jansson.h>

#include "ot_dpop.h"

#define NOW 1796014600
#define URL "https://rs.example/api/items"
#define TOKEN "the-access-token"

typedef struct {
    cjose_jwk_t *jwk;
    json_t *pub;          /* the public JWK */
    json_t *priv;         /* with d */
} test_key_t;

/** A new P-256 key, released with the test pool. */
test_key_t *make_key(void);

/** A proof signed (ES256) by signer carrying jwk; typ and the payload's JSON as given. */
const char *sign(const test_key_t *signer, const json_t *jwk, const char *typ,
                 const char *payload_json);

/** A payload's JSON (ath of token; nonce when not NULL). */
const char *payload(const char *jti, const char *htm, const char *htu, long iat,
                    const char *token, const char *nonce);

/** A GET of URL with TOKEN at NOW, max age 60, skew 30. */
ot_dpop_ask_t ask_for(apr_array_header_t *algs, const unsigned char *nonce_key);

/** Algorithm names separated by spaces, as an array. */
apr_array_header_t *algs_of(const char *names);

/** ot_dpop_verify's verdict, *why (when not NULL) its reason. */
ot_dpop_result_t verify(const ot_dpop_ask_t *ask, const char *proof, const char **why);

/** verify, and on OT_DPOP_OK accept the proof (its key joins the cache), as a request would. */
ot_dpop_result_t verify_accept(const ot_dpop_ask_t *ask, const char *proof);

/** A proof signed with alg by key, carrying jwk (its own public JWK, perhaps altered). */
const char *sign_alg(cjose_jwk_t *key, const char *alg, const json_t *jwk);

/** The public JWK of key, with member name's decoded bytes prefixed by pad zero bytes. */
json_t *public_padded(cjose_jwk_t *key, const char *name, apr_size_t pad);

/** proof with one byte of its signature changed. */
const char *bent_signature(const char *proof);

#endif
