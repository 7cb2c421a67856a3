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
import shutil
import socket
import subprocess
import urllib.parse

import pytest

from httpd import free_port, protected, wait_until

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

    # A token planted where httpd itself logs it (the request line), to show the search works.
    planted = "planted-" + secrets.token_urlsafe(24)
    assert httpd.get("/index.html?probe=" + planted).status_code == 200
    httpd.stop()

    logs = all_logs(root)
    assert "OT0010" in logs["error.log"] and "OT0003" in logs["error.log"], \
        "the module logged less than expected: " + logs["error.log"][-2000:]
    assert leaks(logs, {"planted": forms_of_token(planted)}), "the search misses a planted token"
    logs["access.log"] = "\n".join(line for line in logs["access.log"].splitlines()
                                   if "?probe=" not in line)
    needles = {label: forms_of_token(token) for label, token in tokens.items()}
    for label, (client_id, secret) in {
            "oidc secret": ("secrets-rs", s_oidc), "kc secret": ("secrets-kc", s_kc),
            "orders-web secret": ("orders-web", s_orders), "wrong secret": ("secrets-rs", s_wrong),
            "fault secret": ("fault-client", s_fault)}.items():
        needles[label] = forms_of_secret(client_id, secret)
    found = leaks(logs, needles)
    assert not found, f"{len(found)} log lines with a token or secret:\n" + "\n".join(found[:20])


# ---- the Redis tier: its password and key --------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


def redis_server(port, password, root):
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", root,
                             "--requirepass", password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(listening, timeout=10, what="redis-server to listen")
    return proc


def redis_info(port, password, section):
    """INFO section, asked with the right password (RESP, without a client library)."""
    def bulk(*args):
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bulk(b"AUTH", password.encode()) + bulk(b"INFO", section.encode()))
        f = s.makefile("rb")
        assert f.readline() == b"+OK\r\n"
        size = int(f.readline()[1:])
        return f.read(size)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_no_redis_password_or_key_in_the_logs(httpd, kc_mode, monkeypatch):
    keycloak = kc_mode
    if "no Redis support" in httpd.configtest("", server="OfftokRedis redis://127.0.0.1:1")[1]:
        pytest.skip("this mod_offtok was built without hiredis")
    password, wrong = make_secret("redis"), make_secret("stale")
    key = secrets.token_hex(32)
    key_path = os.path.join(httpd.root, "redis.key")
    with open(key_path, "w") as f:
        f.write(key + "\n")
    os.chmod(key_path, 0o600)
    monkeypatch.setenv("OFFTOK_TEST_REDIS_PASSWORD", password)
    port = free_port()
    proc = redis_server(port, password, httpd.root)
    try:
        httpd.allow_errors("OT02")            # Redis unreachable or refusing: logged, not fatal
        httpd.start(protected("/protected/", keycloak, OfftokCacheTTL=300),
                    server=f"OfftokRedis redis://127.0.0.1:{port}\n"
                           "OfftokRedisPassword env:OFFTOK_TEST_REDIS_PASSWORD\n"
                           f"OfftokRedisKey file:{key_path}\n", loglevel=LOGLEVEL)
        tokens = {f"redis token {i}": keycloak.mint_access(sub=f"r{i}") for i in range(3)}
        for token in tokens.values():
            assert httpd.get("/protected/index.html", token=token).status_code == 200
        proc.kill()
        proc.wait()
        # The same port, another password: once the breaker lets it try, the AUTH is refused.
        proc = redis_server(port, wrong, httpd.root)

        def refused():
            label = f"redis token {len(tokens)}"
            tokens[label] = keycloak.mint_access(sub=label[-2:])
            assert httpd.get("/protected/index.html", token=tokens[label]).status_code == 200
            return b"errorstat_WRONGPASS" in redis_info(port, wrong, "errorstats")
        wait_until(refused, timeout=20, interval=0.5, what="Redis to refuse the node's AUTH")
        httpd.stop()
    finally:
        proc.kill()
        proc.wait()
    logs = all_logs(httpd.root)
    assert "OT02" in logs["error.log"], "the outage was not noticed: " + logs["error.log"][-2000:]
    needles = {label: forms_of_token(token) for label, token in tokens.items()}
    needles["redis password"] = forms_of_secret("default", password)
    needles["the other redis password"] = forms_of_secret("default", wrong)
    raw_key = bytes.fromhex(key)
    needles["redis key"] = forms_of_token(key) | {
        key.upper(), base64.b64encode(raw_key).decode().rstrip("=")}
    found = leaks(logs, needles)
    assert not found, f"{len(found)} log lines with a token or secret:\n" + "\n".join(found[:20])
