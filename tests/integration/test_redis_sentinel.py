"""Redis as production runs it: Sentinel failover, ACL users, replay tables shared by every node,
and rediss:// where this build cannot speak TLS.

Real redis-server and redis-sentinel processes of the test's own on loopback ports (a master, a
replica, three sentinels with down-after-milliseconds 1000), two httpd nodes, and the
Keycloak-shaped stand-in (tests/integration/stubs, via issuers.py) as issuer: its introspection
count tells whether a node asked it, and it signs the logout tokens and admin actions pushed.
"""
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from httpd import free_port, wait_until
from test_redis import (OUTAGE, RedisServer, _reply, caught_up, get, module_with_redis,  # noqa: F401
                        node_b, post_admin, post_logout, redis, redis_key, refused_within,
                        shared, site, statuses)

REDIS_SENTINEL = shutil.which("redis-sentinel")
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")
MASTER = "offtok-master"
# A failover legitimately logs the loss of the old master (OT0200) on every child.
FAILOVER = OUTAGE


# ---- a master, a replica, three sentinels ------------------------------------------------------

class Replica(RedisServer):
    def __init__(self, root, master_port):
        super().__init__(root)
        self.master_port = master_port

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--replicaof", "127.0.0.1", str(self.master_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, timeout=30, what="the replica to answer")


