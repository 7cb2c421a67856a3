"""Directives: arguments checked by `httpd -t`, contexts, and merging from parent to child."""
import os

import pytest

from httpd import offtok_lines, protected

BAD = [
    ("OfftokIntrospectionURL ftp://x/y", "is not an http:// or https:// URL"),
    ("OfftokIntrospectionURL https://user:pw@x/y", "a URL with a user name or password"),
    ("OfftokClientAuth none", "is not client_secret_basic, client_secret_post, client_secret_jwt, "
     "private_key_jwt or tls_client_auth"),
    ("OfftokClientKey /etc/key.pem", "give the key as file:PATH"),
    ("OfftokClientCertificate /nonexistent.crt /nonexistent.key", "does not exist"),
    ("OfftokClientAssertionAudience not-a-url", "is not an http:// or https:// URL"),
    ("OfftokSignedAnswers maybe", "OfftokSignedAnswers"),
    ("OfftokClientSecret env:OFFTOK_TEST_NOT_SET", "environment variable OFFTOK_TEST_NOT_SET"),
    ("OfftokClientSecret file:/nonexistent/secret", "cannot open secret file"),
    ("OfftokTimeout 0", "is not a number of seconds"),
    ("OfftokTimeout 2 1", "is shorter than the connect time"),
    ("OfftokTimeout two", "is not a number of seconds"),
    ("OfftokAlwaysValidate Sometimes", "is not one of Off, On, Offline"),
    ("OfftokCacheTTL -1", "is not a whole number of seconds"),
    ("OfftokNegativeCacheTTL 1.5", "is not a whole number of seconds"),
    ("OfftokOfflineTokens Maybe", "is not one of Deny, Allow"),
    ("OfftokTokenTypeHint id_token", "is not one of auto, access_token, refresh_token, none"),
    ("OfftokPassHeader X:Bad sub", "is not a valid header name"),
    ("OfftokPassHeader Authorization sub", "cannot be used"),
    ("OfftokPassHeader Content-Length sub", "cannot be used"),
    ("OfftokPassHeader transfer_encoding sub", "cannot be used"),
    ("OfftokPassHeader Host sub", "cannot be used"),
    ("OfftokCAFile /nonexistent/ca.pem", "is not a readable file"),
    ("OfftokSSLVerify maybe", "OfftokSSLVerify must be On or Off"),
]


@pytest.mark.parametrize("line,message", BAD, ids=[b[0].split()[0] + str(i)
                                                   for i, b in enumerate(BAD)])
def test_bad_arguments_are_refused(httpd, line, message):
    code, out = httpd.configtest(f'<Location "/x/">\n    {line}\n</Location>')
    assert code != 0
    assert message in out, out


@pytest.mark.parametrize("line,message", [
    ("OfftokCacheSize 1K", "is not a size"),
    ("OfftokCacheSize lots", "is not a size"),
    ("OfftokIssuerMaxPending 0", "is not a number from 1 to 100000"),
], ids=["tiny", "word", "pending"])
def test_bad_server_arguments(httpd, line, message):
    code, out = httpd.configtest("", server=line)
    assert code != 0 and message in out, out


# OfftokIssuerMaxPending and OfftokDPoPReplaySize share one handler: each keeps its own range and
# words, exactly as `httpd -t` has always said them.
@pytest.mark.parametrize("line,message", [
    ("OfftokIssuerMaxPending 100001",
     "OfftokIssuerMaxPending: '100001' is not a number from 1 to 100000"),
    ("OfftokIssuerMaxPending 5x", "OfftokIssuerMaxPending: '5x' is not a number from 1 to 100000"),
    ("OfftokDPoPReplaySize 1023",
     "OfftokDPoPReplaySize: '1023' is not a number of proofs from 1024 to 67108864"),
    ("OfftokDPoPReplaySize 67108865",
     "OfftokDPoPReplaySize: '67108865' is not a number of proofs from 1024 to 67108864"),
    ("<VirtualHost *:80>\nOfftokIssuerMaxPending 8\n</VirtualHost>",
     "OfftokIssuerMaxPending cannot occur within <VirtualHost> section"),
    ("<VirtualHost *:80>\nOfftokDPoPReplaySize 4096\n</VirtualHost>",
     "OfftokDPoPReplaySize cannot occur within <VirtualHost> section"),
], ids=["pending-high", "pending-word", "replay-low", "replay-high", "pending-vhost",
        "replay-vhost"])
