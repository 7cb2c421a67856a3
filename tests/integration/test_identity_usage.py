"""docs/identity.md's examples work as written: the access log shows claims and the module's
decision (%{OFFTOK_CLAIM_sub}e, %{offtok-answer}n), and per-directory mod_rewrite sees the
identity. The issuer is the fault-injecting stub (stubs/faulty.py, /ok: sub "faulty-user")."""
import os

from httpd import wait_until


def test_log_format_and_rewrite_see_the_identity(httpd, faulty):
    log = os.path.join(httpd.root, "logs", "offtok.log")
    httpd.start(f"""
LogFormat "%U %u sub=%{{OFFTOK_CLAIM_sub}}e kind=%{{OFFTOK_TOKEN_KIND}}e decided=\\"%{{offtok-answer}}n\\" %>s" offtok
CustomLog "{log}" offtok
Alias "/ok/" "{httpd.root}/htdocs/protected/"
<Location "/ok/">
    AuthType offtok
    AuthName "identity"
    OfftokIntrospectionURL {faulty.url_for("ok")}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile {faulty.ca_file}
    Require valid-user
    RewriteEngine On
    RewriteCond %{{ENV:OFFTOK_TOKEN_KIND}} =access
    RewriteRule ^ - [E=SEEN_BY_REWRITE:%{{ENV:OFFTOK_CLAIM_sub}}]
    Header always set X-Seen-By-Rewrite "%{{SEEN_BY_REWRITE}}e"
</Location>
""")
    def lines():
        try:
            with open(log) as f:
                return [line for line in f.read().splitlines() if line.startswith("/ok/")]
        except FileNotFoundError:
            return []

    ok = httpd.get("/ok/index.html", token="token-for-the-log")
    assert ok.status_code == 200
    assert ok.headers["X-Seen-By-Rewrite"] == "faulty-user"
    # httpd writes the access log after the answer, from whichever thread served it: wait for
    # the first line before the second request, so the lines come in the order sent.
    wait_until(lambda: len(lines()) >= 1, what="the first access log line")
    assert httpd.get("/ok/index.html").status_code == 401
    got = wait_until(lambda: len(lines()) >= 2 and lines(), what="two access log lines")
    assert got[0] == '/ok/index.html faulty-user sub=faulty-user kind=access decided="200 granted" 200'
    assert got[1] == '/ok/index.html - sub=- kind=- decided="401 no_token" 401'
