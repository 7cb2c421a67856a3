"""The size of the DPoP replay table (OfftokDPoPReplaySize): a full table answers 503 and never
evicts a live proof; a larger one takes the same load; a restart with another size keeps the
proofs already seen. Tokens from oidc-provider (its dPoP feature), proofs made here with a real
key (tests/integration/dpop.py)."""
import hashlib

import pytest
import requests

from dpop import DPoPKey
from httpd import protected

PAGE = "/protected/index.html"
# More proofs than the small table (1024 slots) can hold.
PROOFS = 1300


@pytest.fixture
def key():
    return DPoPKey()


@pytest.fixture
def bound(oidc, key):
    return oidc.mint_access(sub="dpop-user", jkt=key.jkt)


def send(httpd, session, token, proof):
    return session.get(httpd.url(PAGE), timeout=30, allow_redirects=False,
                       headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def fresh_proofs(httpd, session, key, token, count, stop_at_503=True):
    """Send count fresh proofs; (accepted proofs, the first 503 or None)."""
    accepted, full = [], None
    for _ in range(count):
        proof = key.proof("GET", httpd.url(PAGE), token)
        r = send(httpd, session, token, proof)
        if r.status_code == 200:
            accepted.append(proof)
        else:
            assert r.status_code == 503, (r.status_code, r.headers)
            full = full or r
            if stop_at_503:
                break
    return accepted, full


def test_a_small_table_fills_answers_503_and_evicts_nothing(httpd, oidc, key, bound):
    httpd.allow_errors(r"OT0704")
    httpd.start(protected("/protected/", oidc), server="OfftokDPoPReplaySize 1024\n")
    with requests.Session() as s:
        accepted, full = fresh_proofs(httpd, s, key, bound, PROOFS)
        assert full is not None, "1024 slots took %d proofs" % len(accepted)
        assert "Retry-After" in full.headers
        assert len(accepted) <= 1024
        assert "OT0704: cannot record a DPoP proof (the table of proofs is full)" \
            in httpd.error_log()
        # Every proof accepted is still in the table: each is refused as a replay, never
        # accepted a second time.
        for proof in accepted:
            assert send(httpd, s, bound, proof).status_code == 401


def test_a_larger_table_takes_the_same_proofs(httpd, oidc, key, bound):
    httpd.start(protected("/protected/", oidc), server="OfftokDPoPReplaySize 8192\n")
    with requests.Session() as s:
        accepted, full = fresh_proofs(httpd, s, key, bound, PROOFS)
    assert full is None
    assert len(accepted) == PROOFS
    assert "OT0704" not in httpd.error_log()


def test_a_restart_with_another_size_keeps_the_proofs_seen(httpd, oidc, key, bound):
    site = protected("/protected/", oidc)
    httpd.start(site, server="OfftokDPoPReplaySize 1024\n")
    with requests.Session() as s:
        seen, _ = fresh_proofs(httpd, s, key, bound, 20)
    assert len(seen) == 20
    httpd.render(site, server="OfftokDPoPReplaySize 4096\n")
    httpd.graceful()
    assert "OT0800: the table of DPoP proofs now has 4096 slots (was 1024)" in httpd.error_log()
    with requests.Session() as s:
        for proof in seen:
            assert send(httpd, s, bound, proof).status_code == 401
        # The new table holds more than the old one could.
        accepted, full = fresh_proofs(httpd, s, key, bound, PROOFS)
    assert full is None and len(accepted) == PROOFS


@pytest.mark.parametrize("value", ["1000", "67108865", "64k", "-1", ""])
def test_replay_size_is_checked_when_read(httpd, oidc, value):
    code, out = httpd.configtest(protected("/protected/", oidc),
                                 server=f"OfftokDPoPReplaySize {value}\n")
    assert code != 0
    assert "OfftokDPoPReplaySize" in out


def test_replay_size_is_server_wide(httpd, oidc):
    code, out = httpd.configtest(protected("/protected/", oidc)
                                 + "<VirtualHost *:80>\nOfftokDPoPReplaySize 4096\n"
                                 "</VirtualHost>\n")
    assert code != 0
    assert "OfftokDPoPReplaySize" in out


def replay_home(jti, htu, slots):
    """Where the table homed a proof before its home was keyed: the first four bytes of its
    replay key (SHA-256 over jti, a NUL and the normalised htu), modulo the table's slots."""
    digest = hashlib.sha256(jti.encode() + b"\0" + htu.encode()).digest()
    return int.from_bytes(digest[:4], "big") % slots


def test_a_client_cannot_aim_its_proofs_at_one_window(httpd, oidc, key, bound):
    """A client picks its proofs' jti: proofs ground to share one (unkeyed) home slot must not
    fill that window, or a few hundred of one client's requests would make the proofs of every
    other client homed there answer 503. The table (1024 slots) stays far from full."""
    httpd.allow_errors(r"OT0704")
    httpd.start(protected("/protected/", oidc), server="OfftokDPoPReplaySize 1024\n")
    url = httpd.url(PAGE)
    assert url.startswith("http://127.0.0.1:") and url.endswith(PAGE)   # htu as normalised
    ground, n = [], 0
    while len(ground) < 300:
        n += 1
        jti = "aim-%d" % n
        if replay_home(jti, url, 1024) == 5:
            ground.append(jti)
    with requests.Session() as s:
        for jti in ground:
            r = send(httpd, s, bound, key.proof("GET", url, bound, jti=jti))
            assert r.status_code == 200, (jti, r.status_code)
    assert "OT0704" not in httpd.error_log()
