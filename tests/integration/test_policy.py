"""Which tokens a location accepts: issuer, audience, kinds, offline policy, scopes and claims,
and OfftokAlwaysValidate refusing a revoked token on the very next request."""
import pytest

from httpd import challenges, protected


def www(r):
    """The first challenge (under OfftokDPoP Allow a 401 carries a DPoP one after it)."""
    return (challenges(r) or [None])[0]


def test_issuer_must_match(httpd, oidc):
    httpd.start(protected("/good/", oidc, OfftokIssuer=oidc.issuer)
                + protected("/bad/", oidc, OfftokIssuer="https://elsewhere.example"))
    token = oidc.mint_access()
    assert httpd.get("/good/index.html", token=token).status_code == 404
    r = httpd.get("/bad/index.html", token=token)
    assert r.status_code == 401 and 'error="invalid_token"' in www(r)


def test_audience_for_access_tokens_only(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokAudience="orders-api"))
    assert httpd.get("/cgi/env", token=oidc.mint_access(aud="orders-api")).status_code == 200
    r = httpd.get("/cgi/env", token=oidc.mint_access(aud="other-api"))
    assert r.status_code == 401 and 'error="invalid_token"' in www(r)
    # Offline tokens carry the realm as audience; they are exempt.
    assert httpd.get("/cgi/env", token=oidc.mint_offline()).status_code == 200


def test_offline_tokens_denied_where_configured(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokOfflineTokens="Deny"))
    assert httpd.get("/cgi/env", token=oidc.mint_access()).status_code == 200
    r = httpd.get("/cgi/env", token=oidc.mint_offline())
    assert r.status_code == 401 and 'error="invalid_token"' in www(r)


def test_always_validate_refuses_a_revoked_token_at_once(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokAlwaysValidate="On", OfftokCacheTTL=300))
    token = oidc.mint_access()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.revoke(token)
    r = httpd.get("/cgi/env", token=token)
    assert r.status_code == 401 and 'error="invalid_token"' in www(r)


def test_always_validate_offline(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokAlwaysValidate="Offline", OfftokCacheTTL=300))
    offline = oidc.mint_offline()
    access = oidc.mint_access()
    assert httpd.get("/cgi/env", token=offline).status_code == 200
    assert httpd.get("/cgi/env", token=access).status_code == 200
    oidc.revoke(offline)
    oidc.revoke(access)
    # The offline token is asked about again; the access token's answer is still cached.
    assert httpd.get("/cgi/env", token=offline).status_code == 401
    assert httpd.get("/cgi/env", token=access).status_code == 200


def test_scopes(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, require="offtok-scope read write"))
    r = httpd.get("/cgi/env", token=oidc.mint_access(scope="openid read write"))
    assert r.status_code == 200 and r.json()["REMOTE_USER"] == "alice"
    r = httpd.get("/cgi/env", token=oidc.mint_access(scope="openid read"))
    assert r.status_code == 403
    assert www(r) == 'Bearer realm="test", error="insufficient_scope", scope="read write"'
    httpd.allow_errors("AH01630")
    # A token that is not accepted at all is still a 401, not a 403.
    r = httpd.get("/cgi/env", token="unknown")
    assert r.status_code == 401 and 'error="invalid_token"' in www(r)
    r = httpd.get("/cgi/env")
    assert r.status_code == 401 and www(r) == 'Bearer realm="test"'


@pytest.mark.parametrize("require,claims,status", [
    ("offtok-claim realm_access.roles admin", {"realm_access": {"roles": ["admin"]}}, 200),
    ("offtok-claim realm_access.roles admin", {"realm_access": {"roles": ["reader"]}}, 403),
    ("offtok-claim realm_access.roles admin ops", {"realm_access": {"roles": ["ops"]}}, 200),
    ("offtok-claim department sales", {"department": "sales"}, 200),
    ("offtok-claim department sales", {"department": "Sales"}, 403),
    ("offtok-claim department sales", {}, 403),
    ("offtok-claim tier 3", {"tier": 3}, 200),
    ("offtok-claim a.b flat", {"a.b": "flat", "a": {"b": "nested"}}, 200),
], ids=["role", "role-missing", "second-value", "string", "case", "absent", "number", "flat-key"])
def test_claims(httpd, oidc, require, claims, status):
    httpd.start(protected("/cgi/", oidc, require=require))
    token = oidc.mint_access(claims=claims)
    oidc.reset_counts()
    for _ in range(2):          # the issuer's answer, then the cached one: judged alike
        r = httpd.get("/cgi/env", token=token)
        assert r.status_code == status
        if status == 403:
            assert www(r) == 'Bearer realm="test", error="insufficient_scope"'
    assert oidc.introspection_count() == 1


def test_scope_with_valid_user_in_require_all(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, require=[
        "<RequireAll>", "    Require valid-user", "    Require offtok-scope admin", "</RequireAll>"]))
    assert httpd.get("/cgi/env", token=oidc.mint_access(scope="admin")).status_code == 200
    assert httpd.get("/cgi/env", token=oidc.mint_access(scope="read")).status_code == 403


def test_token_checked_once_per_request(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokAlwaysValidate="On", require="""
<RequireAll>
    Require offtok-scope read
    Require offtok-claim sub alice
    Require valid-user
</RequireAll>"""))
    token = oidc.mint_access(scope="read")
    oidc.reset_counts()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.introspection_count() == 1


def test_no_challenge_on_a_granted_request(httpd, oidc):
    """A scope line that denies, followed by one that grants: 200, and no WWW-Authenticate."""
    httpd.start(protected("/cgi/", oidc,
                          require=["Require offtok-scope admin", "Require offtok-scope read"]))
    r = httpd.get("/cgi/env", token=oidc.mint_access(scope="read"))
    assert r.status_code == 200
    assert "WWW-Authenticate" not in r.headers
    r = httpd.get("/cgi/env", token=oidc.mint_access(scope="write"))
    assert r.status_code == 403
    assert www(r) == 'Bearer realm="test", error="insufficient_scope", scope="read"'
