"""Every row of the contract's answers table (RFC 6750), seen from a client."""
import pytest

from httpd import challenges, offtok_lines, protected


@pytest.fixture
def site(httpd, oidc):
    httpd.start(protected("/cgi/", oidc) + f"""
<Location "/norealm/">
    AuthType offtok
    {offtok_lines(oidc)}
    Require valid-user
</Location>
""", server="LimitRequestFieldSize 65536")
    return httpd


def test_no_authorization_header(site):
    r = site.get("/cgi/env")
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test"'
    # 0.2: where DPoP is allowed too (the default), its challenge follows, without error.
    assert challenges(r)[1:] == ['DPoP realm="test", algs="ES256 ES384 PS256 RS256"']


def test_no_realm_without_authname(site):
    r = site.get("/norealm/x")
    assert r.status_code == 401
    assert challenges(r) == ["Bearer", 'DPoP algs="ES256 ES384 PS256 RS256"']


@pytest.mark.parametrize("value", ["Basic YWxpY2U6c2VjcmV0", "Digest username=x", "Bearerx abc"])
def test_another_scheme(site, value):
    r = site.get("/cgi/env", headers={"Authorization": value})
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test"'


@pytest.mark.parametrize("value", [
    "Bearer",                      # empty
    "Bearer a b",                  # space inside
    "Bearer a\tb",                 # tab inside
    "Bearer\tabc",                 # tab instead of the space
    "Bearer abc\"def",             # outside b64token
    "Bearer abc=def",              # '=' only at the end
    "Bearer " + "a" * 16385,       # over 16 KiB
    "Bearer " + "a" * 20000,
], ids=["empty", "space", "tab", "tab-after-scheme", "quote", "inner-equals", "16k+1", "20000"])
def test_malformed_credentials(site, value):
    r = site.get("/cgi/env", headers={"Authorization": value})
    assert r.status_code == 400
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="test", error="invalid_request"'


def test_non_ascii_token_is_malformed(site):
    r = site.get("/cgi/env", headers={"Authorization": b"Bearer abc\xc3\xa9"})
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["WWW-Authenticate"]


def test_lower_case_scheme_is_accepted(site, oidc):
    token = oidc.mint_access(sub="lower")
    r = site.get("/cgi/env", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200
    assert r.json()["REMOTE_USER"] == "lower"


def test_two_authorization_headers_are_malformed(site, oidc):
    token = oidc.mint_access()
    # http.client sends both lines; httpd folds them into "Bearer x, Bearer y".
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    conn.putrequest("GET", "/cgi/env")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 400
    assert 'error="invalid_request"' in resp.getheader("WWW-Authenticate")


def test_token_in_header_and_query(site, oidc):
    token = oidc.mint_access()
    r = site.get(f"/cgi/env?access_token={token}", token=token)
    assert r.status_code == 400
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="test", error="invalid_request"'


def test_token_only_in_query_is_not_read(site, oidc):
    token = oidc.mint_access()
    before = oidc.introspection_count()
    r = site.get(f"/cgi/env?access_token={token}")
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test"'
    assert oidc.introspection_count() == before


def test_token_in_body_is_not_read(site, oidc):
    token = oidc.mint_access()
    r = site.post("/cgi/env", data={"access_token": token})
    assert r.status_code == 401


def test_inactive_token(site):
    r = site.get("/cgi/env", token="unknown-token")
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test", error="invalid_token"'


def test_expired_token(site, oidc):
    token = oidc.mint_access(ttl=1)
    import time
    time.sleep(2.1)
    r = site.get("/cgi/env", token=token)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_missing_introspection_url_is_500(httpd):
    httpd.allow_errors(r"OT0001")
    httpd.start("""
<Location "/broken/">
    AuthType offtok
    Require valid-user
</Location>
""")
    r = httpd.get("/broken/x", token="abc")
    assert r.status_code == 500
    assert "WWW-Authenticate" not in r.headers
    assert "OT0001: AuthType offtok in </broken/> has no OfftokIntrospectionURL" \
        in httpd.error_log()


def test_unprotected_location_is_untouched(site):
    r = site.get("/index.html", headers={"Authorization": "Bearer"})
    assert r.status_code == 200


def test_token_of_8000_characters_is_asked_about(site, oidc):
    """Within 16 KiB and httpd's default header limit: well-formed, so the issuer decides."""
    oidc.reset_counts()
    r = site.get("/cgi/env", token="t" * 8000)
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test", error="invalid_token"'
    assert oidc.introspection_count() == 1
