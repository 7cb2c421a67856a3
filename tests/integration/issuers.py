"""The issuers that mod_offtok's integration tests talk to, each run as its own process on
127.0.0.1 with a port the system picks:

- ``OidcIssuer`` — a real OpenID Provider, oidc-provider 8 (tests/issuer/issuer.js).
- ``KeycloakStandin`` — a Keycloak-shaped stand-in (stubs/keycloak.py).
- ``FaultyIssuer`` — an introspection endpoint that misbehaves on request (stubs/faulty.py).

Each starts when constructed, waits until the process says it is ready (or raises), and stops
on ``stop()``, at the end of a ``with`` block, or when the test process exits, whatever happened
in between. A process's stdout and stderr go to a log file in ``workdir`` (``.log_path``).

    pki = make_pki(tmpdir)
    with OidcIssuer(workdir, pki) as op:
        token = op.mint_access(sub="alice", claims={"realm_access": {"roles": ["admin"]}})
        # configure httpd with op.introspection_url, op.rs_client_id, op.rs_client_secret,
        # OfftokCAFile pki.ca_file; then check op.introspection_count(), op.introspection_log()
"""

import atexit
import base64
import hashlib
import itertools
import json
import os
import queue
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER_DIR = os.path.normpath(os.path.join(HERE, "..", "issuer"))
STUBS_DIR = os.path.join(HERE, "stubs")
PYTHON = "/usr/bin/python3"
START_TIMEOUT = 30.0  # seconds; node and RSA key generation on a busy 2-core machine
STOP_TIMEOUT = 5.0

_running = set()  # processes to kill when the test process exits
_log_numbers = itertools.count(1)


def ensure_node_modules():
    """Install tests/issuer's locked npm dependencies if they are missing."""
    if not os.path.isdir(os.path.join(ISSUER_DIR, "node_modules", "oidc-provider")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ISSUER_DIR, check=True,
                       stdout=subprocess.DEVNULL)


def token_hash(token):
    """The SHA-256 (hex) by which the issuers' logs name a token; compare any prefix of it."""
    return hashlib.sha256(token.encode()).hexdigest()


@atexit.register
def _kill_leftovers():
    for process in list(_running):
        process.kill()


class Token(str):
    """A minted token: the string itself, with what the issuer said about it as attributes
    ``jti``, ``iat``, ``exp`` (None when the token has none) and ``sid``."""

    def __new__(cls, answer):
        token = super().__new__(cls, answer["token"])
        token.jti = answer.get("jti")
        token.iat = answer.get("iat")
        token.exp = answer.get("exp")
        token.sid = answer.get("sid")
        return token


class IssuerError(RuntimeError):
    """An issuer process did not start, or a control call failed."""


