"""Discovery and local validation (OfftokAccessTokens Local), against the Keycloak-shaped
stand-in (stubs/keycloak.py: RS256 access tokens with a kid in its JWKS, HS512 offline tokens,
metadata at both well-known URLs, key rotation and a JWKS switch) unless a test says otherwise.

"Zero issuer calls" is read from the stand-in's introspection log; key and metadata fetches from
its fetch counters.
"""
import base64
import concurrent.futures
import json
import os
import time
import uuid

import pytest
import requests

from httpd import offtok_lines, protected, wait_until

STATUS = """
<Location "/offtok-status">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
"""

LOGOUT = "/offtok/backchannel-logout"
ADMIN = "/offtok/kc-admin"


@pytest.fixture(autouse=True)
def standin_reset(keycloak):
    """Every test starts and ends with the stand-in serving normally."""
    keycloak.serve(metadata_issuer=None, oidc_metadata_404=False, metadata_no_introspection=False,
                   jwks_down=False)
    keycloak.set_mode(refresh_needs_hint=True, refresh_own_client_only=False,
                      access_needs_audience=False)
    yield
    keycloak.serve(metadata_issuer=None, oidc_metadata_404=False, metadata_no_introspection=False,
                   jwks_down=False)


def local(kc, path="/cgi/", extra="", **kw):
    directives = dict(OfftokIssuer=kc.issuer, OfftokAudience="rs-client",
                      OfftokAccessTokens="Local")
    directives.update(kw)
    return protected(path, kc, extra=extra, **directives)


def discovered(kc, path="/cgi/", **kw):
    """A location that names only the issuer and the client: the endpoints are discovered."""
    lines = "\n    ".join(f"{k} {v}" for k, v in kw.items())
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    OfftokIssuer {kc.issuer}
    OfftokClientID {kc.rs_client_id}
    OfftokClientSecret {kc.rs_client_secret}
    OfftokCAFile {kc.ca_file}
    {lines}
    Require valid-user
</Location>
"""


def payload(kc, **over):
    """An access token's payload as the stand-in makes them (typ Bearer, aud rs-client)."""
    now = int(time.time())
    claims = {"iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), "iss": kc.issuer,
              "sub": "ada", "typ": "Bearer", "azp": "app-client", "sid": str(uuid.uuid4()),
              "aud": ["rs-client", "account"], "scope": "openid profile"}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def signed(kc, forge=None, header=None, **over):
    return kc.sign(payload(kc, **over), header=header, forge=forge)


def env_of(httpd, token, path="/cgi/env"):
    r = httpd.get(path, token=token)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def prefork_start(httpd, conf, servers):
    """Prefork with few children, so that one process's key and metadata caches are seen."""
    httpd.allow_errors(r"AH00161")    # "server reached MaxRequestWorkers"
    httpd.start(conf, mpm="prefork", servers=servers)


def status(httpd):
    return httpd.get("/offtok-status").json()


# ---- accepted locally --------------------------------------------------------------------------

def test_local_accept_with_zero_issuer_calls(httpd, keycloak):
    httpd.start(local(keycloak) + STATUS)
    token = keycloak.mint_access(sub="ada-id", username="ada")
    keycloak.reset_counts()
    for _ in range(3):
        env = env_of(httpd, token)
        assert env["REMOTE_USER"] == "ada-id"
        assert env["OFFTOK_CHECK"] == "local"
        assert env["OFFTOK_TOKEN_KIND"] == "access"
        assert env["OFFTOK_CLAIM_preferred_username"] == "ada"
        # The JWT's own claims, nothing made up.
        for made_up in ("active", "client_id", "username", "token_type"):
            assert f"OFFTOK_CLAIM_{made_up}" not in env
    assert keycloak.introspection_count() == 0
    local_stats = status(httpd)["local"]
    assert local_stats["verified"] == 1, local_stats    # the signature checked once
    assert local_stats["cached"] == 2, local_stats
    prom = httpd.get("/offtok-status?format=prometheus").text
    assert "offtok_local_verified_total 1" in prom
    assert 'offtok_local_failures_total{reason="signature"} 0' in prom


