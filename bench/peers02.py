"""The peers of the 0.2 scenarios (issues 15 and 16), for bench/bench02.py.

- local-4k, local-unique: Debian's mod_auth_openidc (2.4.12) and mod_oauth2 (3.3.1, liboauth2
  1.4.5) verifying the bench's RS256 access tokens themselves with the fast issuer's JWKS;
- dpop-cached: mod_oauth2 introspecting the DPoP-bound answer (cached) with
  `OAuth2TokenVerify ... type=dpop`, which checks a proof on every request.

Before any measured run each peer must accept a valid request and refuse a bad one (a token
whose signature is another token's, a replayed DPoP proof): a peer that lets the bad one through
aborts the scenario, since its figures would not be those of a check.

What the peers check (from their source at the Debian versions; docs/performance.md quotes it):
- mod_auth_openidc 2.4.12, `AuthType oauth20` with `OIDCOAuthVerifyJwksUri` and no
  introspection endpoint: parses the token as a JWT, checks `exp` when present and the
  signature with the JWKS (kept in its cache for `OIDCJWKSRefreshInterval`); no `iss`,
  no `aud`; it keeps no verified token, so every request verifies a signature.
- mod_oauth2 3.3.1 / liboauth2 1.4.5, `OAuth2TokenVerify jwks_uri`: the signature, `exp`
  (`verify.exp=required`), `iat` at most 10 s in the future; no `iss` (it passes none), no `aud`. A
  verified token's payload is kept in its cache for `expiry` seconds (default 300): 86400 in
  local-4k (as the module's kept claims), 0 in local-unique (an entry stored with expiry 0 is
  never found again: liboauth2's shm cache answers only entries whose expiry is > now).
- mod_oauth2 with `type=dpop`: the proof's typ, alg, signature with its jwk, htm, htu, iat
  within the slacks, `cnf.jkt`, and a replay cache; liboauth2 1.4.5 does not check `ath`
  (added in 1.5.2, "update DPoP support to RFC 9449").
"""
import os

import benchlib as bl

RUN = None          # bench/run's module (set by bench02)
OIDC_SO = "mod_auth_openidc"
OAUTH2_SO = "mod_oauth2"
ENTRIES = 5000      # both peers' shm caches, as in bench/run's introspection configurations


def installed(peer):
    return os.path.exists(os.path.join(bl.MODDIR, peer + ".so"))


def openidc_jwks_variant(b):
    """mod_auth_openidc as a resource server verifying JWTs with OIDCOAuthVerifyJwksUri (the
    bench issuer's /jwks over TLS, trusting the bench CA). OIDCCacheEncrypt is left at its
    default (Off for shm): the JWKS is read from the cache on every request."""
    load = "LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so"
    server = f"""
OIDCCryptoPassphrase bench-passphrase-0123456789
OIDCCABundlePath {b.pki.ca_file}
OIDCOAuthSSLValidateServer On
OIDCOAuthVerifyJwksUri {b.issuer.url}/jwks
OIDCJWKSRefreshInterval 86400
OIDCCacheType shm
OIDCCacheShmMax {ENTRIES}
OIDCCacheShmEntrySizeMax 8721"""
    location = """
    AuthType oauth20
    Require valid-user"""
    return load, server, location


def oauth2_jwks_variant(b, expiry):
    """mod_oauth2 with OAuth2TokenVerify jwks_uri; liboauth2 1.4.5 has no CA-file option, so
    jwks_uri.ssl_verify=false (as bench/run's introspection configuration). expiry: how long a
    verified token's payload is kept (0: never found again)."""
    load = "LoadModule oauth2_module /usr/lib/apache2/modules/mod_oauth2.so"
    server = f"OAuth2Cache shm max_entries={ENTRIES}"
    opts = (f"jwks_uri.ssl_verify=false&jwks_uri.expiry=86400&verify.exp=required"
            f"&expiry={expiry}")
    location = f"""
    AuthType oauth2
    OAuth2TokenVerify jwks_uri {b.issuer.url}/jwks {opts}
    Require valid-user"""
    return load, server, location


