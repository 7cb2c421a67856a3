"""Newer wins across nodes (issue 13, holes 3, 4 and 8): two httpd nodes, one redis-server of the
test's own and the Keycloak stand-in (tests/integration/stubs/keycloak.py) as issuer, whose
introspection log tells whether a node asked it and which can hold an answer back, as a slow
issuer call does. Fixtures and helpers come from test_redis.py."""
import hashlib
import hmac
import re
import struct
import threading
import time

from httpd import protected, wait_until
from test_redis import (  # noqa: F401 (fixtures)
    OUTAGE, caught_up, get, module_with_redis, node_b, post_admin, post_logout, push_locations,
    redis, redis_key, server_lines, shared, statuses)

ALWAYS = "/cgi/env"


def site(issuer):
    """/protected/ reuses answers for 300 s, /cgi/ asks the issuer every time; neither reuses an
    inactive answer (OfftokNegativeCacheTTL 0)."""
    return (protected("/protected/", issuer, OfftokIssuer=issuer.issuer, OfftokCacheTTL=300,
                      OfftokNegativeCacheTTL=0)
            + protected("/cgi/", issuer, OfftokIssuer=issuer.issuer, OfftokAlwaysValidate="On",
                        OfftokNegativeCacheTTL=0)
            + push_locations(issuer))


def start_nodes(a, b, keycloak, redis, key, **kw):
    for node in (a, b):
        node.start(site(keycloak), server=server_lines(redis, key), **kw)
    for node in (a, b):
        caught_up(node, children=kw.get("servers", 2))


def stored_answers(redis):
    """(name, value) of every answer in Redis."""
    return [(n, redis.command("GET", n)) for n in redis.command("KEYS", "*") if b":a2:" in n]


def is_active(value):
    """The active flag of a stored answer: version, MAC (32), then the entry's version, flags."""
    return bool(value[34] & 1)


def test_slow_nodes_older_positive_never_replaces_newer_inactive(redis, redis_key, httpd,
                                                                  node_b, keycloak):
    """Contract, *Cached answers shared between locations*: an inactive answer replaces every
    older positive one for the same key, in every tier, whatever OfftokNegativeCacheTTL says."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = keycloak.mint_access(sub="ada")
    keycloak.reset_counts()
    keycloak.hold_next_answer(2.5)
    slow = {}
    call = threading.Thread(target=lambda: slow.update(r=get(httpd, token)))
    call.start()
    wait_until(lambda: keycloak.introspection_count() >= 1, what="node A's call to start")
    # While node A's call is under way, the token is revoked and node B learns it.
    keycloak.revoke(token)
    assert get(node_b, token, ALWAYS).status_code == 401
    call.join()
    assert slow["r"].status_code == 200, "node A's answer was decided before the revocation"
    answers = stored_answers(redis)
    assert len(answers) == 1
    assert not is_active(answers[0][1]), "node A's older positive replaced the inactive answer"
    assert statuses(node_b, token) == {401}


def test_replayed_older_positive_in_redis_is_not_used(redis, redis_key, httpd, node_b,
                                                      keycloak):
    """Someone who can write to Redis puts node A's older (authentic) positive answer back over
    the inactive one: node B, which knows the token is inactive, does not take it."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = keycloak.mint_access(sub="bea")
    assert get(httpd, token).status_code == 200
    [(name, older)] = stored_answers(redis)
    assert is_active(older)
    keycloak.revoke(token)
    assert get(node_b, token, ALWAYS).status_code == 401
    [(_, inactive)] = stored_answers(redis)
    assert not is_active(inactive)
    redis.command("SET", name, older, "EX", 300)
    assert statuses(node_b, token) == {401}


