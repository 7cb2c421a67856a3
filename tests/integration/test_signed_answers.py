"""RFC 9701 signed introspection answers (contract, Added in 0.2: OfftokSignedAnswers).

Issuers: oidc-provider 8 (tests/issuer/issuer.js, features.jwtIntrospection) for the real thing
and for an unsigned answer where a signed one is required; the fault stub (stubs/faulty.py,
/signed and /jwks) for signed answers that are wrong in one way each.
"""
import base64
import json
import re
import time
import uuid
from urllib.parse import quote

import pytest

from test_client_auth import last_log, new_client_id, pages

FAULTY_ISSUER = "https://faulty.example"


def signed_location(url, issuer, jwks_url, ca_file, client_id="rs-client", secret="rs-secret",
                    path="/protected/", signed=True, always=True, extra=""):
    """A protected location asking url; no OfftokIssuer when issuer is None; extra lines last."""
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {url}
    OfftokClientID {client_id}
    OfftokClientSecret {secret}
    OfftokCAFile {ca_file}
    {f"OfftokIssuer {issuer}" if issuer else ""}
    OfftokJWKSURL {jwks_url}
    OfftokSignedAnswers {"On" if signed else "Off"}
    {"OfftokAlwaysValidate On" if always else ""}
    Require valid-user
    {extra}
</Location>
"""


def signing_client(oidc, sign=True):
    client_id = new_client_id("sig")
    secret = uuid.uuid4().hex
    metadata = dict(client_secret=secret, grant_types=[], response_types=[], redirect_uris=[])
    if sign:
        metadata["introspection_signed_response_alg"] = "RS256"
    oidc.update_client(client_id, **metadata)
    return client_id, secret


def test_signed_answer_from_oidc_provider_is_accepted(httpd, oidc):
    client_id, secret = signing_client(oidc)
    httpd.start(signed_location(oidc.introspection_url, oidc.issuer, oidc.jwks_url,
                                oidc.ca_file, client_id, secret, path="/cgi/"))
    token = oidc.mint_access(sub="signed-alice")
    r = httpd.get("/cgi/env", token=token)
    assert r.status_code == 200
    # The answer used is the token_introspection member: its claims reach the back end.
    assert r.json()["OFFTOK_CLAIM_sub"] == "signed-alice"
    entry = last_log(oidc, client_id)[-1]
    assert entry["accept"] == "application/token-introspection+jwt"
    assert entry["content_type"].startswith("application/token-introspection+jwt")


def test_unsigned_answer_where_signed_is_required_is_503(httpd, faulty):
    httpd.allow_errors(r"OT0002")
    httpd.start(signed_location(faulty.url_for("ok"), FAULTY_ISSUER, faulty.url_for("jwks"),
                                faulty.ca_file))
    r = httpd.get("/protected/index.html", token="opaque-" + uuid.uuid4().hex)
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert re.search(r"OT0002: .*unsigned answer \(Content-Type application/json",
                     httpd.error_log())


def test_cached_unsigned_answer_is_not_used_where_signed_is_required(httpd, faulty):
    """The cache key covers whether signed answers were required (contract, Cached answers):
    both locations ask the same URL as the same client; the issuer answers unsigned."""
    httpd.allow_errors(r"OT0002")
    pages(httpd, "plain")
    url, jwks = faulty.url_for("ok"), faulty.url_for("jwks")
    httpd.start(signed_location(url, FAULTY_ISSUER, jwks, faulty.ca_file, path="/plain/",
                                signed=False, always=False)
                + signed_location(url, FAULTY_ISSUER, jwks, faulty.ca_file, always=False),
                servers=1)
    token = "opaque-" + uuid.uuid4().hex
    faulty.reset_counts()
    assert httpd.get("/plain/index.html", token=token).status_code == 200
    assert httpd.get("/protected/index.html", token=token).status_code == 503
    assert httpd.get("/plain/index.html", token=token).status_code == 200
    assert faulty.requests() == 2


@pytest.mark.parametrize("query,status", [
    ("", 200),
    ("typ=application/token-introspection%2Bjwt", 200),
    ("key=wrong", 503),              # signed with a key the issuer does not publish
    ("alg=none", 503),               # unsigned JWT
    ("aud=someone-else", 503),       # addressed to another client
    ("iss=https://other.example", 503),
    ("typ=JWT", 503),                # some other JWT of the issuer's
    ("iat=-3600", 503),              # stale (replayed) answer
    ("iat=3600", 503),               # from the future
])
def test_signed_answer_faults(httpd, faulty, query, status):
    if status == 503:
        httpd.allow_errors(r"OT0002")
    url = faulty.url_for("signed" + ("?" + query if query else ""))
    httpd.start(signed_location(url, FAULTY_ISSUER, faulty.url_for("jwks"), faulty.ca_file))
    r = httpd.get("/protected/index.html", token="opaque-token-" + uuid.uuid4().hex)
    assert r.status_code == status
    if status == 503:
        assert re.search(r"OT0002: .*signed answer", httpd.error_log())


def test_signed_answers_need_an_issuer_at_configtest(httpd, faulty):
    conf = signed_location(faulty.url_for("signed"), None, faulty.url_for("jwks"),
                           faulty.ca_file)
    code, out = httpd.configtest(conf)
    assert code != 0 and "OT0505" in out and "OfftokSignedAnswers" in out


def test_internal_redirect_into_a_signed_location_asks_again(httpd, faulty):
    """An internal redirect reuses the initial request's answer only under the same key: not
    from a location without signed answers into one that requires them."""
    httpd.allow_errors(r"OT0002")
    url, jwks = faulty.url_for("ok"), faulty.url_for("jwks")
    plain = signed_location(url, FAULTY_ISSUER, jwks, faulty.ca_file, path="/plain/",
                            signed=False, always=False,
                            extra="RewriteEngine On\n    RewriteRule ^ /protected/index.html [L]")
    httpd.start(plain + signed_location(url, FAULTY_ISSUER, jwks, faulty.ca_file,
                                        always=False), servers=1)
    faulty.reset_counts()
    r = httpd.get("/plain/anything", token="opaque-" + uuid.uuid4().hex)
    assert r.status_code == 503
    assert faulty.requests() == 2


def part(obj):
    """obj as a compact JWS part: its JSON in base64url without padding."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt_shaped(**claims):
    """A JWT-shaped token (HS256, so never judged with the issuer's keys) with these claims."""
    payload = {"iss": FAULTY_ISSUER, "exp": int(time.time()) + 300, **claims}
    return part({"alg": "HS256", "typ": "JWT"}) + "." + part(payload) + ".c2ln"


