"""Certificate-bound tokens (RFC 8705 §3): the contract's "Sender-constrained tokens".

A real mod_ssl listener with `SSLVerifyClient optional_no_ca` (any client certificate is taken;
the binding, not a CA, makes it count), tokens from oidc-provider minted with a client
certificate (its mTLS.certificateBoundAccessTokens feature: cnf.x5t#S256 in the answer) and from
the Keycloak-shaped stand-in, and the client certificates made here (tests/integration/dpop.py).
"""
import os

import pytest
import requests

from dpop import DPoPKey, client_cert
from httpd import MODDIR, free_port, protected

ENV = "/cgi/env"


@pytest.fixture(scope="module")
def certs(workdir):
    path = os.path.join(workdir, "client-certs")
    os.makedirs(path, exist_ok=True)
    return {name: client_cert(path, name) for name in ("alice", "mallory")}


@pytest.fixture
def tls(httpd, pki):
    """Start httpd with a TLS listener as well; returns a function that GETs over it."""
    port = free_port()

    def start(body):
        server = f"""
LoadModule ssl_module {MODDIR}/mod_ssl.so
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    SSLEngine on
    SSLCertificateFile {pki.cert}
    SSLCertificateKeyFile {pki.key}
    SSLVerifyClient optional_no_ca
</VirtualHost>
"""
        httpd.start(body, server=server)

    def get(token, cert=None, scheme="Bearer", headers=None, path=ENV):
        h = {"Authorization": f"{scheme} {token}", "Connection": "close"}
        h.update(headers or {})
        return requests.get(f"https://127.0.0.1:{port}{path}", headers=h, timeout=30,
                            verify=pki.ca_file, cert=cert)

    get.url = lambda path=ENV: f"https://127.0.0.1:{port}{path}"
    start.get = get
    return start


def pair(cert):
    return cert[0], cert[1]


def test_certificate_bound_token_with_its_certificate_is_accepted(tls, oidc, certs):
    token = oidc.mint_access(sub="cert-user", cert=certs["alice"][3])
    tls(protected("/cgi/", oidc))
    r = tls.get(token, cert=pair(certs["alice"]))
    assert r.status_code == 200, r.headers
    assert r.json()["REMOTE_USER"] == "cert-user"
    assert r.json()["OFFTOK_TOKEN_BINDING"] == "mtls"


def test_another_certificate_is_invalid_token(tls, oidc, certs):
    token = oidc.mint_access(cert=certs["alice"][3])
    tls(protected("/cgi/", oidc))
    r = tls.get(token, cert=pair(certs["mallory"]))
    assert r.status_code == 401
    assert 'Bearer realm="test", error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_no_certificate_is_invalid_token(tls, oidc, certs):
    token = oidc.mint_access(cert=certs["alice"][3])
    tls(protected("/cgi/", oidc))
    r = tls.get(token)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_plain_http_has_no_certificate(tls, httpd, oidc, certs):
    token = oidc.mint_access(cert=certs["alice"][3])
    tls(protected("/cgi/", oidc))
    assert httpd.get(ENV, token).status_code == 401


def test_certificate_bound_token_under_the_dpop_scheme(tls, oidc, certs):
    """Sent as DPoP with a valid proof: the certificate still decides."""
    key = DPoPKey()
    token = oidc.mint_access(cert=certs["alice"][3])
    tls(protected("/cgi/", oidc))
    r = tls.get(token, cert=pair(certs["alice"]), scheme="DPoP",
                headers={"DPoP": key.proof("GET", tls.get.url(), token)})
    assert r.status_code == 200, r.headers
    assert r.json()["OFFTOK_TOKEN_BINDING"] == "mtls"
    r = tls.get(token, cert=pair(certs["mallory"]), scheme="DPoP",
                headers={"DPoP": key.proof("GET", tls.get.url(), token)})
    assert r.status_code == 401


