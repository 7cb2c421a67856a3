"""The shortest path: a valid token reaches a CGI script with the user's identity."""
from httpd import challenges, protected


def test_valid_token_reaches_cgi(httpd, oidc):
    httpd.start(protected("/cgi/", oidc))
    token = oidc.mint_access(sub="alice", scope="openid read")
    r = httpd.get("/cgi/env", token=token)
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["REMOTE_USER"] == "alice"
    assert env["AUTH_TYPE"] == "offtok"
    assert env["OFFTOK_CLAIM_sub"] == "alice"
    assert env["OFFTOK_TOKEN_KIND"] == "access"


def test_unknown_token_is_refused(httpd, oidc):
    httpd.start(protected("/cgi/", oidc))
    r = httpd.get("/cgi/env", token="not-a-token-the-issuer-knows")
    assert r.status_code == 401
    assert challenges(r)[0] == 'Bearer realm="test", error="invalid_token"'
