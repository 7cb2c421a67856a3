"""Quick checks that the test issuers work on their own, before any test relies on them.

    /usr/bin/python3 -m pytest tests/integration/test_issuers_selftest.py
"""

import http.client
import http.server
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import jwt
import pytest

from issuers import (KEYCLOAK_26_8, FaultyIssuer, KeycloakStandin, OidcIssuer, token_hash)
from pki import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("issuers"))


@pytest.fixture(scope="module")
def oidc(workdir, pki):
    with OidcIssuer(workdir, pki) as issuer:
        yield issuer


@pytest.fixture(scope="module")
def keycloak(workdir, pki):
    with KeycloakStandin(workdir, pki) as standin:
        yield standin


@pytest.fixture
def faulty(workdir, pki):
    with FaultyIssuer(workdir, pki) as issuer:
        yield issuer


def fetch_json(url, ca_file):
    with urllib.request.urlopen(url, context=ssl.create_default_context(cafile=ca_file)) as r:
        return json.load(r)


def jwks_keys(url, ca_file):
    return {key["kid"]: jwt.PyJWK(key).key for key in fetch_json(url, ca_file)["keys"]}


class LogoutReceiver:
    """An HTTPS endpoint that keeps what is POSTed to it: a client's back-channel logout URI."""

    def __init__(self, pki):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(urllib.parse.parse_qs(body.decode()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert, pki.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(pki):
    receiver = LogoutReceiver(pki)
    yield receiver
    receiver.close()


# ---- oidc-provider ------------------------------------------------------------------------------

def test_oidc_access_token_is_active_with_its_claims(oidc):
    claims = {"realm_access": {"roles": ["admin", "reader"]}, "note": "one\r\ntwo",
              "long": "x" * 5000}
    token = oidc.mint_access(sub="alice", scope="openid profile", claims=claims, sid="s-1",
                             aud="rs-client")
    for auth in ("basic", "post"):
        status, answer = oidc.introspect(token, hint="access_token", auth=auth)
        assert status == 200
        assert answer["active"] is True
        assert answer["sub"] == "alice"
        assert answer["client_id"] == "app-client"
        assert answer["token_type"] == "Bearer"
        assert answer["scope"] == "openid profile"
        assert answer["sid"] == "s-1"
        assert answer["aud"] == "rs-client"
        assert answer["iss"] == oidc.issuer
        assert answer["exp"] == token.exp
        assert {name: answer[name] for name in claims} == claims


def test_oidc_revoked_token_is_inactive(oidc):
    token = oidc.mint_access(sub="bob")
    assert oidc.introspect(token)[1]["active"] is True
    assert oidc.revoke(token) is True
    assert oidc.introspect(token) == (200, {"active": False})
    assert oidc.revoke(token) is False


def test_oidc_offline_token_is_a_refresh_token_with_offline_access(oidc):
    token = oidc.mint_offline(sub="carol", claims={"realm_access": {"roles": ["offline"]}})
    status, answer = oidc.introspect(token)
    assert status == 200 and answer["active"] is True
    assert "offline_access" in answer["scope"].split()
    assert "token_type" not in answer  # oidc-provider names no type for refresh tokens
    assert answer["realm_access"] == {"roles": ["offline"]}


def test_oidc_refuses_bad_client_credentials(oidc):
    token = oidc.mint_access()
    status, answer = oidc.introspect(token, secret="wrong")
    assert status == 401 and answer["error"] == "invalid_client"


def test_oidc_counts_and_logs_introspections(oidc):
    token = oidc.mint_access()
    oidc.reset_counts()
    before = time.time()
    oidc.introspect(token, hint="access_token")
    oidc.introspect(token, auth="post", client_id="app-client")
    assert oidc.introspection_count() == 2
    first, second = oidc.introspection_log()
    assert before - 1 <= first["time"] <= second["time"] <= time.time() + 1
    assert first["token_type_hint"] == "access_token" and second["token_type_hint"] is None
    assert first["client_id"] == "rs-client" and second["client_id"] == "app-client"
    assert first["client_auth"] == "client_secret_basic"
    assert second["client_auth"] == "client_secret_post"
    assert first["token_sha256"] == token_hash(token)
    assert first["active"] is True
    oidc.reset_counts()
    assert oidc.introspection_count() == 0


def test_oidc_backchannel_logout_reaches_a_loopback_client(oidc, receiver, pki):
    oidc.set_backchannel_uri("rs-client", receiver.url)
    access = oidc.mint_access(sub="dave", sid="session-d")
    offline = oidc.mint_offline(sub="dave", sid="session-d")
    try:
        result = oidc.backchannel_logout(sid="session-d")
    finally:
        oidc.update_client("rs-client", backchannel_logout_uri=None)
    assert result["sub"] == "dave" and result["revoked"] == 1
    assert result["notified"] == [{"client_id": "rs-client", "ok": True}]

    (form,) = receiver.received
    logout_token = form["logout_token"][0]
    header = jwt.get_unverified_header(logout_token)
    assert header["typ"] == "logout+jwt"
    key = jwks_keys(oidc.jwks_url, pki.ca_file)[header["kid"]]
    claims = jwt.decode(logout_token, key, algorithms=["RS256"], audience="rs-client",
                        issuer=oidc.issuer)
    assert claims["sub"] == "dave" and claims["sid"] == "session-d"
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]

    assert oidc.introspect(access)[1] == {"active": False}
    assert oidc.introspect(offline)[1]["active"] is True  # offline access outlives logout


# ---- Keycloak stand-in --------------------------------------------------------------------------

def test_keycloak_access_token_answer_has_keycloak_shape(keycloak):
    token = keycloak.mint_access(sub="alice", claims={"realm_access": {"roles": ["admin"]}})
    status, answer = keycloak.introspect(token)
    assert status == 200
    assert answer["active"] is True
    assert answer["typ"] == answer["token_type"] == "Bearer"
    assert answer["client_id"] == answer["azp"] == "app-client"
    assert answer["username"] == answer["preferred_username"] == "alice"
    assert answer["aud"] == ["rs-client", "account"]
    assert answer["realm_access"] == {"roles": ["admin"]}
    assert list(answer)[-1] == "active"


def test_keycloak_offline_token_needs_the_refresh_hint(keycloak):
    token = keycloak.mint_offline(sub="olivia")
    payload = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert payload["typ"] == "Offline" and "exp" not in payload
    assert payload["aud"] == keycloak.issuer

    assert keycloak.introspect(token) == (200, {"active": False})
    assert keycloak.introspect(token, hint="access_token") == (200, {"active": False})
    status, answer = keycloak.introspect(token, hint="refresh_token")
    assert status == 200 and answer["active"] is True
    assert answer["token_type"] == "Offline" and "exp" not in answer


def test_keycloak_refresh_hint_makes_an_access_token_inactive(keycloak):
    token = keycloak.mint_access(scope="openid offline_access")
    assert keycloak.introspect(token, hint="refresh_token") == (200, {"active": False})
    assert keycloak.introspect(token)[1]["token_type"] == "Bearer"


def test_keycloak_26_8_mode(keycloak):
    previous = keycloak.set_mode(**KEYCLOAK_26_8)
    try:
        offline = keycloak.mint_offline(client_id="app-client")
        assert keycloak.introspect(offline, client_id="app-client")[1]["active"] is True
        assert keycloak.introspect(offline) == (200, {"active": False})  # rs-client: not its own
        no_audience = keycloak.mint_access(aud="account")
        assert keycloak.introspect(no_audience) == (200, {"active": False})
        assert keycloak.introspect(keycloak.mint_access())[1]["active"] is True
    finally:
        keycloak.set_mode(refresh_needs_hint=True, refresh_own_client_only=False,
                          access_needs_audience=False)
    assert previous == KEYCLOAK_26_8


def test_keycloak_request_errors(keycloak):
    token = keycloak.mint_access()
    assert keycloak.introspect(token, hint="id_token")[0] == 400
    assert keycloak.introspect(token, secret="wrong")[0] == 401
    assert keycloak.introspect(token, client_id="nobody", secret="x", auth="post")[0] == 401
    assert keycloak.introspect(token, client_id="public-app", secret="", auth="post")[0] == 403

    body = urllib.parse.urlencode([("token", token), ("token", token),
                                   ("client_id", "rs-client"), ("client_secret", "rs-secret")])
    request = urllib.request.Request(keycloak.introspection_url, data=body.encode())
    context = ssl.create_default_context(cafile=keycloak.ca_file)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, context=context)
    assert raised.value.code == 400