def test_inactive_stored_with_negative_ttl_0_refuses_at_ttl_location(redis, redis_key, httpd,
                                                                     node_b, keycloak):
    """With OfftokNegativeCacheTTL 0 the inactive answer is still stored (never reused as an
    answer): the TTL location on the node that learnt it stops accepting the older positive."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = shared(httpd, node_b, keycloak, sub="cleo")
    keycloak.revoke(token)
    assert statuses(node_b, token) == {200}, "cached within the TTL"
    assert get(node_b, token, ALWAYS).status_code == 401
    keycloak.reset_counts()
    assert statuses(node_b, token, n=3) == {401}
    assert keycloak.introspection_count() == 3, "the inactive answer is not reused (TTL 0)"


def stays_refused(nodes, token, seconds=1.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for node in nodes:
            assert statuses(node, token, n=2) == {401}
        time.sleep(0.1)


def _answer_mac(k_mac, name, entry):
    """As src/ot_redis_seal.c: HMAC(k_mac, "A" version len32(name) name entry)."""
    return hmac.new(k_mac, b"A\x01" + struct.pack(">I", len(name)) + name + entry,
                    hashlib.sha256).digest()


def write_as_if_ahead(redis, key_path, seconds):
    """Rewrite the one answer in Redis as a node whose clock runs `seconds` ahead would have
    written it: fetched and drop_after moved on, sealed with OfftokRedisKey, the same lifetime
    left in Redis."""
    [(name, value)] = stored_answers(redis)
    raw = open(key_path, "rb").read()
    for key in (raw.strip(), raw):
        k_mac = hmac.new(key, b"offtok-redis-v1 mac", hashlib.sha256).digest()
        if _answer_mac(k_mac, name, value[33:]) == value[1:33]:
            break
    else:
        raise AssertionError("the test does not seal answers as the module does")
    entry = bytearray(value[33:])
    for off in (12, 20):                    # fetched, drop_after (µs, big-endian)
        t, = struct.unpack(">q", entry[off:off + 8])
        entry[off:off + 8] = struct.pack(">q", t + seconds * 1000000)
    pttl = redis.command("PTTL", name)
    redis.command("SET", name, value[:1] + _answer_mac(k_mac, name, bytes(entry)) + bytes(entry),
                  "PX", pttl)


def test_answer_from_a_node_whose_clock_runs_ahead(redis, redis_key, httpd, node_b, keycloak):
    """Contract, *Cached answers shared between locations*: answers are never taken as fetched
    later than the local clock allows; a node whose clock runs ahead (an hour here) can neither
    extend a TTL nor escape a revocation."""
    short = protected("/index.html", keycloak, OfftokIssuer=keycloak.issuer, OfftokCacheTTL=2)
    for node in (httpd, node_b):
        node.start(site(keycloak) + short, server=server_lines(redis, redis_key))
    for node in (httpd, node_b):
        caught_up(node)
    token = keycloak.mint_access(sub="eve")
    assert get(httpd, token, "/index.html").status_code == 200
    write_as_if_ahead(redis, redis_key, 3600)
    keycloak.revoke(token)
    assert get(node_b, token, "/index.html").status_code == 200, "within its 2 s"
    time.sleep(2.2)
    assert {get(node_b, token, "/index.html").status_code for _ in range(3)} == {401}, \
        "the answer outlived its TTL"
    # Pushed after the answer was fetched, however far ahead its writer's clock was.
    redis.command("FLUSHALL")
    late = keycloak.mint_access(sub="fay")
    assert get(httpd, late).status_code == 200
    write_as_if_ahead(redis, redis_key, 3600)
    keycloak.revoke(late)
    assert post_logout(httpd, keycloak.logout_token(sub="fay")).status_code == 200
    time.sleep(0.3)
    assert statuses(node_b, late, n=3) == {401}, "the answer escaped the logout"


def test_older_not_before_never_lowers_newer(redis, redis_key, httpd, node_b, keycloak):
    """Contract, offtok-keycloak-admin: a notBefore replaces the previous one only when its action
    is newer (expiration, then notBefore), on every node; a delayed older one changes nothing."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    token = shared(httpd, node_b, keycloak, sub="dora")
    now = int(time.time())
    newer = keycloak.admin_action("k_push_not_before", not_before=token.iat + 1,
                                  expiration=now + 60)
    assert post_admin(httpd, "k_push_not_before", newer).status_code == 204
    stays_refused([httpd, node_b], token, 0.3)
    # Delayed, at the other node: an older clear, then an older lower notBefore.
    for not_before in (0, token.iat - 100):
        older = keycloak.admin_action("k_push_not_before", not_before=not_before,
                                      expiration=now + 30)
        assert post_admin(node_b, "k_push_not_before", older).status_code == 204
    # The same expiration and a lower notBefore is not newer either.
    same = keycloak.admin_action("k_push_not_before", not_before=token.iat - 5,
                                 expiration=now + 60)
    assert post_admin(httpd, "k_push_not_before", same).status_code == 204
    stays_refused([httpd, node_b], token)
    # A newer clear does lower it, everywhere.
    clear = keycloak.admin_action("k_push_not_before", not_before=0, expiration=now + 90)
    assert post_admin(node_b, "k_push_not_before", clear).status_code == 204
    wait_until(lambda: statuses(httpd, token, n=2) == {200}, timeout=3,
               what="node A to take the newer clear")


