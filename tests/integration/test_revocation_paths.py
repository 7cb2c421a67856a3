"""Revoked means refused, on every path (issue 13): subrequests and internal redirects judged by
the reading location's own rules, scrubbing in subrequests, answers kept apart by TLS trust,
logout audiences of the login clients, and the clients whose offline tokens a location takes.

Each test names the contract sentence it proves (shared/CONTRACT.md, "Cached answers shared
between locations", the handlers, OfftokLogoutAudience and OfftokOfflineClients). oidc is the
real OpenID Provider; keycloak is the Keycloak-shaped stand-in (stubs/keycloak.py).
"""
import os
import time

from httpd import offtok_lines, protected

LOGOUT = "/offtok/backchannel-logout"
ADMIN = "/offtok/kc-admin"

REDIRECT_CGI = """#!/bin/sh
# A local Location: mod_cgi turns it into an internal redirect.
printf 'Location: %s\\n\\n' "$REDIRECT_TO"
"""

SSI_CONF = """
<Directory "{root}/htdocs/ssi">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
</Directory>
"""


def cgi(httpd, name, text):
    path = os.path.join(httpd.root, "cgi-bin", name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def page(httpd, name, text):
    os.makedirs(os.path.join(httpd.root, "htdocs", "ssi"), exist_ok=True)
    os.chmod(os.path.join(httpd.root, "htdocs", "ssi"), 0o755)
    with open(os.path.join(httpd.root, "htdocs", "ssi", name), "w") as f:
        f.write(text)


def cgi_location(path, issuer, **directives):
    """A protected location whose files are CGI scripts from cgi-bin/."""
    return protected(path, issuer, extra="SetHandler cgi-script\n    Options +ExecCGI",
                     **directives)


def aliased(path):
    return f'ScriptAlias "{path}" "{{root}}/cgi-bin/"\n'


# ---- subrequests and internal redirects ------------------------------------------------------

def redirect_conf(httpd, issuer, target, **target_directives):
    """/lax/ (TTL 3600) runs a CGI that redirects internally to target (a protected location)."""
    return (aliased("/lax/").format(root=httpd.root) + aliased(target).format(root=httpd.root)
            + f'<Location "/lax/redirect">\n    SetEnv REDIRECT_TO {target}env\n</Location>\n'
            + cgi_location("/lax/", issuer, OfftokCacheTTL=3600)
            + cgi_location(target, issuer, **target_directives))


def test_internal_redirect_into_always_validate_asks_the_issuer(httpd, oidc):
    """An internal redirect may reuse the initial request's result only where its own location
    would accept it by its own rules: no fresh call required by its OfftokAlwaysValidate."""
    cgi(httpd, "redirect", REDIRECT_CGI)
    httpd.start(redirect_conf(httpd, oidc, "/strict/", OfftokAlwaysValidate="On"))
    token = oidc.mint_access()
    assert httpd.get("/lax/env", token=token).status_code == 200       # cached for an hour
    oidc.revoke(token)
    assert httpd.get("/lax/env", token=token).status_code == 200       # /lax/ still trusts it
    oidc.reset_counts()
    r = httpd.get("/lax/redirect", token=token)
    assert r.status_code == 401, r.text
    assert oidc.introspection_count() == 1


def test_internal_redirect_reuses_a_fresh_answer(httpd, oidc):
    """An answer from a call that started after the request arrived satisfies the reading
    location's OfftokAlwaysValidate On too: one issuer call for the redirect chain."""
    cgi(httpd, "redirect", REDIRECT_CGI)
    conf = (aliased("/first/").format(root=httpd.root) + aliased("/strict/").format(root=httpd.root)
            + '<Location "/first/redirect">\n    SetEnv REDIRECT_TO /strict/env\n</Location>\n'
            + cgi_location("/first/", oidc, OfftokAlwaysValidate="On")
            + cgi_location("/strict/", oidc, OfftokAlwaysValidate="On"))
    httpd.start(conf)
    token = oidc.mint_access()
    oidc.reset_counts()
    r = httpd.get("/first/redirect", token=token)
    assert r.status_code == 200
    assert r.json()["OFFTOK_CLAIM_sub"] == "alice"
    assert oidc.introspection_count() == 1


def test_internal_redirect_into_a_shorter_ttl_asks_again(httpd, oidc):
    """... age within its TTL: an answer older than the reading location's OfftokCacheTTL is
    not reused there."""
    cgi(httpd, "redirect", REDIRECT_CGI)
    httpd.start(redirect_conf(httpd, oidc, "/short/", OfftokCacheTTL=1))
    token = oidc.mint_access()
    assert httpd.get("/lax/env", token=token).status_code == 200
    oidc.revoke(token)
    time.sleep(1.2)
    assert httpd.get("/lax/env", token=token).status_code == 200       # within /lax/'s hour
    assert httpd.get("/lax/redirect", token=token).status_code == 401


def test_internal_redirect_with_other_credentials_asks_again(httpd, keycloak):
    """... same key: a location that introspects with other credentials (another client id)
    does not take an answer given to the first client."""
    cgi(httpd, "redirect", REDIRECT_CGI)
    keycloak.set_client("other-rs", "other-secret")
    other = f"""
<Location "/other/">
    AuthType offtok
    OfftokIntrospectionURL {keycloak.introspection_url}
    OfftokClientID other-rs
    OfftokClientSecret other-secret
    OfftokCAFile {keycloak.ca_file}
    Require valid-user
    SetHandler cgi-script
    Options +ExecCGI
</Location>
"""
    httpd.start(aliased("/lax/").format(root=httpd.root) + aliased("/other/").format(root=httpd.root)
                + '<Location "/lax/redirect">\n    SetEnv REDIRECT_TO /other/env\n</Location>\n'
                + cgi_location("/lax/", keycloak, OfftokCacheTTL=3600) + other)
    token = keycloak.mint_access()
    assert httpd.get("/lax/env", token=token).status_code == 200
    keycloak.reset_counts()
    r = httpd.get("/lax/redirect", token=token)
    assert r.status_code == 200
    assert [e["client_id"] for e in keycloak.introspection_log()] == ["other-rs"]


def test_ssi_include_of_an_always_validate_location_refuses_a_revoked_token(httpd, oidc):
    """The same for a subrequest: SSI `include virtual` into OfftokAlwaysValidate On."""
    page(httpd, "page.shtml", 'before <!--#include virtual="/strict/env" --> after\n')
    httpd.start(SSI_CONF.format(root=httpd.root) + aliased("/strict/").format(root=httpd.root)
                + protected("/ssi/", oidc, OfftokCacheTTL=3600)
                + cgi_location("/strict/", oidc, OfftokAlwaysValidate="On"))
    httpd.allow_errors(r"AH01215|AH01620|unable to include")
    token = oidc.mint_access()
    first = httpd.get("/ssi/page.shtml", token=token)
    assert first.status_code == 200 and "OFFTOK_CLAIM_sub" in first.text
    oidc.revoke(token)
    r = httpd.get("/ssi/page.shtml", token=token)
    assert r.status_code == 200                      # the page itself is within /ssi/'s TTL
    assert "before" in r.text and "after" in r.text
    assert "OFFTOK_CLAIM_sub" not in r.text          # the included script did not run


# ---- OfftokPassHeader in subrequests ---------------------------------------------------------

def test_ssi_include_scrubs_client_sent_pass_headers(httpd, keycloak, backend):
    """Client-sent copies of the headers OfftokPassHeader names are removed first, always —
    in a subrequest too (httpd runs header_parser only for initial requests)."""
    page(httpd, "proxied.shtml", '<!--#include virtual="/proxied/" -->\n')
    httpd.start(SSI_CONF.format(root=httpd.root)
                + protected("/ssi/", keycloak)
                + protected("/proxied/", keycloak, OfftokPassHeader="X-Remote-Roles roles",
                            extra=f"ProxyPass {backend}/\n"))
    token = keycloak.mint_access()                   # no "roles" claim
    for name in ("X-Remote-Roles", "X_Remote_Roles", "x-remote-roles"):
        r = httpd.get("/ssi/proxied.shtml", token=token, headers={name: "spoofed-role"})
        assert r.status_code == 200
        assert '"authorization"' in r.text           # the back end's echo was included
        assert "spoofed-role" not in r.text, f"{name} reached the back end"


# ---- the key covers the TLS trust settings ---------------------------------------------------

def test_answer_fetched_without_verification_never_serves_a_verifying_location(httpd, oidc,
                                                                                  pki):
    """The cache key covers ... the TLS trust settings (CA file, verification)."""
    httpd.allow_errors(r"OT0002")
    httpd.start(protected("/noverify/", oidc, OfftokSSLVerify="Off", OfftokCacheTTL=300)
                + protected("/verify/", oidc, OfftokCAFile=pki.unknown_ca_file,
                            OfftokCacheTTL=300))
    token = oidc.mint_access()
    assert httpd.get("/noverify/index.html", token=token).status_code == 404
    r = httpd.get("/verify/index.html", token=token)
    assert r.status_code == 503                       # its own call fails verification
    assert "OT0002" in httpd.error_log()


# ---- OfftokLogoutAudience ------------------------------------------------------------------

def push_handlers(issuer, audiences):
    lines = offtok_lines(issuer, OfftokIssuer=issuer.issuer, OfftokJWKSURL=issuer.jwks_url,
                         OfftokLogoutAudience=audiences)
    return "".join(f"""
<Location "{path}">
    SetHandler {handler}
    {lines}
    Require ip 127.0.0.1
</Location>
""" for path, handler in ((LOGOUT, "offtok-backchannel-logout"),
                          (ADMIN, "offtok-keycloak-admin")))


def logout_conf(keycloak):
    return (protected("/protected/", keycloak, OfftokIssuer=keycloak.issuer, OfftokCacheTTL=300)
            + push_handlers(keycloak, "orders-web orders-mobile"))


def test_logout_addressed_to_a_login_client_is_applied(httpd, keycloak):
    """OfftokLogoutAudience: Keycloak sends a user's logout to the clients the user logged in
    through, with that client as aud; the handler accepts those and purges."""
    httpd.start(logout_conf(keycloak))
    token = keycloak.mint_access(sub="lia", sid="sid-lia", client_id="orders-web")
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    keycloak.revoke(token)
    assert httpd.get("/protected/index.html", token=token).status_code == 200   # cached
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sid="sid-lia",
                                                                        aud="orders-mobile")})
    assert r.status_code == 200, r.text
    assert httpd.get("/protected/index.html", token=token).status_code == 401


