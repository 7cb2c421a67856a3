"""A throw-away PKI for the integration tests.

``make_pki(dirpath)`` writes, in PEM files under ``dirpath``:

- a test CA (``ca_file``);
- a server certificate for 127.0.0.1 and localhost signed by it (``cert``, ``key``);
- for the TLS fault matrix: one for the wrong host name, SAN ``DNS:wrong.example`` only
  (``wrong_host_cert``/``wrong_host_key``), an expired one (``expired_cert``/``expired_key``),
  and one for the right names signed by a second CA that nobody trusts
  (``unknown_ca_cert``/``unknown_ca_key``; that CA is ``unknown_ca_file``).

Keys are ECDSA P-256, which every TLS stack in use here accepts and which is quick to generate.
A complete set of files already in ``dirpath`` is reused, so repeated calls are cheap.
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files that make_pki() wrote."""

    dirpath: str
    ca_file: str
    ca_key: str
    cert: str
    key: str
    wrong_host_cert: str
    wrong_host_key: str
    expired_cert: str
    expired_key: str
    unknown_ca_file: str
    unknown_ca_cert: str
    unknown_ca_key: str

    def server_pair(self, which):
        """(cert, key) for 'good', 'wrong_host', 'expired' or 'unknown_ca'."""
        prefix = "" if which == "good" else which + "_"
        try:
            return getattr(self, prefix + "cert"), getattr(self, prefix + "key")
        except AttributeError:
            raise ValueError(f"no server certificate called {which!r}") from None


def make_pki(dirpath):
    """Create the PKI in dirpath, or reuse the one already there, and return its Pki."""
    pki = _paths(os.path.realpath(dirpath))
    files = [value for name, value in vars(pki).items() if name != "dirpath"]
    if not all(os.path.exists(path) for path in files):
        _generate(pki)
    return pki


def _paths(dirpath):
    def path(name):
        return os.path.join(dirpath, name)

    return Pki(
        dirpath=dirpath,
        ca_file=path("ca.pem"),
        ca_key=path("ca.key"),
        cert=path("server.pem"),
        key=path("server.key"),
        wrong_host_cert=path("wrong-host.pem"),
        wrong_host_key=path("wrong-host.key"),
        expired_cert=path("expired.pem"),
        expired_key=path("expired.key"),
        unknown_ca_file=path("unknown-ca.pem"),
        unknown_ca_cert=path("unknown-ca-server.pem"),
        unknown_ca_key=path("unknown-ca-server.key"),
    )


def _generate(pki):
    os.makedirs(pki.dirpath, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    ca_key, ca_cert = _ca("mod_offtok test CA", now)
    unknown_key, unknown_cert = _ca("mod_offtok unknown CA", now)
    _write(pki.ca_file, ca_cert, pki.ca_key, ca_key)
    _write(pki.unknown_ca_file, unknown_cert)

    valid = (now - day, now + 3650 * day)
    servers = [  # cert, key, issued by, common name, subject alternative names, validity
        (pki.cert, pki.key, (ca_cert, ca_key), "localhost", LOOPBACK_NAMES, valid),
        (pki.wrong_host_cert, pki.wrong_host_key, (ca_cert, ca_key), "wrong.example",
         [x509.DNSName("wrong.example")], valid),
        (pki.expired_cert, pki.expired_key, (ca_cert, ca_key), "localhost", LOOPBACK_NAMES,
         (now - 30 * day, now - day)),
        (pki.unknown_ca_cert, pki.unknown_ca_key, (unknown_cert, unknown_key), "localhost",
         LOOPBACK_NAMES, valid),
    ]
    for cert_path, key_path, (issuer_cert, issuer_key), name, sans, (start, end) in servers:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(name, key, issuer_cert.subject, start, end)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        _write(cert_path, cert, key_path, key)


def _ca(name, now):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, key, subject, now - datetime.timedelta(days=1),
                 now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _builder(common_name, key, issuer_name, not_before, not_after):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )


def _write(cert_path, cert, key_path=None, key=None):
    """Write atomically, so that a concurrent make_pki() never reads half a file."""
    items = [(cert_path, cert.public_bytes(serialization.Encoding.PEM))]
    if key_path:
        items.append((key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())))
    for path, data in items:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
