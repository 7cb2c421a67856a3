"""A Keycloak-shaped issuer for the integration tests, written from Keycloak 26's documented
behaviour (see shared/KEYCLOAK.md and the example payloads beside it). It is not Keycloak: it
has one realm, ``test``, no users, sessions only as ids, and mints tokens on request.

    python3 keycloak.py --cert C --key K [--port P]

Keycloak's own endpoints (paths as in Keycloak):

- ``POST /realms/test/protocol/openid-connect/token/introspect`` — RFC 7662 as Keycloak does it:
  confidential clients only (``client_secret_basic``, ``client_secret_post`` or
  ``client_secret_jwt``: an HS256 assertion with ``iss`` = ``sub`` = the client, ``aud`` the
  realm's issuer URL, an ``exp`` to come and a ``jti`` never seen before; a secret rotated
  with a grace period is accepted until the grace period ends; bad credentials 401
  ``invalid_client``, public clients 403), ``token_type_hint`` only
  ``access_token``/``refresh_token`` (else 400), duplicate parameters 400, inactive is exactly
  ``{"active":false}``, active answers are the token's claims plus ``client_id``, ``username``,
  ``token_type`` and ``active``.
- ``GET /realms/test/protocol/openid-connect/certs`` — the realm's RSA key as a JWKS (with keys
  rotated out but kept, after ``/control/rotate``).
- ``GET /realms/test/.well-known/openid-configuration`` and RFC 8414's
  ``GET /.well-known/oauth-authorization-server/realms/test`` — the realm's metadata.

Tokens are JWTs as Keycloak makes them: access tokens (``typ`` Bearer, RS256) and refresh and
offline tokens (``typ`` Refresh / Offline, HS512 with the realm's HMAC key, ``aud`` the realm's
issuer URL; offline tokens have no ``exp``). How introspection treats them depends on the
version being imitated, switchable at run time (``/control/mode``):

- ``refresh_needs_hint`` (default on; Keycloak before 26.8): a refresh or offline token is only
  active when introspected with ``token_type_hint=refresh_token``, and the hint makes an access
  token inactive; off (26.8+): the token's own ``typ`` decides.
- ``refresh_own_client_only`` (default off; on from 26.8): only the client a refresh or offline
  token was issued to (its ``azp``) may introspect it.
- ``access_needs_audience`` (default off; on from 26.6.2): an access token is active only for a
  client named in its ``aud``.

A token is active while the stand-in remembers minting it (Keycloak: its session exists) and it
was not revoked, its signature and ``iss`` are right, it has not expired and its ``iat`` is not
before the realm's not-before.

Control API (JSON in, JSON out, same port, under ``/control/``), for tests only:

- ``POST /control/mint`` ``{"kind": "access"|"refresh"|"offline", "sub", "client_id",
  "scope", "ttl", "sid", "aud", "username", "claims"}`` → ``{"token", "jti", "sid", "iat",
  "exp"}``; a claim given as null is left out of the token.
- ``POST /control/revoke`` ``{"token"}`` or ``{"sub"}`` or ``{"sid"}``, with ``"offline":
  false`` to spare offline tokens (for sub/sid) → ``{"revoked": n}``.
- ``POST /control/not-before`` ``{"not_before": seconds}`` — the realm's not-before.
- ``POST /control/mode`` — the switches above; answers the current mode.
- ``POST /control/hold`` ``{"seconds"}`` — the next introspection's answer is decided when the
  request arrives but sent only that much later (a slow issuer call that started before what
  happens meanwhile).
- ``POST /control/clients`` ``{"client_id", "secret", "grace"}`` — add or change a client; a null
  secret makes it public; ``grace`` (seconds) keeps the previous secret valid that long, as
  Keycloak's client secret rotation does with its "rotated secret".
- ``GET /control/introspections`` → ``{"count", "log"}``; ``POST /control/introspections/reset``.
- ``POST /control/sign/admin`` ``{"action": "k_logout"|"k_push_not_before"|"k_test_available",
  "resource", "not_before", "session_ids", ...}`` → ``{"jws"}``: a signed admin action.
- ``POST /control/sign/logout`` ``{"sub", "sid", "aud", "revoke_offline_access", ...}`` →
  ``{"jws"}``: a back-channel logout token.
- ``POST /control/sign`` ``{"payload", "header"}`` → ``{"jws"}``: any payload, signed RS256.
- ``POST /control/rotate`` ``{"keep_old"}`` — a new signing key (Keycloak's key rotation).
- ``POST /control/serve`` ``{"metadata_issuer", "oidc_metadata_404", "metadata_no_introspection",
  "jwks_down"}`` — what the metadata says as issuer, whether the OIDC metadata URL answers 404,
  whether the metadata leaves out ``introspection_endpoint``, whether the JWKS answers 503.
- ``GET /control/fetches`` → counts of metadata and JWKS fetches; ``POST /control/fetches/reset``.

``/control/mint`` also takes ``header`` (merged into an access token's JOSE header, e.g.
``{"typ": "at+jwt"}``, or ``{"alg": "EdDSA"}`` to sign with the realm's Ed25519 key) and
``lightweight``: names of claims left out of the token (Keycloak's
lightweight access tokens) that introspection still answers with.

The three signing calls also take ``claims`` (merged into the payload; null removes a claim),
``payload`` (replaces it entirely) and ``forge``: ``bad_signature``, ``alg_none``, ``hs256_pem``
and ``hs256_jwk`` (HS256 keyed with the public key's PEM or JWK bytes), ``other_key`` (a key not
in the JWKS, same kid) or ``unknown_kid``.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from urllib.parse import unquote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from common import (StubHandler, StubServer, announce, b64url, b64url_decode, compact_json,
                    sha256_hex, tls_arguments)

REALM_PATH = "/realms/test"
INTROSPECT_PATH = REALM_PATH + "/protocol/openid-connect/token/introspect"
CERTS_PATH = REALM_PATH + "/protocol/openid-connect/certs"
OIDC_METADATA_PATH = REALM_PATH + "/.well-known/openid-configuration"
RFC8414_METADATA_PATH = "/.well-known/oauth-authorization-server" + REALM_PATH

# client id -> secret (None: a public client).
INITIAL_CLIENTS = {"rs-client": "rs-secret", "app-client": "app-secret", "public-app": None}

TYPE_OF_KIND = {"access": "Bearer", "refresh": "Refresh", "offline": "Offline"}
REFRESH_TYPES = {"Refresh", "Offline"}
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ADMIN_ACTIONS = {
    "k_logout": "LOGOUT",
    "k_push_not_before": "PUSH_NOT_BEFORE",
    "k_test_available": "TEST_AVAILABILITY",
}


class ControlError(Exception):
    """A control call that cannot be done: answered 400 with the message."""


def _b64uint(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class RealmKeys:
    """The realm's RSA signing key (published) and HMAC key (secret), as Keycloak has them."""

    def __init__(self):
        self.retired = []  # (rsa key, jwk) of keys rotated out, still published when kept
        self._new_rsa()
        self.hmac = uuid.uuid4().bytes + uuid.uuid4().bytes + uuid.uuid4().bytes
        self.hmac_kid = str(uuid.uuid4())
        # An Ed25519 key as well (Keycloak offers EdDSA realm keys), published beside the RSA one.
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.ed_kid = "ed-" + str(uuid.uuid4())
        raw = self.ed25519.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
        self.ed_jwk = {"kid": self.ed_kid, "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                       "use": "sig", "x": b64url(raw)}

    def _new_rsa(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.rsa.public_key().public_numbers()
        members = {"e": _b64uint(numbers.e), "kty": "RSA", "n": _b64uint(numbers.n)}
        # Keycloak's kid for generated RSA keys is the RFC 7638 thumbprint.
        self.kid = b64url(hashlib.sha256(compact_json(members)).digest())
        self.jwk = {"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", **members}
        self.public_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def rotate(self, keep_old=True):
        """A new active RSA key (as Keycloak's key rotation): the old one is published as
        well while keep_old, and still verifies tokens it signed."""
        self.retired = ([(self.rsa, self.jwk)] + self.retired) if keep_old else []
        self._new_rsa()
        return {"kid": self.kid}

    def jwks(self):
        return {"keys": [self.jwk] + [jwk for _, jwk in self.retired] + [self.ed_jwk]}

    def sign_eddsa(self, header, payload):
        signing_input = self._signing_input(header, payload)
        return signing_input.decode() + "." + b64url(self.ed25519.sign(signing_input))

    def sign_rs256(self, header, payload, key=None):
        signing_input = self._signing_input(header, payload)
        signature = (key or self.rsa).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    def sign_hmac(self, header, payload, secret, digest):
        signing_input = self._signing_input(header, payload)
        signature = hmac.new(secret, signing_input, digest).digest()
        return signing_input.decode() + "." + b64url(signature)

    def sign_hs512(self, payload):
        header = {"alg": "HS512", "typ": "JWT", "kid": self.hmac_kid}
        return self.sign_hmac(header, payload, self.hmac, hashlib.sha512)

    def verify(self, token):
        """(alg, payload) of a token this realm signed (RS256 or HS512), or (None, None)."""
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            signing_input = f"{header_b64}.{payload_b64}".encode()
            signature = b64url_decode(signature_b64)
            if header.get("alg") == "RS256":
                keys = [self.rsa] + [key for key, jwk in self.retired
                                     if jwk["kid"] == header.get("kid")]
                key = keys[-1]
                key.public_key().verify(
                    signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            elif header.get("alg") == "EdDSA":
                self.ed25519.public_key().verify(signature, signing_input)
            elif header.get("alg") == "HS512":
                expected = hmac.new(self.hmac, signing_input, hashlib.sha512).digest()
                if not hmac.compare_digest(expected, signature):
                    return None, None
            else:
                return None, None
            payload = json.loads(b64url_decode(payload_b64))
        except Exception:  # noqa: BLE001 (any malformed or forged token is simply not active)
            return None, None
        return (header["alg"], payload) if isinstance(payload, dict) else (None, None)

    def forged(self, header, payload, forge):
        """payload signed the wrong way; see the module docstring for the kinds."""
        if forge == "bad_signature":
            head, body, signature = self.sign_rs256(header, payload).split(".")
            flipped = bytearray(b64url_decode(signature))
            flipped[-1] ^= 0x01
            return f"{head}.{body}.{b64url(bytes(flipped))}"
        if forge == "alg_none":
            return self._signing_input({**header, "alg": "none"}, payload).decode() + "."
        if forge == "hs256_pem":
            return self.sign_hmac({**header, "alg": "HS256"}, payload, self.public_pem,
                                  hashlib.sha256)
        if forge == "hs256_jwk":
            return self.sign_hmac({**header, "alg": "HS256"}, payload, compact_json(self.jwk),
                                  hashlib.sha256)
        if forge == "other_key":
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self.sign_rs256(header, payload, key=other)
        if forge == "unknown_kid":
            return self.sign_rs256({**header, "kid": str(uuid.uuid4())}, payload)
        raise ControlError(f"unknown forgery {forge!r}")

    @staticmethod
    def _signing_input(header, payload):
        return (b64url(compact_json(header)) + "." + b64url(compact_json(payload))).encode()


class Realm:
    """The realm's state: clients, the tokens it remembers, not-before, mode, the log."""

    def __init__(self, issuer):
        self.issuer = issuer
        self.keys = RealmKeys()
        self.lock = threading.Lock()
        self.clients = dict(INITIAL_CLIENTS)
        self.rotated = {}  # client id -> (previous secret, valid until epoch seconds)
        self.assertion_jtis = set()
        self.tokens = {}  # jti -> {"sub", "sid", "typ", "azp", "username"} of live tokens
        self.not_before = 0
        self.mode = {"refresh_needs_hint": True, "refresh_own_client_only": False,
                     "access_needs_audience": False}
        self.introspections = []
        self.holds = []  # seconds to hold the next answers back, in order
        # Discovery and keys: what GET serves, and how often each was fetched.
        self.serving = {"metadata_issuer": None, "oidc_metadata_404": False,
                        "metadata_no_introspection": False, "jwks_down": False}
        self.fetches = {"oidc_metadata": 0, "rfc8414_metadata": 0, "jwks": 0}

    def hold(self, seconds):
        with self.lock:
            self.holds.append(float(seconds))
        return {"held": len(self.holds)}

    def take_hold(self):
        with self.lock:
            return self.holds.pop(0) if self.holds else 0

    # -- minting and revoking ------------------------------------------------------------------

    def mint(self, kind="access", sub=None, client_id="app-client", scope=None, ttl=None,
             sid=None, aud=None, username=None, claims=None, header=None, lightweight=()):
        if kind not in TYPE_OF_KIND:
            raise ControlError(f"unknown kind {kind!r}")
        if not sub:
            raise ControlError("sub is required")
        typ = TYPE_OF_KIND[kind]
        now = int(time.time())
        sid = sid or str(uuid.uuid4())
        username = username or sub
        scopes = (scope or "openid profile email").split()
        if kind == "offline" and "offline_access" not in scopes:
            scopes.append("offline_access")
        payload = {"iat": now, "jti": ("onrtac:" if kind == "access" else "") + str(uuid.uuid4()),
                   "iss": self.issuer, "sub": sub, "typ": typ, "azp": client_id, "sid": sid,
                   "scope": " ".join(scopes)}
        if kind == "access":
            payload["exp"] = now + (ttl or 300)
            payload["aud"] = aud if aud is not None else ["rs-client", "account"]
            payload["preferred_username"] = username
        else:
            # Refresh and offline tokens name the realm itself as audience; an offline token
            # has no exp unless "Offline Session Max Limited" would give it one (ttl here).
            payload["aud"] = self.issuer
            if kind == "refresh" or ttl:
                payload["exp"] = now + (ttl or 1800)
        payload = _merge(payload, claims)
        # Keycloak's lightweight access tokens leave claims out; introspection gives them back.
        hidden = {name: payload.pop(name) for name in lightweight if name in payload}
        if kind == "access" and (header or {}).get("alg") == "EdDSA":
            token = self.keys.sign_eddsa(
                _merge({"typ": "JWT", "kid": self.keys.ed_kid}, header), payload)
        elif kind == "access":
            token = self.keys.sign_rs256(
                _merge({"alg": "RS256", "typ": "JWT", "kid": self.keys.kid}, header), payload)
        else:
            token = self.keys.sign_hs512(payload)
        with self.lock:
            self.tokens[payload.get("jti")] = {"sub": sub, "sid": sid, "typ": typ,
                                               "azp": client_id, "username": username,
                                               "hidden": hidden}
        return {"token": token, "jti": payload.get("jti"), "sid": sid, "iat": payload.get("iat"),
                "exp": payload.get("exp")}

    def revoke(self, token=None, sub=None, sid=None, offline=True):
        with self.lock:
            if token is not None:
                payload = self.keys.verify(token)[1] or {}
                return {"revoked": int(self.tokens.pop(payload.get("jti"), None) is not None)}
            if sub is None and sid is None:
                raise ControlError("give token, sub or sid")
            doomed = [jti for jti, record in self.tokens.items()
                      if (sub is None or record["sub"] == sub)
                      and (sid is None or record["sid"] == sid)
                      and (offline or record["typ"] != "Offline")]
            for jti in doomed:
                del self.tokens[jti]
            return {"revoked": len(doomed)}

    # -- introspection -------------------------------------------------------------------------

    def introspect(self, form, authorization):
        """(status, answer) for an introspection request, logged."""
        entry = {"time": time.time()}
        fields = dict(form)
        client_id, secret, entry["client_auth"] = _client_credentials(fields, authorization)
        if entry["client_auth"] is None and "client_assertion" in fields:
            entry["client_auth"] = "client_secret_jwt"
            client_id, secret = self._assertion_client(fields), None
        token = fields.get("token")
        entry.update(token_type_hint=fields.get("token_type_hint"), client_id=client_id,
                     token_sha256=sha256_hex(token) if token is not None else None)
        status, answer = self._introspection_answer(form, fields, client_id, secret)
        entry.update(status=status, active=answer.get("active"))
        with self.lock:
            self.introspections.append(entry)
        return status, answer

    def _introspection_answer(self, form, fields, client_id, secret):
        if len(fields) != len(form):
            return 400, _error("invalid_request", "duplicated parameter")
        with self.lock:
            known = client_id in self.clients
            expected = self.clients.get(client_id)
        if known and expected is None:
            return 403, _error("invalid_request", "Client not allowed.")
        if "client_assertion" in fields and secret is None:
            authenticated = client_id is not None
        else:
            authenticated = known and secret is not None and self._secret_ok(client_id, secret)
        if not authenticated:
            return 401, _error("invalid_client", "Invalid client or Invalid client credentials")
        if not fields.get("token"):
            return 400, _error("invalid_request", "Token not provided.")
        hint = fields.get("token_type_hint", "access_token")
        if hint not in ("access_token", "refresh_token"):
            return 400, _error("invalid_request", f"Unsupported token type [{hint}].")
        claims = self._active_claims(fields["token"], hint, client_id)
        return 200, claims if claims else {"active": False}

    def _secrets(self, client_id):
        """The secrets a client may use now: its own, and a rotated one within its grace."""
        with self.lock:
            current = self.clients.get(client_id)
            previous, until = self.rotated.get(client_id, (None, 0))
        return [value for value in (current, previous if time.time() < until else None) if value]

    def _secret_ok(self, client_id, secret):
        return any(hmac.compare_digest(value.encode(), secret.encode())
                   for value in self._secrets(client_id))

    def _assertion_client(self, fields):
        """The client a client_secret_jwt assertion authenticates, or None."""
        if fields.get("client_assertion_type") != \
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return None
        try:
            header_b64, payload_b64, signature_b64 = fields["client_assertion"].split(".")
            header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(payload_b64))
            signature = b64url_decode(signature_b64)
        except ValueError:
            return None
        client_id = claims.get("sub")
        signing_input = (header_b64 + "." + payload_b64).encode()
        if (header.get("alg") != "HS256" or claims.get("iss") != client_id
                or fields.get("client_id", client_id) != client_id
                or claims.get("aud") not in (self.issuer, [self.issuer])
                or not isinstance(claims.get("exp"), int) or claims["exp"] < time.time()):
            return None
        if not any(hmac.compare_digest(hmac.new(value.encode(), signing_input,
                                                hashlib.sha256).digest(), signature)
                   for value in self._secrets(client_id)):
            return None
        with self.lock:
            if claims.get("jti") is None or (client_id, claims["jti"]) in self.assertion_jtis:
                return None          # Keycloak refuses a reused assertion
            self.assertion_jtis.add((client_id, claims["jti"]))
        return client_id

    def _active_claims(self, token, hint, client_id):
        alg, payload = self.keys.verify(token)
        if payload is None:
            return None
        typ = payload.get("typ")
        with self.lock:
            mode = dict(self.mode)
            record = self.tokens.get(payload.get("jti"))
            not_before = self.not_before
        if mode["refresh_needs_hint"]:
            as_refresh = hint == "refresh_token"
        else:
            as_refresh = typ in REFRESH_TYPES
        if as_refresh:
            if typ not in REFRESH_TYPES or alg != "HS512":
                return None
            if mode["refresh_own_client_only"] and payload.get("azp") != client_id:
                return None
        else:
            # Keycloak 26.4+ types DPoP-bound access tokens DPoP (with cnf.jkt).
            if typ not in ("Bearer", "DPoP") or alg not in ("RS256", "EdDSA"):
                return None
            aud = payload.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if mode["access_needs_audience"] and client_id not in audiences:
                return None
        now = time.time()
        if (record is None or payload.get("iss") != self.issuer
                or ("exp" in payload and payload["exp"] <= now)
                or payload.get("iat", 0) < not_before):
            return None
        return {**payload, **record.get("hidden", {}), "client_id": payload.get("azp"),
                "username": record["username"], "token_type": typ, "active": True}

    # -- signed pushes -------------------------------------------------------------------------

    def sign(self, payload, header=None, forge=None):
        header = header or {"alg": "RS256", "kid": self.keys.kid}
        if forge:
            return {"jws": self.keys.forged(header, payload, forge)}
        return {"jws": self.keys.sign_rs256(header, payload)}

    def sign_admin(self, action, resource="rs-client", not_before=0, session_ids=(),
                   expiration=None, claims=None, payload=None, forge=None):
        """A Keycloak admin action, as POSTed to <Admin URL>/<action>."""
        if action not in ADMIN_ACTIONS:
            raise ControlError(f"unknown admin action {action!r}")
        if payload is None:
            payload = {"id": str(uuid.uuid4()),
                       "expiration": expiration or int(time.time()) + 30,
                       "resource": resource, "action": ADMIN_ACTIONS[action]}
            if action == "k_logout":
                payload.update(adapterSessionIds=None, notBefore=not_before,
                               keycloakSessionIds=list(session_ids))
            elif action == "k_push_not_before":
                payload["notBefore"] = not_before
            payload = _merge(payload, claims)
        return self.sign(payload, forge=forge)

    def sign_logout(self, sub=None, sid=None, aud="rs-client", revoke_offline_access=False,
                    claims=None, payload=None, forge=None):
        """An OpenID Connect back-channel logout token, as Keycloak sends it."""
        if payload is None:
            now = int(time.time())
            payload = {"iat": now, "exp": now + 120, "jti": str(uuid.uuid4()),
                       "iss": self.issuer, "aud": aud, "sub": sub, "typ": "Logout", "sid": sid,
                       "events": {LOGOUT_EVENT: {}}}
            if revoke_offline_access:
                payload["revoke_offline_access"] = True
            payload = _merge({k: v for k, v in payload.items() if v is not None}, claims)
        header = {"alg": "RS256", "typ": "logout+jwt", "kid": self.keys.kid}
        return self.sign(payload, header=header, forge=forge)

    # -- control -------------------------------------------------------------------------------

    def set_not_before(self, not_before):
        with self.lock:
            self.not_before = int(not_before)
        return {"not_before": self.not_before}

    def set_mode(self, **switches):
        with self.lock:
            unknown = set(switches) - set(self.mode)
            if unknown:
                raise ControlError(f"unknown mode switches {sorted(unknown)}")
            self.mode.update({name: bool(value) for name, value in switches.items()})
            return dict(self.mode)

    def set_client(self, client_id, secret=None, grace=0):
        with self.lock:
            previous = self.clients.get(client_id)
            if grace and previous:
                self.rotated[client_id] = (previous, time.time() + grace)
            else:
                self.rotated.pop(client_id, None)
            self.clients[client_id] = secret
        return {"client_id": client_id}

    def metadata(self, base):
        """The realm's metadata (issuer overridable, to test the exact-match rule)."""
        with self.lock:
            issuer = self.serving["metadata_issuer"] or self.issuer
            no_introspection = self.serving["metadata_no_introspection"]
        doc = {"issuer": issuer,
               "introspection_endpoint": base + INTROSPECT_PATH,
               "jwks_uri": base + CERTS_PATH,
               "token_endpoint": base + REALM_PATH + "/protocol/openid-connect/token"}
        if no_introspection:
            del doc["introspection_endpoint"]
        return doc

    def serve(self, **switches):
        with self.lock:
            unknown = set(switches) - set(self.serving)
            if unknown:
                raise ControlError(f"unknown serving switches {sorted(unknown)}")
            self.serving.update(switches)
            return dict(self.serving)

    def count_fetch(self, what):
        with self.lock:
            self.fetches[what] += 1

    def fetch_counts(self, reset=False):
        with self.lock:
            counts = dict(self.fetches)
            if reset:
                self.fetches = {name: 0 for name in self.fetches}
            return counts

    def introspection_log(self):
        with self.lock:
            return {"count": len(self.introspections), "log": list(self.introspections)}

    def reset_introspections(self):
        with self.lock:
            self.introspections.clear()
        return {"count": 0}


def _merge(payload, claims):
    """payload updated with claims, leaving out claims given as None."""
    merged = {**payload, **(claims or {})}
    return {name: value for name, value in merged.items() if value is not None}


def _error(error, description):
    return {"error": error, "error_description": description}


def _client_credentials(fields, authorization):
    """(client id, secret, method) from client_secret_basic or client_secret_post."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            client_id, secret = decoded.split(":", 1)
        except ValueError:
            return None, None, "client_secret_basic"
        # RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
        return unquote_plus(client_id), unquote_plus(secret), "client_secret_basic"
    if "client_secret" in fields:
        return fields.get("client_id"), fields["client_secret"], "client_secret_post"
    return fields.get("client_id"), None, None


class Handler(StubHandler):
    realm = None  # set in main()

    CONTROL = {
        ("POST", "/control/mint"): lambda realm, body: realm.mint(**body),
        ("POST", "/control/revoke"): lambda realm, body: realm.revoke(**body),
        ("POST", "/control/not-before"): lambda realm, body: realm.set_not_before(**body),
        ("POST", "/control/mode"): lambda realm, body: realm.set_mode(**body),
        ("POST", "/control/hold"): lambda realm, body: realm.hold(**body),
        ("POST", "/control/clients"): lambda realm, body: realm.set_client(**body),
        ("GET", "/control/introspections"): lambda realm, body: realm.introspection_log(),
        ("POST", "/control/introspections/reset"):
            lambda realm, body: realm.reset_introspections(),
        ("POST", "/control/sign"): lambda realm, body: realm.sign(**body),
        ("POST", "/control/sign/admin"): lambda realm, body: realm.sign_admin(**body),
        ("POST", "/control/sign/logout"): lambda realm, body: realm.sign_logout(**body),
        ("POST", "/control/rotate"): lambda realm, body: realm.keys.rotate(**body),
        ("POST", "/control/serve"): lambda realm, body: realm.serve(**body),
        ("GET", "/control/fetches"): lambda realm, body: realm.fetch_counts(),
        ("POST", "/control/fetches/reset"): lambda realm, body: realm.fetch_counts(reset=True),
    }

    def do_GET(self):
        realm = self.realm
        base = realm.issuer[:-len(REALM_PATH)]
        if self.path == CERTS_PATH:
            realm.count_fetch("jwks")
            if realm.serving["jwks_down"]:
                self.send_json(503, _error("unavailable", "keys are down"))
            else:
                self.send_json(200, realm.keys.jwks())
        elif self.path == OIDC_METADATA_PATH:
            realm.count_fetch("oidc_metadata")
            if realm.serving["oidc_metadata_404"]:
                self.send_json(404, _error("not_found", "no such path"))
            else:
                self.send_json(200, realm.metadata(base))
        elif self.path == RFC8414_METADATA_PATH:
            realm.count_fetch("rfc8414_metadata")
            self.send_json(200, realm.metadata(base))
        else:
            self.control("GET")

    def do_POST(self):
        if self.path == INTROSPECT_PATH:
            status, answer = self.realm.introspect(self.read_form(),
                                                   self.headers.get("Authorization"))
            time.sleep(self.realm.take_hold())
            self.send_json(status, answer)
        else:
            self.control("POST")

    def control(self, method):
        action = self.CONTROL.get((method, self.path))
        if action is None:
            self.read_body()
            self.send_json(404, _error("not_found", "no such path"))
            return
        try:
            self.send_json(200, action(self.realm, self.read_json()))
        except (ControlError, TypeError, ValueError) as err:
            self.send_json(400, {"error": str(err)})


def main():
    args = tls_arguments("Keycloak-shaped issuer stand-in").parse_args()
    server = StubServer(args.port, Handler, args.cert, args.key)
    Handler.realm = Realm(server.url + REALM_PATH)
    announce(server.url + REALM_PATH)
    server.serve_forever()


if __name__ == "__main__":
    main()
