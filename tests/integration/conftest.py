"""Fixtures of the integration tests: the issuers, a proxied back end, and a fresh httpd per test.

The issuers and the back end run for the whole session; every test gets its own httpd, started
from the configuration it writes, and fails if httpd logged an error it did not expect.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httpd import Httpd, free_port, wait_until  # noqa: E402
from issuers import FaultyIssuer, KeycloakStandin, OidcIssuer  # noqa: E402
from pki import make_pki  # noqa: E402


@pytest.fixture(scope="session")
def workdir():
    """A directory httpd's unprivileged children can read (pytest's own is private to root)."""
    base = os.environ.get("OFFTOK_TEST_TMPDIR")
    if base:
        os.makedirs(base, mode=0o755, exist_ok=True)
    path = tempfile.mkdtemp(prefix="offtok-it-", dir=base)
    os.chmod(path, 0o755)
    yield path
    if not os.environ.get("OFFTOK_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir):
    pki = make_pki(os.path.join(workdir, "pki"))
    os.chmod(pki.dirpath, 0o755)
    for path in (pki.ca_file, pki.unknown_ca_file):
        os.chmod(path, 0o644)
    return pki


@pytest.fixture(scope="session")
def oidc(workdir, pki):
    """oidc-provider 8: a real OpenID Provider with opaque tokens."""
    with OidcIssuer(os.path.join(workdir, "oidc"), pki) as op:
        yield op


@pytest.fixture(scope="session")
def keycloak(workdir, pki):
    """The Keycloak-shaped stand-in: JWT tokens, offline tokens without exp, hint rules."""
    with KeycloakStandin(os.path.join(workdir, "keycloak"), pki) as kc:
        yield kc


@pytest.fixture(scope="session")
def faulty(workdir, pki):
    """The fault-injecting issuer (the fault is chosen by the URL path)."""
    with FaultyIssuer(os.path.join(workdir, "faulty"), pki) as stub:
        yield stub


@pytest.fixture(scope="session")
def backend():
    """A proxied back end that answers with the request headers it received."""
    port = free_port()
    script = os.path.join(os.path.dirname(__file__), "fixtures", "echo_backend.py")
    proc = subprocess.Popen(["/usr/bin/python3", script, str(port)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"READY"
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def httpd(workdir, pki, request):
    """A fresh httpd for this test; call .start(config) yourself."""
    # Short (unix socket paths are limited to 108 bytes) and still unique.
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:40] + "-" + digest
    root = os.path.join(workdir, "httpd", name)
    shutil.rmtree(root, ignore_errors=True)
    server = Httpd(root, ca_file=pki.ca_file)
    yield server
    server.stop()
    errors = server.unexpected_errors()
    assert not errors, "unexpected lines in httpd's error log:\n" + "\n".join(errors)