def test_rfc9068_at_jwt_is_judged_locally(httpd, keycloak):
    httpd.start(local(keycloak))
    keycloak.reset_counts()
    token = keycloak.sign(payload(keycloak, typ=None),
                          header={"alg": "RS256", "typ": "application/AT+JWT",
                                  "kid": keycloak_kid(keycloak)})
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "local"
    assert keycloak.introspection_count() == 0


def keycloak_kid(kc):
    """The stand-in's current signing kid, read off a token it signed."""
    head = kc.sign({"x": 1}).split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def test_introspect_is_still_the_default(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokIssuer=keycloak.issuer))
    token = keycloak.mint_access()
    keycloak.reset_counts()
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.introspection_count() == 1


def test_eddsa_access_token_is_verified_locally(httpd, keycloak):
    """EdDSA (Ed25519), which Keycloak offers as a realm key: cjose cannot, OpenSSL does."""
    httpd.start(local(keycloak))
    keycloak.reset_counts()
    token = keycloak.mint_access(sub="eve", header={"alg": "EdDSA"})
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "EdDSA"
    env = env_of(httpd, token)
    assert env["OFFTOK_CHECK"] == "local" and env["REMOTE_USER"] == "eve"
    assert keycloak.introspection_count() == 0
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    assert httpd.get("/cgi/env", token=forged).status_code == 401
    assert keycloak.introspection_count() == 0


# ---- refused locally, without an issuer call ---------------------------------------------------

@pytest.mark.parametrize("forge", ["bad_signature", "other_key"])
def test_forged_signature_is_refused_without_asking(httpd, keycloak, forge):
    httpd.start(local(keycloak) + STATUS)
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge=forge))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert keycloak.introspection_count() == 0
    assert "OT0604" in httpd.error_log()
    assert status(httpd)["local"]["failures"]["signature"] == 1


@pytest.mark.parametrize("forge", ["alg_none", "hs256_pem", "hs256_jwk"])
def test_none_and_hmac_are_never_accepted_here(httpd, keycloak, forge):
    httpd.start(local(keycloak))
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge=forge))
    assert r.status_code == 401
    # Not judged here: the issuer was asked, and said no.
    assert keycloak.introspection_count() == 1
    assert "OT0604" not in httpd.error_log()


@pytest.mark.parametrize("over,reason", [
    ({"exp": -10}, "expired"),
    ({"exp": None}, "expired"),
    ({"nbf": 120}, "not_yet_valid"),
    ({"iat": 120}, "not_yet_valid"),
    ({"iss": "https://elsewhere.example/realms/test"}, "issuer"),
    ({"aud": ["account"]}, "audience"),
], ids=["expired", "no-exp", "nbf-ahead", "iat-ahead", "iss", "aud"])
def test_bad_claims_are_refused_without_asking(httpd, keycloak, over, reason):
    httpd.start(local(keycloak) + STATUS)
    now = int(time.time())
    claims = {k: (now + v if k in ("exp", "nbf", "iat") and v is not None else v)
              for k, v in over.items()}
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=signed(keycloak, **claims))
    assert r.status_code == 401
    assert keycloak.introspection_count() == 0
    assert status(httpd)["local"]["failures"][reason] == 1


def test_clock_skew_allows_a_slightly_early_nbf_but_no_late_exp(httpd, keycloak):
    httpd.start(local(keycloak, OfftokClockSkew=60))
    now = int(time.time())
    assert httpd.get("/cgi/env", token=signed(keycloak, nbf=now + 30,
                                              iat=now + 30)).status_code == 200
    assert httpd.get("/cgi/env", token=signed(keycloak, nbf=now + 120)).status_code == 401
    assert httpd.get("/cgi/env", token=signed(keycloak, exp=now - 1)).status_code == 401


# ---- keys: rotation, unknown kid, the JWKS endpoint down ---------------------------------------

