/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/*
 * A proof's header and payload read in place with ot_jscan: no jansson tree on the request path.
 * The scanner vouches for a document (OT_JS_OK: jansson reads the same names and values; BAD:
 * jansson refuses it too) or is unsure, and then jansson reads it as before. A real iat (rare)
 * is converted by jansson from its own text, so both readers give the very same double.
 */
#include <string.h>
#include <apr_strings.h>

#include "ot_dpop_read.h"
#include "ot_jscan.h"
#include "ot_json.h"

/** Members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4). */
static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };
#define N_PRIVATE (sizeof(private_members) / sizeof(private_members[0]))

/* ---- jansson -------------------------------------------------------------------------------- */

void ot_dpop_jwk_from_json(ot_dpop_jwk_t *k, const json_t *jwk)
{
    apr_size_t i;

    memset(k, 0, sizeof(*k));
    k->kty = ot_json_string(jwk, "kty");
    k->crv = ot_json_string(jwk, "crv");
    k->e = ot_json_string(jwk, "e");
    k->n = ot_json_string(jwk, "n");
    k->x = ot_json_string(jwk, "x");
    k->y = ot_json_string(jwk, "y");
    for (i = 0; i < N_PRIVATE && k->private_member == NULL; i++) {
        if (json_object_get(jwk, private_members[i]) != NULL) {
            k->private_member = private_members[i];
        }
    }
}

static json_t *parse_object(const char *json, apr_size_t len, apr_pool_t *p)
{
    json_t *j = ot_json_parse(json, len, NULL, p);

    return json_is_object(j) ? j : NULL;
}

static int head_json(ot_dpop_head_t *h, const char *json, apr_size_t len, apr_pool_t *p)
{
    json_t *j = parse_object(json, len, p), *jwk;

    if (j == NULL) {
        return 0;
    }
    h->typ = ot_json_string(j, "typ");
    h->alg = ot_json_string(j, "alg");
    h->crit = json_object_get(j, "crit") != NULL;
    jwk = json_object_get(j, "jwk");
    if (json_is_object(jwk)) {
        h->jwk = 1;
        ot_dpop_jwk_from_json(&h->key, jwk);
    }
    return 1;
}

/** iat as whole seconds: an integer, or a real in (0, 1e11). */
static void iat_of(ot_dpop_claims_t *c, const json_t *v)
{
    if (json_is_integer(v)) {
        c->iat = (apr_int64_t)json_integer_value(v);
        c->iat_ok = 1;
    }
    else if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1e11) {
        c->iat = (apr_int64_t)json_real_value(v);
        c->iat_ok = 1;
    }
}

static int claims_json(ot_dpop_claims_t *c, const char *json, apr_size_t len, apr_pool_t *p)
{
    json_t *j = parse_object(json, len, p);

    if (j == NULL) {
        return 0;
    }
    c->htm = ot_json_string(j, "htm");
    c->htu = ot_json_string(j, "htu");
    c->ath = ot_json_string(j, "ath");
    c->jti = ot_json_string(j, "jti");
    c->nonce = ot_json_string(j, "nonce");
    iat_of(c, json_object_get(j, "iat"));
    return 1;
}

/* ---- ot_jscan ------------------------------------------------------------------------------- */

/** Read the next value; into *out when it is a string. */
static void scan_string(ot_jscan_t *sc, const char **out, apr_pool_t *p)
{
    ot_jval_t v;

    if (ot_jscan_value(sc, &v) && v.type == OT_JS_STRING) {
        *out = ot_jval_str(&v, NULL, p);
    }
}

static void scan_jwk(ot_jscan_t *sc, ot_dpop_jwk_t *k, apr_pool_t *p)
{
    ot_jobj_t o;
    ot_jval_t name;
    const char **slot;
    unsigned int priv = 0;
    apr_size_t i;

    if (!ot_jscan_object(sc, &o)) {
        return;
    }
    while (ot_jscan_member(sc, &o, &name)) {
        slot = ot_jval_is(&name, "kty") ? &k->kty : ot_jval_is(&name, "crv") ? &k->crv
             : ot_jval_is(&name, "e") ? &k->e : ot_jval_is(&name, "n") ? &k->n
             : ot_jval_is(&name, "x") ? &k->x : ot_jval_is(&name, "y") ? &k->y : NULL;
        if (slot != NULL) {
            scan_string(sc, slot, p);
            continue;
        }
        for (i = 0; i < N_PRIVATE; i++) {
            priv |= (unsigned int)ot_jval_is(&name, private_members[i]) << i;
        }
        ot_jscan_value(sc, NULL);
    }
    for (i = 0; i < N_PRIVATE && k->private_member == NULL; i++) {
        if (priv & (1u << i)) {
            k->private_member = private_members[i];
        }
    }
}

