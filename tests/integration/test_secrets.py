"""No token and no secret in httpd's logs, whatever happened to the request (issue 6).

One httpd with `LogLevel info offtok:trace8` (core stays at info: at its own trace levels httpd
prints request headers, which is not the module's doing) serves a representative mix: valid,
unknown, revoked, malformed and forged tokens, access, refresh and offline tokens, both client
authentication methods, per-client credentials, a wrong secret and the issuer faults. Then every
log file httpd wrote is searched for each token and each secret in every form it travelled in:
as is, form-encoded, Base64, the Basic credential, and any 16-character piece of a token.

The secrets are made per run and hold the characters that encodings change (+ / = : & % ~), so
an encoded copy cannot slip through and nothing else in a log can match by chance.
"""
import base64
import glob
import os
import secrets
import urllib.parse

import pytest

from httpd import wait_until

LOGLEVEL = "info offtok:trace8"
PIECE = 16  # a token piece this long in a log is a leak


def make_secret(label):
    return f"{label}-{secrets.token_urlsafe(12)}+/=:&%~{secrets.token_hex(4)}"


def form_ot(s):
    """application/x-www-form-urlencoded as the module writes it (ot_form_encode)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-._*") else
                   "+" if c == " " else "".join(f"%{b:02X}" for b in c.encode())
                   for c in s)


def forms_of_secret(client_id, secret):
    """What a secret looks like wherever it travelled: as is, form-encoded, in a Basic header."""
    encoded = {form_ot(secret), urllib.parse.quote_plus(secret), urllib.parse.quote(secret, "")}
    found = set(encoded) | {e.lower() for e in encoded} | {secret}
    for cid, sec in ((client_id, secret), (form_ot(client_id), form_ot(secret)),
                     (urllib.parse.quote_plus(client_id), urllib.parse.quote_plus(secret))):
        found.add(base64.b64encode(f"{cid}:{sec}".encode()).decode())
    found.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return found


def forms_of_token(token):
    """The token, its encodings, and every piece of it long enough to identify it. Of a JWT,
    the pieces come from the signature: header and payload start alike in every token of an
    issuer; the payload is also looked for whole."""
    token = str(token)
    found = {token, form_ot(token), urllib.parse.quote_plus(token),
             base64.b64encode(token.encode()).decode().rstrip("=")}
    body = token
    if token.count(".") == 2:
        found.add(token.split(".")[1])
        body = token.rsplit(".", 1)[1]
    found.update(body[i:i + PIECE] for i in range(0, max(len(body) - PIECE, 0) + 1, 4))
    return {f for f in found if len(f) >= 8}


def all_logs(root):
    text = {}
    for path in glob.glob(os.path.join(root, "logs", "*")):
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                text[os.path.basename(path)] = f.read()
    return text


def leaks(logs, needles):
    """Each log line holding a needle, once: "label in file: line"."""
    found = {}
    for name, text in logs.items():
        for line in text.splitlines():
            for label, forms in needles.items():
                if any(form in line for form in forms):
                    found.setdefault(f"{label} in {name}: {line[:300]}", None)
    return list(found)


def location(path, root, url, client_id, secret, ca_file, **directives):
    lines = [f'Alias "{path}" "{root}/htdocs/protected/"',
             f'<Location "{path}">',
             "    AuthType offtok",
             '    AuthName "secrets"',
             f"    OfftokIntrospectionURL {url}",
             f"    OfftokClientID {client_id}",
             f"    OfftokClientSecret {secret}",
             f"    OfftokCAFile {ca_file}",
             "    OfftokNegativeCacheTTL 0"]
    lines += [f"    {name} {value}" for name, value in directives.items()]
    lines += ["    Require valid-user", "</Location>"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def kc_mode(keycloak):
    keycloak.set_mode(refresh_needs_hint=True, refresh_own_client_only=False,
                      access_needs_audience=False)
    yield keycloak


def test_no_token_or_secret_in_the_logs(httpd, oidc, kc_mode, faulty, pki, monkeypatch):
    keycloak = kc_mode
    s_oidc, s_kc, s_orders = make_secret("oidc"), make_secret("kc"), make_secret("orders")
    s_wrong, s_fault = make_secret("wrong"), make_secret("fault")
    oidc.update_client("secrets-rs", client_secret=s_oidc,
                       token_endpoint_auth_method="client_secret_basic",
                       grant_types=[], response_types=[], redirect_uris=[])
    keycloak.set_client("secrets-kc", s_kc)
    keycloak.set_client("orders-web", s_orders)
    monkeypatch.setenv("OFFTOK_TEST_KC_SECRET", s_kc)   # OfftokClientSecret env:VAR

    root, ca = httpd.root, pki.ca_file
    conf = (location("/basic/", root, oidc.introspection_url, "secrets-rs", s_oidc, ca)
            + location("/fresh/", root, oidc.introspection_url, "secrets-rs", s_oidc, ca,
                       OfftokAlwaysValidate="On")
            + location("/post/", root, keycloak.introspection_url, "secrets-kc",
                       "env:OFFTOK_TEST_KC_SECRET", ca,
                       OfftokClientAuth="client_secret_post", OfftokIssuer=keycloak.issuer,
                       OfftokClientFor=f"orders-web orders-web {s_orders}")
            + location("/wrong/", root, oidc.introspection_url, "secrets-rs", s_wrong, ca))
    faults = {"ok": 200, "inactive": 401, "status/401": 503, "status/500": 503,
              "redirect/302": 503, "garbage": 503, "reset": 503, "hang": 503,
              "longsub?len=10000": 401, "crlf": 200, "badutf8": 503}
    for i, fault in enumerate(faults):
        auth = "client_secret_post" if i % 2 else "client_secret_basic"
        conf += location(f"/fault{i}/", root, faulty.url_for(fault), "fault-client", s_fault, ca,
                         OfftokClientAuth=auth, OfftokTimeout="1 2")
    httpd.allow_errors("OT0002", "OT0003", "OT0004")
    httpd.start(conf, loglevel=LOGLEVEL)

    tokens = {}

    def expect(path, token, status, label, header=None):
        tokens[label] = token
        headers = {"Authorization": header} if header else None
        r = httpd.get(path + "index.html", token=None if header else token, headers=headers)
        assert r.status_code == status, (label, r.status_code, r.text[:200])

    access = oidc.mint_access(sub="alice", scope="openid")
    expect("/basic/", access, 200, "oidc access")
    expect("/basic/", access, 200, "oidc access")             # from the cache
    expect("/fresh/", access, 200, "oidc access")             # a fresh issuer call
    revoked = oidc.mint_access(sub="bob")
    expect("/basic/", revoked, 200, "oidc revoked")
    oidc.revoke(revoked)
    expect("/fresh/", revoked, 401, "oidc revoked")
    expect("/basic/", oidc.mint_offline(sub="carol"), 200, "oidc offline")
    expect("/basic/", "unknown-" + secrets.token_urlsafe(24), 401, "unknown opaque")
    lower = oidc.mint_access(sub="dora")
    expect("/basic/", lower, 200, "lower-case scheme", header=f"bearer {lower}")
    tab = oidc.mint_access(sub="erin")
    expect("/basic/", tab, 400, "tab", header=f"Bearer\t{tab}")
    two = secrets.token_urlsafe(24)
    expect("/basic/", two, 400, "two tokens", header=f"Bearer {two} {two}")
    expect("/wrong/", oidc.mint_access(sub="frank"), 503, "wrong secret")

    expect("/post/", keycloak.mint_access(sub="kc-alice"), 200, "kc access")
    expect("/post/", keycloak.mint_offline(sub="kc-bob"), 200, "kc offline")
    expect("/post/", keycloak.mint_refresh(sub="kc-carol"), 401, "kc refresh")
    expect("/post/", keycloak.mint_offline(sub="kc-orders", client_id="orders-web"), 200,
           "kc offline of orders-web")
    kc_revoked = keycloak.mint_access(sub="kc-dave")
    keycloak.revoke(kc_revoked)
    expect("/post/", kc_revoked, 401, "kc revoked")
    forged = keycloak.sign({"sub": "kc-eve", "typ": "Bearer", "iss": keycloak.issuer},
                           forge="other_key")
    expect("/post/", forged, 401, "kc forged")

    for i, (fault, status) in enumerate(faults.items()):
        expect(f"/fault{i}/", f"fault-{i}-" + secrets.token_urlsafe(24), status, f"fault {fault}")

    # The search works: a token planted where httpd itself logs it (the request line) is found.
    planted = "planted-" + secrets.token_urlsafe(24)
    assert httpd.get("/index.html?probe=" + planted).status_code == 200
    wait_until(lambda: planted in all_logs(root).get("access.log", ""), timeout=5,
               what="the planted token in access.log")
    httpd.stop()

    logs = all_logs(root)
    assert "OT0010" in logs["error.log"] and "OT0003" in logs["error.log"], \
        "the module logged less than expected: " + logs["error.log"][-2000:]
    logs["access.log"] = "\n".join(line for line in logs["access.log"].splitlines()
                                   if planted not in line)
    needles = {label: forms_of_token(token) for label, token in tokens.items()}
    for label, (client_id, secret) in {
            "oidc secret": ("secrets-rs", s_oidc), "kc secret": ("secrets-kc", s_kc),
            "orders-web secret": ("orders-web", s_orders), "wrong secret": ("secrets-rs", s_wrong),
            "fault secret": ("fault-client", s_fault)}.items():
        needles[label] = forms_of_secret(client_id, secret)
    found = leaks(logs, needles)
    assert not found, f"{len(found)} log lines with a token or secret:\n" + "\n".join(found[:20])