def test_prefork_subscribers_under_load(redis, redis_key, httpd, node_b, keycloak):
    """Prefork children with OfftokRedis take requests while their subscriber threads allocate
    hard: every subscription is killed again and again, and each child catches up with hundreds
    of stored revocations each time (issue 13, hole 8: the subscriber thread allocates on an
    allocator of its own, never on the child's, which has no mutex under prefork). Run by
    tests/tools/sanitize under ASan; here, no child dies and nothing is let through."""
    for node in (httpd, node_b):
        node.allow_errors(r"AH00161", *OUTAGE)   # prefork: "server reached MaxRequestWorkers"
    start_nodes(httpd, node_b, keycloak, redis, redis_key, mpm="prefork", servers=3)
    for i in range(300):
        jws = keycloak.logout_token(sub=f"gone-{i}", sid=f"sid-gone-{i}")
        assert httpd.post("/offtok/backchannel-logout",
                          data={"logout_token": jws}).status_code == 200
    kept = shared(httpd, node_b, keycloak, sub="kept")
    stop = threading.Event()
    seen = []

    def load(node):
        while not stop.is_set():
            seen.append(get(node, kept).status_code)

    workers = [threading.Thread(target=load, args=(node,))
               for node in (httpd, node_b, httpd, node_b)]
    for w in workers:
        w.start()
    try:
        for _ in range(40):
            redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            time.sleep(0.1)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert seen and set(seen) == {200}
    for node in (httpd, node_b):
        assert "exit signal" not in node.error_log()
    gone = shared(httpd, node_b, keycloak, sub="last", sid="sid-last")
    keycloak.revoke(gone)
    assert httpd.post("/offtok/backchannel-logout",
                      data={"logout_token": keycloak.logout_token(sub="last")}).status_code == 200
    wait_until(lambda: statuses(node_b, gone, n=4) == {401}, timeout=3,
               what="node B to refuse the last one")


def test_revocation_values_from_redis_are_escaped_in_the_log(redis, redis_key, httpd, node_b,
                                                            keycloak):
    """A sub from a logout reaches the other nodes through Redis; they log it (OT0204, debug)
    escaped as the handler that received it logs it (OT0103), never as raw bytes."""
    start_nodes(httpd, node_b, keycloak, redis, redis_key)
    sub = "mallory\nOT0999: injected\x1b[31m"
    assert post_logout(httpd, keycloak.logout_token(sub=sub)).status_code == 200
    wait_until(lambda: "OT0204" in node_b.error_log(), timeout=3, what="node B to apply it")
    [here] = re.findall(r"OT0103: back-channel logout accepted: sub (.*), sid", httpd.error_log())
    there = set(re.findall(r"OT0204: revocation from Redis \(sub (.*) of ", node_b.error_log()))
    assert "mallory" in here and "\x1b" not in here
    assert there == {here}, "every child of node B logs it as node A's handler does"
    for log in (httpd.error_log(), node_b.error_log()):
        assert not any(line.startswith("OT0999") for line in log.splitlines())