class _Process:
    """One issuer process: start, readiness, control calls over HTTP(S), stop."""

    name = "issuer"

    def __init__(self, workdir, pki):
        self.workdir = workdir
        self.pki = pki
        self.ca_file = pki.ca_file
        self.port = 0  # 0 until the first start; a restart reuses the port
        self.process = None
        self.log_path = os.path.join(workdir, f"{self.name}-{next(_log_numbers)}.log")
        self._ssl = ssl.create_default_context(cafile=pki.ca_file)
        os.makedirs(workdir, exist_ok=True)
        self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def command(self):
        """argv of the process, which must print "READY <url> ..." once it serves."""
        raise NotImplementedError

    def ready(self, urls):
        """Take note of the URLs from the READY line."""
        raise NotImplementedError

    def start(self):
        """Start the process (again, on the same port, after stop())."""
        if self.process is not None:
            raise IssuerError(f"{self.name} is already running")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=log)
        _running.add(self.process)
        lines = queue.Queue()
        threading.Thread(target=_copy_output, args=(self.process.stdout, log, lines),
                         daemon=True).start()
        try:
            urls = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            urls = None
        if not urls:
            self.stop()
            with open(self.log_path, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            raise IssuerError(f"{self.name} did not start ({self.command()}):\n{tail}")
        self.port = urllib.parse.urlsplit(urls[0]).port
        self.ready(urls)

    def stop(self):
        """Stop the process; does nothing when it is not running."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _running.discard(process)

    def call(self, method, url, body=None):
        """A JSON control call; answers the decoded JSON, raises IssuerError on non-2xx."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            raise IssuerError(f"{method} {url}: {err.code} {err.read().decode()}") from None


def _copy_output(stream, log, lines):
    """Hand the READY line's URLs to lines (None if the process ends first); log the rest."""
    announced = False
    for line in stream:
        if not announced and line.startswith(b"READY "):
            lines.put(line.decode().split()[1:])
            announced = True
        else:
            log.write(line)
            log.flush()
    if not announced:
        lines.put(None)
    log.close()


class _IntrospectionEndpoint(_Process):
    """What OidcIssuer and KeycloakStandin have in common: clients, and introspecting."""

    rs_client_id = "rs-client"
    rs_client_secret = "rs-secret"
    app_client_id = "app-client"
    app_client_secret = "app-secret"
    introspection_url = None  # set in ready()

    @property
    def clients(self):
        """Confidential client id -> secret."""
        return {self.rs_client_id: self.rs_client_secret,
                self.app_client_id: self.app_client_secret}

    def introspect(self, token, hint=None, client_id=None, secret=None, auth="basic"):
        """Introspect as the module would: (HTTP status, decoded answer). Credentials default
        to the resource server's; auth is "basic" or "post"."""
        client_id = client_id or self.rs_client_id
        secret = secret if secret is not None else self.clients[client_id]
        form = {"token": token}
        if hint:
            form["token_type_hint"] = hint
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth == "basic":
            credentials = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        else:
            form.update(client_id=client_id, client_secret=secret)
        request = urllib.request.Request(self.introspection_url, method="POST", headers=headers,
                                         data=urllib.parse.urlencode(form).encode())
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


class OidcIssuer(_IntrospectionEndpoint):
    """oidc-provider 8 as issuer; see tests/issuer/issuer.js for what is its own behaviour.

    Tokens are opaque unless minted with jwt=True. Attributes: url (= issuer), issuer, discovery_url, introspection_url,
    revocation_url, jwks_url, ca_file, rs_client_id/secret, app_client_id/secret.
    """

    name = "oidc-issuer"

    def __init__(self, workdir, pki, issuer=None):
        self._issuer_override = issuer
        ensure_node_modules()
        super().__init__(workdir, pki)

    def command(self):
        argv = [shutil.which("node") or "node", os.path.join(ISSUER_DIR, "issuer.js"),
                "--port", str(self.port), "--cert", self.pki.cert, "--key", self.pki.key,
                "--ca", self.pki.ca_file]
        if self._issuer_override:
            argv += ["--issuer", self._issuer_override]
        return argv

    def ready(self, urls):
        self.issuer = urls[0]
        self.url = f"https://127.0.0.1:{self.port}"
        self.discovery_url = self.url + "/.well-known/openid-configuration"
        discovery = self.call("GET", self.discovery_url)
        self.introspection_url = discovery["introspection_endpoint"]
        self.revocation_url = discovery["revocation_endpoint"]
        self.jwks_url = discovery["jwks_uri"]

    def mint_access(self, sub="alice", scope="openid", claims=None, ttl=300, sid=None,
                    client_id="app-client", aud=None, jkt=None, cert=None, jwt=False):
        """An access token; claims (e.g. realm_access) appear in introspection answers. jkt (a
        JWK thumbprint) binds it to a DPoP key, cert (PEM) to a client certificate. jwt: an
        RFC 9068 JWT access token (typ at+jwt, RS256, aud rs-client unless aud is given) instead
        of an opaque one."""
        return Token(self.call("POST", self.url + "/test/mint/access", _without_none(
            sub=sub, scope=scope, claims=claims, ttl=ttl, sid=sid, client_id=client_id,
            aud=aud, jkt=jkt, cert=cert, jwt=jwt or None)))

    def mint_offline(self, sub="alice", scope="openid offline_access", claims=None,
                     ttl=30 * 86400, sid=None, client_id="app-client"):
        """An offline token: a refresh token whose scope includes offline_access."""
        return Token(self.call("POST", self.url + "/test/mint/offline", _without_none(
            sub=sub, scope=scope, claims=claims, ttl=ttl, sid=sid, client_id=client_id)))

    def revoke(self, token):
        """Destroy a token as RFC 7009 revocation does; True if it existed."""
        return self.call("POST", self.url + "/test/revoke", {"token": token})["revoked"]

    def introspection_count(self):
        return self.call("GET", self.url + "/test/introspections")["count"]

    def introspection_log(self):
        """One dict per introspection request: time (epoch seconds, at arrival),
        token_type_hint, client_id, client_auth, token_sha256, status, active."""
        return self.call("GET", self.url + "/test/introspections")["log"]

    def reset_counts(self):
        self.call("POST", self.url + "/test/introspections/reset")

    def update_client(self, client_id, **metadata):
        """Change (or add) a client's registered metadata, e.g. client_secret; a member given
        as None is removed."""
        self.call("POST", self.url + "/test/clients", {"client_id": client_id, **metadata})

    def set_backchannel_uri(self, client, uri, session_required=True):
        """Register a back-channel logout URI for a client (with sid in the tokens by default)."""
        self.update_client(client, backchannel_logout_uri=uri,
                           backchannel_logout_session_required=session_required)

    def backchannel_logout(self, sub=None, sid=None, revoke=True):
        """End a session: drop its non-offline tokens (unless revoke=False) and send a logout
        token to every client with a back-channel logout URI. Without sub, the sub of a token
        minted with that sid is used. Answers {"sub", "sid", "revoked", "notified": [{client_id,
        ok, error?}]}."""
        return self.call("POST", self.url + "/test/backchannel-logout",
                         _without_none(sub=sub, sid=sid, revoke=revoke))


class KeycloakStandin(_IntrospectionEndpoint):
    """The Keycloak-shaped stand-in, realm "test"; see stubs/keycloak.py for its behaviour.

    Tokens are JWTs. Attributes: url (server root), issuer (the realm URL), introspection_url,
    jwks_url, ca_file, rs_client_id/secret, app_client_id/secret, public_client_id.
    """

    name = "keycloak-standin"
    public_client_id = "public-app"

    def __init__(self, workdir, pki):
        self._backchannel_uris = {}
        super().__init__(workdir, pki)

    def command(self):
        return [PYTHON, os.path.join(STUBS_DIR, "keycloak.py"), "--port", str(self.port),
                "--cert", self.pki.cert, "--key", self.pki.key]

    def ready(self, urls):
        self.issuer = urls[0]
        self.url = f"https://127.0.0.1:{self.port}"
        self.introspection_url = self.issuer + "/protocol/openid-connect/token/introspect"
        self.jwks_url = self.issuer + "/protocol/openid-connect/certs"

    def _control(self, path, body=None, method="POST"):
        return self.call(method, self.url + "/control/" + path, body)

    def _mint(self, kind, **fields):
        return Token(self._control("mint", _without_none(kind=kind, **fields)))

    def mint_access(self, sub="alice", scope=None, claims=None, ttl=None, sid=None,
                    client_id="app-client", aud=None, username=None, header=None,
                    lightweight=None):
        """An access token (typ Bearer, RS256); aud defaults to [rs-client, account]. A scope
        with offline_access does not make it an offline token. A claim set to None is left
        out; header is merged into the JOSE header; lightweight names claims left out of the
        token that introspection still answers with (Keycloak's lightweight access tokens)."""
        return self._mint("access", sub=sub, scope=scope, claims=claims, ttl=ttl, sid=sid,
                          client_id=client_id, aud=aud, username=username, header=header,
                          lightweight=lightweight)

    def rotate_keys(self, keep_old=True):
        """A new signing key; the old one stays published (and valid) while keep_old."""
        return self._control("rotate", {"keep_old": keep_old})["kid"]

    def serve(self, **switches):
        """metadata_issuer (None: the realm's), oidc_metadata_404, metadata_no_introspection,
        jwks_down."""
        return self._control("serve", switches)

    def fetch_counts(self, reset=False):
        """{"oidc_metadata", "rfc8414_metadata", "jwks"}: GETs seen (then zeroed if reset)."""
        counts = self._control("fetches", method="GET")
        if reset:
            self._control("fetches/reset")
        return counts

    def mint_offline(self, sub="alice", scope=None, claims=None, ttl=None, sid=None,
                     client_id="app-client", username=None):
        """An offline token (typ Offline, HS512, aud the realm, no exp unless ttl is given)."""
        return self._mint("offline", sub=sub, scope=scope, claims=claims, ttl=ttl, sid=sid,
                          client_id=client_id, username=username)

    def mint_refresh(self, sub="alice", scope=None, claims=None, ttl=None, sid=None,
                     client_id="app-client", username=None):
        """An ordinary refresh token (typ Refresh, HS512, exp iat + 1800 s by default)."""
        return self._mint("refresh", sub=sub, scope=scope, claims=claims, ttl=ttl, sid=sid,
                          client_id=client_id, username=username)

    def revoke(self, token=None, *, sub=None, sid=None, offline=True):
        """Make tokens inactive: one token, or all of a sub or a sid (offline ones too unless
        offline=False). Answers how many were revoked."""
        return self._control("revoke", _without_none(token=token, sub=sub, sid=sid,
                                                     offline=offline))["revoked"]

    def set_not_before(self, not_before):
        """The realm's not-before (epoch seconds; 0 clears): tokens with iat before it are
        inactive."""
        self._control("not-before", {"not_before": int(not_before)})

    def set_mode(self, **switches):
        """refresh_needs_hint, refresh_own_client_only, access_needs_audience (see
        stubs/keycloak.py); set_mode(**KEYCLOAK_26_8) imitates Keycloak 26.8. Answers the
        mode now in force."""
        return self._control("mode", switches)

    def hold_next_answer(self, seconds):
        """The next introspection answer is decided at once but sent seconds later."""
        self._control("hold", {"seconds": seconds})

    def set_client(self, client_id, secret=None, grace=0):
        """Add or change a client; secret None makes it public; grace (seconds) keeps the
        previous secret valid that long (Keycloak's rotated secret)."""
        self._control("clients", {"client_id": client_id, "secret": secret, "grace": grace})

    def introspection_count(self):
        return self._control("introspections", method="GET")["count"]

    def introspection_log(self):
        """One dict per introspection request: time (epoch seconds), token_type_hint,
        client_id, client_auth, token_sha256, status, active."""
        return self._control("introspections", method="GET")["log"]

    def reset_counts(self):
        self._control("introspections/reset")

    def admin_action(self, action, resource="rs-client", not_before=0, session_ids=(),
                     expiration=None, claims=None, payload=None, forge=None):
        """A signed Keycloak admin action (compact JWS, the body to POST to <admin url>/action)
        for action k_logout, k_push_not_before or k_test_available. claims are merged into
        the payload (None removes one), payload replaces it, forge signs it wrongly:
        bad_signature, alg_none, hs256_pem, hs256_jwk, other_key, unknown_kid."""
        return self._control("sign/admin", _without_none(
            action=action, resource=resource, not_before=not_before,
            session_ids=list(session_ids), expiration=expiration, claims=claims,
            payload=payload, forge=forge))["jws"]

    def logout_token(self, sub=None, sid=None, aud="rs-client", revoke_offline_access=False,
                     claims=None, payload=None, forge=None):
        """A signed back-channel logout token (typ logout+jwt) from this realm; claims,
        payload and forge as for admin_action (e.g. claims={"events": None})."""
        return self._control("sign/logout", _without_none(
            sub=sub, sid=sid, aud=aud, revoke_offline_access=revoke_offline_access,
            claims=claims, payload=payload, forge=forge))["jws"]

    def sign(self, payload, header=None, forge=None):
        """Any payload as a compact JWS signed with the realm's RSA key (header defaults to
        alg RS256 and the key's kid)."""
        return self._control("sign", _without_none(payload=payload, header=header,
                                                   forge=forge))["jws"]

    def set_backchannel_uri(self, client, uri, session_required=True):
        """Give a client a "Backchannel logout URL" (sid in the token unless
        session_required=False)."""
        self._backchannel_uris[client] = (uri, session_required)

    def backchannel_logout(self, sub=None, sid=None, revoke=True, revoke_offline_access=False):
        """Log a session out as Keycloak does: end it (its non-offline tokens become inactive,
        and offline ones too with revoke_offline_access) unless revoke=False, then POST a
        logout token to each client's back-channel logout URL. Answers {"revoked",
        "notified": [{client_id, ok, status|error}]}."""
        revoked = 0
        if revoke:
            revoked = self.revoke(sub=sub, sid=sid, offline=revoke_offline_access)
        notified = []
        for client, (uri, session_required) in self._backchannel_uris.items():
            token = self.logout_token(sub=sub, sid=sid if session_required else None, aud=client,
                                      revoke_offline_access=revoke_offline_access)
            request = urllib.request.Request(
                uri, method="POST", data=urllib.parse.urlencode({"logout_token": token}).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            try:
                with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                    notified.append({"client_id": client, "ok": response.status in (200, 204),
                                     "status": response.status})
            except urllib.error.HTTPError as err:
                notified.append({"client_id": client, "ok": False, "status": err.code})
            except OSError as err:
                notified.append({"client_id": client, "ok": False, "error": str(err)})
        return {"revoked": revoked, "notified": notified}


# Keycloak 26.8's introspection rules, for KeycloakStandin.set_mode(**KEYCLOAK_26_8).
KEYCLOAK_26_8 = {"refresh_needs_hint": False, "refresh_own_client_only": True,
                 "access_needs_audience": True}


class FaultyIssuer(_Process):
    """The fault-injecting endpoint (stubs/faulty.py lists the faults), serving with the pki
    certificate named by cert: 'good', 'wrong_host', 'expired' or 'unknown_ca'.

    Attributes: url, control_url, introspection_url (= url_for("ok")), ca_file. stop() and
    start() restart it on the same ports; counters and log start again from zero.
    """

    name = "faulty-issuer"

    def __init__(self, workdir, pki, cert="good", close=False):
        self.cert, self.key = pki.server_pair(cert)
        self.close = close
        self.control_port = 0
        super().__init__(workdir, pki)

    def command(self):
        argv = [PYTHON, os.path.join(STUBS_DIR, "faulty.py"), "--port", str(self.port),
                "--control-port", str(self.control_port), "--cert", self.cert, "--key", self.key]
        return argv + (["--close"] if self.close else [])

    def ready(self, urls):
        self.url = urls[0]
        self.control_url = urls[1]
        self.control_port = urllib.parse.urlsplit(self.control_url).port
        self.introspection_url = self.url_for("ok")

    def url_for(self, fault):
        """URL of a fault, e.g. url_for("status/500"), url_for("slow?seconds=3")."""
        return f"{self.url}/{fault}"

    def connections(self):
        """TCP connections accepted (including failed TLS handshakes)."""
        return self.call("GET", self.control_url + "/counts")["connections"]

    def requests(self):
        return self.call("GET", self.control_url + "/counts")["requests"]

    def introspection_count(self):
        """Every request counts as an introspection here."""
        return self.requests()

    def log(self):
        """One dict per request: time (epoch seconds, when handling started), method, path,
        client_port (same value: same connection), authorization (header sent?),
        content_type, form (fields; token as token_sha256)."""
        return self.call("GET", self.control_url + "/log")["requests"]

    def reset_counts(self):
        self.call("POST", self.control_url + "/reset", {})

    def set_ok_claims(self, claims):
        """Claims that active answers carry over the defaults (sub, scope, exp, ...)."""
        self.call("POST", self.control_url + "/ok-claims", {"claims": claims})

    def set_close(self, close):
        """Close every connection after its answer (True) or keep it alive (False)."""
        self.close = close
        self.call("POST", self.control_url + "/mode", {"close": close})


def _without_none(**fields):
    return {name: value for name, value in fields.items() if value is not None}



if __name__ == "__main__":
    # CI's set-up step: python3 tests/integration/issuers.py
    ensure_node_modules()
