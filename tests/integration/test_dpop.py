"""Sender-constrained tokens, DPoP (RFC 9449): the contract's "Sender-constrained tokens".

Tokens come from oidc-provider (its dPoP feature: a token minted with a key's thumbprint is
introspected with cnf.jkt and token_type DPoP) and from the Keycloak-shaped stand-in (typ DPoP
and cnf.jkt in the JWT, as Keycloak 26.4+ issues them). Proofs are made here with real keys
(tests/integration/dpop.py).
"""
import http.client
import time

import pytest
import requests

from dpop import REMOVE, DPoPKey, ath, bound, hmac_proof, key, unsigned  # noqa: F401 (fixtures)
from httpd import challenges, protected

ENV = "/cgi/env"


def site(issuer, **directives):
    return protected("/cgi/", issuer, **directives) + protected("/protected/", issuer,
                                                                **directives)


def dpop_get(httpd, token, proof, path=ENV, method="GET", **kw):
    headers = {"Authorization": f"DPoP {token}", "Connection": "close"}
    if proof is not None:
        headers["DPoP"] = proof
    headers.update(kw.pop("headers", {}))
    return requests.request(method, httpd.url(path), headers=headers, timeout=30,
                            allow_redirects=False, **kw)


# ---- accepted -------------------------------------------------------------------------------------

def test_dpop_bound_token_with_a_valid_proof_is_accepted(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    url = httpd.url(ENV)
    r = dpop_get(httpd, bound, key.proof("GET", url, bound))
    assert r.status_code == 200, r.headers
    env = r.json()
    assert env["REMOTE_USER"] == "dpop-user"
    assert env["OFFTOK_TOKEN_BINDING"] == "dpop"
    assert env["OFFTOK_CLAIM_token_type"] == "DPoP"


def test_rsa_proof_is_accepted(httpd, oidc):
    key = DPoPKey("RSA")
    token = oidc.mint_access(jkt=key.jkt)
    httpd.start(site(oidc))
    assert dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token)).status_code == 200


def test_unbound_bearer_token_gets_binding_none(httpd, oidc):
    token = oidc.mint_access()
    httpd.start(site(oidc))
    r = httpd.get(ENV, token)
    assert r.status_code == 200
    assert r.json()["OFFTOK_TOKEN_BINDING"] == "none"


def test_keycloak_typ_dpop_with_cnf_jkt_is_an_access_token(httpd, keycloak, key):
    """Keycloak-shaped stand-in: typ DPoP and cnf.jkt in the JWT and its introspection answer."""
    token = keycloak.mint_access(claims={"typ": "DPoP", "cnf": {"jkt": key.jkt}})
    httpd.start(site(keycloak))
    r = dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token))
    assert r.status_code == 200, r.headers
    assert r.json()["OFFTOK_TOKEN_KIND"] == "access"
    assert r.json()["OFFTOK_TOKEN_BINDING"] == "dpop"
    # Without a proof, as Bearer: refused (no downgrade).
    r = httpd.get(ENV, token)
    assert r.status_code == 401
    assert 'error="invalid_token"' in challenges(r)[0]


def test_keycloak_typ_dpop_without_cnf_jkt_is_refused(httpd, keycloak, key):
    token = keycloak.mint_access(claims={"typ": "DPoP"})
    httpd.start(site(keycloak))
    r = dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token))
    assert r.status_code == 401
    assert httpd.get(ENV, token).status_code == 401
    assert "typed DPoP but has no cnf.jkt" in httpd.error_log()


def test_forward_token_off_removes_the_proof_too(httpd, oidc, key, bound, backend):
    """OfftokForwardToken Off: the back end (a proxied echo of request headers) gets neither
    the token nor the proof (which holds ath, the token's hash, and the client's key); with On
    it gets both."""
    httpd.start(protected("/off/", oidc, extra=f'ProxyPass "{backend}/"',
                          OfftokForwardToken="Off")
                + protected("/on/", oidc, extra=f'ProxyPass "{backend}/"'))
    for path, forwarded in (("/off/x", False), ("/on/x", True)):
        proof = key.proof("GET", httpd.url(path), bound)
        r = dpop_get(httpd, bound, proof, path=path)
        assert r.status_code == 200, r.headers
        seen = r.json()["headers"]
        assert ("dpop" in seen) == forwarded, path
        assert ("authorization" in seen) == forwarded, path
        if forwarded:
            assert seen["dpop"] == [proof]