class Sentinel(RedisServer):
    def __init__(self, root, master_port):
        super().__init__(root)
        self.conf = os.path.join(root, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {root}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 3000\n"
                    f"sentinel parallel-syncs {MASTER} 1\n")

    def start(self):
        self.proc = subprocess.Popen([REDIS_SENTINEL, self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, timeout=30, what="redis-sentinel to answer")

    def master_port(self):
        addr = self.command("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(addr[1]) if addr else None


class SentinelSet:
    def __init__(self, root):
        self.master = RedisServer(os.path.join(root, "master"))
        self.replica = Replica(os.path.join(root, "replica"), self.master.port)
        self.sentinels = [Sentinel(os.path.join(root, f"sentinel{i}"), self.master.port)
                          for i in range(3)]

    def start(self):
        self.master.start()
        self.replica.start()
        wait_until(lambda: self.master.command("ROLE")[2], timeout=15,
                   what="the replica to attach")
        for s in self.sentinels:
            s.start()
        wait_until(self._ready, timeout=20, what="the sentinels to know each other")

    def _ready(self):
        for s in self.sentinels:
            info = s.command("SENTINEL", "master", MASTER)
            fields = dict(zip(info[::2], info[1::2]))
            if int(fields[b"num-other-sentinels"]) < 2 or int(fields[b"num-slaves"]) < 1:
                return False
        return True

    def url(self):
        return "redis-sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) \
            + f"/{MASTER}"

    def stop(self):
        for s in self.sentinels + [self.replica, self.master]:
            s.stop()


@pytest.fixture
def sentinels(workdir, request):
    if REDIS_SENTINEL is None:
        pytest.skip("redis-sentinel is not installed (apt-get install redis-sentinel)")
    ss = SentinelSet(os.path.join(workdir, "sentinel", request.node.name[:40]))
    ss.start()
    yield ss
    ss.stop()


def start_nodes(a, b, keycloak, server):
    for node in (a, b):
        node.start(site(keycloak), server=server)
    for node in (a, b):
        caught_up(node)


class Load(threading.Thread):
    """Requests on both nodes, over and over, each one recorded: (node, token, start, status)."""

    def __init__(self, nodes, tokens):
        super().__init__(daemon=True)
        self.nodes, self.tokens, self.seen, self.halt = nodes, tokens, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            for node in self.nodes:
                for token in self.tokens:
                    t0 = time.monotonic()
                    self.seen.append((node, token, t0, get(node, token).status_code))
            time.sleep(0.02)

    def stop(self):
        self.halt.set()
        self.join(30)


def shared_once(a, b, keycloak, sub):
    """One try at sharing: a token validated on A, answered by B without the issuer."""
    token = keycloak.mint_access(sub=sub)
    if get(a, token).status_code != 200:
        return False
    keycloak.reset_counts()
    return get(b, token).status_code == 200 and keycloak.introspection_count() == 0


# ---- Sentinel failover ---------------------------------------------------------------------------

def test_sentinel_failover_under_load(sentinels, redis_key, httpd, node_b, keycloak):
    for node in (httpd, node_b):
        node.allow_errors(*FAILOVER)
    server = f"OfftokRedis {sentinels.url()}\nOfftokRedisKey file:{redis_key}\n"
    start_nodes(httpd, node_b, keycloak, server)
    assert f"OT0232: Redis master {MASTER} is at 127.0.0.1:{sentinels.master.port} " \
           "(found through Sentinel)" in node_b.error_log()
    kept = shared(httpd, node_b, keycloak, sub="kim", sid="sid-kim")
    during = shared(httpd, node_b, keycloak, sub="dora", sid="sid-dora")
    after = shared(httpd, node_b, keycloak, sub="abe", sid="sid-abe")
    old = sentinels.master.port
    load = Load([httpd, node_b], [kept, during, after])
    load.start()
    revoked = {}
    try:
        t_kill = time.monotonic()
        sentinels.master.stop()
        for node in (httpd, node_b):
            wait_until(lambda: node.error_log().count("OT0200") >= 2, timeout=10,
                       what="both children to notice the master is gone")
        # Pushed to A while there is no master: A applies it, B must not answer it from what it
        # cached before the loss (the issuer knows), and learns of it on the new master.
        keycloak.revoke(during)
        revoked[during] = time.monotonic()
        assert post_logout(httpd, keycloak.logout_token(sub="dora")).status_code == 200
        assert sentinels.replica.port == wait_until(
            lambda: sentinels.sentinels[0].master_port() != old
            and sentinels.sentinels[0].master_port(), timeout=30, what="the promotion")
        t_promoted = time.monotonic()
        wait_until(lambda: shared_once(httpd, node_b, keycloak, "sue"), timeout=30,
                   interval=0.1, what="the nodes to share answers through the new master")
        t_shared = time.monotonic()
    finally:
        load.stop()
    bad = [(n.port, t - t_kill) for n, tok, t, code in load.seen
           if tok in revoked and t > revoked[tok] and code == 200]
    assert not bad, f"revoked token answered 200: {bad}"
    assert any(code == 200 for _, tok, _, code in load.seen if tok is kept)
    # The push made during the failover reached node B through the new master's store.
    wait_until(lambda: "OT0204: revocation from Redis (sub dora" in node_b.error_log(),
               timeout=15, what="node B to apply the push made during the failover")
    assert b"dora" in b"".join(sentinels.replica.command(
        "ZRANGE", [n for n in sentinels.replica.command("KEYS", "offtok:*:rev")][0], 0, -1))
    for node in (httpd, node_b):
        assert statuses(node, during) == {401}
        wait_until(lambda: node.error_log().count("OT0201") >= 2, timeout=15,
                   what="both children to catch up on the new master")
    assert f"OT0232: Redis master {MASTER} is at 127.0.0.1:{sentinels.replica.port} " \
           f"(found through Sentinel; it was at 127.0.0.1:{old})" in node_b.error_log()
    # After the failover: B answers from its cache again until the push reaches it.
    keycloak.revoke(after)
    keycloak.reset_counts()
    assert statuses(node_b, after) == {200}
    assert keycloak.introspection_count() == 0, "B answers from its cache again"
    t_push = time.monotonic()
    assert post_logout(httpd, keycloak.logout_token(sub="abe")).status_code == 200
    took = refused_within(node_b, after, 5.0)
    assert statuses(httpd, after) == {401}
    assert statuses(node_b, kept) == {200}
    print(f"\nfailover: promotion {t_promoted - t_kill:.2f} s after the kill, answers shared "
          f"again {t_shared - t_kill:.2f} s after it; push on A refused on B after "
          f"{(time.monotonic() - t_push) * 1000:.0f} ms (poll: {took * 1000:.0f} ms)")


def test_switch_master_moves_a_live_subscription(sentinels, redis_key, httpd, node_b,
                                                 keycloak):
    """SENTINEL FAILOVER with the old master alive: only +switch-master (or READONLY) tells the
    nodes; pushes made after it still reach the other node."""
    for node in (httpd, node_b):
        node.allow_errors(*FAILOVER, r"OT0200: .*Sentinel switched the master")
    server = f"OfftokRedis {sentinels.url()}\nOfftokRedisKey file:{redis_key}\n"
    start_nodes(httpd, node_b, keycloak, server)
    token = shared(httpd, node_b, keycloak, sub="lou", sid="sid-lou")
    before = [n.error_log().count("OT0201") for n in (httpd, node_b)]
    assert sentinels.sentinels[0].command("SENTINEL", "FAILOVER", MASTER) == "OK"
    wait_until(lambda: sentinels.sentinels[0].master_port() == sentinels.replica.port,
               timeout=30, what="the switch")
    for node, n in zip((httpd, node_b), before):
        wait_until(lambda: node.error_log().count("OT0201") >= n + 2, timeout=30,
                   what="both children to follow the switch and catch up")
    assert "Sentinel switched the master" in httpd.error_log() + node_b.error_log()
    wait_until(lambda: shared_once(httpd, node_b, keycloak, "max"), timeout=15, interval=0.1,
               what="sharing through the new master")
    # Answers cached before the switch (a loss) are not trusted again: B asks the issuer once.
    keycloak.reset_counts()
    assert statuses(node_b, token) == {200}
    assert keycloak.introspection_count() >= 1, "node B's answer from before the switch is stale"
    keycloak.revoke(token)
    keycloak.reset_counts()
    assert statuses(node_b, token) == {200}, "node B answers from its cache until the push"
    assert keycloak.introspection_count() == 0
    assert post_logout(httpd, keycloak.logout_token(sub="lou")).status_code == 200
    refused_within(node_b, token, 5.0)
    names = sentinels.replica.command("KEYS", "offtok:*:rev")
    assert names, "the revocation was written to the new master"


def test_sentinels_gone_master_still_serves(sentinels, redis_key, httpd, node_b, keycloak):
    """The Sentinels are only asked where the master is: without them the nodes go on sharing
    through the master they found, with no loss logged."""
    server = f"OfftokRedis {sentinels.url()}\nOfftokRedisKey file:{redis_key}\n"
    start_nodes(httpd, node_b, keycloak, server)
    for s in sentinels.sentinels:
        s.stop()
    time.sleep(3)                       # several PINGs and watch attempts
    token = shared(httpd, node_b, keycloak, sub="vic", sid="sid-vic")
    keycloak.revoke(token)
    assert post_logout(httpd, keycloak.logout_token(sub="vic")).status_code == 200
    refused_within(node_b, token, 2.0)
    for node in (httpd, node_b):
        assert "OT0200" not in node.error_log()


def test_sentinel_with_an_acl_user(sentinels, redis_key, httpd, node_b, keycloak):
    """OfftokRedisUser with Sentinel: the user exists on master and replica (ACLs are not
    replicated), ROLE is allowed, and the password-less Sentinels refuse the AUTH they are sent
    but answer anyway. After a switch the nodes share through the new master as that user."""
    for node in (httpd, node_b):
        node.allow_errors(*FAILOVER)
    for data in (sentinels.master, sentinels.replica):
        data.command("ACL", "SETUSER", "offtok", "on", ">sentinel-case-pw", "~offtok:*",
                     "&offtok:*", "+@all", "-@dangerous", "+role")
    server = (f"OfftokRedis {sentinels.url()}\nOfftokRedisKey file:{redis_key}\n"
              f"OfftokRedisUser offtok\nOfftokRedisPassword sentinel-case-pw\n")
    start_nodes(httpd, node_b, keycloak, server)
    shared(httpd, node_b, keycloak, sub="acl-s")
    users = {line.split("user=")[1].split()[0] for line in
             sentinels.master.command("CLIENT", "LIST").decode().splitlines()
             if "lib-name" not in line and "cmd=client" not in line and "user=" in line}
    assert "offtok" in users
    assert sentinels.sentinels[0].command("SENTINEL", "FAILOVER", MASTER) == "OK"
    wait_until(lambda: sentinels.sentinels[0].master_port() == sentinels.replica.port,
               timeout=30, what="the switch")
    wait_until(lambda: shared_once(httpd, node_b, keycloak, "acl-t"), timeout=30, interval=0.1,
               what="sharing through the new master as the ACL user")
    assert "sentinel-case-pw" not in httpd.error_log() + node_b.error_log()


# ---- ACL users -------------------------------------------------------------------------------

def as_user(redis, user, password, *args):
    """One command on a connection authenticated as user (RedisServer.command has no AUTH)."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        f = s.makefile("rb")
        for cmd in (("AUTH", user, password), args):
            parts = [str(a).encode() for a in cmd]
            s.sendall(b"*%d\r\n" % len(parts)
                      + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            reply = _reply(f)
        return reply


@pytest.fixture
def acl_redis(redis):
    """The user the docs suggest, an admin for the test, and no default user."""
    redis.command("ACL", "SETUSER", "admin", "on", ">admin-password", "~*", "&*", "+@all")
    redis.command("ACL", "SETUSER", "offtok", "on", ">right-password", "~offtok:*",
                  "&offtok:*", "+@all", "-@dangerous", "+role")
    redis.command("ACL", "SETUSER", "default", "off")
    return redis


def acl_server(redis, key, password):
    return (f"OfftokRedis redis://127.0.0.1:{redis.port}\nOfftokRedisKey file:{key}\n"
            f"OfftokRedisUser offtok\nOfftokRedisPassword {password}\n")


def test_acl_user_with_the_right_password(acl_redis, redis_key, httpd, node_b, keycloak):
    start_nodes(httpd, node_b, keycloak, acl_server(acl_redis, redis_key, "right-password"))
    token = shared(httpd, node_b, keycloak, sub="ada", sid="sid-ada")
    keycloak.revoke(token)
    assert statuses(node_b, token) == {200}, "node B answers from its cache until the push"
    assert post_logout(httpd, keycloak.logout_token(sub="ada")).status_code == 200
    refused_within(node_b, token, 2.0)
    clients = as_user(acl_redis, "admin", "admin-password", "CLIENT", "LIST").decode()
    users = {f.split("=", 1)[1] for line in clients.splitlines() for f in line.split()
             if f.startswith("user=")}
    assert users == {"offtok", "admin"}, users


def test_acl_user_with_a_wrong_password(acl_redis, redis_key, httpd, node_b, keycloak):
    for node in (httpd, node_b):
        node.allow_errors(r"OT0200: Redis at .* unreachable \(AUTH: WRONGPASS")
        node.start(site(keycloak), server=acl_server(acl_redis, redis_key, "wrong-password"))
    for node in (httpd, node_b):
        wait_until(lambda: "OT0200" in node.error_log(), timeout=10, what="the refusal logged")
        assert "AUTH: WRONGPASS" in node.error_log()
        assert "wrong-password" not in node.error_log()
    token = keycloak.mint_access(sub="bob")
    assert get(httpd, token).status_code == 200
    keycloak.reset_counts()
    assert get(node_b, token).status_code == 200
    assert keycloak.introspection_count() == 1, "nothing shared: node B asked the issuer"
    assert as_user(acl_redis, "admin", "admin-password", "DBSIZE") == 0


# ---- replay tables across nodes ------------------------------------------------------------------

def test_logout_token_replayed_to_another_node_is_refused(redis, redis_key, httpd, node_b,
                                                          keycloak):
    start_nodes(httpd, node_b, keycloak, f"OfftokRedis redis://127.0.0.1:{redis.port}\n"
                                         f"OfftokRedisKey file:{redis_key}\n")
    jws = keycloak.logout_token(sub="cy")
    assert post_logout(httpd, jws).status_code == 200
    r = post_logout(node_b, jws)
    assert r.status_code == 400
    assert "replay" in node_b.error_log()
    names = redis.command("KEYS", "offtok:*:once:*")
    assert len(names) == 1
    assert b"cy" not in names[0] and jws.split(".")[1].encode() not in names[0]
    assert 0 < redis.command("TTL", names[0]) <= 24 * 3600


def test_admin_action_replayed_to_another_node_is_refused(redis, redis_key, httpd, node_b,
                                                          keycloak):
    start_nodes(httpd, node_b, keycloak, f"OfftokRedis redis://127.0.0.1:{redis.port}\n"
                                         f"OfftokRedisKey file:{redis_key}\n")
    jws = keycloak.admin_action("k_push_not_before", not_before=int(time.time()) - 5)
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 204
    assert post_admin(node_b, "k_push_not_before", jws).status_code == 400


def test_logout_replay_is_accepted_when_redis_cannot_be_asked(redis, redis_key, httpd, node_b,
                                                              keycloak):
    """A replayed logout only revokes again: without Redis each node's own table decides."""
    for node in (httpd, node_b):
        node.allow_errors(*OUTAGE)
    start_nodes(httpd, node_b, keycloak, f"OfftokRedis redis://127.0.0.1:{redis.port}\n"
                                         f"OfftokRedisKey file:{redis_key}\n")
    redis.stop()
    jws = keycloak.logout_token(sub="di")
    assert post_logout(httpd, jws).status_code == 200
    assert post_logout(node_b, jws).status_code == 200
    assert post_logout(node_b, jws).status_code == 400, "the local table still holds"


# ---- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("url,message", [
    ("redis-sentinel://127.0.0.1:26379", "names no master"),
    ("redis-sentinel://127.0.0.1:26379/", "no master name"),
    ("redis-sentinel://127.0.0.1:0/m", "port must be a number"),
    ("redis-sentinel://u:p@127.0.0.1/m", "OfftokRedisPassword"),
    ("redis-sentinel://127.0.0.1,/m", "an empty Sentinel address"),
    ("redis-sentinel://[::1/m", "bracketed IPv6"),
    ("redis-sentinel://a%b/m", "letters, digits"),
    ("redis-sentinel://127.0.0.1/m/x", "database"),
    ("redis-sentinel://127.0.0.1/m?x", "master's name"),
    ("redis-sentinel://" + ",".join(["127.0.0.1"] * 17) + "/m", "at most 16"),
])
def test_bad_sentinel_url_is_refused(httpd, redis_key, url, message):
    code, out = httpd.configtest("", server=f"OfftokRedis {url}\nOfftokRedisKey file:{redis_key}")
    assert code != 0
    assert message in out


