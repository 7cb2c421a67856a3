"""Revocations pushed by the issuer: back-channel logout (offtok-backchannel-logout) and
Keycloak's admin actions (offtok-keycloak-admin).

The pattern of most tests: a token is cached, then revoked at the issuer, and is still
accepted (the cache does not know yet); then the push arrives and the token is refused at once,
in every child. Refused pushes must leave such a token accepted: nothing purged.
"""
import concurrent.futures
import os
import re
import threading
import time

import pytest
import requests

from httpd import free_port, offtok_lines, protected, wait_until

LOGOUT = "/offtok/backchannel-logout"
ADMIN = "/offtok/kc-admin"


def push_locations(issuer, jwks_url=None, client_id=None):
    """The two push handlers for issuer, reachable from the loopback interface only."""
    lines = offtok_lines(issuer, OfftokClientID=client_id or issuer.rs_client_id,
                         OfftokIssuer=issuer.issuer, OfftokJWKSURL=jwks_url or issuer.jwks_url)
    return "".join(f"""
<Location "{path}">
    SetHandler {handler}
    {lines}
    Require ip 127.0.0.1
</Location>
""" for path, handler in ((LOGOUT, "offtok-backchannel-logout"),
                          (ADMIN, "offtok-keycloak-admin")))


# Which child answered: the access log of these tests records the pid.
PID_LOG = 'CustomLog "logs/pids.log" "%P %>s %U"'


def config(issuer, **kw):
    return (PID_LOG + protected("/protected/", issuer, OfftokIssuer=issuer.issuer,
                                OfftokCacheTTL=300)
            + push_locations(issuer, **kw))


def get(httpd, token):
    """A request on a new connection, so that requests spread over the children."""
    return requests.get(httpd.url("/protected/index.html"), timeout=15,
                        headers={"Authorization": f"Bearer {token}", "Connection": "close"})


def statuses(httpd, token, n=24):
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        return [r.status_code for r in pool.map(lambda _: get(httpd, token), range(n))]


def pids(httpd, status):
    with open(os.path.join(httpd.root, "logs", "pids.log")) as f:
        return {line.split()[0] for line in f
                if line.split()[1] == str(status) and "/protected/" in line}


def post_logout(httpd, token, **kw):
    return httpd.post(LOGOUT, data={"logout_token": token}, **kw)


def post_admin(httpd, action, jws):
    return httpd.post(f"{ADMIN}/{action}", data=jws,
                      headers={"Content-Type": "text/plain; charset=utf-8"})


def cached_then_revoked(httpd, issuer, **mint):
    """A token in the cache that the issuer no longer considers active."""
    token = issuer.mint_access(**mint)
    assert get(httpd, token).status_code == 200
    issuer.revoke(token)
    assert get(httpd, token).status_code == 200
    return token


def prefork_start(httpd, conf):
    httpd.allow_errors(r"AH00161")    # six clients on four children: "reached MaxRequestWorkers"
    httpd.start(conf, mpm="prefork", servers=4)
    wait_until(lambda: len(httpd.child_pids()) >= 4, what="four children")


# ---- back-channel logout from the real OpenID Provider ----------------------------------------

def test_oidc_logout_refuses_the_cached_token_in_every_child(httpd, oidc):
    prefork_start(httpd, config(oidc))
    oidc.set_backchannel_uri(oidc.rs_client_id, httpd.url(LOGOUT))
    try:
        token = oidc.mint_access(sub="bcl-oidc", sid="sid-bcl-oidc")
        other = oidc.mint_access(sub="someone-else", sid="sid-else")
        assert get(httpd, other).status_code == 200
        assert get(httpd, token).status_code == 200
        oidc.revoke(token)
        assert set(statuses(httpd, token)) == {200}, "the cache answers until the logout"
        answer = oidc.backchannel_logout(sub="bcl-oidc", sid="sid-bcl-oidc", revoke=False)
        assert answer["notified"] == [{"client_id": oidc.rs_client_id, "ok": True}], answer
        codes = statuses(httpd, token, n=40)
        assert set(codes) == {401}
        assert len(pids(httpd, 401)) >= 2, "refused by several children"
        assert set(statuses(httpd, other, n=8)) == {200}
    finally:
        oidc.set_backchannel_uri(oidc.rs_client_id, None)
    assert "OT0103: back-channel logout accepted" in httpd.error_log()


# ---- back-channel logout tokens from the Keycloak stand-in ------------------------------------

def test_keycloak_logout_by_sid_spares_other_sessions(httpd, keycloak):
    httpd.start(config(keycloak))
    doomed = cached_then_revoked(httpd, keycloak, sub="ada", sid="sid-doomed")
    kept = keycloak.mint_access(sub="ada", sid="sid-kept")
    assert get(httpd, kept).status_code == 200
    r = post_logout(httpd, keycloak.logout_token(sid="sid-doomed"))
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store"
    assert get(httpd, doomed).status_code == 401
    keycloak.reset_counts()
    assert get(httpd, kept).status_code == 200
    assert keycloak.introspection_count() == 0, "another session's answer stays cached"