# ---- replay -------------------------------------------------------------------------------------

def test_same_proof_twice_is_a_replay(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    proof = key.proof("GET", httpd.url(ENV), bound)
    assert dpop_get(httpd, bound, proof).status_code == 200
    r = dpop_get(httpd, bound, proof)
    assert r.status_code == 401
    assert challenges(r)[1] == ('DPoP realm="test", error="invalid_dpop_proof", '
                                'algs="ES256 ES384 PS256 RS256"')
    assert "OT0703" in httpd.error_log()
    # A fresh proof passes again.
    assert dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound)).status_code == 200


def test_replay_is_refused_by_another_process(httpd, oidc, key, bound):
    """prefork with MaxConnectionsPerChild 1: each connection is served by a process of its
    own, so the second use of the proof meets a process that never saw the first."""
    httpd.allow_errors(r"AH00161: server reached MaxRequestWorkers")
    httpd.start(site(oidc) + "\nMaxConnectionsPerChild 1\n", mpm="prefork", servers=2)
    proof = key.proof("GET", httpd.url("/protected/index.html"), bound)
    first = dpop_get(httpd, bound, proof, path="/protected/index.html")
    assert first.status_code == 200
    pids = set()
    for _ in range(3):
        r = dpop_get(httpd, bound, proof, path="/protected/index.html")
        assert r.status_code == 401
        pids.update(httpd.child_pids())
    assert len(pids) >= 2


def test_a_proof_at_the_end_of_its_window_is_still_recorded(httpd, oidc, key, bound):
    """OfftokClockSkew 0 and OfftokDPoPMaxAge 1: a proof with iat one second back passes for the
    rest of this second; its entry must outlive that, or a second use in the same second passes."""
    httpd.start(site(oidc, OfftokDPoPMaxAge=1, OfftokClockSkew=0))
    url = httpd.url(ENV)
    dpop_get(httpd, bound, key.proof("GET", url, bound))        # the token's answer is cached
    tried = 0
    for _ in range(20):
        if time.time() % 1 > 0.5:
            time.sleep(1 - time.time() % 1 + 0.01)
        proof = key.proof("GET", url, bound, iat=int(time.time()) - 1)
        if dpop_get(httpd, bound, proof).status_code != 200:
            continue                       # the second ended before the server read it
        tried += 1
        r = dpop_get(httpd, bound, proof)
        assert r.status_code == 401, "a replay at the end of the proof's window was accepted"
        assert 'error="invalid_dpop_proof"' in challenges(r)[1]
        if tried == 3:
            break
    assert tried >= 1, "no proof reached the server within its second"


def test_a_refused_proof_is_not_recorded(httpd, oidc, key, bound):
    """The jti is recorded only after every check, the binding included: a proof first sent with
    a token bound to another key can still be used with its own token."""
    other = oidc.mint_access(jkt=DPoPKey().jkt)
    httpd.start(site(oidc))
    proof = key.proof("GET", httpd.url(ENV), bound, ath=ath(other))
    assert dpop_get(httpd, other, proof).status_code == 401
    proof2 = key.proof("GET", httpd.url(ENV), bound)
    assert dpop_get(httpd, bound, proof2).status_code == 200


# ---- each bad field ------------------------------------------------------------------------------