def test_keycloak_revocation_and_not_before(keycloak):
    first, second = keycloak.mint_access(sub="rita"), keycloak.mint_access(sub="rita")
    offline = keycloak.mint_offline(sub="rita")
    assert keycloak.revoke(first) == 1
    assert keycloak.introspect(first)[1] == {"active": False}
    assert keycloak.introspect(second)[1]["active"] is True
    assert keycloak.revoke(sub="rita", offline=False) == 1
    assert keycloak.introspect(second)[1] == {"active": False}
    assert keycloak.introspect(offline, hint="refresh_token")[1]["active"] is True

    later = keycloak.mint_access(sub="nina")
    keycloak.set_not_before(later.iat + 1)
    try:
        assert keycloak.introspect(later)[1] == {"active": False}
    finally:
        keycloak.set_not_before(0)
    assert keycloak.introspect(later)[1]["active"] is True


def test_keycloak_counts_introspections(keycloak):
    token = keycloak.mint_offline()
    keycloak.reset_counts()
    keycloak.introspect(token, hint="refresh_token", auth="post")
    assert keycloak.introspection_count() == 1
    (entry,) = keycloak.introspection_log()
    assert entry["token_type_hint"] == "refresh_token"
    assert entry["client_id"] == "rs-client" and entry["client_auth"] == "client_secret_post"
    assert entry["token_sha256"] == token_hash(token) and entry["active"] is True


