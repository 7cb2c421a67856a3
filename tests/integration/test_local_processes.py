"""Locally verified tokens (OfftokAccessTokens Local) held by every process: once a token has
been served by each child of a prefork server (and kept in the shared cache), a push that
revokes it, its exp, or a revocation learnt through Redis refuses it at once, in every child.

Against the Keycloak-shaped stand-in (stubs/keycloak.py: RS256 access tokens, logout tokens
and admin actions it signs); the Redis test uses test_redis.py's redis-server and second node.
Each token is first sent several times over new connections (Connection: close) to a prefork
server of two children, so that each child has served it from the shared cache; then the event,
then every request over several new connections, to every child, must be refused. These guard
any per-process shortcut in front of the shared cache (session 8 measured one, branch memo15,
and left it out: it saved 0.3 us per request).
"""
import concurrent.futures
import os
import time

import requests

from httpd import protected, wait_until
import test_redis
from test_redis import module_with_redis, node_b, redis, redis_key  # noqa: F401
from test_redis import caught_up, post_logout, push_locations, server_lines
from test_local import LOGOUT, push_not_before, pushes

CHILDREN = 2
TRIES = 12


def local(kc, path="/cgi/", **kw):
    directives = dict(OfftokIssuer=kc.issuer, OfftokAudience="rs-client",
                      OfftokAccessTokens="Local")
    directives.update(kw)
    return protected(path, kc, **directives)


def start(httpd, conf, **kw):
    """Prefork with two children, each logging its pid, so that both children are seen."""
    httpd.allow_errors(r"AH00161")    # "server reached MaxRequestWorkers"
    httpd.start('CustomLog "logs/pids.log" "%P %>s %U"\n' + conf, mpm="prefork",
                servers=CHILDREN, **kw)
    wait_until(lambda: len(httpd.child_pids()) >= CHILDREN, what="both children")


def answers(node, token, n=TRIES):
    """(status, OFFTOK_CHECK) of n requests, each on a new connection, four at a time."""
    def one(_):
        r = requests.get(node.url("/cgi/env"), timeout=15,
                         headers={"Authorization": f"Bearer {token}", "Connection": "close"})
        return r.status_code, r.json().get("OFFTOK_CHECK") if r.status_code == 200 else None

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return set(pool.map(one, range(n)))


def served_by(node):
    """The pids that answered /cgi/env so far."""
    with open(os.path.join(node.root, "logs", "pids.log")) as f:
        return {line.split()[0] for line in f if "/cgi/env" in line}


def warmed(node, token):
    """token accepted locally, by every child, several times each (shared-cache hits)."""
    wait_until(lambda: answers(node, token) == {(200, "local")}
               and len(served_by(node)) >= CHILDREN, timeout=20, what="both children to serve")
    assert answers(node, token) == {(200, "local")}


def refused_everywhere(node, token):
    assert answers(node, token, n=2 * TRIES) == {(401, None)}


def test_logout_by_sub_refuses_a_served_token_in_every_process(httpd, keycloak):
    start(httpd, local(keycloak) + pushes(keycloak))
    doomed = keycloak.mint_access(sub="proc-ada", sid="sid-proc-ada")
    spared = keycloak.mint_access(sub="proc-bob", sid="sid-proc-bob")
    for token in (doomed, spared):
        warmed(httpd, token)
    keycloak.reset_counts()
    r = httpd.post(LOGOUT, data={"logout_token": keycloak.logout_token(sub="proc-ada")})
    assert r.status_code == 200, r.text
    refused_everywhere(httpd, doomed)
    assert keycloak.introspection_count() == 0, "refused here, as a deny rule"
    assert answers(httpd, spared) == {(200, "local")}
    assert "OT0606" in httpd.error_log()


def test_not_before_push_refuses_a_served_token_in_every_process(httpd, keycloak):
    start(httpd, local(keycloak) + pushes(keycloak))
    old = keycloak.mint_access(sub="proc-cy")
    warmed(httpd, old)
    push_not_before(httpd, keycloak, keycloak.rs_client_id, 1)
    keycloak.reset_counts()
    refused_everywhere(httpd, old)
    assert keycloak.introspection_count() == 0


def test_exp_passing_refuses_a_served_token_in_every_process(httpd, keycloak):
    """The token's exp is checked on every hit of the kept entry (with no clock skew allowed
    here, so that the test need not wait for OfftokClockSkew's 30 s)."""
    start(httpd, local(keycloak, OfftokClockSkew=0))
    token = keycloak.mint_access(sub="proc-dee", ttl=8)
    exp = time.time() + 8
    warmed(httpd, token)
    assert time.time() < exp - 0.5, "the machine was too slow to warm both children in time"
    wait_until(lambda: time.time() >= exp + 1.05, timeout=10, what="the token's exp")
    keycloak.reset_counts()
    refused_everywhere(httpd, token)
    assert keycloak.introspection_count() == 0, "expired: refused here, not asked"


def test_ttl_of_this_location_applies_to_kept_entries(httpd, keycloak):
    """Two locations share the entry (same key); the one with a 2 s OfftokCacheTTL no longer
    takes it once 2 s have passed (it verifies the token again and keeps a new entry), while
    the other still does: the entry holds its fetched time, each location its TTL."""
    start(httpd, local(keycloak, OfftokCacheTTL=300)
          + local(keycloak, path="/short/", OfftokCacheTTL=2) + """
<Location "/offtok-status">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
""")
    token = keycloak.mint_access(sub="proc-eve")
    warmed(httpd, token)
    verified = httpd.get("/offtok-status").json()["local"]["verified"]
    time.sleep(2.2)
    assert answers(httpd, token) == {(200, "local")}
    assert httpd.get("/offtok-status").json()["local"]["verified"] == verified, \
        "the long TTL took the kept entry"
    r = requests.get(httpd.url("/short/index.html"), timeout=15,
                     headers={"Authorization": f"Bearer {token}", "Connection": "close"})
    assert r.status_code in (200, 404), r.status_code
    assert httpd.get("/offtok-status").json()["local"]["verified"] == verified + 1, \
        "the short TTL refused the kept entry and verified the token again"


@test_redis.pytestmark
def test_logout_through_redis_refuses_a_served_token_in_every_process(
        redis, redis_key, httpd, node_b, keycloak):
    """A logout pushed at node A reaches node B through Redis; node B's children, which had
    served the token, refuse it within the second the docs promise (2 s here)."""
    server = server_lines(redis, redis_key)
    httpd.start(protected("/protected/", keycloak, OfftokIssuer=keycloak.issuer)
                + push_locations(keycloak), server=server)
    start(node_b, local(keycloak), server=server)
    for node in (httpd, node_b):
        caught_up(node)
    doomed = keycloak.mint_access(sub="proc-fay", sid="sid-proc-fay")
    warmed(node_b, doomed)
    keycloak.reset_counts()
    assert post_logout(httpd, keycloak.logout_token(sub="proc-fay")).status_code == 200
    wait_until(lambda: answers(node_b, doomed, n=8) == {(401, None)}, timeout=2.0,
               interval=0.02, what="node B to refuse the token")
    refused_everywhere(node_b, doomed)
    assert keycloak.introspection_count() == 0