def bad_proofs(key, url, token):
    now = int(time.time())
    base = {"jti": "j-" + str(now), "htm": "GET", "htu": url, "iat": now, "ath": ath(token)}
    return {
        "typ JWT": key.proof("GET", url, token, header={"typ": "JWT"}),
        "typ absent": key.proof("GET", url, token, header={"typ": REMOVE}),
        "alg not listed (ES384 key)": DPoPKey().proof("GET", url, token, alg="ES256",
                                                      header={"alg": "ES384"}),
        "alg HS256": hmac_proof(base, {"typ": "dpop+jwt", "jwk": key.jwk}),
        "alg none": unsigned(base, {"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}),
        "jwk with private d": key.proof("GET", url, token, header={"jwk": key.private_jwk}),
        "jwk absent": key.proof("GET", url, token, header={"jwk": REMOVE}),
        "signature by another key": key.proof("GET", url, token, sign_with=DPoPKey()),
        "htm POST": key.proof("POST", url, token),
        "htm lower case": key.proof("get", url, token),
        "htu another path": key.proof("GET", url.replace("/cgi/env", "/cgi/other"), token),
        "htu another host": key.proof("GET", url.replace("127.0.0.1", "127.0.0.2"), token),
        "htu another port": key.proof("GET", url.rsplit(":", 1)[0] + ":1/cgi/env", token),
        "htu https": key.proof("GET", url.replace("http:", "https:"), token),
        "htu relative": key.proof("GET", "/cgi/env", token),
        "iat stale": key.proof("GET", url, token, iat=now - 120),
        "iat future": key.proof("GET", url, token, iat=now + 120),
        "iat a string": key.proof("GET", url, token, iat=str(now)),
        "ath of another token": key.proof("GET", url, token, ath=ath(token + "x")),
        "ath absent": key.proof("GET", url, token, ath=REMOVE),
        "jti absent": key.proof("GET", url, token, jti=REMOVE),
        "not a JWS": "not-a-proof",
        "two proofs": key.proof("GET", url, token) + "," + key.proof("GET", url, token),
    }


def test_each_bad_field_is_refused(httpd, oidc, key, bound):
    httpd.start(site(oidc, OfftokDPoPAlgorithms="ES256 RS256"))
    url = httpd.url(ENV)
    for name, proof in bad_proofs(key, url, bound).items():
        r = dpop_get(httpd, bound, proof)
        assert r.status_code == 401, name
        dpop_challenge = [c for c in challenges(r) if c.startswith("DPoP")]
        assert dpop_challenge and 'error="invalid_dpop_proof"' in dpop_challenge[0], name
        assert 'algs="ES256 RS256"' in dpop_challenge[0], name
    # The same token with a good proof still passes (none of the above was recorded).
    assert dpop_get(httpd, bound, key.proof("GET", url, bound)).status_code == 200
    assert oidc.introspection_count() >= 1


def test_proof_is_checked_before_the_token_is_looked_up(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    oidc.reset_counts()
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound, iat=1))
    assert r.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenges(r)[1]
    assert oidc.introspection_count() == 0


def test_iat_within_max_age_and_skew_is_accepted(httpd, oidc, key, bound):
    httpd.start(site(oidc, OfftokDPoPMaxAge=300, OfftokClockSkew=60))
    url = httpd.url(ENV)
    now = int(time.time())
    assert dpop_get(httpd, bound, key.proof("GET", url, bound, iat=now - 200)).status_code == 200
    assert dpop_get(httpd, bound, key.proof("GET", url, bound, iat=now + 40)).status_code == 200
    assert dpop_get(httpd, bound, key.proof("GET", url, bound, iat=now - 400)).status_code == 401
    assert dpop_get(httpd, bound, key.proof("GET", url, bound, iat=now + 90)).status_code == 401


@pytest.mark.parametrize("spelling", [
    "http://127.0.0.1:{port}/cgi/env?x=1",             # query ignored
    "http://127.0.0.1:{port}/cgi/env#frag",            # fragment ignored
    "HTTP://127.0.0.1:{port}/cgi/env",                  # scheme case
    "http://127.0.0.1:{port}/cgi/./env",                # dot segment
    "http://127.0.0.1:{port}/cgi/x/../env",             # dot-dot segment
    "http://127.0.0.1:{port}/cgi/%65nv",                # percent-encoded unreserved
    "http://127.0.0.1:0{port}/cgi/env",                 # leading zero in the port
])
def test_htu_is_compared_after_normalisation(httpd, oidc, key, bound, spelling):
    httpd.start(site(oidc))
    htu = spelling.format(port=httpd.port)
    assert dpop_get(httpd, bound, key.proof("GET", htu, bound)).status_code == 200


def test_request_query_is_ignored(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound), path=ENV + "?a=b")
    assert r.status_code == 200
    assert r.json()["QUERY_STRING"] == "a=b"


def test_post_and_head_need_their_own_method(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    url = httpd.url(ENV)
    # (No body: env.cgi does not read one, and mod_cgid would log the reset.)
    r = dpop_get(httpd, bound, key.proof("POST", url, bound), method="POST")
    assert r.status_code == 200
    assert r.json()["REQUEST_METHOD"] == "POST"
    r = dpop_get(httpd, bound, key.proof("GET", url, bound), method="POST")
    assert r.status_code == 401
    url = httpd.url("/protected/index.html")
    r = dpop_get(httpd, bound, key.proof("HEAD", url, bound), method="HEAD",
                 path="/protected/index.html")
    assert r.status_code == 200
    r = dpop_get(httpd, bound, key.proof("GET", url, bound), method="HEAD",
                 path="/protected/index.html")
    assert r.status_code == 401


def test_htu_is_the_url_before_a_rewrite(httpd, oidc, key, bound):
    """The path the client sent, before mod_rewrite or Alias: the proof names /old/env."""
    extra = ('RewriteEngine On\nRewriteRule "^/old/(.*)$" "/cgi/$1" [PT]\n')
    httpd.start(site(oidc), server=extra)
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url("/old/env"), bound), path="/old/env")
    assert r.status_code == 200, r.headers
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url("/cgi/env"), bound), path="/old/env")
    assert r.status_code == 401


