"""The cache key of signed answers (OfftokSignedAnswers On) names what they were checked against.

Two locations asking the same introspection URL as the same client share cached answers (the
contract's rule) only where they would accept the same answers: an answer whose signature was
verified with one location's OfftokJWKSURL, or whose iss matched its OfftokIssuer, never serves a
location that checks against another issuer, other keys or a narrower OfftokClockSkew; it asks
the issuer itself. And a CA
file whose name holds the text of another setting ("ca.pem signed") is not taken for that
setting.

Issuer: the fault stub (stubs/faulty.py): /signed answers an RFC 9701 signed answer (iss
https://faulty.example, key in /jwks), /ok an unsigned one; its log counts the calls.
"""
import os
import re
import shutil
import uuid

from test_client_auth import pages
from test_signed_answers import FAULTY_ISSUER, assert_logout_cannot_fetch_keys


def location(path, url, ca_file, issuer=FAULTY_ISSUER, jwks_url=None, signed=True, extra=""):
    """A location asking url as rs-client, caching its answers (no OfftokAlwaysValidate)."""
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {url}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile "{ca_file}"
    OfftokIssuer {issuer}
    {f"OfftokJWKSURL {jwks_url}" if jwks_url else ""}
    OfftokSignedAnswers {"On" if signed else "Off"}
    OfftokCacheTTL 300
    Require valid-user
    {extra}
</Location>
"""


def calls(faulty, fault):
    """Introspection calls made to the stub's fault (path without query)."""
    return sum(1 for e in faulty.log() if e["path"].split("?")[0] == "/" + fault)


def start_two(httpd, faulty, a, b):
    pages(httpd, "a", "b")
    httpd.start(a + b, servers=1)
    faulty.reset_counts()


def test_alike_locations_share_a_signed_answer(httpd, faulty):
    """The control: same URL, client, issuer, keys and trust; only the path differs."""
    url, jwks = faulty.url_for("signed"), faulty.url_for("jwks")
    start_two(httpd, faulty, location("/a/", url, faulty.ca_file, jwks_url=jwks),
              location("/b/", url, faulty.ca_file, jwks_url=jwks))
    token = "opaque-" + uuid.uuid4().hex
    assert httpd.get("/a/index.html", token=token).status_code == 200
    assert httpd.get("/b/index.html", token=token).status_code == 200
    assert calls(faulty, "signed") == 1


def test_answer_checked_against_another_issuer_is_not_served(httpd, faulty):
    """B expects another iss: the answer A accepted is not B's; B asks and refuses it."""
    httpd.allow_errors(r"OT0002")
    url, jwks = faulty.url_for("signed"), faulty.url_for("jwks")
    start_two(httpd, faulty, location("/a/", url, faulty.ca_file, jwks_url=jwks),
              location("/b/", url, faulty.ca_file, issuer="https://other.example",
                       jwks_url=jwks))
    token = "opaque-" + uuid.uuid4().hex
    assert httpd.get("/a/index.html", token=token).status_code == 200
    r = httpd.get("/b/index.html", token=token)
    assert r.status_code == 503
    assert calls(faulty, "signed") == 2
    assert re.search(r"OT0002: .*its iss is not OfftokIssuer", httpd.error_log())
    # A's entry is still A's.
    assert httpd.get("/a/index.html", token=token).status_code == 200
    assert calls(faulty, "signed") == 2


def test_internal_redirect_to_a_location_of_another_issuer_asks_again(httpd, faulty):
    """An internal redirect reuses the first request's answer only under the same key: not from
    a location that checked it against one issuer into one that expects another."""
    httpd.allow_errors(r"OT0002")
    url, jwks = faulty.url_for("signed"), faulty.url_for("jwks")
    start_two(httpd, faulty,
              location("/a/", url, faulty.ca_file, jwks_url=jwks,
                       extra="RewriteEngine On\n    RewriteRule ^ /b/index.html [L]"),
              location("/b/", url, faulty.ca_file, issuer="https://other.example",
                       jwks_url=jwks))
    r = httpd.get("/a/anything", token="opaque-" + uuid.uuid4().hex)
    assert r.status_code == 503
    assert calls(faulty, "signed") == 2


def test_answer_accepted_within_a_wider_clock_skew_is_not_served(httpd, faulty):
    """The issuer's answer is 120 s old (iat): A allows that (OfftokClockSkew 300), B does not
    (the default, 30 s). B asks and refuses it; it does not take A's."""
    httpd.allow_errors(r"OT0002")
    url, jwks = faulty.url_for("signed?iat=-120"), faulty.url_for("jwks")
    start_two(httpd, faulty, location("/a/", url, faulty.ca_file, jwks_url=jwks,
                                      extra="OfftokClockSkew 300"),
              location("/b/", url, faulty.ca_file, jwks_url=jwks))
    token = "opaque-" + uuid.uuid4().hex
    assert httpd.get("/a/index.html", token=token).status_code == 200
    assert httpd.get("/b/index.html", token=token).status_code == 503
    assert calls(faulty, "signed") == 2
    assert re.search(r"OT0002: .*its iat is older", httpd.error_log())


