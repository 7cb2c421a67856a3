"""The issuer misbehaving, through the fault-injecting stub (stubs/faulty.py): every fault is a
503 with Retry-After and a tagged error-log line that says what happened; none lets a request
through, none crashes a child."""
import os
import time

import pytest
import requests

from httpd import free_port, offtok_lines
from issuers import FaultyIssuer


def location(issuer_url, ca_file, timeout="1 2", path="/cgi/", extra=""):
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {issuer_url}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile {ca_file}
    {extra}
    OfftokTimeout {timeout}
    OfftokNegativeCacheTTL 0
    Require valid-user
</Location>
"""


def refused_with_503(httpd, log_pattern, path="/cgi/env"):
    started = time.monotonic()
    r = httpd.get(path, token="some-token-value")
    elapsed = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After")
    assert "WWW-Authenticate" not in r.headers
    assert log_pattern in httpd.error_log(), httpd.error_log()[-2000:]
    return elapsed


FAULTS = [
    ("status/500", "the issuer answered HTTP 500"),
    ("status/502", "the issuer answered HTTP 502"),
    ("status/404", "the issuer answered HTTP 404"),
    ("redirect/301", "redirect (HTTP 301)"),
    ("redirect/302", "redirect (HTTP 302)"),
    ("garbage", "the issuer's answer is unusable: the answer is not JSON"),
    ("array", "the issuer's answer is unusable: the answer is not a JSON object"),
    ("noactive", "the answer has no \"active\" member"),
    ("active-string", "\"active\" is not a boolean"),
    ("huge", "could not be asked (toobig)"),
    ("big?bytes=262145", "could not be asked (toobig)"),
    ("deep", "the issuer's answer is unusable"),
    ("badutf8", "the issuer's answer is unusable"),
    ("nul", "the issuer's answer is unusable"),
    ("reset", "could not be asked (recv)"),
    ("slow?seconds=4", "could not be asked (timeout)"),
    ("drip", "could not be asked (timeout)"),
    ("hang", "could not be asked (timeout)"),
]


@pytest.mark.parametrize("fault,logged", FAULTS, ids=[f[0].split("?")[0] for f in FAULTS])
def test_fault_is_a_503(httpd, faulty, pki, fault, logged):
    httpd.allow_errors("OT0002")
    httpd.start(location(faulty.url_for(fault), pki.ca_file))
    elapsed = refused_with_503(httpd, "OT0002: introspection at")
    assert logged in httpd.error_log()
    assert elapsed < 2 + 1.5          # OfftokTimeout 1 2, plus slack for a loaded machine
    assert "some-token-value" not in httpd.error_log()


def test_answer_of_exactly_256_kib_is_read(httpd, faulty, pki):
    # A static file: a 256 KiB claim in the environment is more than mod_cgid passes on.
    httpd.start(location(faulty.url_for("big?bytes=262144"), pki.ca_file, path="/protected/"))
    r = httpd.get("/protected/index.html", token="some-token-value")
    assert r.status_code == 200


def test_client_credentials_refused(httpd, faulty, pki):
    httpd.allow_errors("OT0003")
    httpd.start(location(faulty.url_for("status/401"), pki.ca_file))
    refused_with_503(httpd, "OT0003: introspection at")
    assert "the issuer refused the client credentials (HTTP 401)" in httpd.error_log()
    assert "rs-secret" not in httpd.error_log()


def test_wrong_secret_at_the_real_issuer(httpd, oidc):
    httpd.allow_errors("OT0003")
    httpd.start(f"""
<Location "/cgi/">
    AuthType offtok
    {offtok_lines(oidc, OfftokClientSecret="wrong")}
    Require valid-user
</Location>
""")
    refused_with_503(httpd, "refused the client credentials")


def test_connection_refused(httpd, pki):
    httpd.allow_errors("OT0002")
    httpd.start(location(f"https://127.0.0.1:{free_port()}/introspect", pki.ca_file))
    refused_with_503(httpd, "could not be asked (connect)")


@pytest.mark.parametrize("cert", ["unknown_ca", "wrong_host", "expired"])
def test_tls_failures(httpd, workdir, pki, cert):
    httpd.allow_errors("OT0002")
    with FaultyIssuer(os.path.join(workdir, f"faulty-{cert}"), pki, cert=cert) as stub:
        httpd.start(location(stub.url_for("ok"), pki.ca_file))
        refused_with_503(httpd, "could not be asked (tls)")
        assert stub.requests() == 0


def test_ssl_verify_off_accepts_an_unknown_ca(httpd, workdir, pki):
    with FaultyIssuer(os.path.join(workdir, "faulty-unknown-ca-off"), pki,
                      cert="unknown_ca") as stub:
        httpd.start(location(stub.url_for("ok"), pki.ca_file, extra="OfftokSSLVerify Off"))
        assert httpd.get("/cgi/env", token="x").status_code == 200


def test_sub_of_10000_characters(httpd, faulty, pki):
    httpd.start(location(faulty.url_for("longsub?len=10000"), pki.ca_file))
    r = httpd.get("/cgi/env", token="some-token-value")
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_crlf_in_claims(httpd, faulty, pki):
    httpd.start(location(faulty.url_for("crlf"), pki.ca_file))
    r = httpd.get("/cgi/env", token="some-token-value")
    assert r.status_code == 200
    for name, value in r.json().items():
        if name.startswith("OFFTOK_CLAIM_"):
            assert "\r" not in value and "\n" not in value, name


def test_proxy_environment_is_ignored(httpd, faulty, pki, monkeypatch):
    """An https_proxy nobody configured for the issuer is not used."""
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    httpd.start("PassEnv https_proxy\n" + location(faulty.url_for("ok"), pki.ca_file))
    assert httpd.get("/cgi/env", token="x").status_code == 200


def test_an_outage_is_logged_at_error_level_once_per_window(httpd, faulty, pki):
    """Per process, the first failure of a kind is an error line; the rest of a 10 s window go
    to debug level, so an outage does not write one error line per request."""
    httpd.allow_errors("OT0002")
    httpd.start(location(faulty.url_for("status/500"), pki.ca_file), servers=1, threads=4)
    with requests.Session() as s:
        for i in range(6):
            r = s.get(httpd.url("/cgi/env"), headers={"Authorization": f"Bearer outage{i}"})
            assert r.status_code == 503
    log = httpd.error_log()
    errors = [l for l in log.splitlines() if "[offtok:error]" in l and "OT0002" in l]
    debug = [l for l in log.splitlines() if "[offtok:debug]" in l and "OT0002" in l]
    assert len(errors) == 1 and len(debug) == 5, log[-3000:]