def test_unknown_kid_refetches_keys_then_follows_a_rotation(httpd, keycloak):
    prefork_start(httpd, local(keycloak), 1)
    before = keycloak.mint_access()
    assert env_of(httpd, before)["OFFTOK_CHECK"] == "local"
    keycloak.fetch_counts(reset=True)
    keycloak.reset_counts()
    keycloak.rotate_keys(keep_old=True)
    after = keycloak.mint_access()
    # Keys are fetched again at most once per 10 s: until then the issuer judges the new kid.
    assert env_of(httpd, after)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.fetch_counts()["jwks"] == 0
    wait_until(lambda: env_of(httpd, after)["OFFTOK_CHECK"] == "local", timeout=20,
               interval=1, what="the new key to be fetched")
    assert keycloak.fetch_counts()["jwks"] == 1, "the unknown kid made it fetch the keys once"
    assert env_of(httpd, before)["OFFTOK_CHECK"] == "local", "the old key is still published"
    # A kid nobody publishes: no second fetch within 10 s, and the issuer judges the token.
    r = httpd.get("/cgi/env", token=signed(keycloak, forge="unknown_kid"))
    keycloak.reset_counts()
    assert r.status_code == 401
    r = httpd.get("/cgi/env", token=signed(keycloak, forge="unknown_kid"))
    assert r.status_code == 401
    assert keycloak.fetch_counts()["jwks"] == 1
    assert keycloak.introspection_count() == 1


def test_jwks_down_uses_the_keys_already_fetched(httpd, keycloak):
    prefork_start(httpd, local(keycloak), 1)
    assert env_of(httpd, keycloak.mint_access())["OFFTOK_CHECK"] == "local"
    keycloak.serve(jwks_down=True)
    keycloak.reset_counts()
    assert env_of(httpd, keycloak.mint_access(sub="bob"))["OFFTOK_CHECK"] == "local"
    assert keycloak.introspection_count() == 0


def test_jwks_down_with_no_keys_yet_is_503(httpd, keycloak):
    keycloak.serve(jwks_down=True)
    httpd.allow_errors(r"OT0602")
    httpd.start(local(keycloak))
    r = httpd.get("/cgi/env", token=keycloak.mint_access())
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert "OT0602" in httpd.error_log()


# ---- what goes to the issuer instead ------------------------------------------------------------

def test_lightweight_token_falls_back_to_introspection(httpd, keycloak):
    httpd.start(local(keycloak))
    keycloak.reset_counts()
    token = keycloak.mint_access(sub="ada", lightweight=["aud", "sub", "scope"])
    env = env_of(httpd, token)
    assert env["OFFTOK_CHECK"] == "introspection"
    assert env["REMOTE_USER"] == "ada"
    assert keycloak.introspection_count() == 1


@pytest.mark.parametrize("forge", [None, "bad_signature"])
def test_a_jwt_typed_other_than_bearer_goes_to_the_issuer(httpd, keycloak, forge):
    """An RS256 JWT whose header leaves its kind to its typ claim, with typ Offline (not an
    access token; a typ the module refuses outright, as ID, would never reach the issuer): the
    issuer judges it, signed by the issuer's key or forged. A first sight looks at the verified
    payload's typ before peeking (branch localuniq): it must neither take such a token locally
    nor refuse a forged one here."""
    httpd.start(local(keycloak) + STATUS)
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge=forge, typ="Offline"))
    assert r.status_code == 401             # the stand-in knows no such token: inactive
    assert keycloak.introspection_count() == 1
    assert "OT0604" not in httpd.error_log()
    local_stats = status(httpd)["local"]
    assert local_stats["verified"] == 0, local_stats
    assert local_stats["failures"]["signature"] == 0, local_stats
    # The same with typ Bearer: judged here, without the issuer (accepted, or refused forged).
    r = httpd.get("/cgi/env", token=signed(keycloak, forge=forge))
    assert r.status_code == (401 if forge else 200)
    assert keycloak.introspection_count() == 1
    local_stats = status(httpd)["local"]
    assert local_stats["verified"] == (0 if forge else 1), local_stats
    assert local_stats["failures"]["signature"] == (1 if forge else 0), local_stats


