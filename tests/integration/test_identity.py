"""What the back end receives: REMOTE_USER, OFFTOK_CLAIM_*, passed headers, and nothing spoofed."""
import pytest

from httpd import offtok_lines, protected

CLAIMS = {
    "preferred_username": "ada",
    "email": "ada@example.org",
    "realm_access": {"roles": ["admin", "reader"]},
    "allowed-origins": ["https://a.example", "https://b.example"],
    "level": 3,
    "verified": True,
    "nothing": None,
}


@pytest.fixture
def site(httpd, oidc, backend):
    proxy = protected("/app/", oidc, extra=f'ProxyPass "{backend}/"',
                      OfftokPassHeader=["X-Remote-User preferred_username",
                                        "X-Remote-Roles realm_access.roles",
                                        "X-Remote-Level level"])
    httpd.start(protected("/cgi/", oidc) + proxy + f"""
<Location "/open/">
    OfftokPassHeader X-Remote-User preferred_username
    ProxyPass "{backend}/"
</Location>
<Location "/notoken/">
    AuthType offtok
    AuthName "test"
    {offtok_lines(oidc)}
    OfftokForwardToken Off
    OfftokRemoteUserClaim preferred_username
    ProxyPass "{backend}/"
    Require valid-user
</Location>
""")
    return httpd


def test_environment_of_a_cgi_script(site, oidc):
    token = oidc.mint_access(sub="u-1", scope="openid read", claims=CLAIMS)
    env = site.get("/cgi/env", token=token).json()
    assert env["REMOTE_USER"] == "u-1"
    assert env["AUTH_TYPE"] == "offtok"
    assert env["OFFTOK_TOKEN_KIND"] == "access"
    assert env["OFFTOK_CLAIM_sub"] == "u-1"
    assert env["OFFTOK_CLAIM_scope"] == "openid read"
    assert env["OFFTOK_CLAIM_preferred_username"] == "ada"
    assert env["OFFTOK_CLAIM_realm_access"] == '{"roles":["admin","reader"]}'
    assert env["OFFTOK_CLAIM_allowed_origins"] == "https://a.example,https://b.example"
    assert env["OFFTOK_CLAIM_level"] == "3"
    assert env["OFFTOK_CLAIM_verified"] == "true"
    assert env["OFFTOK_CLAIM_nothing"] == ""
    assert env["OFFTOK_CLAIM_active"] == "true"


def test_claims_that_make_one_variable_give_it_once(httpd, oidc):
    """httpd's tables compare names without case, so claims "Nick" and "nick" are one variable
    (and "a-b", "a.b" both OFFTOK_CLAIM_a_b): it holds the later claim, as when each was set
    with apr_table_setn (mod_offtok_env.c appends without that look only when no names meet).
    A variable of the name set before (mod_rewrite, at translation) is replaced, not doubled.
    A static file, not a CGI script (whose environment httpd merges again on its own)."""
    httpd.start(f"""
Alias "/h/" "{httpd.root}/htdocs/protected/"
RewriteEngine On
RewriteRule ^/h/ - [E=OFFTOK_CLAIM_sub:spoof]
""" + protected("/h/", oidc, extra="""
    Header always set X-Nick "%{OFFTOK_CLAIM_nick}e"
    Header always set X-Ab "%{OFFTOK_CLAIM_a_b}e"
    Header always set X-Sub "%{OFFTOK_CLAIM_sub}e"
"""))
    token = oidc.mint_access(sub="u-5", claims={"Nick": "x", "nick": "y", "a-b": "1", "a.b": "2"})
    r = httpd.get("/h/index.html", token=token)
    assert r.status_code == 200
    assert (r.headers["X-Nick"], r.headers["X-Ab"], r.headers["X-Sub"]) == ("y", "2", "u-5")
    r = httpd.get("/h/index.html", token=oidc.mint_access(sub="u-6", claims={"nick": "z"}))
    assert (r.status_code, r.headers["X-Nick"], r.headers["X-Sub"]) == (200, "z", "u-6")


def test_hostile_claim_names_become_the_same_variables_fresh_and_cached(httpd, oidc):
    """Claim names with dots, dashes, spaces, UTF-8 and 300 letters are variables under the names
    the contract gives (every byte outside A-Za-z0-9_ one '_'), from the issuer's answer
    (oidc-provider) and again from the cache. Read by mod_headers from the request's
    environment: a CGI script's would not tell, httpd renames a CGI's variables on its own."""
    names = {"n\u00e4me": "n__me", "x.y-z": "x_y_z",
             "https://ex.org/c laim": "https___ex_org_c_laim",
             "L" * 300: "L" * 300, "\u20ac": "___", "_": "_", "sub": "sub"}
    headers = "".join(f'    Header always set X-C{i} "%{{OFFTOK_CLAIM_{var}}}e"\n'
                      for i, var in enumerate(names.values()))
    httpd.start(f"""
Alias "/h/" "{httpd.root}/htdocs/protected/"
""" + protected("/h/", oidc, extra=headers))
    claims = {name: f"value {i}" for i, name in enumerate(names) if name != "sub"}
    token = oidc.mint_access(sub="value 6", claims=claims)
    oidc.reset_counts()
    fresh = httpd.get("/h/index.html", token=token)
    cached = httpd.get("/h/index.html", token=token)
    assert (fresh.status_code, cached.status_code, oidc.introspection_count()) == (200, 200, 1)
    for i in range(len(names)):
        assert fresh.headers[f"X-C{i}"] == cached.headers[f"X-C{i}"] == f"value {i}"