def test_htu_follows_use_canonical_name(httpd, oidc, key, bound):
    """UseCanonicalName On: the URL is built from ServerName, whatever Host the client sent."""
    httpd.start(site(oidc) + "\nUseCanonicalName On\n")
    headers = {"Host": "other.example"}
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound), headers=headers)
    assert r.status_code == 200
    r = dpop_get(httpd, bound, key.proof("GET", f"http://other.example:{httpd.port}{ENV}", bound),
                 headers={"Host": f"other.example:{httpd.port}"})
    assert r.status_code == 401


def test_host_header_decides_without_use_canonical_name(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    r = dpop_get(httpd, bound, key.proof("GET", "http://rs.example/cgi/env", bound),
                 headers={"Host": "rs.example:80"})
    assert r.status_code == 200


def raw_get(httpd, target, host, token, proof):
    """One request with the request target written as given (absolute-form, encoded path): the
    status and the WWW-Authenticate fields."""
    import socket
    with socket.create_connection(("127.0.0.1", httpd.port), timeout=30) as s:
        s.sendall((f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\n"
                   f"DPoP: {proof}\r\nConnection: close\r\n\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(head[0].split()[1]), [h.split(":", 1)[1].strip() for h in head[1:]
                                     if h.lower().startswith("www-authenticate:")]


def test_absolute_form_target_does_not_escape_use_canonical_name(httpd, oidc, key, bound):
    """GET http://other.example/... (absolute-form) names a host, as Host does: under
    UseCanonicalName On the proof must still name ServerName's URL."""
    httpd.start(site(oidc) + "\nUseCanonicalName On\n")
    own = httpd.url(ENV)
    status, _ = raw_get(httpd, f"http://other.example{ENV}", "other.example", bound,
                        key.proof("GET", own, bound))
    assert status == 200
    status, auth = raw_get(httpd, f"http://other.example{ENV}", "other.example", bound,
                           key.proof("GET", f"http://other.example{ENV}", bound))
    assert status == 401
    assert 'error="invalid_dpop_proof"' in auth[1]


def test_absolute_form_target_names_the_host_without_use_canonical_name(httpd, oidc, key, bound):
    """UseCanonicalName Off: the absolute-form target's host is the request's host (RFC 9112
    §3.2.2), not the Host header; docs/sender-constrained.md says what that means."""
    httpd.start(site(oidc))
    target = f"http://other.example:{httpd.port}{ENV}"
    status, _ = raw_get(httpd, target, f"127.0.0.1:{httpd.port}", bound,
                        key.proof("GET", target, bound))
    assert status == 200
    status, _ = raw_get(httpd, target, f"127.0.0.1:{httpd.port}", bound,
                        key.proof("GET", httpd.url(ENV), bound))
    assert status == 401


def test_ipv6_literal_host_is_compared_in_brackets(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    host = f"[::1]:{httpd.port}"
    status, _ = raw_get(httpd, ENV, host, bound, key.proof("GET", f"http://{host}{ENV}", bound))
    assert status == 200
    status, _ = raw_get(httpd, ENV, host, bound,
                        key.proof("GET", f"http://[::2]:{httpd.port}{ENV}", bound))
    assert status == 401


def test_encoded_request_paths_are_normalised_like_htu(httpd, oidc, key, bound):
    """The request path as sent (/cgi/%65nv, /cgi/x/../env) and htu are normalised alike; a
    percent-encoded slash is not a slash."""
    httpd.start(site(oidc))
    status, _ = raw_get(httpd, "/cgi/%65nv", f"127.0.0.1:{httpd.port}", bound,
                        key.proof("GET", httpd.url(ENV), bound))
    assert status == 200
    status, _ = raw_get(httpd, "/cgi/x/../env", f"127.0.0.1:{httpd.port}", bound,
                        key.proof("GET", httpd.url(ENV), bound))
    assert status == 200
    status, _ = raw_get(httpd, ENV, f"127.0.0.1:{httpd.port}", bound,
                        key.proof("GET", httpd.url("/cgi%2Fenv"), bound))
    assert status == 401


# ---- the binding ----------------------------------------------------------------------------------

def test_proof_of_another_key_is_invalid_token(httpd, oidc, bound):
    httpd.start(site(oidc))
    other = DPoPKey()
    r = dpop_get(httpd, bound, other.proof("GET", httpd.url(ENV), bound))
    assert r.status_code == 401
    assert challenges(r) == [
        'Bearer realm="test"',
        'DPoP realm="test", error="invalid_token", algs="ES256 ES384 PS256 RS256"']


def test_bound_token_sent_as_bearer_is_refused(httpd, oidc, bound):
    httpd.start(site(oidc))
    r = httpd.get(ENV, bound)
    assert r.status_code == 401
    assert challenges(r) == ['Bearer realm="test", error="invalid_token"',
                             'DPoP realm="test", algs="ES256 ES384 PS256 RS256"']


def test_unbound_token_sent_as_dpop_is_refused(httpd, oidc, key):
    token = oidc.mint_access()
    httpd.start(site(oidc))
    r = dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token))
    assert r.status_code == 401
    assert challenges(r)[1].startswith('DPoP realm="test", error="invalid_token"')
    assert "error" not in challenges(r)[0]



def test_a_cached_answer_is_judged_against_each_request_s_key(httpd, oidc, key, bound):
    """The cache is keyed by the token, not by the proof's key: an answer cached for the rightful
    key's request must not serve another key's proof, nor the token as Bearer."""
    httpd.start(site(oidc))
    url = httpd.url(ENV)
    assert dpop_get(httpd, bound, key.proof("GET", url, bound)).status_code == 200
    calls = oidc.introspection_count()
    r = dpop_get(httpd, bound, DPoPKey().proof("GET", url, bound))
    assert r.status_code == 401
    assert challenges(r)[1].startswith('DPoP realm="test", error="invalid_token"')
    r = dpop_get(httpd, bound, DPoPKey("RSA").proof("GET", url, bound))
    assert r.status_code == 401
    assert httpd.get(ENV, bound).status_code == 401
    assert oidc.introspection_count() == calls          # all three from the cached answer
    assert dpop_get(httpd, bound, key.proof("GET", url, bound)).status_code == 200


@pytest.mark.parametrize("cnf", [
    {},                                                   # nothing the module knows
    {"jkt": "{jkt}", "x5t": "AAAA"},                      # a member it cannot check beside jkt
    {"jkt": "{jkt}", "kid": "k1"},
    {"jkt": ["{jkt}"]},                                   # jkt not a string
    "{jkt}",                                              # cnf not an object
])
def test_cnf_the_module_cannot_check_is_refused_under_either_scheme(httpd, keycloak, key, cnf):
    """Keycloak-shaped stand-in: cnf as given in the JWT and its introspection answer."""
    import json
    cnf = json.loads(json.dumps(cnf).replace("{jkt}", key.jkt))
    token = keycloak.mint_access(claims={"typ": "DPoP", "cnf": cnf})
    httpd.start(site(keycloak))
    assert dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token)).status_code == 401
    assert httpd.get(ENV, token).status_code == 401

