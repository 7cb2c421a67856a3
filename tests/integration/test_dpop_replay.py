"""The size of the DPoP replay table (OfftokDPoPReplaySize): a full table answers 503 and never
evicts a live proof; a larger one takes the same load; a full restart with another size keeps the
proofs already seen, and a graceful one keeps the table itself (the old generation's processes
still use it). Tokens from oidc-provider (its dPoP feature), proofs made here with a real key
(tests/integration/dpop.py)."""
import hashlib
import os
import re
import signal
import socket
import time

import pytest
import requests

from dpop import bound, key  # noqa: F401 (fixtures)
from httpd import MODDIR, protected, wait_until

PAGE = "/protected/index.html"
# More proofs than the small table (1024 slots) can hold.
PROOFS = 1300


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


def full_restart(httpd):
    """apachectl restart: SIGHUP to the parent, which ends every child before it reads the
    configuration again; wait for the new generation.

    The children get SIGHUP too and close their workers' sockets at once (close_worker_sockets),
    which races with a worker still finishing the request the test has just had answered: the
    child's main thread then crashes in apr_os_sock_get (an httpd race, see Httpd.stop; seen
    here as "exit signal Segmentation fault" about once in ten runs, the core showing no frame
    of the module). The test's clients are done when this is called, so a moment's pause lets
    the workers finish and hand their connections back before the signal."""
    before = httpd.error_log().count("resuming normal operations")
    time.sleep(0.5)
    os.kill(httpd.proc.pid, signal.SIGHUP)
    wait_until(lambda: httpd.error_log().count("resuming normal operations") > before,
               timeout=15, what="restart")
    wait_until(httpd._answers, timeout=10, what="httpd to answer after the restart")


def test_a_restart_with_another_size_keeps_the_proofs_seen(httpd, oidc, key, bound):
    site = protected("/protected/", oidc)
    httpd.start(site, server="OfftokDPoPReplaySize 1024\n")
    with requests.Session() as s:
        seen, _ = fresh_proofs(httpd, s, key, bound, 20)
    assert len(seen) == 20
    httpd.render(site, server="OfftokDPoPReplaySize 4096\n")
    full_restart(httpd)
    assert "OT0800: the table of DPoP proofs now has 4096 slots (was 1024)" in httpd.error_log()
    with requests.Session() as s:
        for proof in seen:
            assert send(httpd, s, bound, proof).status_code == 401
        # The new table holds more than the old one could.
        accepted, full = fresh_proofs(httpd, s, key, bound, PROOFS)
    assert full is None and len(accepted) == PROOFS


def test_a_full_restart_to_a_table_too_small_for_the_proofs_seen_keeps_the_table(httpd, oidc, key,
                                                                                bound):
    """A full restart to a size that cannot hold the live proofs would drop some of them, and
    each dropped one could be used once more, until its iat is OfftokDPoPMaxAge old, as soon as
    other entries lapse and leave room: the table is kept at its size instead (OT0812), and every
    proof seen stays refused. 100 proofs lapse 5 s after they are sent (iat 596 s old, a max age
    of 600, no skew), 1000 stay live for 10 minutes: a proof refused here is refused as a
    replay, neither as too old nor for want of room."""
    site = protected("/protected/", oidc)
    server = "OfftokDPoPMaxAge 600\nOfftokClockSkew 0\n"
    httpd.start(site, server=server + "OfftokDPoPReplaySize 4096\n")
    url = httpd.url(PAGE)
    with requests.Session() as s:
        for _ in range(100):
            proof = key.proof("GET", url, bound, iat=int(time.time()) - 596)
            assert send(httpd, s, bound, proof).status_code == 200
        lapsed = time.time() + 6
        seen, full = fresh_proofs(httpd, s, key, bound, 1000)
    assert full is None and len(seen) == 1000
    httpd.render(site, server=server + "OfftokDPoPReplaySize 1024\n")
    full_restart(httpd)
    log = httpd.error_log()
    assert re.search(r"OT0812: OfftokDPoPReplaySize 1024 cannot hold the proofs seen before "
                     r"the restart \(\d+ did not fit\); the table of DPoP proofs keeps its 4096 "
                     r"slots, so that none of them is accepted again", log), log[-2000:]
    assert "OT0800" not in log
    time.sleep(max(0.0, lapsed - time.time()))
    with requests.Session() as s:
        again = [send(httpd, s, bound, proof).status_code for proof in seen]
    assert again.count(401) == len(seen), {code: again.count(code) for code in set(again)}