def test_a_jwt_typed_other_than_bearer_never_fetches_keys(httpd, keycloak):
    """A typ Offline JWT with a kid nobody publishes goes to the issuer without a key fetch, once
    the keys may be fetched again (10 s after the last fetch), and leaves that fetch to the
    access token with an unknown kid that comes next."""
    prefork_start(httpd, local(keycloak), 1)
    assert env_of(httpd, keycloak.mint_access())["OFFTOK_CHECK"] == "local"
    keycloak.fetch_counts(reset=True)
    time.sleep(11)
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge="unknown_kid", typ="Offline"))
    assert r.status_code == 401
    assert keycloak.introspection_count() == 1
    assert keycloak.fetch_counts()["jwks"] == 0, "a token not judged here fetched the keys"
    r = httpd.get("/cgi/env", token=signed(keycloak, forge="unknown_kid"))
    assert r.status_code == 401
    assert keycloak.fetch_counts()["jwks"] == 1, "the access token's unknown kid fetched them"


def test_a_claim_the_location_uses_is_missing_so_the_issuer_is_asked(httpd, keycloak):
    httpd.start(local(keycloak, require="offtok-claim department sales"))
    keycloak.reset_counts()
    with_claim = keycloak.mint_access(claims={"department": "sales"})
    assert env_of(httpd, with_claim)["OFFTOK_CHECK"] == "local"
    assert keycloak.introspection_count() == 0
    without = keycloak.mint_access(lightweight=["department"], claims={"department": "sales"})
    assert env_of(httpd, without)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.introspection_count() == 1


def test_offline_tokens_still_validated_on_every_request(httpd, keycloak):
    httpd.start(local(keycloak, OfftokAlwaysValidate="Offline"))
    offline = keycloak.mint_offline(sub="ada")
    access = keycloak.mint_access(sub="ada")
    keycloak.reset_counts()
    for _ in range(3):
        assert env_of(httpd, offline)["OFFTOK_CHECK"] == "introspection"
        assert env_of(httpd, access)["OFFTOK_CHECK"] == "local"
    assert keycloak.introspection_count() == 3


def test_always_validate_on_introspects_every_token(httpd, keycloak):
    httpd.start(local(keycloak, OfftokAlwaysValidate="On"))
    token = keycloak.mint_access()
    keycloak.reset_counts()
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "introspection"
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.introspection_count() == 2


# ---- pushed revocations ------------------------------------------------------------------------

def pushes(kc):
    lines = offtok_lines(kc, OfftokIssuer=kc.issuer, OfftokJWKSURL=kc.jwks_url)
    return "".join(f"""
<Location "{path}">
    SetHandler {handler}
    {lines}
    Require ip 127.0.0.1
</Location>
""" for path, handler in ((LOGOUT, "offtok-backchannel-logout"),
                          (ADMIN, "offtok-keycloak-admin")))


def push_not_before(httpd, kc, resource, ahead):
    """The stand-in's signed k_push_not_before for resource, not-before `ahead` s from now,
    posted to httpd's admin handler (pushes()), and accepted."""
    jws = kc.admin_action("k_push_not_before", resource=resource,
                          not_before=int(time.time()) + ahead)
    r = httpd.post(f"{ADMIN}/k_push_not_before", data=jws,
                   headers={"Content-Type": "text/plain; charset=utf-8"})
    assert r.status_code in (200, 204), r.text


