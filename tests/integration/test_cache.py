"""The shared-memory cache, counted at the real issuer: reuse within the TTL, the negative cache,
AlwaysValidate Offline, exp, several child processes, and a graceful restart."""
import time

import pytest

from httpd import protected, wait_until


def test_answer_reused_within_the_ttl(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=60))
    token = oidc.mint_access()
    oidc.reset_counts()
    for _ in range(10):
        assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.introspection_count() == 1


def test_revoked_token_accepted_within_the_ttl_then_refused(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=2))
    token = oidc.mint_access()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    oidc.revoke(token)
    assert httpd.get("/cgi/env", token=token).status_code == 200     # cached
    wait_until(lambda: httpd.get("/cgi/env", token=token).status_code == 401,
               timeout=6, interval=0.25, what="the cached answer to expire")


def test_negative_cache(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokNegativeCacheTTL=60)
                + protected("/nocache/", oidc, OfftokNegativeCacheTTL=0,
                            extra="SetHandler cgi-script\n    Options +ExecCGI"))
    oidc.reset_counts()
    for _ in range(5):
        assert httpd.get("/cgi/env", token="no-such-token").status_code == 401
    assert oidc.introspection_count() == 1
    for _ in range(3):
        assert httpd.get("/nocache/x", token="another-unknown").status_code == 401
    assert oidc.introspection_count() == 4


def test_inactive_answer_replaces_older_active_whatever_the_negative_ttl(httpd, oidc):
    """Contract, *Cached answers shared between locations*: once a location learns the token is
    inactive, no location accepts the older "active", even with OfftokNegativeCacheTTL 0."""
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=300, OfftokNegativeCacheTTL=0)
                + protected("/protected/", oidc, OfftokAlwaysValidate="On",
                            OfftokNegativeCacheTTL=0))
    token = oidc.mint_access()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    oidc.revoke(token)
    assert httpd.get("/cgi/env", token=token).status_code == 200      # cached, TTL 300
    assert httpd.get("/protected/index.html", token=token).status_code == 401
    oidc.reset_counts()
    for _ in range(3):
        assert httpd.get("/cgi/env", token=token).status_code == 401
    assert oidc.introspection_count() == 3, "the inactive answer is not reused as an answer"


def test_locations_share_answers_within_their_own_ttl(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=60)
                + protected("/protected/", oidc, OfftokCacheTTL=1))
    token = oidc.mint_access()
    oidc.reset_counts()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert oidc.introspection_count() == 1
    time.sleep(1.2)
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert oidc.introspection_count() == 2          # too old for /protected/ ...
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.introspection_count() == 2          # ... but the fresh one serves /cgi/


def test_always_validate_offline_caches_access_tokens_only(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokAlwaysValidate="Offline", OfftokCacheTTL=60))
    access, offline = oidc.mint_access(), oidc.mint_offline()
    oidc.reset_counts()
    for _ in range(4):
        assert httpd.get("/cgi/env", token=access).status_code == 200
    assert oidc.introspection_count() == 1
    for _ in range(4):
        assert httpd.get("/cgi/env", token=offline).status_code == 200
    assert oidc.introspection_count() == 5


def test_entry_never_outlives_exp(httpd, oidc):
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=300))
    token = oidc.mint_access(ttl=2)
    assert httpd.get("/cgi/env", token=token).status_code == 200
    wait_until(lambda: httpd.get("/cgi/env", token=token).status_code == 401,
               timeout=6, interval=0.25, what="exp to pass")


@pytest.mark.parametrize("mpm", ["prefork", "worker", "event"])
def test_one_cache_for_every_child(httpd, oidc, mpm):
    # Eight clients against prefork's four children: when all four are busy httpd says so
    # (AH00161), which is this test's load, not an error of the module.
    httpd.allow_errors(r"AH00161: server reached MaxRequestWorkers")
    httpd.start(protected("/cgi/", oidc, OfftokCacheTTL=60), mpm=mpm, servers=4, threads=4)
    wait_until(lambda: len(httpd.child_pids()) >= 4 if mpm == "prefork" else True,
               what="four children")
    token = oidc.mint_access()
    oidc.reset_counts()
    import concurrent.futures
    import requests
    assert httpd.get("/cgi/env", token=token).status_code == 200

    def hit(_):
        # A new connection each time, so requests spread over the children.
        return requests.get(httpd.url("/protected/index.html"),
                            headers={"Authorization": f"Bearer {token}",
                                     "Connection": "close"}, timeout=10).status_code
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(hit, range(64)))
    assert codes.count(404) + codes.count(200) == 64
    assert oidc.introspection_count() == 1


def test_graceful_restart_keeps_entries(httpd, oidc):
    conf = protected("/cgi/", oidc, OfftokCacheTTL=300)
    httpd.start(conf)
    token = oidc.mint_access()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    oidc.reset_counts()
    httpd.graceful()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.introspection_count() == 0
    assert "kept from the previous generation" in httpd.error_log()


def test_changed_cache_size_takes_a_new_segment(httpd, oidc):
    conf = protected("/cgi/", oidc, OfftokCacheTTL=300)
    httpd.start(conf)
    token = oidc.mint_access()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    httpd.render(conf, server="OfftokCacheSize 8M")
    oidc.reset_counts()
    httpd.graceful()
    assert httpd.get("/cgi/env", token=token).status_code == 200
    assert oidc.introspection_count() == 1
    assert "shared cache of 8388608 bytes (new)" in httpd.error_log()


def test_locations_sending_the_same_hint_share_an_entry(httpd, keycloak):
    """The contract's key: URL, client id used, hint sent, token. /auto/ chooses the hint from
    the token (access_token for a Keycloak access token), /fixed/ is told to send access_token,
    /none/ sends no hint: the first two share one entry, the third asks for itself."""
    httpd.start(protected("/auto/", keycloak, OfftokCacheTTL=60)
                + protected("/fixed/", keycloak, OfftokCacheTTL=60,
                            OfftokTokenTypeHint="access_token")
                + protected("/none/", keycloak, OfftokCacheTTL=60, OfftokTokenTypeHint="none"))
    token = keycloak.mint_access()
    keycloak.reset_counts()
    assert httpd.get("/auto/index.html", token=token).status_code == 404
    assert httpd.get("/fixed/index.html", token=token).status_code == 404
    assert keycloak.introspection_count() == 1
    assert httpd.get("/none/index.html", token=token).status_code == 404
    assert keycloak.introspection_count() == 2
    assert [e["token_type_hint"] for e in keycloak.introspection_log()] == ["access_token", None]