@pytest.mark.parametrize("restart", ["graceful", "full"])
def test_a_restart_to_a_longer_max_age_keeps_the_proofs_seen_as_long(httpd, oidc, key, bound,
                                                                     restart):
    """A proof's entry lapses when the proof stops passing: iat + OfftokDPoPMaxAge +
    OfftokClockSkew + 1 s as they were when it was recorded. A restart that lengthens them keeps
    every live entry the difference longer (OT0813): else a proof seen before the restart could
    be used once more after its entry lapsed, its iat still young enough for the new max age.
    The proof here is 55 s old when used, under a max age of 60 s and no skew: its entry lapses
    6 s later; after a restart to 600 s it is still refused then."""
    site = protected("/protected/", oidc)
    skew = "OfftokClockSkew 0\n"
    httpd.start(site, server=skew + "OfftokDPoPMaxAge 60\n")
    iat = int(time.time()) - 55
    proof = key.proof("GET", httpd.url(PAGE), bound, iat=iat)
    with requests.Session() as s:
        assert send(httpd, s, bound, proof).status_code == 200
    httpd.render(site, server=skew + "OfftokDPoPMaxAge 600\n")
    if restart == "graceful":
        httpd.graceful()
    else:
        full_restart(httpd)
    # The longest of every section's values (the main server sets both: the defaults are in
    # effect nowhere).
    assert "OT0813: a DPoP proof may now pass for up to 601 s (OfftokDPoPMaxAge + " \
        "OfftokClockSkew + 1, was 61 s): the 1 proofs seen before the restart are kept 540 s " \
        "longer" in httpd.error_log()
    time.sleep(max(0.0, iat + 62 - time.time()))       # the entry's first end has passed
    with requests.Session() as s:
        assert send(httpd, s, bound, proof).status_code == 401
    assert "OT0703: DPoP proof refused: its jti was used before (a replay)" in httpd.error_log()


class Held:
    """A keep-alive connection of its own (no reconnecting): each request is answered by the
    process that accepted the connection. X-Conn names its requests in the pids log."""

    def __init__(self, httpd, name):
        self.httpd, self.name, self.sent = httpd, name, 0
        self.sock = socket.create_connection(("127.0.0.1", httpd.port), timeout=30)
        self.file = self.sock.makefile("rb")

    def get(self, token, proof):
        self.sent += 1
        self.sock.sendall((f"GET {PAGE} HTTP/1.1\r\nHost: 127.0.0.1:{self.httpd.port}\r\n"
                           f"Authorization: DPoP {token}\r\nDPoP: {proof}\r\n"
                           f"X-Conn: {self.name}-{self.sent}\r\n\r\n").encode())
        status = self.file.readline().split()
        assert len(status) >= 2, f"connection {self.name} closed before request {self.sent}"
        length = 0
        for line in iter(self.file.readline, b"\r\n"):
            assert line, f"connection {self.name} closed in an answer's header"
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        self.file.read(length)
        return int(status[1])

    def close(self):
        self.file.close()
        self.sock.close()


# The process that answered each request, by its X-Conn ("-" for the others).
PIDS = 'LogFormat "%P %{X-Conn}i %>s" pids\nCustomLog "logs/pids.log" pids\n'


def pids(httpd):
    with open(os.path.join(httpd.root, "logs", "pids.log")) as f:
        return {mark: int(pid) for pid, mark, _ in (line.split() for line in f) if mark != "-"}


STATUS = (f"LoadModule status_module {MODDIR}/mod_status.so\n"
          "<Location /server-status>\n    SetHandler server-status\n</Location>\n")


def keeping_alive(httpd):
    """How many processes wait for a kept-alive connection's next request (K): they set K just
    before they look whether they were told to stop, so a graceful restart after it lets them
    read one more request."""
    text = requests.get(httpd.url("/server-status?auto"), timeout=30).text
    board = [line for line in text.splitlines() if line.startswith("Scoreboard:")]
    return board[0].count("K") if board else 0


def logged(httpd, *marks):
    """The pids log once it names every one of marks, else None."""
    got = pids(httpd)
    return got if set(marks) <= set(got) else None


def send_new(httpd, token, proof, name):
    """On a new connection (a process of the current generation), named name in the pids log."""
    return requests.get(httpd.url(PAGE), timeout=30, allow_redirects=False,
                        headers={"Authorization": f"DPoP {token}", "DPoP": proof,
                                 "X-Conn": name, "Connection": "close"}).status_code