def test_a_cached_answer_gives_the_back_end_the_same(site, oidc):
    """The first request is served from the issuer's answer, the next from the cache (which
    keeps claims in its own form, not JSON): the back end must not see a difference."""
    claims = dict(CLAIMS, note="bell\u0007del\u007f", ratio=0.1, big=2**53 - 1,
                  mixed=[1, None, {"k": "v"}], empty=[])
    ours = lambda env: {k: v for k, v in env.items()
                        if k.startswith("OFFTOK_") or k in ("REMOTE_USER", "AUTH_TYPE")}
    token = oidc.mint_access(sub="u-3", scope="openid read", claims=claims)
    oidc.reset_counts()
    fresh = ours(site.get("/cgi/env", token=token).json())
    cached = ours(site.get("/cgi/env", token=token).json())
    assert oidc.introspection_count() == 1
    assert fresh == cached
    assert cached["OFFTOK_CLAIM_ratio"] == "0.1" and cached["OFFTOK_CLAIM_empty"] == ""
    assert cached["OFFTOK_CLAIM_big"] == "9007199254740991"      # a JS issuer's largest
    assert cached["OFFTOK_CLAIM_mixed"] == '[1,null,{"k":"v"}]'
    assert cached["OFFTOK_CLAIM_note"] == "bell del "
    token = oidc.mint_access(claims=CLAIMS)
    fresh = site.get("/app/x", token=token).json()["headers"]
    cached = site.get("/app/x", token=token).json()["headers"]
    for h in ("x-remote-user", "x-remote-roles", "x-remote-level"):
        assert fresh[h] == cached[h]
    assert cached["x-remote-roles"] == ["admin,reader"]      # a dotted name, from the cache


def test_offline_token_kind(site, oidc):
    token = oidc.mint_offline(sub="u-2")
    env = site.get("/cgi/env", token=token).json()
    assert env["REMOTE_USER"] == "u-2"
    assert env["OFFTOK_TOKEN_KIND"] == "offline"


def test_headers_for_a_proxied_back_end(site, oidc):
    token = oidc.mint_access(claims=CLAIMS)
    got = site.get("/app/hello", token=token).json()["headers"]
    assert got["x-remote-user"] == ["ada"]
    assert got["x-remote-roles"] == ["admin,reader"]
    assert got["x-remote-level"] == ["3"]
    assert got["authorization"] == [f"Bearer {token}"]


@pytest.mark.parametrize("spoof", ["X-Remote-User", "x-remote-user", "X_Remote_User",
                                   "x_REMOTE-user"])
def test_client_sent_copies_are_removed(site, oidc, spoof):
    token = oidc.mint_access(claims=CLAIMS)
    got = site.get("/app/x", token=token, headers={spoof: "mallory"}).json()["headers"]
    assert got["x-remote-user"] == ["ada"]
    assert not any(k.replace("_", "-") == "x-remote-user" and v != ["ada"] for k, v in got.items())
    # httpd's own proxy drops headers with '_'; check none of the spoofed values survived.
    assert "mallory" not in str(got)


def test_copies_removed_where_nothing_is_protected(site):
    got = site.get("/open/x", headers={"X-Remote-User": "mallory",
                                       "x_remote_user": "eve"}).json()["headers"]
    assert "mallory" not in str(got) and "eve" not in str(got)


def test_spoofed_headers_removed_when_the_token_is_refused(site, oidc):
    r = site.get("/app/x", token="unknown", headers={"X-Remote-User": "mallory"})
    assert r.status_code == 401


def test_forward_token_off(site, oidc):
    token = oidc.mint_access(claims=CLAIMS)
    got = site.get("/notoken/x", token=token).json()["headers"]
    assert "authorization" not in got


def test_claims_with_cr_lf_are_flattened(site, oidc):
    token = oidc.mint_access(claims={"preferred_username": "ada\r\nX-Injected: 1",
                                     "realm_access": {"roles": ["a\nb"]},
                                     "note": "bell\u0007del\u007f"})
    env = site.get("/cgi/env", token=token).json()
    assert env["OFFTOK_CLAIM_preferred_username"] == "ada  X-Injected: 1"
    assert env["OFFTOK_CLAIM_note"] == "bell del "
    assert "\n" not in env["OFFTOK_CLAIM_realm_access"]
    got = site.get("/app/x", token=token).json()["headers"]
    assert got["x-remote-user"] == ["ada  X-Injected: 1"]
    assert "x-injected" not in got


def test_remote_user_claim_missing(site, oidc):
    token = oidc.mint_access(claims={"email": "x@example.org"})   # no preferred_username
    r = site.get("/notoken/x", token=token)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_remote_user_over_4096_bytes(site, oidc):
    token = oidc.mint_access(claims={"preferred_username": "u" * 4097})
    r = site.get("/notoken/x", token=token)
    assert r.status_code == 401
    token = oidc.mint_access(claims={"preferred_username": "u" * 4096})
    assert site.get("/notoken/x", token=token).status_code == 200


def test_passed_header_over_4096_bytes(site, oidc):
    token = oidc.mint_access(claims={**CLAIMS, "preferred_username": "h" * 5000})
    r = site.get("/app/x", token=token)
    assert r.status_code == 401