/** OT_JS_OK with *h filled, BAD (not a JSON object) or UNSURE. */
static ot_jstatus_t head_scan(ot_dpop_head_t *h, const char *json, apr_size_t len,
                              apr_pool_t *p)
{
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t name;

    ot_jscan_init(&sc, json, len);
    if (ot_jscan_object(&sc, &o)) {
        while (ot_jscan_member(&sc, &o, &name)) {
            if (ot_jval_is(&name, "typ")) {
                scan_string(&sc, &h->typ, p);
            }
            else if (ot_jval_is(&name, "alg")) {
                scan_string(&sc, &h->alg, p);
            }
            else if (ot_jval_is(&name, "jwk") && ot_jscan_peek(&sc) == OT_JS_OBJECT) {
                h->jwk = 1;
                scan_jwk(&sc, &h->key, p);
            }
            else {
                h->crit |= ot_jval_is(&name, "crit");
                ot_jscan_value(&sc, NULL);
            }
        }
    }
    ot_jscan_end(&sc);
    return sc.status;
}

/** A real iat, converted by jansson from its text (so as jansson converts it). */
static void scan_real(ot_dpop_claims_t *c, const ot_jval_t *v)
{
    json_t *j = json_loadb(v->raw, v->raw_len, JSON_DECODE_ANY, NULL);

    iat_of(c, j);
    json_decref(j);
}

static ot_jstatus_t claims_scan(ot_dpop_claims_t *c, const char *json, apr_size_t len,
                                apr_pool_t *p)
{
    ot_jscan_t sc;
    ot_jobj_t o;
    ot_jval_t name, v;
    const char **slot;

    ot_jscan_init(&sc, json, len);
    if (ot_jscan_object(&sc, &o)) {
        while (ot_jscan_member(&sc, &o, &name)) {
            slot = ot_jval_is(&name, "htm") ? &c->htm : ot_jval_is(&name, "htu") ? &c->htu
                 : ot_jval_is(&name, "ath") ? &c->ath : ot_jval_is(&name, "jti") ? &c->jti
                 : ot_jval_is(&name, "nonce") ? &c->nonce : NULL;
            if (slot != NULL) {
                scan_string(&sc, slot, p);
            }
            else if (!ot_jval_is(&name, "iat")) {
                ot_jscan_value(&sc, NULL);
            }
            else if (ot_jscan_value(&sc, &v) && v.type == OT_JS_INTEGER) {
                c->iat_ok = ot_jval_int(&v, &c->iat);
            }
            else if (sc.status == OT_JS_OK && v.type == OT_JS_REAL) {
                scan_real(c, &v);
            }
        }
    }
    ot_jscan_end(&sc);
    return sc.status;
}

/* ---- either ------------------------------------------------------------------------------- */

static ot_dpop_reader_t forced = OT_DPOP_READ_ANY;

void ot_dpop_read_use(ot_dpop_reader_t how)
{
    forced = how;
}

static int same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int ot_dpop_head_eq(const ot_dpop_head_t *a, const ot_dpop_head_t *b)
{
    const ot_dpop_jwk_t *x = &a->key, *y = &b->key;

    return same(a->typ, b->typ) && same(a->alg, b->alg) && a->crit == b->crit
        && a->jwk == b->jwk && same(x->kty, y->kty) && same(x->crv, y->crv)
        && same(x->e, y->e) && same(x->n, y->n) && same(x->x, y->x) && same(x->y, y->y)
        && same(x->private_member, y->private_member);
}

int ot_dpop_claims_eq(const ot_dpop_claims_t *a, const ot_dpop_claims_t *b)
{
    return same(a->htm, b->htm) && same(a->htu, b->htu) && same(a->ath, b->ath)
        && same(a->jti, b->jti) && same(a->nonce, b->nonce) && a->iat_ok == b->iat_ok
        && (!a->iat_ok || a->iat == b->iat);
}

int ot_dpop_read_head(ot_dpop_head_t *h, const char *json, apr_size_t len,
                      ot_dpop_reader_t how, apr_pool_t *p)
{
    ot_jstatus_t st = OT_JS_UNSURE;

    how = how == OT_DPOP_READ_ANY ? forced : how;
    if (how != OT_DPOP_READ_JANSSON) {
        memset(h, 0, sizeof(*h));
        if ((st = head_scan(h, json, len, p)) != OT_JS_UNSURE) {
            return st == OT_JS_OK;
        }
        if (how == OT_DPOP_READ_SCAN) {
            return -1;
        }
    }
    memset(h, 0, sizeof(*h));
    return head_json(h, json, len, p);
}

int ot_dpop_read_claims(ot_dpop_claims_t *c, const char *json, apr_size_t len,
                        ot_dpop_reader_t how, apr_pool_t *p)
{
    ot_jstatus_t st = OT_JS_UNSURE;

    how = how == OT_DPOP_READ_ANY ? forced : how;
    if (how != OT_DPOP_READ_JANSSON) {
        memset(c, 0, sizeof(*c));
        if ((st = claims_scan(c, json, len, p)) != OT_JS_UNSURE) {
            return st == OT_JS_OK;
        }
        if (how == OT_DPOP_READ_SCAN) {
            return -1;
        }
    }
    memset(c, 0, sizeof(*c));
    return claims_json(c, json, len, p);
}