def test_logout_push_refuses_locally_checked_tokens(httpd, keycloak):
    prefork_start(httpd, local(keycloak) + pushes(keycloak), 2)
    doomed = keycloak.mint_access(sub="ada", sid="sid-doomed")
    other_session = keycloak.mint_access(sub="ada", sid="sid-other")
    assert env_of(httpd, doomed)["OFFTOK_CHECK"] == "local"
    assert env_of(httpd, other_session)["OFFTOK_CHECK"] == "local"
    keycloak.reset_counts()
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sub="ada",
                                                                        sid="sid-doomed")})
    assert r.status_code == 200, r.text
    for _ in range(4):
        assert httpd.get("/cgi/env", token=doomed).status_code == 401
    assert keycloak.introspection_count() == 0, "refused here, as a deny rule"
    # The same user's other session: a logout by sub matched, not by sid; the issuer decides.
    assert env_of(httpd, other_session)["OFFTOK_CHECK"] == "introspection"
    assert "OT0606" in httpd.error_log()


def test_logout_without_sid_refuses_every_token_of_the_sub(httpd, keycloak):
    httpd.start(local(keycloak) + pushes(keycloak))
    token = keycloak.mint_access(sub="bea")
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "local"
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sub="bea")})
    assert r.status_code == 200, r.text
    assert httpd.get("/cgi/env", token=token).status_code == 401
    assert env_of(httpd, keycloak.mint_access(sub="cid"))["OFFTOK_CHECK"] == "local"


def test_not_before_push_refuses_older_locally_checked_tokens(httpd, keycloak):
    httpd.start(local(keycloak) + pushes(keycloak))
    old = keycloak.mint_access(sub="ada")
    assert env_of(httpd, old)["OFFTOK_CHECK"] == "local"
    push_not_before(httpd, keycloak, keycloak.rs_client_id, 1)
    keycloak.reset_counts()
    assert httpd.get("/cgi/env", token=old).status_code == 401
    assert keycloak.introspection_count() == 0


def test_not_before_of_the_tokens_own_client_refuses_its_kept_verdict(httpd, keycloak):
    """A not-before policy pushed for the client a token was issued to (its azp, a client of
    OfftokLogoutAudience, not the location's) refuses the token's kept local verdict without an
    issuer call, and leaves another client's token judged locally."""
    lines = offtok_lines(keycloak, OfftokIssuer=keycloak.issuer, OfftokJWKSURL=keycloak.jwks_url,
                         OfftokLogoutAudience="orders-web orders-mobile")
    admin = f"""
<Location "{ADMIN}">
    SetHandler offtok-keycloak-admin
    {lines}
    Require ip 127.0.0.1
</Location>
"""
    httpd.start(local(keycloak) + admin)
    web, other = signed(keycloak, azp="orders-web"), signed(keycloak, azp="app-client")
    for token in (web, other):
        assert env_of(httpd, token)["OFFTOK_CHECK"] == "local"      # verified, then kept
        assert env_of(httpd, token)["OFFTOK_CHECK"] == "local"      # from the kept verdict
    push_not_before(httpd, keycloak, "orders-web", 2)
    keycloak.reset_counts()
    assert httpd.get("/cgi/env", token=web).status_code == 401
    assert env_of(httpd, other)["OFFTOK_CHECK"] == "local"
    assert keycloak.introspection_count() == 0


def test_token_living_longer_than_revocations_are_kept_is_introspected(httpd, keycloak):
    httpd.start(local(keycloak))
    keycloak.reset_counts()
    token = keycloak.mint_access(ttl=2 * 86400)
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.introspection_count() == 1


# ---- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["OfftokIssuer", "OfftokAudience"])
def test_configtest_refuses_local_without_issuer_or_audience(httpd, keycloak, missing):
    directives = dict(OfftokIssuer=keycloak.issuer, OfftokAudience="rs-client",
                      OfftokAccessTokens="Local")
    del directives[missing]
    code, out = httpd.configtest(protected("/x/", keycloak, **directives))
    assert code != 0
    assert "OT0600" in out and "needs OfftokIssuer and OfftokAudience" in out, out


def test_configtest_refuses_local_at_server_level_without_audience(httpd, keycloak):
    code, out = httpd.configtest(protected("/x/", keycloak, OfftokAudience="rs-client"),
                                 server=f"OfftokIssuer {keycloak.issuer}\n"
                                        "OfftokAccessTokens Local")
    assert code != 0
    assert "OT0607: OfftokAccessTokens Local at server level needs OfftokIssuer and " \
           "OfftokAudience" in out, out