def assert_logout_cannot_fetch_keys(httpd):
    """A logout token for the faulty issuer's kid, badly signed, posted to /logout: answered 503
    because the handler cannot fetch the keys (OT0102); a handler that used keys it should not
    (fetched without verifying TLS) would have judged it and answered 400."""
    header = {"alg": "RS256", "kid": "faulty-rs256", "typ": "logout+jwt"}
    claims = {"iss": FAULTY_ISSUER, "aud": "rs-client", "iat": int(time.time()),
              "jti": uuid.uuid4().hex, "sub": "alice",
              "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    forged = part(header) + "." + part(claims) + "." + part({"not": "a signature"})
    r = httpd.post("/logout", data={"logout_token": forged})
    assert r.status_code == 503
    assert re.search(r"OT0102: .*keys could not be fetched", httpd.error_log())


@pytest.mark.parametrize("answer_jti,status", [
    ("jti-" + uuid.uuid4().hex, 503),  # an answer about another token, replayed
    (None, 200),                       # the answer about this very token
])
def test_signed_answer_about_another_token_is_refused(httpd, faulty, answer_jti, status):
    """RFC 9701 answers name no token. Whoever answers in the issuer's place could pass a
    genuine signed answer about token A (fresh enough) off as the answer for token B; where
    both name their jti, they must agree (fault stub /signed, claims= sets the answer's)."""
    token_jti = "jti-" + uuid.uuid4().hex
    claims = quote(json.dumps({"jti": answer_jti or token_jti}))
    if status == 503:
        httpd.allow_errors(r"OT0002")
    httpd.start(signed_location(faulty.url_for(f"signed?claims={claims}"), FAULTY_ISSUER,
                                faulty.url_for("jwks"), faulty.ca_file))
    r = httpd.get("/protected/index.html", token=jwt_shaped(jti=token_jti, sub="bob"))
    assert r.status_code == status
    if status == 503:
        assert re.search(r"OT0002: .*signed answer is refused: its token_introspection is "
                         r"about another token", httpd.error_log())


@pytest.mark.parametrize("skew,status", [("", 200), ("OfftokClockSkew 5", 503)])
def test_signed_answer_iat_leeway_is_offtokclockskew(httpd, faulty, skew, status):
    """A signed answer whose iat is 20 s older than the call: within the default leeway (30 s),
    outside OfftokClockSkew 5 (contract: OfftokClockSkew is the leeway where an issuer's time
    meets this server's clock)."""
    if status == 503:
        httpd.allow_errors(r"OT0002")
    httpd.start(signed_location(faulty.url_for("signed?iat=-20"), FAULTY_ISSUER,
                                faulty.url_for("jwks"), faulty.ca_file, extra=skew))
    r = httpd.get("/protected/index.html", token="opaque-token-" + uuid.uuid4().hex)
    assert r.status_code == status
    if status == 503:
        assert re.search(r"OT0002: .*iat is older than the call", httpd.error_log())


def test_keys_fetched_without_verifying_do_not_serve_a_location_that_verifies(httpd, faulty,
                                                                             pki):
    """The keys of one OfftokJWKSURL are cached per process: those a location fetched with
    OfftokSSLVerify Off (from whoever answered) must not verify anything for a location that
    checks the issuer's certificate, here the logout handler trusting only a CA that did not sign
    the stub's certificate: it cannot fetch the keys (503), and never uses the unverified ones
    (which would answer 400 to the badly signed logout token)."""
    httpd.allow_errors(r"OT0102")
    jwks = faulty.url_for("jwks")
    trusting = signed_location(faulty.url_for("signed"), FAULTY_ISSUER, jwks, faulty.ca_file,
                               extra="OfftokSSLVerify Off")
    logout = f"""
<Location "/logout">
    SetHandler offtok-backchannel-logout
    OfftokIssuer {FAULTY_ISSUER}
    OfftokClientID rs-client
    OfftokJWKSURL {jwks}
    OfftokCAFile {pki.unknown_ca_file}
    Require ip 127.0.0.1
</Location>
"""
    httpd.start(trusting + logout, servers=1)
    assert httpd.get("/protected/index.html", token="opaque-" + uuid.uuid4().hex
                     ).status_code == 200
    assert_logout_cannot_fetch_keys(httpd)