def test_keycloak_token_with_x5t(tls, keycloak, certs):
    token = keycloak.mint_access(claims={"cnf": {"x5t#S256": certs["alice"][2]}})
    tls(protected("/cgi/", keycloak))
    assert tls.get(token, cert=pair(certs["alice"])).status_code == 200
    assert tls.get(token, cert=pair(certs["mallory"])).status_code == 401


def test_unknown_cnf_member_is_refused(tls, keycloak, certs):
    token = keycloak.mint_access(claims={"cnf": {"x5t#S256": certs["alice"][2], "kid": "x"}})
    tls(protected("/cgi/", keycloak))
    assert tls.get(token, cert=pair(certs["alice"])).status_code == 401


def test_require_refuses_unbound_tokens(tls, oidc, certs):
    tls(protected("/cgi/", oidc, OfftokMTLS="Require"))
    assert tls.get(oidc.mint_access(), cert=pair(certs["alice"])).status_code == 401
    bound = oidc.mint_access(cert=certs["alice"][3])
    assert tls.get(bound, cert=pair(certs["alice"])).status_code == 200


def test_off_refuses_certificate_bound_tokens(tls, oidc, certs):
    tls(protected("/cgi/", oidc, OfftokMTLS="Off"))
    bound = oidc.mint_access(cert=certs["alice"][3])
    assert tls.get(bound, cert=pair(certs["alice"])).status_code == 401
    assert tls.get(oidc.mint_access(), cert=pair(certs["alice"])).status_code == 200


def _tls_get(port, pki, token, cert, version, path=ENV):
    """GET over TLS 1.2 or 1.3 with a context that answers a renegotiation (1.2) or a
    post-handshake certificate request (1.3) with cert."""
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    ctx.minimum_version = ctx.maximum_version = version
    if version == ssl.TLSVersion.TLSv1_3:
        ctx.post_handshake_auth = True
    ctx.load_cert_chain(cert[0], cert[1])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}",
                                           "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_certificate_asked_for_by_the_location_is_the_one_checked(httpd, pki, oidc, certs,
                                                                  version):
    """The virtual host asks for no certificate; the protected location does (SSLVerifyClient in
    <Location>): mod_ssl renegotiates (TLS 1.2) or asks after the handshake (TLS 1.3) before
    authentication, and the certificate then presented is the one compared with x5t#S256. An SSI
    include of the protected CGI (a subrequest) sees the same connection's certificate."""
    import ssl
    port = free_port()
    with open(os.path.join(httpd.root, "htdocs", "page.shtml"), "w") as f:
        f.write('<!--#include virtual="/cgi/env" -->\n')
    server = f"""
LoadModule ssl_module {MODDIR}/mod_ssl.so
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    SSLEngine on
    SSLCertificateFile {pki.cert}
    SSLCertificateKeyFile {pki.key}
    SSLVerifyClient none
    <Location "/cgi/">
        SSLVerifyClient optional_no_ca
    </Location>
    <Location "/page.shtml">
        SSLVerifyClient optional_no_ca
        Options +Includes
        SetOutputFilter INCLUDES
    </Location>
</VirtualHost>
"""
    httpd.start(protected("/cgi/", oidc) + protected("/page.shtml", oidc), server=server)
    tls_version = getattr(ssl.TLSVersion, version)
    token = oidc.mint_access(sub="cert-user", cert=certs["alice"][3])
    status, body = _tls_get(port, pki, token, pair(certs["alice"]), tls_version)
    assert status == 200, body
    assert '"OFFTOK_TOKEN_BINDING": "mtls"' in body
    assert _tls_get(port, pki, token, pair(certs["mallory"]), tls_version)[0] == 401
    status, body = _tls_get(port, pki, token, pair(certs["alice"]), tls_version,
                            path="/page.shtml")
    assert status == 200, body
    assert '"OFFTOK_TOKEN_BINDING": "mtls"' in body
    assert '"REMOTE_USER": "cert-user"' in body
    assert _tls_get(port, pki, token, pair(certs["mallory"]), tls_version,
                    path="/page.shtml")[0] == 401