def test_configtest_accepts_local_with_issuer_at_server_level(httpd, keycloak):
    code, out = httpd.configtest(protected("/x/", keycloak, OfftokAccessTokens="Local"),
                                 server=f"OfftokIssuer {keycloak.issuer}\n"
                                        "OfftokAudience rs-client")
    assert code == 0, out


@pytest.mark.parametrize("line,message", [
    ("OfftokAccessTokens Sometimes", "is not one of Introspect, Local"),
    ("OfftokClockSkew -3", "is not a whole number of seconds"),
])
def test_bad_arguments(httpd, line, message):
    code, out = httpd.configtest(f'<Location "/x/">\n    {line}\n</Location>')
    assert code != 0 and message in out, out


def test_htaccess_local_without_audience_is_500(httpd, keycloak):
    lines = offtok_lines(keycloak, OfftokIssuer=keycloak.issuer)
    htdir = os.path.join(httpd.root, "htdocs", "ht")
    os.makedirs(htdir, exist_ok=True)
    with open(os.path.join(htdir, "index.html"), "w") as f:
        f.write("ht\n")
    with open(os.path.join(htdir, ".htaccess"), "w") as f:
        f.write("OfftokAccessTokens Local\n")
    os.chmod(htdir, 0o755)
    httpd.allow_errors(r"OT0608")
    httpd.start(f"""
<Directory "{htdir}">
    AllowOverride AuthConfig
    AuthType offtok
    {lines}
    Require valid-user
</Directory>
""")
    r = httpd.get("/ht/index.html", token=keycloak.mint_access())
    assert r.status_code == 500
    assert "OT0608: OfftokAccessTokens Local in" in httpd.error_log()


def test_htaccess_local_does_not_outlive_the_kept_revocations(httpd, keycloak):
    """Attack: OfftokAccessTokens Local only in a .htaccess used to raise, in the one process that
    read it, how long pushed revocations are taken to be kept (an hour) while the process that
    stores a logout keeps it for the longest TTL only (here 60 + timeout + 60 s): a token living
    longer than that, logged out, would have been accepted locally once the logout was forgotten.
    Such a token is introspected now; a short-lived one is still judged locally."""
    lines = offtok_lines(keycloak, OfftokIssuer=keycloak.issuer, OfftokAudience="rs-client")
    htdir = os.path.join(httpd.root, "htdocs", "ht")
    os.makedirs(htdir, exist_ok=True)
    with open(os.path.join(htdir, "index.html"), "w") as f:
        f.write("ht\n")
    with open(os.path.join(htdir, ".htaccess"), "w") as f:
        f.write("OfftokAccessTokens Local\n")
    os.chmod(htdir, 0o755)
    httpd.start(f"""
<Directory "{htdir}">
    AllowOverride AuthConfig
    AuthType offtok
    {lines}
    Require valid-user
</Directory>
""")
    short = keycloak.mint_access(ttl=60)
    keycloak.reset_counts()
    assert httpd.get("/ht/index.html", token=short).status_code == 200
    assert keycloak.introspection_count() == 0          # judged locally
    long_lived = keycloak.mint_access(ttl=1800)
    assert httpd.get("/ht/index.html", token=long_lived).status_code == 200
    assert keycloak.introspection_count() == 1          # outlives the kept logouts: the issuer


# ---- discovery ----------------------------------------------------------------------------------

def test_discovery_from_the_issuer_alone(httpd, keycloak):
    keycloak.fetch_counts(reset=True)
    prefork_start(httpd, discovered(keycloak, OfftokAudience="rs-client",
                                    OfftokAccessTokens="Local"), 1)
    keycloak.reset_counts()
    assert env_of(httpd, keycloak.mint_access())["OFFTOK_CHECK"] == "local"
    offline = keycloak.mint_offline()
    assert env_of(httpd, offline)["OFFTOK_CHECK"] == "introspection"
    assert keycloak.introspection_count() == 1, "the discovered introspection endpoint"
    counts = keycloak.fetch_counts()
    assert counts["oidc_metadata"] == 1 and counts["rfc8414_metadata"] == 0, counts