def test_a_graceful_restart_keeps_the_table_the_old_processes_use(httpd, oidc, key, bound):
    """After a graceful restart the previous generation's processes finish the requests they
    hold, with the table they were given: a table of the new size would take a proof once in
    each generation. prefork, 4 processes: two connections are held open across the restart by
    processes of the old generation, and each sends one more request after it (prefork ends a
    kept-alive connection after the request it was waiting for when told to stop)."""
    httpd.allow_errors(r"AH00161: server reached MaxRequestWorkers")
    site = protected("/protected/", oidc)
    server = "KeepAliveTimeout 60\n" + PIDS + STATUS
    httpd.start(site, server=server + "OfftokDPoPReplaySize 1024\n", mpm="prefork", servers=4)
    url = httpd.url(PAGE)
    a, b = Held(httpd, "a"), Held(httpd, "b")
    try:
        assert a.get(bound, key.proof("GET", url, bound)) == 200
        assert b.get(bound, key.proof("GET", url, bound)) == 200
        wait_until(lambda: keeping_alive(httpd) >= 2, what="both processes to keep alive")
        httpd.render(site, server=server + "OfftokDPoPReplaySize 4096\n", mpm="prefork",
                     servers=4)
        httpd.graceful()
        # Used first by an old process, then sent to a new one: a replay.
        first_old = key.proof("GET", url, bound)
        assert a.get(bound, first_old) == 200
        assert send_new(httpd, bound, first_old, "new-1") == 401
        # Used first by a new process, then sent to an old one: a replay.
        first_new = key.proof("GET", url, bound)
        assert send_new(httpd, bound, first_new, "new-2") == 200
        assert b.get(bound, first_new) == 401
    finally:
        a.close()
        b.close()
    # A request is logged after its answer is sent: wait for the last ones.
    seen = wait_until(lambda: logged(httpd, "a-2", "b-2", "new-2"), what="the pids log")
    assert seen["a-1"] == seen["a-2"] and seen["b-1"] == seen["b-2"], seen
    assert {seen["new-1"], seen["new-2"]}.isdisjoint({seen["a-1"], seen["b-1"]}), seen
    log = httpd.error_log()
    assert ("OT0810: OfftokDPoPReplaySize 4096 takes effect at the next full restart; the table "
            "of DPoP proofs keeps its 1024 slots across a graceful restart") in log
    assert "OT0800" not in log
    # A full restart ends the old processes first: the new size, and the proofs seen kept.
    full_restart(httpd)
    assert "OT0800: the table of DPoP proofs now has 4096 slots (was 1024)" in httpd.error_log()
    for proof in (first_old, first_new):
        assert send_new(httpd, bound, proof, "after") == 401


def test_a_graceful_restart_to_a_shorter_max_age_keeps_the_longer_one(httpd, oidc, key, bound):
    """A graceful restart that shortens OfftokDPoPMaxAge: a process of the previous generation
    still finishes a kept-alive connection with the old, longer max age, so a proof the new
    generation recorded for the short one must stay refused there for the long one. prefork, a
    connection held open across the restart (as above); the new generation keeps every proof
    for the longer life until a full restart, and says so (OT0815)."""
    httpd.allow_errors(r"AH00161: server reached MaxRequestWorkers")
    site = protected("/protected/", oidc)
    server = "KeepAliveTimeout 60\nOfftokClockSkew 0\n" + PIDS + STATUS
    httpd.start(site, server=server + "OfftokDPoPMaxAge 60\n", mpm="prefork", servers=4)
    url = httpd.url(PAGE)
    held = Held(httpd, "a")
    try:
        assert held.get(bound, key.proof("GET", url, bound)) == 200
        wait_until(lambda: keeping_alive(httpd) >= 1, what="the process to keep alive")
        httpd.render(site, server=server + "OfftokDPoPMaxAge 1\n", mpm="prefork", servers=4)
        httpd.graceful()
        # Recorded by a new process, which would keep it 2 s (a fresh proof until one is young
        # enough when it arrives: the max age is 1 s) ...
        deadline = time.monotonic() + 20
        proof = key.proof("GET", url, bound)
        while send_new(httpd, bound, proof, "new-1") != 200:
            assert time.monotonic() < deadline, "no proof passed the 1 s max age"
            proof = key.proof("GET", url, bound)
        time.sleep(3)
        assert send_new(httpd, bound, proof, "new-2") == 401       # too old there now
        # ... and sent to the old process, whose max age is still 60 s: a replay.
        assert held.get(bound, proof) == 401
    finally:
        held.close()
    seen = wait_until(lambda: logged(httpd, "a-2", "new-2"), what="the pids log")
    assert seen["a-1"] == seen["a-2"] and seen["new-1"] != seen["a-1"], seen
    assert "OT0703: DPoP proof refused: its jti was used before (a replay)" in httpd.error_log()
    assert "OT0815: a DPoP proof passes for up to 2 s now (OfftokDPoPMaxAge + OfftokClockSkew " \
        "+ 1, was 61 s); the table of DPoP proofs keeps every proof 61 s until the next full " \
        "restart" in httpd.error_log()


def test_a_graceful_restart_of_event_keeps_the_size_until_a_full_one(httpd, oidc, key, bound):
    """The same under the event MPM (the default here): the graceful restart keeps the table and
    its proofs, and tells the admin; a full restart applies the size."""
    site = protected("/protected/", oidc)
    httpd.start(site, server="OfftokDPoPReplaySize 2048\n")
    with requests.Session() as s:
        seen, _ = fresh_proofs(httpd, s, key, bound, 10)
    httpd.render(site, server="OfftokDPoPReplaySize 8192\n")
    httpd.graceful()
    assert "OT0810: OfftokDPoPReplaySize 8192 takes effect at the next full restart; the table " \
        "of DPoP proofs keeps its 2048 slots" in httpd.error_log()
    assert "OT0800" not in httpd.error_log()
    with requests.Session() as s:
        assert all(send(httpd, s, bound, proof).status_code == 401 for proof in seen)
    full_restart(httpd)
    assert "OT0800: the table of DPoP proofs now has 8192 slots (was 2048)" in httpd.error_log()
    with requests.Session() as s:
        assert all(send(httpd, s, bound, proof).status_code == 401 for proof in seen)


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
