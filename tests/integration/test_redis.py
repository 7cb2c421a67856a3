"""Several nodes sharing answers and pushed revocations through Redis (OfftokRedis).

Two httpd nodes and one redis-server of the test's own (a loopback port, a temporary directory,
nothing saved) and the Keycloak stand-in as issuer, whose introspection count tells whether a
node asked it. Skipped when redis-server is not installed or the module has no Redis support.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from httpd import Httpd, free_port, protected, offtok_lines, wait_until

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="redis-server is not installed (apt-get install "
                                       "redis-server): the Redis tests need a real one")

LOGOUT = "/offtok/backchannel-logout"
ADMIN = "/offtok/kc-admin"
# What a Redis outage legitimately logs. The tests ask for the redis fixture first, so that it
# stops after the nodes: elsewhere, an outage is an error.
OUTAGE = (r"OT0200: Redis at .* unreachable",)


# ---- a redis-server of the test's own, and enough of RESP to look inside it ---------------------

class RedisServer:
    def __init__(self, root):
        self.dir = root
        self.port = free_port()
        self.proc = None
        os.makedirs(root, exist_ok=True)

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, timeout=10, what="redis-server to answer")

    def _answers(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def command(self, *args):
        """One command; the decoded reply (bytes for bulk strings)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            s.sendall(b"*%d\r\n" % len(parts)
                      + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            return _reply(s.makefile("rb"))


def _reply(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


@pytest.fixture(scope="module", autouse=True)
def module_with_redis(workdir, pki):
    """Skip when the module under test was built without hiredis (it refuses OfftokRedis)."""
    probe = Httpd(os.path.join(workdir, "httpd", "redis-support"), ca_file=pki.ca_file)
    code, out = probe.configtest("", server="OfftokRedis redis://127.0.0.1:1")
    if "no Redis support" in out:
        pytest.skip("this mod_offtok was built without hiredis")


@pytest.fixture
def redis(workdir, request):
    server = RedisServer(os.path.join(workdir, "redis", request.node.name[:40]))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def node_b(workdir, pki, request):
    """The second node; node A is conftest's httpd fixture."""
    root = os.path.join(workdir, "httpd", request.node.name[:40] + "-node-b")
    shutil.rmtree(root, ignore_errors=True)
    server = Httpd(root, ca_file=pki.ca_file)
    yield server
    server.stop()
    errors = server.unexpected_errors()
    assert not errors, "unexpected lines in node B's error log:\n" + "\n".join(errors)


@pytest.fixture
def redis_key(workdir):
    path = os.path.join(workdir, "redis.key")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(path, 0o600)
    return path


# ---- configuration ----------------------------------------------------------------------------

def server_lines(redis, key):
    return f"OfftokRedis redis://127.0.0.1:{redis.port}\nOfftokRedisKey file:{key}\n"


def push_locations(issuer):
    lines = offtok_lines(issuer, OfftokIssuer=issuer.issuer, OfftokJWKSURL=issuer.jwks_url)
    return "".join(f"""
<Location "{path}">
    SetHandler {handler}
    {lines}
    Require ip 127.0.0.1
</Location>
""" for path, handler in ((LOGOUT, "offtok-backchannel-logout"),
                          (ADMIN, "offtok-keycloak-admin")))


def site(issuer):
    return (protected("/protected/", issuer, OfftokIssuer=issuer.issuer, OfftokCacheTTL=300)
            + protected("/cgi/", issuer, OfftokIssuer=issuer.issuer, OfftokCacheTTL=300)
            + push_locations(issuer))


def caught_up(node, children=2, before=0):
    """Wait until every child of node has subscribed and caught up (OT0202 or OT0201)."""
    wait_until(lambda: node.error_log().count("OT0202") + node.error_log().count("OT0201")
               >= before + children, timeout=15, what="the children to subscribe to Redis")


def start_nodes(a, b, keycloak, redis, key):
    for node in (a, b):
        node.start(site(keycloak), server=server_lines(redis, key))
    for node in (a, b):
        caught_up(node)


def get(node, token, path="/protected/index.html"):
    """On a new connection each time, so that requests spread over the children."""
    return requests.get(node.url(path), timeout=15,
                        headers={"Authorization": f"Bearer {token}", "Connection": "close"})


def statuses(node, token, n=8):
    return {get(node, token).status_code for _ in range(n)}


def refused_within(node, token, seconds):
    """Poll until node refuses token on every try; the time it took."""
    t0 = time.monotonic()
    wait_until(lambda: statuses(node, token, n=4) == {401}, timeout=seconds, interval=0.02,
               what="node B to refuse the token")
    return time.monotonic() - t0


def shared(a, b, keycloak, **mint):
    """A token validated on node A, then answered by node B from Redis (the issuer not asked)."""
    token = keycloak.mint_access(**mint)
    assert get(a, token).status_code == 200
    keycloak.reset_counts()
    assert statuses(b, token) == {200}
    assert keycloak.introspection_count() == 0
    return token


def post_logout(node, jws):
    return node.post(LOGOUT, data={"logout_token": jws})


def post_admin(node, action, jws):
    return node.post(f"{ADMIN}/{action}", data=jws,
                     headers={"Content-Type": "text/plain; charset=utf-8"})


# ---- the tests --------------------------------------------------------------------------------

def test_answer_from_node_a_serves_node_b(redis, redis_key, httpd, node_b, keycloak):
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = shared(httpd, node_b, keycloak, sub="nina", username="nina")
    r = node_b.get("/cgi/env", token=token)
    assert r.status_code == 200
    assert r.json()["REMOTE_USER"] == "nina"
    assert keycloak.introspection_count() == 0
    assert "OT0205: answer found in Redis" in node_b.error_log()
    # Nothing in Redis names the token.
    names = redis.command("KEYS", "*")
    assert names and all(token.encode() not in n for n in names)
    assert all(token.encode() not in redis.command("GET", n) for n in names
               if b":a2:" in n)


def test_logout_at_node_a_refuses_at_node_b(redis, redis_key, httpd, node_b, keycloak):
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = shared(httpd, node_b, keycloak, sub="olga", sid="sid-olga")
    other = shared(httpd, node_b, keycloak, sub="pete", sid="sid-pete")
    keycloak.revoke(token)
    assert statuses(node_b, token) == {200}, "node B answers from its cache until the push"
    assert post_logout(httpd, keycloak.logout_token(sub="olga")).status_code == 200
    took = refused_within(node_b, token, 2.0)
    print(f"node B refused the token {took * 1000:.0f} ms after the logout at node A")
    assert statuses(httpd, token) == {401}
    keycloak.reset_counts()
    assert statuses(node_b, other) == {200}
    assert keycloak.introspection_count() == 0, "other answers stay cached"


def test_logout_from_a_node_without_local_is_kept_while_local_tokens_live(redis, redis_key,
                                                                           httpd, node_b,
                                                                           keycloak):
    """Attack: node A (no OfftokAccessTokens Local, default TTL) receives the back-channel logout
    and publishes it to be kept about two minutes (its longest TTL + timeout + 60 s); node B
    judges Keycloak's access tokens locally, trusting logouts to be kept for an hour. Once node
    A's time ran out, node B took the logout for expired: the next burst of logouts (anyone can
    log in and out 4,095 times) filled its table, the logout was dropped without a trace and the
    logged-out token was accepted locally again until its exp. Now node B keeps it as long as
    its own (or, when its table overflows, sends older tokens to the issuer). Against the
    Keycloak stand-in; about 2.5 minutes of waiting."""
    server = server_lines(redis, redis_key)
    httpd.start(protected("/protected/", keycloak, OfftokIssuer=keycloak.issuer)
                + push_locations(keycloak), server=server)
    node_b.start(protected("/protected/", keycloak, OfftokIssuer=keycloak.issuer,
                           OfftokAudience="rs-client", OfftokAccessTokens="Local"),
                 server=server)
    for node in (httpd, node_b):
        caught_up(node)
    token = keycloak.mint_access(sub="rita", sid="sid-rita", ttl=900)
    keycloak.reset_counts()
    assert statuses(node_b, token) == {200}
    assert keycloak.introspection_count() == 0, "judged locally at node B"
    keycloak.revoke(token)                      # Keycloak ended the session: inactive there too
    assert post_logout(httpd, keycloak.logout_token(sub="rita", sid="sid-rita")).status_code == 200
    refused_within(node_b, token, 2.0)
    time.sleep(60 + 5 + 60 + 10)                # past node A's keep
    # Exactly enough to fill node B's table (4,096 with rita's sid and sub): making room then
    # drops what has expired, and folds nothing newer into the overflow marker.
    flood = [f"flood-{i}" for i in range(4095)]
    batches = [flood[i:i + 1000] for i in range(0, len(flood), 1000)]
    probe = keycloak.mint_access(sub="probe", sid=batches[-1][-1], ttl=900)
    keycloak.revoke(probe)
    assert get(node_b, probe).status_code == 200       # not yet known as logged out
    for sids in batches:
        jws = keycloak.admin_action("k_logout", session_ids=sids)
        assert post_admin(httpd, "k_logout", jws).status_code == 204
    # Node B has applied the last one (Redis keeps the order): every logout before it too.
    wait_until(lambda: get(node_b, probe).status_code == 401, timeout=60,
               what="node B to apply the burst of logouts")
    assert statuses(node_b, token) == {401}


def test_not_before_at_node_a_refuses_at_node_b(redis, redis_key, httpd, node_b, keycloak):
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = shared(httpd, node_b, keycloak, sub="quinn")
    keycloak.revoke(token)
    assert statuses(node_b, token) == {200}
    jws = keycloak.admin_action("k_push_not_before", not_before=token.iat + 1)
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 204
    refused_within(node_b, token, 2.0)
    wait_until(lambda: time.time() >= token.iat + 1, what="the not-before to pass")
    newer = keycloak.mint_access(sub="quinn")
    assert get(node_b, newer).status_code == 200


def test_redis_outage_and_recovery(redis, redis_key, httpd, node_b, keycloak):
    for node in (httpd, node_b):
        node.allow_errors(*OUTAGE)
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    doomed = shared(httpd, node_b, keycloak, sub="rita", sid="sid-rita")
    kept = shared(httpd, node_b, keycloak, sub="sam", sid="sid-sam")
    redis.stop()
    for node in (httpd, node_b):
        wait_until(lambda: "OT0200" in node.error_log(), timeout=5, what="the outage noticed")
    # Pushed to A while Redis is away: A applies it; B does not reuse answers fetched before
    # the loss, so it asks the issuer, which knows.
    keycloak.revoke(doomed)
    assert post_logout(httpd, keycloak.logout_token(sub="rita")).status_code == 200
    for node in (httpd, node_b):
        assert statuses(node, doomed) == {401}
        assert statuses(node, kept) == {200}
    # Validated on B during the outage, then pushed to A: B learns of it once Redis is back.
    late = keycloak.mint_access(sub="tess", sid="sid-tess")
    assert get(node_b, late).status_code == 200
    keycloak.revoke(late)
    assert post_logout(httpd, keycloak.logout_token(sub="tess")).status_code == 200
    assert "OT0206: revocation not published to Redis yet" in httpd.error_log()
    redis.start()
    for node in (httpd, node_b):
        wait_until(lambda: node.error_log().count("OT0201") >= 2, timeout=15,
                   what="the children to find Redis again")
    refused_within(node_b, late, 2.0)
    assert statuses(node_b, doomed) == {401}
    assert statuses(httpd, kept) == {200}
    shared(httpd, node_b, keycloak, sub="uma")


def test_restarted_node_still_refuses_pushed_tokens(redis, redis_key, httpd, node_b,
                                                    keycloak):
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    logged_out = shared(httpd, node_b, keycloak, sub="vera", sid="sid-vera")
    too_old = shared(httpd, node_b, keycloak, sub="walt")
    node_b.stop()
    keycloak.revoke(logged_out)
    keycloak.revoke(too_old)
    assert post_logout(httpd, keycloak.logout_token(sub="vera")).status_code == 200
    jws = keycloak.admin_action("k_push_not_before", not_before=too_old.iat + 1)
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 204
    before = node_b.error_log().count("OT0202")
    node_b.start(site(keycloak), server=server_lines(redis, redis_key))
    caught_up(node_b, before=before)
    # Redis still holds node A's answers, fetched before the pushes: without what B caught up
    # with, it would serve them.
    assert statuses(node_b, logged_out) == {401}
    assert statuses(node_b, too_old) == {401}


def test_forged_value_in_redis_is_ignored(redis, redis_key, httpd, node_b, keycloak):
    node_b.allow_errors(*OUTAGE)
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = keycloak.mint_access(sub="xena", username="xena")
    assert get(httpd, token).status_code == 200
    names = [n for n in redis.command("KEYS", "*") if b":a2:" in n]
    assert len(names) == 1
    value = redis.command("GET", names[0])
    assert value.count(b"xena") >= 2
    # Someone who can write to Redis, but has no key, makes the answer name another user.
    redis.command("SET", names[0], value.replace(b"xena", b"root"), "EX", 300)
    keycloak.reset_counts()
    r = node_b.get("/cgi/env", token=token)
    assert r.status_code == 200
    assert r.json()["REMOTE_USER"] == "xena"
    assert keycloak.introspection_count() == 1, "node B asked the issuer instead"
    assert "OT0203: an answer in Redis failed its MAC check" in node_b.error_log()


# ---- configuration checks ---------------------------------------------------------------------

@pytest.mark.parametrize("server,message", [
    ("OfftokRedis redis://127.0.0.1:6379", "OT0208: OfftokRedis needs OfftokRedisKey"),
    ("OfftokRedis http://127.0.0.1:6379\nOfftokRedisKey file:{key}", "is not a redis://"),
    ("OfftokRedis redis://u:p@127.0.0.1\nOfftokRedisKey file:{key}", "OfftokRedisPassword"),
    ("OfftokRedis redis://127.0.0.1/x\nOfftokRedisKey file:{key}", "database"),
    ("OfftokRedis redis://127.0.0.1\nOfftokRedisKey a-literal-key-of-some-length",
     "env:VAR or file:PATH"),
    ("OfftokRedis redis://127.0.0.1\nOfftokRedisKey file:{short}", "shorter than 16"),
    ("OfftokRedis redis://127.0.0.1\nOfftokRedisKey env:OFFTOK_NO_SUCH_VARIABLE", "OfftokRedisKey"),
    ("<VirtualHost 127.0.0.1:80>\nOfftokRedis redis://127.0.0.1\n</VirtualHost>",
     "cannot occur within"),
    ("<Location />\nOfftokRedisPassword x\n</Location>", "not allowed in <Location>"),
])
def test_bad_redis_configuration_is_refused(httpd, redis_key, server, message):
    short = os.path.join(os.path.dirname(redis_key), "short.key")
    with open(short, "w") as f:
        f.write("too-short\n")
    code, out = httpd.configtest("", server=server.format(key=redis_key, short=short))
    assert code != 0
    assert message in out
    assert "too-short" not in out


def test_good_redis_configuration_passes(httpd, redis_key):
    code, out = httpd.configtest("", server=f"OfftokRedis redis://127.0.0.1:6390/2\n"
                                            f"OfftokRedisPassword env:PATH\n"
                                            f"OfftokRedisKey file:{redis_key}\n")
    assert code == 0, out


def test_prefork_nodes_and_a_graceful_restart(redis, redis_key, httpd, node_b, keycloak):
    """Every prefork child subscribes too; a graceful restart stops the old subscribers and the
    new children catch up, and sharing goes on."""
    for node in (httpd, node_b):
        node.allow_errors(r"AH00161")     # prefork: "server reached MaxRequestWorkers"
        node.start(site(keycloak), server=server_lines(redis, redis_key), mpm="prefork",
                   servers=3)
        caught_up(node, children=3)
    shared(httpd, node_b, keycloak, sub="yves")
    before = node_b.error_log().count("OT0202")
    node_b.graceful()
    caught_up(node_b, children=3, before=before)
    token = shared(httpd, node_b, keycloak, sub="zoe", sid="sid-zoe")
    keycloak.revoke(token)
    assert post_logout(httpd, keycloak.logout_token(sub="zoe")).status_code == 200
    refused_within(node_b, token, 2.0)