def test_discovery_falls_back_to_rfc8414_on_404(httpd, keycloak):
    keycloak.serve(oidc_metadata_404=True)
    keycloak.fetch_counts(reset=True)
    httpd.start(discovered(keycloak))
    assert env_of(httpd, keycloak.mint_access())["OFFTOK_CHECK"] == "introspection"
    counts = keycloak.fetch_counts()
    assert counts["oidc_metadata"] >= 1 and counts["rfc8414_metadata"] >= 1, counts


def test_discovery_with_a_mismatched_issuer_is_refused(httpd, keycloak):
    keycloak.serve(metadata_issuer=keycloak.issuer + "/")
    httpd.allow_errors(r"OT0601")
    httpd.start(discovered(keycloak))
    r = httpd.get("/cgi/env", token=keycloak.mint_access())
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert "its issuer is not OfftokIssuer exactly" in httpd.error_log()


def test_discovered_metadata_without_introspection_endpoint_is_503(httpd, keycloak):
    """Keycloak stand-in: metadata that names no introspection_endpoint, and the location names
    no OfftokIntrospectionURL: nothing to ask, so 503 (OT0609) and no call."""
    keycloak.serve(metadata_no_introspection=True)
    httpd.allow_errors(r"OT0609")
    httpd.start(discovered(keycloak))
    token = keycloak.mint_access()
    keycloak.reset_counts()
    r = httpd.get("/cgi/env", token=token)
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert "OT0609: the metadata of issuer " in httpd.error_log()
    assert "has no introspection_endpoint; answering 503" in httpd.error_log()
    assert keycloak.introspection_count() == 0


def test_explicit_introspection_url_wins_over_discovery(httpd, keycloak):
    keycloak.serve(metadata_issuer="https://elsewhere.example/")
    keycloak.fetch_counts(reset=True)
    httpd.start(protected("/cgi/", keycloak, OfftokIssuer=keycloak.issuer))
    assert env_of(httpd, keycloak.mint_access())["OFFTOK_CHECK"] == "introspection"
    assert keycloak.fetch_counts()["oidc_metadata"] == 0


def test_no_introspection_url_and_no_issuer_is_still_500(httpd, keycloak):
    httpd.allow_errors(r"OT0001")
    httpd.start(f"""
<Location "/broken/">
    AuthType offtok
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    Require valid-user
</Location>
""")
    assert httpd.get("/broken/x", token="abc").status_code == 500
    assert "OT0001: AuthType offtok in </broken/> has no OfftokIntrospectionURL" \
        in httpd.error_log()


def test_push_handler_finds_the_keys_through_discovery(httpd, keycloak):
    keycloak.fetch_counts(reset=True)
    httpd.start(local(keycloak) + f"""
<Location "{LOGOUT}">
    SetHandler offtok-backchannel-logout
    OfftokIssuer {keycloak.issuer}
    OfftokClientID rs-client
    OfftokCAFile {keycloak.ca_file}
    Require ip 127.0.0.1
</Location>
""")
    token = keycloak.mint_access(sub="dee", sid="sid-dee")
    assert env_of(httpd, token)["OFFTOK_CHECK"] == "local"
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sub="dee",
                                                                        sid="sid-dee")})
    assert r.status_code == 200, r.text
    assert keycloak.fetch_counts()["oidc_metadata"] >= 1
    assert httpd.get("/cgi/env", token=token).status_code == 401


# ---- oidc-provider: its own metadata and RFC 9068 JWT access tokens ---------------------------