def oauth2_dpop_variant(b):
    """mod_oauth2 introspecting the DPoP-bound answer (cached a day, as the module's) with
    type=dpop: Authorization: DPoP accepted (OAuth2AcceptTokenIn header type=DPoP), the proof
    checked on every request, iat up to 30 s old (as OfftokDPoPMaxAge 30), the proof kept 31 s
    (as in the module's table) in the same shm cache of 5,000 entries, or until evicted from
    it (the least recently used goes first: after about 5,000 requests)."""
    load = "LoadModule oauth2_module /usr/lib/apache2/modules/mod_oauth2.so"
    server = f"OAuth2Cache shm max_entries={ENTRIES}"
    opts = ("introspect.ssl_verify=false&introspect.auth=client_secret_basic"
            f"&client_id={RUN.CLIENT_ID}&client_secret={RUN.CLIENT_SECRET}&expiry=86400"
            "&type=dpop&dpop.iat.slack.before=30&dpop.iat.slack.after=5&dpop.expiry=31")
    location = f"""
    AuthType oauth2
    OAuth2AcceptTokenIn header type=DPoP
    OAuth2TokenVerify introspect {b.nginx.url}-dpop {opts}
    Require valid-user"""
    return load, server, location


# -- sanity checks -------------------------------------------------------------------------------

def bad_signature(b, i):
    """A token never sent before (number i) carrying the signature of another: well formed,
    the right kid, alg and length, and a signature that does not verify."""
    token = b.issuer.access_token(i)
    other = b.issuer.access_token(i + 1)
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def must_refuse(h, what, status, body):
    if status == 200:
        raise RuntimeError(f"{h.name} accepted {what} (200): its figures would not be those of "
                           f"a check; scenario aborted\n" + h.error_log()[-1500:])
    bl.log(f"    sanity: {h.name} refused {what} ({status})")
    return status


def check_jwt_peer(b, h, good, n):
    """A valid token gets 200, one with a wrong signature not; the statuses."""
    status, body = h.get(good)
    if status != 200:
        raise RuntimeError(f"{h.name}: a valid token got {status}: {body[:200]!r}\n"
                           + h.error_log()[-2000:])
    bad = bad_signature(b, 900000 + n)
    status, body = h.get(bad)
    return {"valid": 200, "bad_signature": must_refuse(h, "a token with a wrong signature",
                                                       status, body)}


def jwt_peers(b, local_unique, good):
    """[(label, httpd)] of the JWKS peers for local-4k (local_unique False) or local-unique,
    each checked (check_jwt_peer), and the checks' statuses by label."""
    if b.args.no_peers:
        return [], {}
    out, sanity = [], {}
    makers = [(OIDC_SO, OIDC_SO + "-jwks", openidc_jwks_variant, {}),
              (OAUTH2_SO, OAUTH2_SO + "-jwks", oauth2_jwks_variant,
               {"expiry": 0 if local_unique else 86400})]
    for n, (so, label, make, kw) in enumerate(makers):
        if not installed(so):
            bl.log(f"    {label}: {so}.so not installed, not run")
            continue
        key = (label, tuple(sorted(kw.items())))
        try:
            h = b.variant(key, label, make, **kw)
        except RuntimeError as err:
            raise RuntimeError(f"{label} could not be started: {str(err)[:600]}")
        sanity[label] = check_jwt_peer(b, h, good, n)
        out.append((label, h))
    return out, sanity


def dpop_request(h, token, proof):
    import urllib.request
    req = urllib.request.Request(h.url, headers={"Authorization": "DPoP " + token,
                                                 "DPoP": proof})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def check_dpop(b, h, token, must_check_ath):
    """A fresh proof gets 200; the same proof again must be refused (else the scenario is
    aborted); a fresh proof whose ath is another token's hash: refused by the module
    (must_check_ath), recorded for the peer (liboauth2 1.4.5 does not check ath)."""
    path = os.path.join(b.issuer.dir, f"sanity-{h.name}-")
    b.issuer.proofs(h.url, token, 1, 1, path)
    with open(path + "1") as f:
        first = f.read().strip()
    status, body = dpop_request(h, token, first)
    if status != 200:
        raise RuntimeError(f"{h.name}: a valid DPoP request got {status}: {body[:200]!r}\n"
                           + h.error_log()[-2000:])
    out = {"valid": 200}
    status, body = dpop_request(h, token, first)
    out["replayed_proof"] = must_refuse(h, "a replayed DPoP proof", status, body)
    b.issuer.proofs(h.url, token + "-other", 1, 1, path + "ath-")
    with open(path + "ath-1") as f:
        wrong_ath = f.read().strip()
    status, body = dpop_request(h, token, wrong_ath)
    if must_check_ath:
        out["wrong_ath"] = must_refuse(h, "a DPoP proof with a wrong ath", status, body)
    else:
        out["wrong_ath"] = status
        bl.log(f"    sanity: {h.name} answered {status} to a proof with a wrong ath"
               + (" (not checked by this version)" if status == 200 else ""))
    return out