# ---- headers, schemes, modes ---------------------------------------------------------------------

def test_no_credentials_get_both_challenges_bearer_first(httpd, oidc):
    httpd.start(site(oidc))
    r = requests.get(httpd.url(ENV), timeout=30)
    assert r.status_code == 401
    assert challenges(r) == ['Bearer realm="test"',
                             'DPoP realm="test", algs="ES256 ES384 PS256 RS256"']


def test_missing_dpop_header_is_invalid_proof(httpd, oidc, bound):
    httpd.start(site(oidc))
    r = dpop_get(httpd, bound, None)
    assert r.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenges(r)[1]


def test_two_dpop_header_fields_are_refused(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    conn = http.client.HTTPConnection("127.0.0.1", httpd.port, timeout=30)
    conn.putrequest("GET", ENV)
    conn.putheader("Authorization", f"DPoP {bound}")
    conn.putheader("DPoP", key.proof("GET", httpd.url(ENV), bound))
    conn.putheader("DPoP", key.proof("GET", httpd.url(ENV), bound))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 401
    assert 'error="invalid_dpop_proof"' in r.getheader("WWW-Authenticate")


def test_bearer_with_a_dpop_proof_is_invalid_request(httpd, oidc, key):
    token = oidc.mint_access()
    httpd.start(site(oidc))
    r = httpd.get(ENV, token, headers={"DPoP": key.proof("GET", httpd.url(ENV), token)})
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["WWW-Authenticate"]


def test_malformed_dpop_credentials_are_invalid_request(httpd, oidc):
    httpd.start(site(oidc))
    r = requests.get(httpd.url(ENV), headers={"Authorization": "DPoP a b"}, timeout=30)
    assert r.status_code == 400
    assert challenges(r) == ['DPoP realm="test", error="invalid_request", '
                             'algs="ES256 ES384 PS256 RS256"']


def test_require_refuses_bearer_and_unbound_tokens(httpd, oidc, key, bound):
    httpd.start(site(oidc, OfftokDPoP="Require"))
    plain = oidc.mint_access()
    r = httpd.get(ENV, plain)
    assert r.status_code == 401
    assert challenges(r) == ['DPoP realm="test", algs="ES256 ES384 PS256 RS256"']
    r = dpop_get(httpd, plain, key.proof("GET", httpd.url(ENV), plain))
    assert r.status_code == 401
    assert dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound)).status_code == 200