def test_keycloak_logout_by_sub_refuses_every_session(httpd, keycloak):
    httpd.start(config(keycloak))
    first = cached_then_revoked(httpd, keycloak, sub="bob", sid="sid-b1")
    second = cached_then_revoked(httpd, keycloak, sub="bob", sid="sid-b2")
    assert post_logout(httpd, keycloak.logout_token(sub="bob")).status_code == 200
    assert get(httpd, first).status_code == 401
    assert get(httpd, second).status_code == 401


def test_replayed_logout_token_is_refused(httpd, keycloak):
    prefork_start(httpd, config(keycloak))
    logout = keycloak.logout_token(sub="carol", sid="sid-carol")
    assert post_logout(httpd, logout, headers={"Connection": "close"}).status_code == 200
    # another connection, most likely another child: the jti is remembered in shared memory
    for _ in range(3):
        r = post_logout(httpd, logout, headers={"Connection": "close"})
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_request"


def _forged(keycloak, kind):
    now = int(time.time())
    sign = keycloak.logout_token
    return {
        "badsig": lambda: sign(sub="eve", forge="bad_signature"),
        "none": lambda: sign(sub="eve", forge="alg_none"),
        "hspem": lambda: sign(sub="eve", forge="hs256_pem"),
        "hsjwk": lambda: sign(sub="eve", forge="hs256_jwk"),
        "otherkey": lambda: sign(sub="eve", forge="other_key"),
        "kid": lambda: sign(sub="eve", forge="unknown_kid"),
        "aud": lambda: sign(sub="eve", aud="another-client"),
        "iss": lambda: sign(sub="eve", claims={"iss": keycloak.issuer + "x"}),
        "expired": lambda: sign(sub="eve", claims={"iat": now - 30, "exp": now - 5}),
        "old": lambda: sign(sub="eve", claims={"iat": now - 600, "exp": now + 60}),
        "noevents": lambda: sign(sub="eve", claims={"events": None}),
        "otherevent": lambda: sign(sub="eve", claims={"events": {"urn:other": {}}}),
        "nosub": lambda: sign(claims={"sub": None, "sid": None}),
        "nonce": lambda: sign(sub="eve", claims={"nonce": "abc"}),
        "nojti": lambda: sign(sub="eve", claims={"jti": None}),
        "typ": lambda: keycloak.sign({"iss": keycloak.issuer, "aud": "rs-client", "iat": now,
                                      "jti": "x1", "sub": "eve",
                                      "events": {"http://schemas.openid.net/event/"
                                                 "backchannel-logout": {}}},
                                     header={"alg": "RS256", "typ": "JWT",
                                             "kid": _kid(keycloak)}),
        "notjwt": lambda: "this-is-not-a-jwt",
        "empty": lambda: "",
    }[kind]()


def _kid(keycloak):
    return requests.get(keycloak.jwks_url, verify=keycloak.ca_file).json()["keys"][0]["kid"]


FORGERIES = ["badsig", "none", "hspem", "hsjwk", "otherkey", "kid", "aud", "iss", "expired",
             "old", "noevents", "otherevent", "nosub", "nonce", "nojti", "typ", "notjwt",
             "empty"]


@pytest.mark.parametrize("kind", FORGERIES)
def test_invalid_logout_token_is_refused_and_purges_nothing(httpd, keycloak, kind):
    httpd.start(config(keycloak))
    token = cached_then_revoked(httpd, keycloak, sub="eve", sid="sid-eve")
    r = post_logout(httpd, _forged(keycloak, kind))
    assert r.status_code == 400
    assert r.headers["Cache-Control"] == "no-store"
    assert get(httpd, token).status_code == 200, "nothing purged"
    assert re.search(r"OT0101: back-channel logout refused \(400\)", httpd.error_log())


@pytest.mark.parametrize("body", ["nofield", "twice", "json", "big"])
def test_malformed_logout_requests(httpd, keycloak, body):
    httpd.start(config(keycloak))
    token = cached_then_revoked(httpd, keycloak, sub="eve", sid="sid-eve")
    good = keycloak.logout_token(sub="eve")
    if body == "nofield":
        r = httpd.post(LOGOUT, data={"token": good})
    elif body == "twice":
        r = httpd.post(LOGOUT, data=[("logout_token", good), ("logout_token", good)])
    elif body == "json":
        r = httpd.post(LOGOUT, json={"logout_token": good})
    else:
        padding = "x" * (64 * 1024)
        r = httpd.post(LOGOUT, data={"logout_token": good, "padding": padding})
    assert r.status_code == (413 if body == "big" else 400)
    assert get(httpd, token).status_code == 200, "nothing purged"


