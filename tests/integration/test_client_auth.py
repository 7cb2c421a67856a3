"""How the module proves itself to the issuer (contract, Added in 0.2: OfftokClientAuth's JWT
and TLS methods, OfftokClientKey, OfftokClientAssertionAudience, OfftokClientCertificate) and
credential files read again when the issuer refuses the client.

Issuer: oidc-provider 8 (tests/issuer/issuer.js), which checks client assertions (signature,
iss/sub, aud, exp, a jti never seen before) and TLS client certificates itself. Each test
registers a client of its own through the issuer's control API.
"""
import base64
import datetime
import json
import os
import re
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from httpd import wait_until

ALLOW_503 = (r"OT0002", r"OT0003")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def make_key(alg):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return ec.generate_private_key(curve)


def public_jwk(key, kid):
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {"kty": "RSA", "kid": kid, "n": uint(n.n), "e": uint(n.e)}
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64url(raw)}
    n = pub.public_numbers()
    crv, size = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48),
                 "secp521r1": ("P-521", 66)}[pub.curve.name]
    return {"kty": "EC", "kid": kid, "crv": crv, "x": b64url(n.x.to_bytes(size, "big")),
            "y": b64url(n.y.to_bytes(size, "big"))}


def write_pem(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o644)
    return path


def new_client_id(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def location(issuer, client_id, auth, lines=(), path="/protected/", always=True):
    """A protected location that introspects at oidc-provider as client_id with method auth."""
    extra = "\n    ".join(lines)
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {issuer.introspection_url}
    OfftokClientID {client_id}
    OfftokClientAuth {auth}
    OfftokCAFile {issuer.ca_file}
    {"OfftokAlwaysValidate On" if always else ""}
    {extra}
    Require valid-user
</Location>
"""


def pages(httpd, *names):
    """A page at /<name>/index.html for each name (the harness has /protected/ already)."""
    for name in names:
        os.makedirs(os.path.join(httpd.root, "htdocs", name), mode=0o755, exist_ok=True)
        with open(os.path.join(httpd.root, "htdocs", name, "index.html"), "w") as f:
            f.write(name + "\n")


def last_log(oidc, client_id):
    return [e for e in oidc.introspection_log() if e.get("client_id") == client_id]


# ---- private_key_jwt ----------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384", "ES512", "EdDSA"])
def test_private_key_jwt_each_key_type_is_accepted(httpd, oidc, workdir, alg):
    client_id = new_client_id("pkj")
    key = make_key(alg)
    oidc.update_client(client_id, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [public_jwk(key, "k1")]}, grant_types=[],
                       response_types=[], redirect_uris=[])
    path = write_pem(os.path.join(workdir, f"{client_id}.pem"), key)
    httpd.start(location(oidc, client_id, "private_key_jwt",
                         [f"OfftokClientKey file:{path} k1", f"OfftokIssuer {oidc.issuer}"]))
    token = oidc.mint_access()
    # Two requests: each call carries a fresh assertion (the issuer refuses a reused jti).
    for _ in range(2):
        assert httpd.get("/protected/index.html", token=token).status_code == 200
    log = last_log(oidc, client_id)
    assert len(log) == 2 and all(e["client_auth"] == "client_assertion" for e in log)
    assert log[0]["assertion_signature"] != log[1]["assertion_signature"]


def test_private_key_jwt_wrong_key_is_503_naming_the_method(httpd, oidc, workdir):
    client_id = new_client_id("pkj")
    oidc.update_client(client_id, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [public_jwk(make_key("ES256"), "k1")]}, grant_types=[],
                       response_types=[], redirect_uris=[])
    path = write_pem(os.path.join(workdir, f"{client_id}.pem"), make_key("ES256"))
    httpd.allow_errors(*ALLOW_503)
    httpd.start(location(oidc, client_id, "private_key_jwt",
                         [f"OfftokClientKey file:{path}", f"OfftokIssuer {oidc.issuer}"]))
    r = httpd.get("/protected/index.html", token=oidc.mint_access())
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert re.search(r"OT0003: .*OfftokClientAuth private_key_jwt", httpd.error_log())


@pytest.mark.parametrize("aud,status", [
    ("issuer", 200),            # OfftokIssuer, no OfftokClientAssertionAudience
    ("introspection", 200),     # the endpoint's URL: oidc-provider accepts that too
    ("elsewhere", 503),         # an audience the issuer does not answer to
])
def test_private_key_jwt_assertion_audience(httpd, oidc, workdir, aud, status):
    client_id = new_client_id("pkj")
    key = make_key("ES256")
    oidc.update_client(client_id, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [public_jwk(key, "k1")]}, grant_types=[],
                       response_types=[], redirect_uris=[])
    path = write_pem(os.path.join(workdir, f"{client_id}.pem"), key)
    lines = [f"OfftokClientKey file:{path}", f"OfftokIssuer {oidc.issuer}"]
    if aud == "introspection":
        lines.append(f"OfftokClientAssertionAudience {oidc.introspection_url}")
    elif aud == "elsewhere":
        lines.append("OfftokClientAssertionAudience https://elsewhere.example/")
        httpd.allow_errors(*ALLOW_503)
    httpd.start(location(oidc, client_id, "private_key_jwt", lines))
    assert httpd.get("/protected/index.html", token=oidc.mint_access()).status_code == status


def test_jwt_method_without_audience_or_issuer_fails_configtest(httpd, oidc, workdir):
    path = write_pem(os.path.join(workdir, "noaud.pem"), make_key("ES256"))
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokClientKey file:{path}"]))
    assert code != 0 and "OT0505" in out and "OfftokClientAssertionAudience" in out
    code, out = httpd.configtest(location(oidc, "c", "client_secret_jwt",
                                          ["OfftokClientSecret s"]))
    assert code != 0 and "OT0505" in out
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokIssuer {oidc.issuer}"]))
    assert code != 0 and "needs OfftokClientKey" in out
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokClientKey file:{path}",
                                           f"OfftokClientAssertionAudience {oidc.issuer}"]))
    assert code == 0, out


def test_unreadable_or_bad_key_file_fails_at_start(httpd, oidc, workdir):
    missing = os.path.join(workdir, "no-such-key.pem")
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokClientKey file:{missing}",
                                           f"OfftokIssuer {oidc.issuer}"]))
    assert code != 0 and "OfftokClientKey" in out and "does not exist" in out
    garbage = os.path.join(workdir, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokClientKey file:{garbage}",
                                           f"OfftokIssuer {oidc.issuer}"]))
    assert code != 0 and "not a PEM private key" in out
    small = write_pem(os.path.join(workdir, "rsa1024.pem"),
                      rsa.generate_private_key(public_exponent=65537, key_size=1024))
    code, out = httpd.configtest(location(oidc, "c", "private_key_jwt",
                                          [f"OfftokClientKey file:{small}",
                                           f"OfftokIssuer {oidc.issuer}"]))
    assert code != 0 and "at least 2048 bits" in out


# ---- client_secret_jwt --------------------------------------------------------------------------

@pytest.mark.parametrize("right", [True, False])
def test_client_secret_jwt(httpd, oidc, right):
    client_id = new_client_id("csj")
    secret = "csj-" + uuid.uuid4().hex + uuid.uuid4().hex
    oidc.update_client(client_id, client_secret=secret,
                       token_endpoint_auth_method="client_secret_jwt", grant_types=[],
                       response_types=[], redirect_uris=[])
    if not right:
        httpd.allow_errors(*ALLOW_503)
    httpd.start(location(oidc, client_id, "client_secret_jwt",
                         [f"OfftokClientSecret {secret if right else secret + 'x'}",
                          f"OfftokIssuer {oidc.issuer}"]))
    r = httpd.get("/protected/index.html", token=oidc.mint_access())
    assert r.status_code == (200 if right else 503)
    if right:
        assert last_log(oidc, client_id)[-1]["client_auth"] == "client_assertion"
    else:
        assert re.search(r"OT0003: .*OfftokClientAuth client_secret_jwt", httpd.error_log())


# ---- tls_client_auth ----------------------------------------------------------------------------

def client_certificate(pki, workdir, common_name):
    """A TLS client certificate for common_name, signed by the tests' CA: (cert, key) paths."""
    with open(pki.ca_file, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path = os.path.join(workdir, f"{common_name}.crt")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(cert_path, 0o644)
    return cert_path, write_pem(os.path.join(workdir, f"{common_name}.key"), key)


@pytest.mark.parametrize("right", [True, False])
def test_tls_client_auth(httpd, oidc, pki, workdir, right):
    client_id = new_client_id("mtls")
    oidc.update_client(client_id, token_endpoint_auth_method="tls_client_auth",
                       tls_client_auth_subject_dn=f"CN={client_id}", grant_types=[],
                       response_types=[], redirect_uris=[])
    cert, key = client_certificate(pki, workdir, client_id if right else client_id + "-other")
    if not right:
        httpd.allow_errors(*ALLOW_503)
    # A second location without a certificate shares the process's connection pool: its calls
    # must not ride on the first one's certificate-bearing connection, nor it on theirs.
    plain = location(oidc, oidc.rs_client_id, "client_secret_basic",
                     [f"OfftokClientSecret {oidc.rs_client_secret}"], path="/plain/")
    pages(httpd, "plain")
    httpd.start(location(oidc, client_id, "tls_client_auth",
                         [f"OfftokClientCertificate {cert} {key}"]) + plain, servers=1)
    token = oidc.mint_access()
    for _ in range(3):
        status = httpd.get("/protected/index.html", token=token).status_code
        assert status == (200 if right else 503)
        assert httpd.get("/plain/index.html", token=token).status_code == 200
    log = last_log(oidc, client_id)
    cn = client_id if right else client_id + "-other"
    assert [e["tls_client_cn"] for e in log] == [cn] * 3
    if right:
        assert [e["client_auth"] for e in log] == ["tls_client_auth"] * 3
    else:
        assert re.search(r"OT0003: .*OfftokClientAuth tls_client_auth", httpd.error_log())
    plain_log = last_log(oidc, oidc.rs_client_id)[-3:]
    assert [(e["client_auth"], e["tls_client_cn"]) for e in plain_log] == \
        [("client_secret_basic", None)] * 3


def test_tls_client_auth_needs_a_certificate_at_configtest(httpd, oidc):
    code, out = httpd.configtest(location(oidc, "c", "tls_client_auth"))
    assert code != 0 and "needs OfftokClientCertificate" in out


# ---- rotation -----------------------------------------------------------------------------------

def test_rotated_secret_file_is_read_again_on_invalid_client(httpd, oidc, workdir):
    client_id = new_client_id("rot")
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    oidc.update_client(client_id, client_secret=old, grant_types=[], response_types=[],
                       redirect_uris=[])
    secret_file = os.path.join(workdir, f"{client_id}.secret")
    with open(secret_file, "w") as f:
        f.write(old + "\n")
    os.chmod(secret_file, 0o644)
    httpd.start(location(oidc, client_id, "client_secret_basic",
                         [f"OfftokClientSecret file:{secret_file}"]))
    token = oidc.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    # The issuer rotates the secret, the administrator writes the new one into the file.
    oidc.update_client(client_id, client_secret=new)
    with open(secret_file + ".tmp", "w") as f:
        f.write(new + "\n")
    os.chmod(secret_file + ".tmp", 0o644)
    os.replace(secret_file + ".tmp", secret_file)
    # Every process learns it on its own first refusal and asks again at once: no 503.
    for _ in range(6):
        assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert "OT0500" in httpd.error_log()
    statuses = [e["status"] for e in last_log(oidc, client_id)]
    assert statuses.count(401) <= 2 and statuses[-1] == 200


def test_rotated_key_file_is_read_again(httpd, oidc, workdir):
    client_id = new_client_id("rotk")
    old, new = make_key("ES256"), make_key("EdDSA")
    oidc.update_client(client_id, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [public_jwk(old, "old")]}, grant_types=[],
                       response_types=[], redirect_uris=[])
    path = write_pem(os.path.join(workdir, f"{client_id}.pem"), old)
    httpd.start(location(oidc, client_id, "private_key_jwt",
                         [f"OfftokClientKey file:{path}", f"OfftokIssuer {oidc.issuer}"]))
    token = oidc.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    oidc.update_client(client_id, jwks={"keys": [public_jwk(new, "new")]})
    write_pem(path + ".tmp", new)
    os.replace(path + ".tmp", path)
    for _ in range(4):
        assert httpd.get("/protected/index.html", token=token).status_code == 200


def test_unreadable_rotated_secret_is_logged_clearly(httpd, oidc, workdir):
    if os.geteuid() != 0:
        pytest.skip("needs root: httpd's children must run as another user than the file's")
    client_id = new_client_id("rotp")
    oidc.update_client(client_id, client_secret="first", grant_types=[], response_types=[],
                       redirect_uris=[])
    secret_file = os.path.join(workdir, f"{client_id}.secret")
    with open(secret_file, "w") as f:
        f.write("first\n")
    os.chmod(secret_file, 0o600)       # root only: the children cannot read it again
    httpd.allow_errors(*ALLOW_503, r"OT0501")
    httpd.start(location(oidc, client_id, "client_secret_basic",
                         [f"OfftokClientSecret file:{secret_file}"]))
    token = oidc.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    oidc.update_client(client_id, client_secret="second")
    with open(secret_file, "w") as f:
        f.write("second\n")
    assert httpd.get("/protected/index.html", token=token).status_code == 503
    assert re.search(r"OT0501: .*permission denied.*readable by httpd's group",
                     httpd.error_log())


# ---- nothing secret in the logs -----------------------------------------------------------------

def test_no_secret_key_or_assertion_in_logs_at_trace8(httpd, oidc, workdir):
    secret = "csj-" + uuid.uuid4().hex + uuid.uuid4().hex
    csj = new_client_id("csj")
    oidc.update_client(csj, client_secret=secret, token_endpoint_auth_method="client_secret_jwt",
                       grant_types=[], response_types=[], redirect_uris=[])
    pkj = new_client_id("pkj")
    key = make_key("RS256")
    oidc.update_client(pkj, token_endpoint_auth_method="private_key_jwt",
                       jwks={"keys": [public_jwk(key, "k1")]}, grant_types=[],
                       response_types=[], redirect_uris=[])
    key_path = write_pem(os.path.join(workdir, f"{pkj}.pem"), key)
    httpd.allow_errors(*ALLOW_503)
    conf = (location(oidc, csj, "client_secret_jwt",
                     [f"OfftokClientSecret {secret}", f"OfftokIssuer {oidc.issuer}"],
                     path="/csj/")
            + location(oidc, pkj, "private_key_jwt",
                       [f"OfftokClientKey file:{key_path}", f"OfftokIssuer {oidc.issuer}"],
                       path="/pkj/")
            + location(oidc, pkj, "private_key_jwt",
                       [f"OfftokClientKey file:{key_path}",
                        "OfftokClientAssertionAudience https://elsewhere.example/"],
                       path="/refused/"))
    pages(httpd, "csj", "pkj", "refused")
    httpd.start(conf, loglevel="trace8")
    token = oidc.mint_access()
    assert httpd.get("/csj/index.html", token=token).status_code == 200
    assert httpd.get("/pkj/index.html", token=token).status_code == 200
    assert httpd.get("/refused/index.html", token=token).status_code == 503
    log = httpd.error_log()
    signatures = [e["assertion_signature"] for e in oidc.introspection_log()
                  if e.get("client_id") in (csj, pkj)]
    assert len(signatures) == 3 and all(signatures)
    for sig in signatures:
        assert sig not in log
    assert secret not in log
    with open(key_path) as f:
        body = [line for line in f.read().splitlines() if not line.startswith("-----")]
    assert not any(line in log for line in body)
    assert "client_assertion=" not in log


def test_rotated_secret_is_read_at_graceful_restart(httpd, oidc, workdir):
    """Files are read again at every restart, as root: even one the children cannot read."""
    client_id = new_client_id("rotg")
    oidc.update_client(client_id, client_secret="before", grant_types=[], response_types=[],
                       redirect_uris=[])
    secret_file = os.path.join(workdir, f"{client_id}.secret")
    with open(secret_file, "w") as f:
        f.write("before\n")
    os.chmod(secret_file, 0o600)
    httpd.start(location(oidc, client_id, "client_secret_basic",
                         [f"OfftokClientSecret file:{secret_file}"]))
    token = oidc.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    oidc.update_client(client_id, client_secret="after")
    with open(secret_file, "w") as f:
        f.write("after\n")
    httpd.graceful()
    oidc.reset_counts()
    for _ in range(3):
        assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert [e["status"] for e in last_log(oidc, client_id)] == [200] * 3


# ---- the Keycloak-shaped stand-in (stubs/keycloak.py) -------------------------------------------

def test_keycloak_client_secret_jwt(httpd, keycloak):
    """Keycloak's "Signed Jwt with Client Secret": HS256, aud the realm's issuer URL, a jti it
    has never seen (the stand-in refuses a reused one, as Keycloak does)."""
    httpd.start(location(keycloak, keycloak.rs_client_id, "client_secret_jwt",
                         [f"OfftokClientSecret {keycloak.rs_client_secret}",
                          f"OfftokIssuer {keycloak.issuer}"]))
    keycloak.reset_counts()
    token = keycloak.mint_access()
    for _ in range(3):
        assert httpd.get("/protected/index.html", token=token).status_code == 200
    log = keycloak.introspection_log()
    assert [(e["client_auth"], e["status"]) for e in log] == [("client_secret_jwt", 200)] * 3


def test_keycloak_secret_rotation_with_grace_period(httpd, keycloak, workdir):
    """Keycloak's client secret rotation: the previous secret works until its grace period ends,
    then the module reads the file again on the first refusal and the request still succeeds."""
    client_id = new_client_id("kcrot")
    keycloak.set_client(client_id, "old-" + client_id)
    secret_file = os.path.join(workdir, f"{client_id}.secret")
    with open(secret_file, "w") as f:
        f.write(f"old-{client_id}\n")
    os.chmod(secret_file, 0o644)
    httpd.start(location(keycloak, client_id, "client_secret_basic",
                         [f"OfftokClientSecret file:{secret_file}"]), servers=1)
    token = keycloak.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    keycloak.set_client(client_id, "new-" + client_id, grace=2)
    with open(secret_file + ".tmp", "w") as f:
        f.write(f"new-{client_id}\n")
    os.chmod(secret_file + ".tmp", 0o644)
    os.replace(secret_file + ".tmp", secret_file)
    keycloak.reset_counts()
    # Within the grace period the old secret still works: nothing to read again yet.
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert "OT0500" not in httpd.error_log()

    def switched():
        assert httpd.get("/protected/index.html", token=token).status_code == 200
        return "OT0500" in httpd.error_log()
    wait_until(switched, timeout=10, interval=0.3, what="the module to switch to the new secret")
    statuses = [e["status"] for e in keycloak.introspection_log() if e["client_id"] == client_id]
    assert statuses.count(401) == 1 and statuses[-1] == 200


# ---- the HTTP client's retry --------------------------------------------------------------------

def assertion_claims(assertion):
    payload = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_retry_after_a_broken_answer_carries_a_new_assertion(httpd, faulty):
    """A kept connection that breaks mid-answer is retried once on a fresh one (issuer-link.md);
    the issuer read the first request, and Keycloak refuses a client assertion's jti the second
    time, so the retry must carry a new assertion (fault stub /reset-reused: a connection's
    second request is answered with half an answer and a reset)."""
    httpd.start(f"""
<Location "/protected/">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {faulty.url_for("reset-reused")}
    OfftokClientID rs-client
    OfftokClientSecret {"csj-" + uuid.uuid4().hex}
    OfftokClientAuth client_secret_jwt
    OfftokIssuer https://faulty.example
    OfftokCAFile {faulty.ca_file}
    OfftokAlwaysValidate On
    Require valid-user
</Location>
""", servers=1)
    faulty.reset_counts()
    for _ in range(2):
        assert httpd.get("/protected/index.html", token="opaque-" + uuid.uuid4().hex
                         ).status_code == 200
    log = faulty.log()
    assert len(log) == 3
    # The second call's first attempt went out on the kept connection and broke.
    assert log[1]["client_port"] == log[0]["client_port"] != log[2]["client_port"]
    assert log[1]["form"]["token_sha256"] == log[2]["form"]["token_sha256"]
    jtis = [assertion_claims(e["form"]["client_assertion"])["jti"] for e in log]
    assert len(set(jtis)) == 3
