"""Key tombstones (issue 13, hole 3, across nodes): once one node learns that a token is
inactive, the other nodes stop using the positive answer they cached themselves. Two httpd nodes,
one redis-server of the test's own and the Keycloak stand-in (tests/integration/stubs/keycloak.py)
as issuer, whose introspection count tells whether a node asked it. Fixtures and helpers come from
test_redis.py."""
import secrets
import socket
import threading

import pytest

from httpd import protected, wait_until
from test_redis import (  # noqa: F401 (fixtures)
    _reply, caught_up, get, module_with_redis, node_b, push_locations, redis, redis_key,
    server_lines, statuses)

TTL = "/protected/index.html"
ALWAYS = "/cgi/env"
KTOMB = 0x4b        # the version byte of a key tombstone (src/ot_redis.h)


def site(issuer, negative_ttl):
    """/protected/ reuses answers for 300 s, /cgi/ asks the issuer every time."""
    return (protected("/protected/", issuer, OfftokIssuer=issuer.issuer, OfftokCacheTTL=300,
                      OfftokNegativeCacheTTL=negative_ttl)
            + protected("/cgi/", issuer, OfftokIssuer=issuer.issuer, OfftokAlwaysValidate="On",
                        OfftokNegativeCacheTTL=negative_ttl)
            + push_locations(issuer))


def start_nodes(a, b, keycloak, redis, key, negative_ttl=60):
    for node in (a, b):
        node.start(site(keycloak, negative_ttl), server=server_lines(redis, key))
    for node in (a, b):
        caught_up(node)


class Listener:
    """A subscriber of the module's revocation channel that keeps every message's first byte."""

    def __init__(self, redis):
        [channel] = {n for n in redis.command("PUBSUB", "CHANNELS", "offtok:*")}
        self.sock = socket.create_connection(("127.0.0.1", redis.port), timeout=30)
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
        self.f = self.sock.makefile("rb")
        assert _reply(self.f)[0] == b"subscribe"
        self.kinds = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            while True:
                kind, _, message = _reply(self.f)
                if kind == b"message":
                    self.kinds.append(message[0])
        except (OSError, ValueError, RuntimeError, TypeError):
            pass

    def tombstones(self):
        return self.kinds.count(KTOMB)

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(redis):
    made = []
    yield lambda: made.append(Listener(redis)) or made[-1]
    for item in made:
        item.close()


def cached_on_both(a, b, keycloak, sub):
    """A token that each node has validated and holds as active in its own cache."""
    token = keycloak.mint_access(sub=sub)
    assert get(a, token).status_code == 200
    assert statuses(b, token) == {200}
    return token


@pytest.mark.parametrize("negative_ttl", [60, 0])
def test_inactive_learnt_on_one_node_refuses_cached_positive_on_another(
        redis, redis_key, httpd, node_b, keycloak, listener, negative_ttl):
    """Contract, *Cached answers shared between locations*: an inactive answer replaces every
    older positive one for the same key, in every tier (here: the other node's own shared
    memory), whatever OfftokNegativeCacheTTL says."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key, negative_ttl)
    heard = listener()
    token = cached_on_both(httpd, node_b, keycloak, sub="kai")
    keycloak.revoke(token)
    assert statuses(node_b, token, n=3) == {200}, "node B holds it within its TTL"
    # Node A's always-validate location asks, and learns that the token is inactive.
    assert get(httpd, token, ALWAYS).status_code == 401
    keycloak.reset_counts()
    wait_until(lambda: statuses(node_b, token, n=4) == {401}, timeout=2, interval=0.05,
               what="node B to refuse the token at its TTL location")
    if negative_ttl:
        assert keycloak.introspection_count() == 0, "node B refused it without asking"
    assert statuses(httpd, token, n=3) == {401}
    assert heard.tombstones() == 1


def test_made_up_tokens_publish_nothing(redis, redis_key, httpd, node_b, keycloak, listener):
    """A flood of tokens that were never active costs no message between the nodes: only an
    inactive answer that replaces a positive one in Redis is published."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key, negative_ttl=0)
    heard = listener()
    keycloak.reset_counts()
    for _ in range(60):
        made_up = "made-up-" + secrets.token_urlsafe(24)
        assert get(httpd, made_up).status_code == 401
        assert get(httpd, made_up, ALWAYS).status_code == 401
    assert keycloak.introspection_count() >= 60
    inactive = [n for n in redis.command("KEYS", "*") if b":a2:" in n]
    assert len(inactive) >= 60, "the inactive answers went to Redis"
    # The listener does hear one: a real token found inactive after it was active.
    token = cached_on_both(httpd, node_b, keycloak, sub="lou")
    keycloak.revoke(token)
    assert get(httpd, token, ALWAYS).status_code == 401
    wait_until(lambda: heard.tombstones() == 1, timeout=2, what="the one key tombstone")
    assert heard.kinds == [KTOMB], "nothing but that one was published"


def test_tombstone_missed_during_a_loss_still_refuses_after_it(redis, redis_key, httpd, node_b,
                                                               keycloak):
    """Key tombstones are not stored: a node that lost its subscription while one was published
    must not trust its older positive answers again once it has caught up. Node B's ACL user is
    denied the channels (Redis drops its subscriptions and refuses new ones) while node A learns
    that the token is inactive, then allowed again."""
    node_b.allow_errors(r"OT0200: Redis at .* unreachable")
    redis.command("ACL", "SETUSER", "node-b", "on", ">node-b-pw", "~offtok:*", "&offtok:*",
                  "+@all")
    httpd.start(site(keycloak, 60), server=server_lines(redis, redis_key))
    node_b.start(site(keycloak, 60), server=server_lines(redis, redis_key)
                 + "OfftokRedisUser node-b\nOfftokRedisPassword node-b-pw\n")
    for node in (httpd, node_b):
        caught_up(node)
    token = cached_on_both(httpd, node_b, keycloak, sub="max")
    redis.command("ACL", "SETUSER", "node-b", "resetchannels")
    wait_until(lambda: "OT0200" in node_b.error_log(), timeout=5, what="node B's loss")
    keycloak.revoke(token)
    assert get(httpd, token, ALWAYS).status_code == 401
    # Node B is asked nothing meanwhile: it would learn it from the issuer.
    redis.command("ACL", "SETUSER", "node-b", "&offtok:*")
    wait_until(lambda: node_b.error_log().count("OT0201") >= 2, timeout=15,
               what="node B's children to catch up again")
    assert "OT0241" in node_b.error_log()
    assert statuses(node_b, token) == {401}