def test_good_sentinel_url_passes(httpd, redis_key):
    code, out = httpd.configtest("", server=(
        "OfftokRedis redis-sentinel://10.0.0.1:26379,sentinel-2,[::1]:26380/mymaster/3\n"
        f"OfftokRedisUser offtok\nOfftokRedisPassword env:PATH\nOfftokRedisKey file:{redis_key}"))
    assert code == 0, out


def test_user_without_password_is_refused(httpd, redis_key):
    code, out = httpd.configtest("", server=f"OfftokRedis redis://127.0.0.1\nOfftokRedisUser "
                                            f"offtok\nOfftokRedisKey file:{redis_key}")
    assert code != 0
    assert "OT0230: OfftokRedisUser needs OfftokRedisPassword" in out


class TlsRedis(RedisServer):
    """redis-server speaking TLS only, with one of the pki fixture's server certificates."""

    def __init__(self, root, cert, key, ca):
        super().__init__(root)
        self.tls = ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
                    "--tls-auth-clients", "no"]

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", "0", "--tls-port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
            + self.tls, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_until(self._listens, timeout=10, what="redis-server (TLS) to listen")

    def _listens(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False


@pytest.mark.parametrize("which", ["good", "wrong_host", "unknown_ca", "expired"])
def test_rediss_verifies_the_server(which, workdir, pki, redis_key, httpd, node_b, keycloak,
                                    monkeypatch, request):
    """Only where the build has hiredis_ssl: the certificate must chain to the system's CA
    store (here the test CA, through SSL_CERT_FILE) and name the host of the URL."""
    code, out = httpd.configtest("", server=f"OfftokRedis rediss://127.0.0.1:1\n"
                                            f"OfftokRedisKey file:{redis_key}")
    if code != 0:
        pytest.skip("this build has no TLS to Redis (hiredis < 1.0 or no hiredis_ssl)")
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)
    cert, key = pki.server_pair(which)
    server = TlsRedis(os.path.join(workdir, "redis", request.node.name[:40]), cert, key,
                      pki.ca_file)
    server.start()
    request.addfinalizer(server.stop)
    lines = f"OfftokRedis rediss://127.0.0.1:{server.port}\nOfftokRedisKey file:{redis_key}\n"
    if which == "good":
        for node in (httpd, node_b):
            node.allow_errors(*OUTAGE)          # the server stops before the nodes do
        start_nodes(httpd, node_b, keycloak, lines)
        token = shared(httpd, node_b, keycloak, sub="tls", sid="sid-tls")
        keycloak.revoke(token)
        assert post_logout(httpd, keycloak.logout_token(sub="tls")).status_code == 200
        refused_within(node_b, token, 2.0)
        return
    for node in (httpd, node_b):
        node.allow_errors(r"OT0200: Redis at .* unreachable \(TLS: SSL_connect failed")
        node.start(site(keycloak), server=lines)
    for node in (httpd, node_b):
        wait_until(lambda: "OT0200" in node.error_log(), timeout=10, what="the refusal logged")
        assert "TLS: SSL_connect failed" in node.error_log()
    token = keycloak.mint_access(sub="notls")
    assert get(httpd, token).status_code == 200
    keycloak.reset_counts()
    assert get(node_b, token).status_code == 200
    assert keycloak.introspection_count() == 1, "nothing shared over an unverified link"


def test_rediss_is_refused_without_hiredis_ssl(httpd, redis_key):
    code, out = httpd.configtest("", server=f"OfftokRedis rediss://127.0.0.1:6380\n"
                                            f"OfftokRedisKey file:{redis_key}")
    if code == 0:
        pytest.skip("this build has TLS to Redis (hiredis >= 1.0 with hiredis_ssl)")
    assert "rediss:// (TLS) needs hiredis 1.0 or later with hiredis_ssl" in out
