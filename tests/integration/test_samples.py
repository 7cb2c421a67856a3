"""The shipped samples are safe as shipped (issue 20): conf/cgi.conf, read together with Debian's
own serve-cgi-bin.conf (which opens the same directory with "Require all granted"), still demands
a token for the CGI directory, whichever of the two files httpd reads first. The sample text is
used as shipped; only the paths, the issuer (the fault-injecting stub, stubs/faulty.py) and the
secret are replaced. tests/packaging/deb-smoke proves the same through Debian's apache2 with
a2enconf."""
import json
import os
import re
import urllib.parse

import pytest

from httpd import challenges

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "conf", "cgi.conf")
DEBIAN_SERVE_CGI_BIN = "/etc/apache2/conf-available/serve-cgi-bin.conf"
# What Debian 12's apache2 ships there, for machines without it.
SERVE_CGI_BIN = """<IfModule mod_alias.c>
	<IfModule mod_cgi.c>
		Define ENABLE_USR_LIB_CGI_BIN
	</IfModule>
	<IfModule mod_cgid.c>
		Define ENABLE_USR_LIB_CGI_BIN
	</IfModule>
	<IfDefine ENABLE_USR_LIB_CGI_BIN>
		ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/
		<Directory "/usr/lib/cgi-bin">
			AllowOverride None
			Options +ExecCGI -MultiViews +SymLinksIfOwnerMatch
			Require all granted
		</Directory>
	</IfDefine>
</IfModule>
"""
WHOAMI = "#!/usr/bin/python3\nimport os\nprint('Content-Type: text/plain')\nprint()\n" \
         "print('user=' + os.environ.get('REMOTE_USER', '-'))\n"


def serve_cgi_bin():
    try:
        with open(DEBIAN_SERVE_CGI_BIN) as f:
            return f.read()
    except FileNotFoundError:
        return SERVE_CGI_BIN


def sample(httpd, faulty, cgi_dir, text=None):
    """conf/cgi.conf with the CGI directory, the issuer and the secret of this test."""
    text = text if text is not None else open(SAMPLE).read()
    claims = urllib.parse.quote(json.dumps({"scope": "openid reports"}))
    secret = os.path.join(httpd.root, "reports-api.secret")
    with open(secret, "w") as f:
        f.write("rs-secret\n")
    text = text.replace("/usr/lib/cgi-bin", cgi_dir)
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("OfftokIntrospectionURL "):
            # The query string sets the claims of the stub's active answer: scope "reports".
            line = f"    OfftokIntrospectionURL {faulty.url_for('ok?claims=' + claims)}"
            lines.append(f"    OfftokCAFile {faulty.ca_file}")
        elif "OfftokClientSecret file:" in line:
            line = f"    OfftokClientSecret file:{secret}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def install_scripts(cgi_dir):
    for d in (cgi_dir, os.path.join(cgi_dir, "sub")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        path = os.path.join(d, "whoami")
        with open(path, "w") as f:
            f.write(WHOAMI)
        os.chmod(path, 0o755)


@pytest.mark.parametrize("order", ["sample first (as a2enconf sorts offtok-cgi)",
                                   "serve-cgi-bin first"])
def test_cgi_sample_demands_a_token_next_to_debians_serve_cgi_bin(httpd, faulty, order):
    cgi_dir = os.path.join(httpd.root, "usr-lib-cgi-bin")
    install_scripts(cgi_dir)
    ours = sample(httpd, faulty, cgi_dir)
    debian = serve_cgi_bin().replace("/usr/lib/cgi-bin", cgi_dir)
    httpd.start(ours + debian if order.startswith("sample") else debian + ours)

    for path in ("/reports/whoami", "/cgi-bin/whoami", "/cgi-bin/sub/whoami",
                 "/reports/sub/whoami"):
        r = httpd.get(path)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert challenges(r)[0] == 'Bearer realm="reports"'
    # The stub says every token is active, with scope "openid reports": granted at both URLs.
    for path in ("/reports/whoami", "/cgi-bin/whoami"):
        r = httpd.get(path, token="a-token")
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert "user=faulty-user" in r.text


def test_a_plain_directory_section_would_be_opened_by_serve_cgi_bin(httpd, faulty):
    """Why the sample uses <DirectoryMatch>: the same lines in <Directory>, read before Debian's
    file, leave the directory open (this is what the sample shipped before)."""
    cgi_dir = os.path.join(httpd.root, "usr-lib-cgi-bin")
    install_scripts(cgi_dir)
    plain = open(SAMPLE).read().replace('<DirectoryMatch "^/usr/lib/cgi-bin(/|$)">',
                                        '<Directory "/usr/lib/cgi-bin">')
    plain = plain.replace("</DirectoryMatch>", "</Directory>")
    assert "<Directory " in plain, "the sample's section is not what this test expects"
    debian = serve_cgi_bin().replace("/usr/lib/cgi-bin", cgi_dir)
    httpd.start(sample(httpd, faulty, cgi_dir, plain) + debian)
    assert httpd.get("/cgi-bin/whoami").status_code == 200


def test_cgi_sample_refuses_to_load_without_a_cgi_module(httpd, faulty):
    """Without mod_cgid/mod_cgi the sample stops apachectl -t with a message naming the fix."""
    cgi_dir = os.path.join(httpd.root, "usr-lib-cgi-bin")
    install_scripts(cgi_dir)
    text = sample(httpd, faulty, cgi_dir).replace("<IfModule !mod_cgid.c>",
                                                  "<IfModule !mod_offtok_no_such.c>")
    text = text.replace("<IfModule !mod_cgi.c>", "<IfModule !mod_offtok_no_such_either.c>")
    rc, out = httpd.configtest(text)
    assert rc != 0 and "a2enmod cgid" in out, out


@pytest.mark.parametrize("name", ["cgi.conf", "keycloak.conf", "reverse-proxy.conf"])
@pytest.mark.parametrize("where", ["server config", "virtual host"])
def test_every_sample_loads_in_the_server_config_and_in_a_virtual_host(httpd, name, where):
    """The samples hold sections only; the one server-wide setting lives in offtok.conf, so
    none of them sets OfftokCacheSize a second time or breaks inside <VirtualHost>."""
    text = open(os.path.join(REPO, "conf", name)).read()
    assert "OfftokCacheSize" not in text.replace("(OfftokCacheSize)", "")
    text = re.sub(r"(file|env):\S+", "sample-secret", text)
    if where == "virtual host":
        text = f"<VirtualHost 127.0.0.1:{httpd.port}>\n{text}\n</VirtualHost>\n"
    rc, out = httpd.configtest(text)
    assert rc == 0, out