def test_logout_for_an_unlisted_client_is_refused(httpd, keycloak):
    """... the aud must name one of OfftokLogoutAudience: with the list set, not even
    OfftokClientID is accepted unless listed; refused pushes change nothing."""
    httpd.start(logout_conf(keycloak))
    token = keycloak.mint_access(sub="max", sid="sid-max")
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    keycloak.revoke(token)
    for aud in ("rs-client", "orders-admin"):
        r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sid="sid-max",
                                                                            aud=aud)})
        assert r.status_code == 400
    assert httpd.get("/protected/index.html", token=token).status_code == 200   # nothing purged


def test_not_before_of_a_login_client_refuses_its_tokens_only(httpd, keycloak):
    """A notBefore applies to the handler's issuer's answers whose azp (else client_id) is the
    action's resource."""
    httpd.start(logout_conf(keycloak))
    web = keycloak.mint_access(sub="ned", client_id="orders-web")
    app = keycloak.mint_access(sub="ned", client_id="app-client")
    for token in (web, app):
        assert httpd.get("/protected/index.html", token=token).status_code == 200
    jws = keycloak.admin_action("k_push_not_before", resource="orders-web",
                                not_before=int(time.time()) + 2)
    r = httpd.post(f"{ADMIN}/k_push_not_before", data=jws,
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 204
    keycloak.reset_counts()
    assert httpd.get("/protected/index.html", token=app).status_code == 200
    assert keycloak.introspection_count() == 0, "the other client's answer stays cached"
    assert httpd.get("/protected/index.html", token=web).status_code == 401
    jws = keycloak.admin_action("k_push_not_before", resource="orders-admin",
                                not_before=int(time.time()) + 2)
    r = httpd.post(f"{ADMIN}/k_push_not_before", data=jws,
                   headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


# ---- OfftokOfflineClients ------------------------------------------------------------------

def test_offline_tokens_only_of_the_listed_clients(httpd, keycloak):
    """OfftokOfflineClients: offline tokens are accepted only when issued to one of these
    clients (the answer's azp, else its client_id); access tokens are judged by aud as before."""
    httpd.start(protected("/protected/", keycloak, OfftokOfflineClients="orders-web"))
    assert httpd.get("/protected/index.html",
                     token=keycloak.mint_offline(client_id="orders-web")).status_code == 200
    r = httpd.get("/protected/index.html", token=keycloak.mint_offline(client_id="app-client"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "OfftokOfflineClients" in httpd.error_log()
    assert httpd.get("/protected/index.html",
                     token=keycloak.mint_access(client_id="app-client")).status_code == 200


def test_offline_clients_needs_a_client(httpd, keycloak):
    code, out = httpd.configtest(protected("/p/", keycloak, OfftokOfflineClients=""))
    assert code != 0


# ---- DirectoryIndex: mod_dir hands the index file's location to the initial request -------------

def index_conf(httpd, issuer, files_directives):
    """/app/ (no AuthType) whose DirectoryIndex is a CGI protected by a <Files> section: mod_dir
    looks the index up in a subrequest, then gives that subrequest's configuration to the initial
    request (ap_internal_fast_redirect), whose headers and user are its own."""
    app = os.path.join(httpd.root, "htdocs", "app")
    os.makedirs(app, exist_ok=True)
    os.chmod(app, 0o755)
    with open(os.path.join(httpd.root, "cgi-bin", "env")) as src:
        text = src.read()
    with open(os.path.join(app, "index.cgi"), "w") as f:
        f.write(text)
    os.chmod(os.path.join(app, "index.cgi"), 0o755)
    lines = offtok_lines(issuer, **files_directives)
    return f"""
LoadModule dir_module {__import__('httpd').MODDIR}/mod_dir.so
<Directory "{app}">
    DirectoryIndex index.cgi
    Options +ExecCGI
    <Files "index.cgi">
        SetHandler cgi-script
        AuthType offtok
        AuthName "test"
        {lines}
        Require valid-user
    </Files>
</Directory>
"""


def test_directory_index_scrubs_client_sent_pass_headers(httpd, keycloak):
    """Client-sent copies of OfftokPassHeader headers are removed wherever the directive
    applies: also when mod_dir gives the index file's location to the initial request."""
    httpd.start(index_conf(httpd, keycloak, {"OfftokPassHeader": "X-Remote-Roles roles"}))
    token = keycloak.mint_access()                   # no "roles" claim
    for name in ("X-Remote-Roles", "X_Remote_Roles"):
        r = httpd.get("/app/", token=token, headers={name: "spoofed-role"})
        assert r.status_code == 200, r.text
        env = r.json()
        assert "spoofed-role" not in r.text, f"{name} reached the index script"
        assert env.get("REMOTE_USER") == "alice"
    token = keycloak.mint_access(claims={"roles": "reader"})
    r = httpd.get("/app/", token=token, headers={"X-Remote-Roles": "spoofed-role"})
    assert r.status_code == 200
    assert r.json().get("HTTP_X_REMOTE_ROLES") == "reader"
    r = httpd.get("/app/", headers={"X-Remote-Roles": "spoofed-role"})
    assert r.status_code == 401


def test_internal_redirect_in_the_same_location_refuses_a_token_logged_out_meanwhile(httpd,
                                                                                   keycloak):
    """An internal redirect within the same location skips httpd's authentication (httpd copies
    the user); a logout pushed while the first script ran makes the module check the token again
    for the redirect, and that refusal refuses the redirect instead of running it as the user."""
    import threading
    cgi(httpd, "slow", "#!/bin/sh\nsleep 3\nprintf 'Location: /same/env\\n\\n'\n")
    httpd.start(aliased("/same/").format(root=httpd.root)
                + cgi_location("/same/", keycloak, OfftokIssuer=keycloak.issuer,
                               OfftokCacheTTL=300)
                + push_handlers(keycloak, "rs-client"))
    token = keycloak.mint_access(sub="sam", sid="sid-sam")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=httpd.get("/same/slow", token=token)))
    t.start()
    time.sleep(1)
    keycloak.revoke(token)
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sid="sid-sam",
                                                                        aud="rs-client")})
    assert r.status_code == 200, r.text
    t.join(30)
    r = result["r"]
    assert r.status_code == 401, r.text
    assert "REMOTE_USER" not in r.text