def test_off_treats_dpop_as_another_scheme_and_refuses_bound_tokens(httpd, oidc, key, bound):
    httpd.start(site(oidc, OfftokDPoP="Off"))
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="test"'
    r = httpd.get(ENV, bound)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="test", error="invalid_token"'
    assert httpd.get(ENV, oidc.mint_access()).status_code == 200


def test_algorithms_must_be_asymmetric(httpd, oidc):
    for alg in ("HS256", "none", "XX1"):
        code, out = httpd.configtest(site(oidc, OfftokDPoPAlgorithms=alg))
        assert code != 0 and "is not an asymmetric algorithm this module checks" in out, alg


def test_algorithms_limit_what_proofs_may_use(httpd, oidc):
    key = DPoPKey("RSA")
    token = oidc.mint_access(jkt=key.jkt)
    httpd.start(site(oidc, OfftokDPoPAlgorithms="ES256"))
    r = dpop_get(httpd, token, key.proof("GET", httpd.url(ENV), token))
    assert r.status_code == 401
    assert 'algs="ES256"' in challenges(r)[1]


# ---- nonces ---------------------------------------------------------------------------------------

def test_nonce_round_trip(httpd, oidc, key, bound):
    httpd.start(site(oidc, OfftokDPoPNonce="On"))
    url = httpd.url(ENV)
    r = dpop_get(httpd, bound, key.proof("GET", url, bound))
    assert r.status_code == 401
    assert challenges(r) == ['Bearer realm="test"', 'DPoP error="use_dpop_nonce"']
    assert r.headers["Cache-Control"] == "no-store"
    nonce = r.headers["DPoP-Nonce"]
    r = dpop_get(httpd, bound, key.proof("GET", url, bound, nonce="made-up"))
    assert r.status_code == 401 and "DPoP-Nonce" in r.headers
    r = dpop_get(httpd, bound, key.proof("GET", url, bound, nonce=nonce))
    assert r.status_code == 200


def test_nonce_claim_is_ignored_when_off(httpd, oidc, key, bound):
    httpd.start(site(oidc))
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound, nonce="anything"))
    assert r.status_code == 200
    assert "DPoP-Nonce" not in r.headers


def test_nonce_survives_a_graceful_restart(httpd, oidc, key, bound):
    """The nonce secret is made once, at the first start, and shared by every child."""
    httpd.allow_errors(r"AH00161: server reached MaxRequestWorkers")
    httpd.start(site(oidc, OfftokDPoPNonce="On"), mpm="prefork", servers=2)
    url = httpd.url(ENV)
    nonce = dpop_get(httpd, bound, key.proof("GET", url, bound)).headers["DPoP-Nonce"]
    httpd.graceful()
    for _ in range(3):
        assert dpop_get(httpd, bound, key.proof("GET", url, bound, nonce=nonce)).status_code == 200


# ---- replay across nodes (OfftokRedis) ------------------------------------------------------------