def test_keycloak_signed_pushes_verify_with_its_jwks(keycloak, pki):
    keys = jwks_keys(keycloak.jwks_url, pki.ca_file)
    action = keycloak.admin_action("k_logout", not_before=123, session_ids=["sid-1"])
    payload = jwt.decode(action, keys[jwt.get_unverified_header(action)["kid"]],
                         algorithms=["RS256"])
    assert payload["action"] == "LOGOUT" and payload["resource"] == "rs-client"
    assert payload["keycloakSessionIds"] == ["sid-1"] and payload["notBefore"] == 123
    assert payload["expiration"] > time.time()

    logout = keycloak.logout_token(sub="u", sid="s", revoke_offline_access=True)
    header = jwt.get_unverified_header(logout)
    assert header["typ"] == "logout+jwt"
    claims = jwt.decode(logout, keys[header["kid"]], algorithms=["RS256"], audience="rs-client",
                        issuer=keycloak.issuer)
    assert claims["revoke_offline_access"] is True and claims["typ"] == "Logout"


def test_keycloak_forgeries(keycloak, pki):
    keys = jwks_keys(keycloak.jwks_url, pki.ca_file)
    rsa_key = next(iter(keys.values()))
    for forge in ("bad_signature", "other_key"):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(keycloak.logout_token(sub="u", forge=forge), rsa_key,
                       algorithms=["RS256"], audience="rs-client")
    none = keycloak.admin_action("k_push_not_before", forge="alg_none")
    assert jwt.get_unverified_header(none)["alg"] == "none" and none.endswith(".")
    hs = keycloak.logout_token(sub="u", forge="hs256_pem")
    assert jwt.get_unverified_header(hs)["alg"] == "HS256"
    assert jwt.get_unverified_header(keycloak.sign({"a": 1}, forge="unknown_kid"))["kid"] \
        not in keys
    no_events = keycloak.logout_token(sub="u", claims={"events": None, "sid": None})
    assert {"events", "sid"}.isdisjoint(jwt.decode(no_events, options={"verify_signature": False}))


def test_keycloak_backchannel_logout(keycloak, receiver):
    keycloak.set_backchannel_uri("rs-client", receiver.url)
    access = keycloak.mint_access(sub="lou", sid="sid-l")
    result = keycloak.backchannel_logout(sub="lou", sid="sid-l")
    assert result["revoked"] == 1 and result["notified"][0]["ok"] is True
    claims = jwt.decode(receiver.received[0]["logout_token"][0],
                        options={"verify_signature": False})
    assert claims["sid"] == "sid-l" and claims["aud"] == "rs-client"
    assert keycloak.introspect(access)[1] == {"active": False}


# ---- fault stub ---------------------------------------------------------------------------------