def test_answer_verified_with_other_keys_is_not_served(httpd, faulty):
    """B's OfftokJWKSURL is another (one that has no keys for it): B asks and cannot verify."""
    httpd.allow_errors(r"OT0002")
    url = faulty.url_for("signed")
    start_two(httpd, faulty,
              location("/a/", url, faulty.ca_file, jwks_url=faulty.url_for("jwks")),
              location("/b/", url, faulty.ca_file, jwks_url=faulty.url_for("jwks-of-another")))
    token = "opaque-" + uuid.uuid4().hex
    assert httpd.get("/a/index.html", token=token).status_code == 200
    assert httpd.get("/b/index.html", token=token).status_code == 503
    assert calls(faulty, "signed") == 2
    assert re.search(r"OT0002: .*signed answer", httpd.error_log())


def test_answer_of_another_jwks_url_is_asked_again(httpd, faulty):
    """The key names the JWKS URL as configured: another URL (here with the same keys) asks."""
    url = faulty.url_for("signed")
    start_two(httpd, faulty,
              location("/a/", url, faulty.ca_file, jwks_url=faulty.url_for("jwks")),
              location("/b/", url, faulty.ca_file, jwks_url=faulty.url_for("jwks?b")))
    token = "opaque-" + uuid.uuid4().hex
    assert httpd.get("/a/index.html", token=token).status_code == 200
    assert httpd.get("/b/index.html", token=token).status_code == 200
    assert calls(faulty, "signed") == 2


def test_ca_file_named_like_the_signed_setting_is_another_key(httpd, faulty):
    """A trusts a CA file named "ca.pem signed" and takes unsigned answers; B trusts "ca.pem"
    (the same certificate) and requires signed ones. The stub answers unsigned: B must ask and
    refuse, not take A's unsigned answer as its own."""
    httpd.allow_errors(r"OT0002")
    # In the server's root, which its children can read.
    os.makedirs(os.path.join(httpd.root, "ca"), mode=0o755, exist_ok=True)
    plain_ca = os.path.join(httpd.root, "ca", "ca.pem")
    shutil.copyfile(faulty.ca_file, plain_ca)
    shutil.copyfile(faulty.ca_file, plain_ca + " signed")
    url, jwks = faulty.url_for("ok"), faulty.url_for("jwks")
    start_two(httpd, faulty,
              location("/a/", url, plain_ca + " signed", jwks_url=jwks, signed=False),
              location("/b/", url, plain_ca, jwks_url=jwks))
    token = "opaque-" + uuid.uuid4().hex
    r = httpd.get("/a/index.html", token=token)
    assert r.status_code == 200, httpd.error_log()
    r = httpd.get("/b/index.html", token=token)
    assert r.status_code == 503
    assert calls(faulty, "ok") == 2
    assert re.search(r"OT0002: .*unsigned answer", httpd.error_log())


def test_jwks_url_holding_the_trust_marker_does_not_take_keys_fetched_without_verifying(
        httpd, faulty):
    """The keys a process caches are named by the JWKS URL and how the location trusts TLS
    (offtok_jwks_key: "URL#offtok-trust=noverify" for keys fetched with OfftokSSLVerify Off).
    A location that verifies, with the system's CAs, and whose OfftokJWKSURL is that very text
    (a fragment is never fetched) must not verify with the keys fetched without verifying: the
    logout handler here cannot fetch them itself (503); with the unverified ones it would have
    judged the badly signed logout token (400)."""
    httpd.allow_errors(r"OT0102")
    jwks = faulty.url_for("jwks")
    lax = f"""
<Location "/lax/">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {faulty.url_for("signed")}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokSSLVerify Off
    OfftokIssuer {FAULTY_ISSUER}
    OfftokJWKSURL {jwks}
    OfftokSignedAnswers On
    Require valid-user
</Location>
<Location "/logout">
    SetHandler offtok-backchannel-logout
    OfftokIssuer {FAULTY_ISSUER}
    OfftokClientID rs-client
    OfftokJWKSURL {jwks}#offtok-trust=noverify
    Require ip 127.0.0.1
</Location>
"""
    pages(httpd, "lax")
    httpd.start(lax, servers=1)
    assert httpd.get("/lax/index.html", token="opaque-" + uuid.uuid4().hex).status_code == 200
    assert_logout_cannot_fetch_keys(httpd)