def _redis_nodes(workdir, pki, request):
    """A redis-server and a second node (node A is the httpd fixture), or a skip."""
    import os
    import shutil

    from httpd import Httpd
    from test_redis import REDIS_SERVER, RedisServer
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    probe = Httpd(os.path.join(workdir, "httpd", "dpop-redis-probe"), ca_file=pki.ca_file)
    if "no Redis support" in probe.configtest("", server="OfftokRedis redis://127.0.0.1:1")[1]:
        pytest.skip("this mod_offtok was built without hiredis")
    redis = RedisServer(os.path.join(workdir, "redis", "dpop-" + request.node.name[:30]))
    root = os.path.join(workdir, "httpd", request.node.name[:30] + "-node-b")
    shutil.rmtree(root, ignore_errors=True)
    key = os.path.join(workdir, "dpop-redis.key")
    with open(key, "w") as f:
        f.write("k" * 40 + "\n")
    return redis, Httpd(root, ca_file=pki.ca_file), key


@pytest.fixture
def two_nodes(workdir, pki, request, httpd):
    redis, node_b, key = _redis_nodes(workdir, pki, request)
    redis.start()
    yield redis, node_b, key
    node_b.stop()
    errors = node_b.unexpected_errors()
    redis.stop()
    assert not errors, "unexpected lines in node B's error log:\n" + "\n".join(errors)


def test_replay_is_refused_by_another_node_through_redis(httpd, two_nodes, oidc, key, bound):
    redis, node_b, secret = two_nodes
    server = (f"OfftokRedis redis://127.0.0.1:{redis.port}\nOfftokRedisKey file:{secret}\n"
              "ServerName rs.example:80\nUseCanonicalName On\n")
    for node in (httpd, node_b):
        node.allow_errors(r"OT0200: Redis at .* unreachable")
        node.start(site(oidc), server=server)
    proof = key.proof("GET", "http://rs.example/cgi/env", bound)
    assert dpop_get(httpd, bound, proof).status_code == 200
    r = dpop_get(node_b, bound, proof)
    assert r.status_code == 401
    assert "OT0703" in node_b.error_log()
    assert any(k.startswith(b"offtok:") and b":once:" in k for k in redis.command("KEYS", "*"))


def test_nonce_from_one_node_is_taken_by_another(httpd, two_nodes, oidc, key, bound):
    """With OfftokRedisKey every node derives the same nonce key."""
    redis, node_b, secret = two_nodes
    server = (f"OfftokRedis redis://127.0.0.1:{redis.port}\nOfftokRedisKey file:{secret}\n"
              "ServerName rs.example:80\nUseCanonicalName On\n")
    for node in (httpd, node_b):
        node.allow_errors(r"OT0200: Redis at .* unreachable")
        node.start(site(oidc, OfftokDPoPNonce="On"), server=server)
    url = "http://rs.example/cgi/env"
    nonce = dpop_get(httpd, bound, key.proof("GET", url, bound)).headers["DPoP-Nonce"]
    assert dpop_get(node_b, bound, key.proof("GET", url, bound, nonce=nonce)).status_code == 200


def test_redis_not_answering_is_503(httpd, two_nodes, oidc, key, bound):
    redis, node_b, secret = two_nodes
    httpd.allow_errors(r"OT0200: Redis at .* unreachable", r"OT0704", r"OT0210")
    httpd.start(site(oidc), server=f"OfftokRedis redis://127.0.0.1:{redis.port}\n"
                                   f"OfftokRedisKey file:{secret}\n")
    redis.stop()
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound))
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert "OT0704" in httpd.error_log()


# ---- subrequests and internal redirects -----------------------------------------------------------

def test_subrequests_reuse_the_verified_thumbprint(httpd, oidc, key, bound):
    """An SSI page includes a protected CGI (a subrequest) and DirectoryIndex maps / to a file
    (a subrequest, then an internal redirect): the proof is checked once, for the URL the client
    asked for, and the subrequests are not taken for replays."""
    import os
    with open(os.path.join(httpd.root, "htdocs", "protected", "page.shtml"), "w") as f:
        f.write('<!--#include virtual="/cgi/env" -->\n')
    server = f"""
LoadModule dir_module {__import__('httpd').MODDIR}/mod_dir.so
DirectoryIndex index.html
<Directory "{httpd.root}/htdocs/protected">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
</Directory>
"""
    httpd.start(site(oidc), server=server)
    page = "/protected/page.shtml"
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(page), bound), path=page)
    assert r.status_code == 200, r.headers
    assert '"OFFTOK_TOKEN_BINDING": "dpop"' in r.text
    assert '"REMOTE_USER": "dpop-user"' in r.text
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url("/protected/"), bound),
                 path="/protected/")
    assert r.status_code == 200
    assert r.text == "protected content\n"
    assert "OT0703" not in httpd.error_log()