def test_counts_are_refused_in_their_own_words(httpd, line, message):
    code, out = httpd.configtest("", server=line)
    assert code != 0 and message in out, out


@pytest.mark.parametrize("line", ["OfftokIssuerMaxPending 1", "OfftokIssuerMaxPending 100000",
                                  "OfftokDPoPReplaySize 1024", "OfftokDPoPReplaySize 67108864"])
def test_counts_at_their_bounds_are_accepted(httpd, line):
    code, out = httpd.configtest("", server=line)
    assert code == 0, out


@pytest.mark.parametrize("directive", ["OfftokCacheSize 16M", "OfftokIssuerMaxPending 8"])
def test_server_only_directives_refused_in_a_location(httpd, directive):
    code, out = httpd.configtest(f'<Location "/x/">\n    {directive}\n</Location>')
    assert code != 0 and "not allowed in <Location> context" in out, out


def test_redis_without_its_key_refused_with_a_clear_message(httpd):
    # Built with hiredis, OfftokRedis needs OfftokRedisKey; without hiredis it is refused outright.
    # The rest of the Redis checks are in test_redis.py.
    code, out = httpd.configtest("", server="OfftokRedis redis://127.0.0.1:6379")
    assert code != 0, out
    assert "OT0208: OfftokRedis needs OfftokRedisKey" in out or "no Redis support" in out, out


def test_secret_from_a_file_and_the_environment(httpd, oidc, monkeypatch):
    path = os.path.join(httpd.root, "secret")
    with open(path, "w") as f:
        f.write(oidc.rs_client_secret + "\n")
    os.chmod(path, 0o600)            # read by the parent as root, before it drops privileges
    httpd.start(protected("/cgi/", oidc, OfftokClientSecret=f"file:{path}"))
    assert httpd.get("/cgi/env", token=oidc.mint_access()).status_code == 200


def test_location_overrides_server_defaults(httpd, oidc, backend):
    """Server-wide settings apply below; a Location changes what it sets; lists add up."""
    httpd.start(f"""
{offtok_lines(oidc)}
OfftokOfflineTokens Deny
OfftokPassHeader X-Sub sub
<Location "/cgi/">
    AuthType offtok
    AuthName "test"
    Require valid-user
</Location>
<Location "/cgi/env">
    OfftokOfflineTokens Allow
</Location>
<Location "/app/">
    AuthType offtok
    OfftokPassHeader X-Scope scope
    ProxyPass "{backend}/"
    Require valid-user
</Location>
""")
    offline = oidc.mint_offline()
    assert httpd.get("/cgi/env", token=offline).status_code == 200
    assert httpd.get("/cgi/other", token=offline).status_code == 401
    got = httpd.get("/app/x", token=oidc.mint_access(sub="s1", scope="openid read")).json()
    assert got["headers"]["x-sub"] == ["s1"]
    assert got["headers"]["x-scope"] == ["openid read"]


def test_policy_directives_in_htaccess(httpd, oidc):
    os.makedirs(os.path.join(httpd.root, "htdocs", "ht"), exist_ok=True)
    with open(os.path.join(httpd.root, "htdocs", "ht", ".htaccess"), "w") as f:
        f.write("AuthType offtok\nOfftokOfflineTokens Deny\nRequire valid-user\n")
    with open(os.path.join(httpd.root, "htdocs", "ht", "index.html"), "w") as f:
        f.write("ok\n")
    os.makedirs(os.path.join(httpd.root, "htdocs", "bad"), exist_ok=True)
    with open(os.path.join(httpd.root, "htdocs", "bad", ".htaccess"), "w") as f:
        f.write("OfftokIntrospectionURL https://evil.example/introspect\n")
    for d in ("ht", "bad"):
        os.chmod(os.path.join(httpd.root, "htdocs", d), 0o755)
        for name in os.listdir(os.path.join(httpd.root, "htdocs", d)):
            os.chmod(os.path.join(httpd.root, "htdocs", d, name), 0o644)
    httpd.allow_errors("OfftokIntrospectionURL not allowed here")
    httpd.start(f"""
{offtok_lines(oidc)}
<Directory "{httpd.root}/htdocs">
    AllowOverride AuthConfig
</Directory>
""")
    assert httpd.get("/ht/index.html", token=oidc.mint_access()).status_code == 200
    assert httpd.get("/ht/index.html", token=oidc.mint_offline()).status_code == 401
    assert httpd.get("/bad/index.html").status_code == 500
