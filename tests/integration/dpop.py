"""DPoP proofs (RFC 9449) and client certificates made with real keys, for the integration tests.

A ``DPoPKey`` holds a private key (EC P-256 by default) and signs proofs for a request; every
field can be overridden or removed, so that the tests can send each bad field on its own.
"""
import base64
import datetime
import hashlib
import json
import time
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REMOVE = object()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token):
    return b64url(hashlib.sha256(token.encode()).digest())


def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


class DPoPKey:
    def __init__(self, kind="EC"):
        if kind == "EC":
            self.key = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64(nums.x, 32),
                        "y": _int_b64(nums.y, 32)}
            self.private_jwk = dict(self.jwk, d=_int_b64(self.key.private_numbers()
                                                         .private_value, 32))
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "e": _int_b64(nums.e), "n": _int_b64(nums.n)}
            self.private_jwk = dict(self.jwk, d=_int_b64(self.key.private_numbers().d))

    @property
    def jkt(self):
        """RFC 7638 thumbprint: the required members in lexical order, no white space."""
        required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[self.jwk["kty"]]
        text = json.dumps({k: self.jwk[k] for k in required}, separators=(",", ":"),
                          sort_keys=True)
        return b64url(hashlib.sha256(text.encode()).digest())

    def proof(self, method, url, token=None, header=None, sign_with=None, alg=None, **claims):
        """A proof for method and url (and token, for ath). header/claims override or, with
        REMOVE, take out members; sign_with signs with another key (the jwk stays this one's)."""
        payload = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            payload["ath"] = ath(token)
        payload.update(claims)
        head = {"typ": "dpop+jwt", "jwk": self.jwk}
        head.update(header or {})
        payload = {k: v for k, v in payload.items() if v is not REMOVE}
        head = {k: v for k, v in head.items() if v is not REMOVE}
        signer = (sign_with or self).key
        return jwt.encode(payload, signer, algorithm=alg or self.alg, headers=head)


def unsigned(payload, header):
    """A JWS with alg none (no signature)."""
    part = lambda obj: b64url(json.dumps(obj).encode())  # noqa: E731
    return part(header) + "." + part(payload) + "."


def hmac_proof(payload, header, secret=b"0123456789abcdef0123456789abcdef"):
    return jwt.encode(payload, secret, algorithm="HS256", headers=header)


# ---- client certificates ------------------------------------------------------------------------

def client_cert(dirpath, name):
    """A self-signed client certificate (mod_ssl's optional_no_ca takes any): its paths and its
    RFC 8705 x5t#S256, and the PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{dirpath}/{name}.crt", f"{dirpath}/{name}.key"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    with open(cert_path, "wb") as f:
        f.write(pem)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    x5t = b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
    return cert_path, key_path, x5t, pem.decode()


# ---- fixtures of the test_dpop*.py files (imported there: `from dpop import key, bound`) ----

@pytest.fixture
def key():
    """A new P-256 DPoP key."""
    return DPoPKey()


@pytest.fixture
def bound(oidc, key):
    """An oidc-provider access token bound to key."""
    return oidc.mint_access(sub="dpop-user", jkt=key.jkt)