def test_oidc_provider_jwt_access_tokens_verified_locally_after_discovery(httpd, oidc):
    """oidc-provider (a real OpenID Provider), not the stand-in: endpoints from its own
    metadata, its at+jwt access tokens verified with its own JWKS."""
    httpd.start(discovered(oidc, OfftokAudience="rs-client", OfftokAccessTokens="Local"))
    oidc.reset_counts()
    token = oidc.mint_access(sub="olga", scope="openid profile", jwt=True,
                             claims={"department": "qa"})
    assert token.count(".") == 2
    env = env_of(httpd, token)
    assert env["OFFTOK_CHECK"] == "local"
    assert env["REMOTE_USER"] == "olga"
    assert env["OFFTOK_CLAIM_client_id"] == "app-client"      # RFC 9068's own claim
    assert env["OFFTOK_CLAIM_department"] == "qa"
    assert "OFFTOK_CLAIM_active" not in env
    opaque = oidc.mint_access(sub="olga", aud="rs-client")
    assert env_of(httpd, opaque)["OFFTOK_CHECK"] == "introspection"
    assert oidc.introspection_count() == 1


def test_oidc_provider_jwt_for_another_audience_is_refused(httpd, oidc):
    httpd.start(discovered(oidc, OfftokAudience="rs-client", OfftokAccessTokens="Local"))
    oidc.reset_counts()
    token = oidc.mint_access(sub="olga", jwt=True, aud="another-api")
    assert httpd.get("/cgi/env", token=token).status_code == 401
    assert oidc.introspection_count() == 0


# ---- one fetch for all processes ----------------------------------------------------------------

def test_keys_and_metadata_fetched_once_for_all_processes(httpd, keycloak):
    keycloak.fetch_counts(reset=True)
    prefork_start(httpd, 'CustomLog "logs/pids.log" "%P %>s %U"\n'
                  + discovered(keycloak, OfftokAudience="rs-client", OfftokAccessTokens="Local"),
                  4)
    wait_until(lambda: len(httpd.child_pids()) >= 4, what="four children")
    tokens = [keycloak.mint_access(sub=f"user{i}") for i in range(6)]
    keycloak.reset_counts()

    def get(token):
        return requests.get(httpd.url("/cgi/env"), timeout=15, headers={
            "Authorization": f"Bearer {token}", "Connection": "close"}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(get, tokens * 4))
    assert set(codes) == {200}
    with open(os.path.join(httpd.root, "logs", "pids.log")) as f:
        served = {line.split()[0] for line in f if "/cgi/env" in line}
    assert len(served) >= 2, "several children answered"
    counts = keycloak.fetch_counts()
    assert counts["oidc_metadata"] == 1 and counts["jwks"] == 1, counts
    assert keycloak.introspection_count() == 0


# ---- sender-constrained tokens judged locally ----------------------------------------------------

def test_dpop_bound_jwt_verified_locally_needs_its_proof(httpd, keycloak):
    """A Keycloak DPoP token (typ DPoP, cnf.jkt) verified here: the binding is judged on the
    verified claims exactly as on an introspection answer, with no issuer call."""
    from dpop import DPoPKey
    key, other = DPoPKey(), DPoPKey()
    httpd.start(local(keycloak))
    token = keycloak.mint_access(sub="dee", claims={"typ": "DPoP", "cnf": {"jkt": key.jkt}})
    keycloak.reset_counts()

    def dpop_get(proof):
        return requests.get(httpd.url("/cgi/env"), timeout=15, headers={
            "Authorization": f"DPoP {token}", "DPoP": proof, "Connection": "close"})

    r = dpop_get(key.proof("GET", httpd.url("/cgi/env"), token))
    assert r.status_code == 200, r.headers
    assert r.json()["OFFTOK_CHECK"] == "local"
    assert r.json()["OFFTOK_TOKEN_BINDING"] == "dpop"
    assert dpop_get(other.proof("GET", httpd.url("/cgi/env"), token)).status_code == 401
    assert httpd.get("/cgi/env", token=token).status_code == 401, "no downgrade to Bearer"
    assert keycloak.introspection_count() == 0