def test_logout_handler_wants_post(httpd, keycloak):
    httpd.start(config(keycloak))
    r = httpd.get(LOGOUT)
    assert r.status_code == 405
    assert "POST" in r.headers["Allow"]


def test_unreachable_keys_answer_503(httpd, keycloak):
    httpd.allow_errors(r"OT0102")
    httpd.start(config(keycloak, jwks_url=f"https://127.0.0.1:{free_port()}/certs"))
    token = cached_then_revoked(httpd, keycloak, sub="fay", sid="sid-fay")
    r = post_logout(httpd, keycloak.logout_token(sub="fay"))
    assert r.status_code == 503
    assert r.headers["Cache-Control"] == "no-store"
    assert post_admin(httpd, "k_push_not_before", keycloak.admin_action(
        "k_push_not_before", not_before=int(time.time()) + 5)).status_code == 503
    assert get(httpd, token).status_code == 200
    assert "OT0102: back-channel logout not done" in httpd.error_log()


def test_push_handler_without_keys_is_a_500(httpd, keycloak):
    # Neither OfftokJWKSURL nor OfftokIssuer (whose metadata would name the keys).
    httpd.allow_errors(r"OT0100")
    httpd.start(f"""
<Location "{LOGOUT}">
    SetHandler offtok-backchannel-logout
    OfftokClientID rs-client
</Location>
""")
    assert post_logout(httpd, keycloak.logout_token(sub="x")).status_code == 500
    assert "OT0100: offtok-backchannel-logout in <" + LOGOUT + "> needs OfftokJWKSURL or " \
        "OfftokIssuer" in httpd.error_log()


def test_logout_during_an_issuer_call_makes_its_answer_unusable(httpd, keycloak, faulty):
    """The answer of a call that started before the logout is not used, not even by the
    request that is waiting for it: that request asks again."""
    claims = {"sub": "gus", "sid": "sid-gus", "iss": keycloak.issuer}
    slow = protected("/protected/", faulty, OfftokIssuer=keycloak.issuer,
                     OfftokIntrospectionURL=faulty.url_for("slow?seconds=2"))
    httpd.start(slow + push_locations(keycloak))
    faulty.set_ok_claims(claims)
    faulty.reset_counts()
    try:
        result = {}
        waiting = threading.Thread(target=lambda: result.update(r=get(httpd, "in-flight-token")))
        waiting.start()
        wait_until(lambda: faulty.requests() == 1, what="the issuer call to start")
        time.sleep(0.3)
        assert post_logout(httpd, keycloak.logout_token(sub="gus")).status_code == 200
        # The first answer (active) is discarded: the request asks again, and this time the
        # issuer, which has seen the logout too, says inactive.
        wait_until(lambda: faulty.requests() == 2, what="a second issuer call")
        faulty.set_ok_claims({**claims, "active": False})
        waiting.join(15)
        assert result["r"].status_code == 401
        assert faulty.requests() == 2
    finally:
        faulty.set_ok_claims({})
    assert "OT0110" in httpd.error_log()


# ---- Keycloak admin actions -------------------------------------------------------------------

def test_push_not_before_refuses_older_tokens_at_once_and_zero_clears(httpd, keycloak):
    prefork_start(httpd, config(keycloak))
    old = keycloak.mint_access(sub="hal")
    assert get(httpd, old).status_code == 200
    not_before = old.iat + 1
    jws = keycloak.admin_action("k_push_not_before", not_before=not_before)
    r = post_admin(httpd, "k_push_not_before", jws)
    assert r.status_code == 204
    assert set(statuses(httpd, old)) == {401}
    assert len(pids(httpd, 401)) >= 2
    wait_until(lambda: time.time() >= not_before, what="the not-before to pass")
    new = keycloak.mint_access(sub="hal")
    assert new.iat >= not_before
    assert get(httpd, new).status_code == 200
    # A clear replaces the policy only when its action is newer (a later expiration): the stand-in
    # gives now + 30 s, which may be the first action's in the same second.
    clear = keycloak.admin_action("k_push_not_before", not_before=0,
                                  expiration=int(time.time()) + 60)
    assert post_admin(httpd, "k_push_not_before", clear).status_code == 204
    assert set(statuses(httpd, old, n=8)) == {200}


def test_k_logout_purges_its_sessions_and_sets_not_before(httpd, keycloak):
    httpd.start(config(keycloak))
    doomed = cached_then_revoked(httpd, keycloak, sub="ida", sid="sid-ida-1")
    kept = cached_then_revoked(httpd, keycloak, sub="ida", sid="sid-ida-2")
    jws = keycloak.admin_action("k_logout", session_ids=["sid-ida-1"])
    assert post_admin(httpd, "k_logout", jws).status_code == 204
    assert get(httpd, doomed).status_code == 401
    assert get(httpd, kept).status_code == 200
    jws = keycloak.admin_action("k_logout", not_before=int(time.time()) + 1)
    assert post_admin(httpd, "k_logout", jws).status_code == 204
    assert get(httpd, kept).status_code == 401


