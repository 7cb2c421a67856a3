"""Local validation (OfftokAccessTokens Local) on a node that shares pushed revocations through
Redis (OfftokRedis): two httpd nodes, a redis-server of the test's own and the Keycloak-shaped
stand-in (stubs/keycloak.py) as issuer. Skipped where test_redis.py is skipped (no redis-server,
or a module without hiredis); its fixtures and helpers are used as they are.
"""
import time

import requests

from httpd import protected, wait_until
import test_redis
# The fixtures (module_with_redis skips this module as it skips test_redis.py's) and helpers.
from test_redis import module_with_redis, node_b, redis, redis_key  # noqa: F401
from test_redis import (OUTAGE, caught_up, post_logout, push_locations, refused_within,
                        server_lines, statuses)

pytestmark = test_redis.pytestmark


def local_site(keycloak):
    return "".join(protected(path, keycloak, OfftokIssuer=keycloak.issuer,
                             OfftokAudience="rs-client", OfftokAccessTokens="Local")
                   for path in ("/protected/", "/cgi/"))


def check_of(node, token):
    r = requests.get(node.url("/cgi/env"), timeout=15,
                     headers={"Authorization": f"Bearer {token}", "Connection": "close"})
    return r.status_code, r.json().get("OFFTOK_CHECK") if r.status_code == 200 else None


def test_local_node_cut_off_from_redis_asks_the_issuer(redis, redis_key, httpd, node_b,
                                                       keycloak):
    """Attack: a token's session is logged out at node A while Redis is away (down, or cut
    off). Node B, judging Keycloak's access tokens locally, holds pushed logouts as deny rules,
    and cannot have heard of this one: it used to accept the logged-out token from its kept
    verdict (or by verifying it again) until its exp. An introspecting node in its place asks
    the issuer (test_redis.py's outage test); a Local node must not do less. While a process is
    not caught up with Redis, its tokens are introspected; once it is, they are judged locally
    again, and the logout published meanwhile refuses the token there too."""
    for node in (httpd, node_b):
        node.allow_errors(*OUTAGE)
    server = server_lines(redis, redis_key)
    httpd.start(protected("/protected/", keycloak, OfftokIssuer=keycloak.issuer)
                + push_locations(keycloak), server=server)
    node_b.start(local_site(keycloak), server=server)
    for node in (httpd, node_b):
        caught_up(node)
    doomed = keycloak.mint_access(sub="rita", sid="sid-rita")
    kept = keycloak.mint_access(sub="sam", sid="sid-sam")
    keycloak.reset_counts()
    for token in (doomed, kept):
        assert statuses(node_b, token) == {200}
    assert keycloak.introspection_count() == 0, "judged locally at node B"
    redis.stop()
    # Every child of node B has noticed (OT0200 once per process and loss).
    wait_until(lambda: node_b.error_log().count("OT0200") >= 2, timeout=10,
               what="node B's children to notice the outage")
    noticed = time.time()
    keycloak.revoke(doomed)                     # Keycloak ended the session: inactive there
    assert post_logout(httpd, keycloak.logout_token(sub="rita", sid="sid-rita")).status_code \
        == 200
    assert statuses(node_b, doomed) == {401}, "the logged-out token, while Redis is away"
    assert {check_of(node_b, kept) for _ in range(4)} == {(200, "introspection")}
    before = [node.error_log().count("OT0201") + node.error_log().count("OT0202")
              for node in (httpd, node_b)]
    redis.start()
    for node, n in zip((httpd, node_b), before):    # A publishes the logout as it catches up
        caught_up(node, before=n)
    refused_within(node_b, doomed, 2.0)
    # Issued after the loss, to the second (OT0241's marker sends older tokens to the issuer).
    wait_until(lambda: time.time() >= int(noticed) + 1.05, what="a second after the loss")
    newer = keycloak.mint_access(sub="tess", sid="sid-tess")
    keycloak.reset_counts()
    assert {check_of(node_b, newer) for _ in range(4)} == {(200, "local")}
    assert keycloak.introspection_count() == 0, "judged locally again once caught up"