def test_subrequests_of_an_unprotected_page_check_the_proof_once(httpd, oidc, key, bound):
    """A public SSI page includes two protected CGIs: the first subrequest checks the proof (for
    the page's URL) and records it; the second reuses that thumbprint instead of taking the
    proof for a replay of itself."""
    import os
    with open(os.path.join(httpd.root, "htdocs", "public.shtml"), "w") as f:
        f.write('<!--#include virtual="/cgi/env" -->\n<!--#include virtual="/cgi/env?x" -->\n')
    server = f"""
<Location "/public.shtml">
    Options +Includes
    SetOutputFilter INCLUDES
</Location>
"""
    httpd.allow_errors(r"unable to include .* subrequest setup returned 401")
    httpd.start(site(oidc), server=server)
    page = "/public.shtml"
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(page), bound), path=page)
    assert r.status_code == 200
    assert r.text.count('"OFFTOK_TOKEN_BINDING": "dpop"') == 2, r.text
    assert "OT0703" not in httpd.error_log()
    assert "unable to include" not in httpd.error_log()
    # The next request checks its own proof; another key's proof gets nothing.
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(page), bound), path=page)
    assert r.text.count('"OFFTOK_TOKEN_BINDING": "dpop"') == 2, r.text
    r = dpop_get(httpd, bound, DPoPKey().proof("GET", httpd.url(page), bound), path=page)
    assert '"OFFTOK_TOKEN_BINDING"' not in r.text


@pytest.mark.parametrize("line,message", [
    ("OfftokDPoP Maybe", "OfftokDPoP: 'Maybe' is not one of Allow, Off, Require"),
    ("OfftokMTLS On", "OfftokMTLS: 'On' is not one of Allow, Off, Require"),
    ("OfftokDPoPMaxAge 0", "OfftokDPoPMaxAge: must be at least 1"),
    ("OfftokDPoPMaxAge 99999", "OfftokDPoPMaxAge: "),
    ("OfftokClockSkew -1", "OfftokClockSkew: "),
    ("OfftokDPoPNonce maybe", "OfftokDPoPNonce must be On or Off"),
])
def test_bad_arguments_fail_the_config_test(httpd, oidc, line, message):
    code, out = httpd.configtest(protected("/cgi/", oidc, extra=line))
    assert code != 0 and message in out, out


def test_rows_of_answers_use_the_dpop_challenge_on_a_dpop_request(httpd, oidc, key, bound):
    """403 insufficient_scope and 401 for an inactive token, under the DPoP scheme."""
    httpd.allow_errors("AH01630")
    httpd.start(protected("/cgi/", oidc, require="offtok-scope missing-scope"))
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound))
    assert r.status_code == 403
    assert challenges(r) == ['DPoP realm="test", error="insufficient_scope", '
                             'scope="missing-scope", algs="ES256 ES384 PS256 RS256"']
    oidc.revoke(bound)
    httpd.stop()
    httpd.start(site(oidc, OfftokCacheTTL=0))
    r = dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound))
    assert r.status_code == 401
    assert challenges(r) == ['Bearer realm="test"', 'DPoP realm="test", '
                             'error="invalid_token", algs="ES256 ES384 PS256 RS256"']


def test_dpop_answers_are_counted(httpd, oidc, key, bound):
    """offtok_answers_total{status,reason} on the status page counts the DPoP refusals."""
    httpd.start(site(oidc) + """
<Location "/offtok-status">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
""")
    proof = key.proof("GET", httpd.url(ENV), bound)
    assert dpop_get(httpd, bound, proof).status_code == 200
    assert dpop_get(httpd, bound, proof).status_code == 401                   # a replay
    assert dpop_get(httpd, bound, key.proof("GET", httpd.url(ENV), bound, iat=1)).status_code == 401
    assert httpd.get(ENV, bound).status_code == 401                           # bound, as Bearer
    text = httpd.get("/offtok-status?format=prometheus").text
    assert 'offtok_answers_total{status="401",reason="invalid_dpop_proof"} 2' in text
    assert 'offtok_answers_total{status="401",reason="bound"} 1' in text
    assert 'offtok_answers_total{status="200",reason="granted"} 1' in text
