"""What a first sight of a Keycloak-typed JWT (header typ JWT or none, OfftokAccessTokens Local
with OfftokJWKSURL, so that the keys held are used before the payload is peeked at) costs in
signature checks, against the Keycloak-shaped stand-in (stubs/keycloak.py: one RS256 key with a
kid, one Ed25519 key).

The checks are counted by an LD_PRELOAD shim (fixtures/sigcount.c) that notes every
EVP_PKEY_verify, EVP_DigestVerify and cjose_jws_verify called from mod_offtok itself. A token
costs at most the checks the peek-first path made: a forgery with the kid of a held key one
(never one more in the flood check, OT0400), a kid-less token none before the peek says it is an
access token. One prefork child, so that the keys it holds are the ones every request sees.
"""
import os
import shutil
import subprocess

import pytest
import requests

from test_local import STATUS, local, prefork_start, signed


@pytest.fixture(scope="module")
def sigcount_so(workdir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the signature-counting shim")
    out = os.path.join(workdir, "sigcount")
    os.makedirs(out, mode=0o755, exist_ok=True)
    so = os.path.join(out, "sigcount.so")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "sigcount.c")
    subprocess.run([cc, "-shared", "-fPIC", "-o", so, src, "-ldl"], check=True)
    os.chmod(so, 0o755)
    return so


@pytest.fixture
def checks(workdir, sigcount_so, monkeypatch, request):
    """A function giving the signature checks mod_offtok made so far (the shim preloaded)."""
    where = os.path.join(workdir, "sigcount", request.node.name)
    os.makedirs(where, exist_ok=True)
    os.chmod(where, 0o777)                  # httpd's children write here
    path = os.path.join(where, "count")
    if os.path.exists(path):
        os.unlink(path)
    before = os.environ.get("LD_PRELOAD")
    monkeypatch.setenv("LD_PRELOAD", f"{before} {sigcount_so}" if before else sigcount_so)
    monkeypatch.setenv("OFFTOK_SIGCOUNT_FILE", path)
    return lambda: os.path.getsize(path) if os.path.exists(path) else 0


def start(httpd, keycloak):
    prefork_start(httpd, local(keycloak, OfftokJWKSURL=keycloak.jwks_url) + STATUS, 1)


def test_the_shim_counts_the_checks_of_a_first_sight(httpd, keycloak, checks):
    """A real access token costs one check, then none (the kept verdict); a forged one one."""
    start(httpd, keycloak)
    token = signed(keycloak)
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert checks() == 1
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert checks() == 1
    assert httpd.get("/cgi/env", token=signed(keycloak, forge="bad_signature")).status_code == 401
    assert checks() == 2
    assert "OT0604" in httpd.error_log()


@pytest.mark.parametrize("forge", ["bad_signature", None])
def test_a_jwt_typed_offline_costs_one_check(httpd, keycloak, checks, forge):
    """A typ Offline JWT with the kid of a held key is not an access token: the first sight's
    check is the only one. Forged, the flood check refuses it (OT0400) from that verdict
    without checking it again and without the issuer; signed, the issuer is asked."""
    start(httpd, keycloak)
    assert httpd.get("/cgi/env", token=signed(keycloak)).status_code == 200   # keys held
    keycloak.reset_counts()
    before = checks()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge=forge, typ="Offline"))
    assert r.status_code == 401
    assert checks() - before == 1, "a token not judged here was checked twice"
    if forge:
        assert keycloak.introspection_count() == 0
        assert "OT0400" in httpd.error_log()
    else:
        assert keycloak.introspection_count() == 1
        assert "OT0400" not in httpd.error_log()
    assert "OT0604" not in httpd.error_log()


@pytest.mark.parametrize("typ", ["Bearer", "Offline"])
def test_a_kid_less_forgery_costs_what_the_peek_first_path_did(httpd, keycloak, checks, typ):
    """Without a kid, a failed check with the keys held decides nothing (a key fetched again
    may verify it), so the first sight does not check it: an access token is checked once with
    each RSA key of the set (one, more after another test's rotation) before the issuer is
    asked, once more each if the keys were fetched again; any other typ is never checked (the
    flood check needs a kid)."""
    start(httpd, keycloak)
    assert httpd.get("/cgi/env", token=signed(keycloak)).status_code == 200   # keys held
    jwks = requests.get(keycloak.jwks_url, verify=keycloak.ca_file, timeout=10).json()
    rsa_keys = sum(1 for key in jwks["keys"] if key["kty"] == "RSA")
    assert rsa_keys >= 1
    fetches = keycloak.fetch_counts()["jwks"]
    keycloak.reset_counts()
    before = checks()
    r = httpd.get("/cgi/env", token=signed(keycloak, forge="bad_signature",
                                           header={"alg": "RS256", "typ": "JWT"}, typ=typ))
    assert r.status_code == 401
    assert keycloak.introspection_count() == 1
    fetched = keycloak.fetch_counts()["jwks"] - fetches
    expected = rsa_keys * (1 + fetched) if typ == "Bearer" else 0
    assert checks() - before == expected, (typ, rsa_keys, fetched)