def get(url, ca_file, timeout=5):
    """(status, body bytes); does not follow redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(
            context=ssl.create_default_context(cafile=ca_file)))
    try:
        with opener.open(url, data=b"token=abc&token_type_hint=access_token",
                         timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("fault, status, check", [
    ("ok", 200, lambda body: json.loads(body)["active"] is True),
    ("inactive", 200, lambda body: json.loads(body) == {"active": False}),
    ("status/500", 500, None),
    ("status/401", 401, None),
    ("redirect/302", 302, None),
    ("garbage", 200, lambda body: not body.startswith(b"{")),
    ("array", 200, lambda body: isinstance(json.loads(body), list)),
    ("noactive", 200, lambda body: "active" not in json.loads(body)),
    ("active-string", 200, lambda body: json.loads(body)["active"] == "true"),
    ("big?bytes=262145", 200, lambda body: len(body) == 262145 and json.loads(body)),
    ("huge", 200, lambda body: len(body) == 16 * 1024 * 1024),
    ("deep?levels=50000", 200, lambda body: body.count(b"[") == 50000),
    ("badutf8", 200, lambda body: b"\xff" in body),
    ("nul", 200, lambda body: json.loads(body)["sub"] == "before\0after"),
    ("longsub?len=10000", 200, lambda body: len(json.loads(body)["sub"]) == 10000),
    ("crlf", 200, lambda body: "\r\n" in json.loads(body)["sub"]),
    ('ok?claims={"sub":"zed"}', 200, lambda body: json.loads(body)["sub"] == "zed"),
])
def test_faults_answer_as_named(faulty, pki, fault, status, check):
    got_status, body = get(faulty.url_for(urllib.parse.quote(fault, safe="/?=&")), pki.ca_file)
    assert got_status == status
    assert check is None or check(body)


def test_fault_timing_and_broken_connections(faulty, pki):
    started = time.monotonic()
    assert get(faulty.url_for("slow?seconds=1"), pki.ca_file)[0] == 200
    assert time.monotonic() - started >= 1
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        get(faulty.url_for("reset"), pki.ca_file)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(faulty.url_for("hang"), pki.ca_file, timeout=1.5)

    context = ssl.create_default_context(cafile=pki.ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", faulty.port, context=context)
    connection.request("GET", "/drip?interval=0.5")
    response = connection.getresponse()
    started = time.monotonic()
    assert response.status == 200 and response.read(3) == b'{"a'
    assert time.monotonic() - started >= 0.9
    connection.close()


def test_fault_counters_show_connection_reuse(faulty, pki):
    context = ssl.create_default_context(cafile=pki.ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", faulty.port, context=context)
    for _ in range(3):
        connection.request("POST", "/ok", body="token=t1",
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "Authorization": "Basic eDp5"})
        connection.getresponse().read()
    assert faulty.connections() == 1 and faulty.requests() == 3
    log = faulty.log()
    assert len({entry["client_port"] for entry in log}) == 1
    assert log[0]["form"] == {"token_sha256": token_hash("t1")} and log[0]["authorization"]

    connection.close()
    faulty.reset_counts()
    faulty.set_close(True)
    for _ in range(2):
        connection.request("GET", "/ok")
        response = connection.getresponse()
        response.read()
        assert response.getheader("Connection") == "close"
    assert faulty.connections() == 2 and faulty.requests() == 2
    connection.close()


def test_fault_stub_restarts_on_the_same_port(faulty, pki):
    url = faulty.url
    get(faulty.url_for("ok"), pki.ca_file)
    faulty.stop()
    with pytest.raises(urllib.error.URLError):
        get(url + "/ok", pki.ca_file)
    faulty.start()
    assert faulty.url == url and faulty.requests() == 0
    assert get(url + "/ok", pki.ca_file)[0] == 200


@pytest.mark.parametrize("cert", ["wrong_host", "expired", "unknown_ca"])
def test_fault_stub_serves_bad_certificates(workdir, pki, cert):
    with FaultyIssuer(workdir, pki, cert=cert) as faulty:
        with pytest.raises(urllib.error.URLError) as raised:
            get(faulty.url_for("ok"), pki.ca_file)
        assert isinstance(raised.value.reason, ssl.SSLCertVerificationError)
        assert faulty.connections() == 1 and faulty.requests() == 0
        if cert == "unknown_ca":
            assert get(faulty.url_for("ok"), pki.unknown_ca_file)[0] == 200
