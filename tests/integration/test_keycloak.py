"""Keycloak's shapes, from the Keycloak-shaped stand-in (stubs/keycloak.py), not oidc-provider:
offline tokens are JWTs with typ Offline and no exp, found only with token_type_hint=refresh_token
(before Keycloak 26.8), and from 26.8 introspectable only by the client they were issued to."""
import pytest

from httpd import protected
from issuers import KEYCLOAK_26_8


@pytest.fixture(autouse=True)
def keycloak_mode(keycloak):
    keycloak.set_mode(refresh_needs_hint=True, refresh_own_client_only=False,
                      access_needs_audience=False)
    yield
    keycloak.set_mode(refresh_needs_hint=True, refresh_own_client_only=False,
                      access_needs_audience=False)


def test_offline_token_without_exp_is_accepted_with_the_auto_hint(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokIssuer=keycloak.issuer))
    token = keycloak.mint_offline(sub="ada-id", username="ada")
    assert token.exp is None
    keycloak.reset_counts()
    env = httpd.get("/cgi/env", token=token).json()
    assert env["REMOTE_USER"] == "ada-id"
    assert env["OFFTOK_TOKEN_KIND"] == "offline"
    assert "OFFTOK_CLAIM_exp" not in env
    assert keycloak.introspection_log()[-1]["token_type_hint"] == "refresh_token"


def test_access_hint_makes_keycloak_miss_the_offline_token(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokTokenTypeHint="access_token"))
    r = httpd.get("/cgi/env", token=keycloak.mint_offline())
    assert r.status_code == 401


def test_access_token_with_offline_access_scope_is_an_access_token(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokOfflineTokens="Deny"))
    token = keycloak.mint_access(scope="openid offline_access profile")
    keycloak.reset_counts()
    env = httpd.get("/cgi/env", token=token).json()
    assert env["OFFTOK_TOKEN_KIND"] == "access"
    assert keycloak.introspection_log()[-1]["token_type_hint"] == "access_token"


def test_refresh_tokens_are_refused(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak))
    r = httpd.get("/cgi/env", token=keycloak.mint_refresh())
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_bound_tokens_are_refused(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak))
    token = keycloak.mint_access(claims={"cnf": {"x5t#S256": "abc"}})
    assert httpd.get("/cgi/env", token=token).status_code == 401


def test_keycloak_26_8_needs_the_tokens_own_client(httpd, keycloak):
    keycloak.set_mode(**KEYCLOAK_26_8)
    keycloak.set_client("orders-web", "orders-web-secret")
    httpd.start(protected("/with/", keycloak,
                          OfftokClientFor="orders-web orders-web orders-web-secret")
                + protected("/without/", keycloak),
                server=f'ScriptAlias /with/ "{httpd.root}/cgi-bin/"\n'
                       f'ScriptAlias /without/ "{httpd.root}/cgi-bin/"')
    token = keycloak.mint_offline(client_id="orders-web")
    keycloak.reset_counts()
    assert httpd.get("/without/env", token=token).status_code == 401
    r = httpd.get("/with/env", token=token)
    assert r.status_code == 200
    assert keycloak.introspection_log()[-1]["client_id"] == "orders-web"


def test_audience_mapper_needed_since_26_6_2(httpd, keycloak):
    keycloak.set_mode(access_needs_audience=True)
    httpd.start(protected("/cgi/", keycloak, OfftokAudience="rs-client"))
    assert httpd.get("/cgi/env", token=keycloak.mint_access(aud=["rs-client"])).status_code == 200
    assert httpd.get("/cgi/env", token=keycloak.mint_access(aud=["account"])).status_code == 401


def test_client_secret_post(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokClientAuth="client_secret_post"))
    keycloak.reset_counts()
    assert httpd.get("/cgi/env", token=keycloak.mint_access()).status_code == 200
    assert keycloak.introspection_log()[-1]["client_auth"] == "client_secret_post"


def test_realm_claims_reach_the_environment(httpd, keycloak):
    httpd.start(protected("/cgi/", keycloak, OfftokRemoteUserClaim="preferred_username",
                          require="offtok-claim realm_access.roles orders-reader"))
    token = keycloak.mint_access(username="ada",
                                 claims={"realm_access": {"roles": ["orders-reader"]}})
    env = httpd.get("/cgi/env", token=token).json()
    assert env["REMOTE_USER"] == "ada"
    assert env["OFFTOK_CLAIM_typ"] == "Bearer"


def test_client_for_in_a_location_overrides_the_server(httpd, keycloak):
    keycloak.set_mode(**KEYCLOAK_26_8)
    keycloak.set_client("orders-web", "orders-web-secret")
    httpd.start("OfftokClientFor orders-web orders-web wrong-secret\n"
                + protected("/cgi/", keycloak,
                            OfftokClientFor="orders-web orders-web orders-web-secret"))
    assert httpd.get("/cgi/env", token=keycloak.mint_offline(client_id="orders-web")) \
        .status_code == 200