def test_k_test_available(httpd, keycloak):
    httpd.start(config(keycloak))
    jws = keycloak.admin_action("k_test_available")
    assert post_admin(httpd, "k_test_available", jws).status_code == 204


def _bad_action(keycloak, kind):
    now = int(time.time())
    nb = now + 5
    act = keycloak.admin_action
    if kind in ("bad_signature", "alg_none", "hs256_pem", "hs256_jwk", "other_key",
                "unknown_kid"):
        return "k_push_not_before", act("k_push_not_before", not_before=nb, forge=kind)
    return {
        "expired": ("k_push_not_before", act("k_push_not_before", not_before=nb,
                                             expiration=now - 5)),
        "resource": ("k_push_not_before", act("k_push_not_before", not_before=nb,
                                              resource="app-client")),
        "path": ("k_push_not_before", act("k_logout", not_before=nb,
                                          session_ids=["sid-jo"])),
        "action": ("k_logout", act("k_logout", session_ids=["sid-jo"],
                                   claims={"action": "PUSH_NOT_BEFORE"})),
        "noid": ("k_logout", act("k_logout", session_ids=["sid-jo"], claims={"id": None})),
        "sids": ("k_logout", act("k_logout", claims={"keycloakSessionIds": "sid-jo"})),
        "notjws": ("k_logout", "not a jws"),
        "empty": ("k_logout", ""),
    }[kind]


BAD_ACTIONS = ["bad_signature", "alg_none", "hs256_pem", "hs256_jwk", "other_key",
               "unknown_kid", "expired", "resource", "path", "action", "noid", "sids", "notjws",
               "empty"]


@pytest.mark.parametrize("kind", BAD_ACTIONS)
def test_invalid_admin_action_changes_nothing(httpd, keycloak, kind):
    httpd.start(config(keycloak))
    token = cached_then_revoked(httpd, keycloak, sub="jo", sid="sid-jo")
    path, jws = _bad_action(keycloak, kind)
    r = post_admin(httpd, path, jws)
    assert r.status_code == 400
    assert get(httpd, token).status_code == 200, "nothing changed"


def test_replayed_admin_action_changes_nothing(httpd, keycloak):
    httpd.start(config(keycloak))
    jws = keycloak.admin_action("k_push_not_before", not_before=int(time.time()) + 5)
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 204
    clear = keycloak.admin_action("k_push_not_before", not_before=0,
                                  expiration=int(time.time()) + 60)   # newer: it clears
    assert post_admin(httpd, "k_push_not_before", clear).status_code == 204
    token = cached_then_revoked(httpd, keycloak, sub="kim")
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 400
    assert get(httpd, token).status_code == 200, "the replayed not-before was not applied"


def test_unknown_admin_path_and_method(httpd, keycloak):
    httpd.start(config(keycloak))
    jws = keycloak.admin_action("k_test_available")
    assert post_admin(httpd, "k_query_bearer_token", jws).status_code == 404
    assert httpd.get(f"{ADMIN}/k_test_available").status_code == 405


def test_not_before_applies_to_the_pushed_client_only(httpd, keycloak):
    """A not-before pushed to one OfftokClientID leaves locations of another client alone."""
    other = protected("/other/", keycloak, OfftokClientID="app-client",
                      OfftokClientSecret="app-secret", OfftokIssuer=keycloak.issuer,
                      OfftokCacheTTL=300)
    os.makedirs(os.path.join(httpd.root, "htdocs", "other"))
    with open(os.path.join(httpd.root, "htdocs", "other", "index.html"), "w") as f:
        f.write("other client's content\n")
    httpd.start(config(keycloak) + other)
    token = keycloak.mint_access(sub="lee", aud=["rs-client", "app-client"])
    assert get(httpd, token).status_code == 200
    assert httpd.get("/other/index.html", token=token).status_code == 200
    jws = keycloak.admin_action("k_push_not_before", not_before=token.iat + 1)
    assert post_admin(httpd, "k_push_not_before", jws).status_code == 204
    assert get(httpd, token).status_code == 401
    assert httpd.get("/other/index.html", token=token).status_code == 200


def test_sample_keycloak_conf_names_the_handlers():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "conf", "keycloak.conf")) as f:
        text = f.read()
    for handler in ("offtok-backchannel-logout", "offtok-keycloak-admin"):
        block = text[text.index(handler) - 200:text.index(handler) + 400]
        assert "Require ip" in block, handler
