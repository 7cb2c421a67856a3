#!/usr/bin/python3
"""mod_offtok's demo: a real issuer and an httpd with the module, on loopback, for a newcomer.

Started by demo/demo (which installs what is missing and builds the module first):

    demo.py              start everything, print curl lines, stay until Ctrl-C, clean up
    demo.py --detach     the same, but leave it running in the background and return
    demo.py --stop       stop a demo started with --detach (or one in another terminal)
    demo.py --preflight  only check that a demo could start (ports free, directory usable)

What runs (all on 127.0.0.1):
  - the test issuer, oidc-provider 8 (tests/issuer/issuer.js), over HTTPS with a throw-away CA;
  - a tiny "legacy" HTTP app that shows the identity headers it was given;
  - httpd (Debian's apache2) with the built mod_offtok protecting /cgi/whoami (a CGI script)
    and /app/ (mod_proxy to the legacy app), with `OfftokAlwaysValidate Offline`.

The pieces come from the integration tests (tests/integration/{httpd,issuers,pki}.py), so the
demo runs what the tests run. Settings (environment):
  OFFTOK_DEMO_DIR          working directory (default /tmp/offtok-demo), removed on a clean stop
  OFFTOK_DEMO_HTTPD_PORT   httpd's port (8080)
  OFFTOK_DEMO_ISSUER_PORT  the issuer's HTTPS port (8443)
  OFFTOK_DEMO_APP_PORT     the legacy app's port (8081)
  OFFTOK_MODULE            the mod_offtok.so to load (default: build/.libs/mod_offtok.so)
"""

import argparse
import base64
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
INTEGRATION = os.path.join(REPO, "tests", "integration")
DEMO_CMD = os.path.join(HERE, "demo")

MARKER = ".offtok-demo"          # marks a directory as the demo's own (so it may be emptied)
PID_FILE = "demo.pid"
BANNER_FILE = "banner.txt"       # written once everything runs; --detach waits for it
LOG_FILE = "demo.log"            # the detached demo's own output
REALM = "offtok demo"
USER = "alice"

WHOAMI_CGI = r'''#!/usr/bin/python3
"""mod_offtok demo: what a CGI script behind AuthType offtok receives."""
import os

env = os.environ
print("Content-Type: text/plain; charset=utf-8")
print()
print("Hello from /cgi/whoami, a CGI script behind mod_offtok.")
print()
for name in ("REMOTE_USER", "AUTH_TYPE", "OFFTOK_TOKEN_KIND"):
    print(f"{name}={env.get(name, '(not set)')}")
for name in sorted(env):
    if name.startswith("OFFTOK_CLAIM_"):
        print(f"{name}={env[name]}")
'''


class DemoError(Exception):
    """Something the user has to fix; the message says what."""


# -- settings ------------------------------------------------------------------------------------

class Settings:
    def __init__(self):
        self.dir = os.path.abspath(os.environ.get("OFFTOK_DEMO_DIR") or "/tmp/offtok-demo")
        self.httpd_port = _port("OFFTOK_DEMO_HTTPD_PORT", 8080)
        self.issuer_port = _port("OFFTOK_DEMO_ISSUER_PORT", 8443)
        self.app_port = _port("OFFTOK_DEMO_APP_PORT", 8081)
        self.ports = {"OFFTOK_DEMO_HTTPD_PORT": self.httpd_port,
                      "OFFTOK_DEMO_ISSUER_PORT": self.issuer_port,
                      "OFFTOK_DEMO_APP_PORT": self.app_port}

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


def _port(var, default):
    value = os.environ.get(var) or str(default)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise DemoError(f"{var}={value!r} is not a TCP port number")
    return int(value)


# -- checks before anything starts ---------------------------------------------------------------

def running_pid(cfg):
    """The pid of a demo running from cfg.dir, or None."""
    try:
        with open(cfg.path(PID_FILE)) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"demo.py" not in f.read():
                return None
        return pid
    except (OSError, ValueError):
        return None


def port_taken(port):
    """True if something listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def preflight(cfg):
    """Raise DemoError if a demo cannot start with these settings."""
    pid = running_pid(cfg)
    if pid:
        raise DemoError(f"a demo is already running from {cfg.dir} (pid {pid}); stop it with "
                        f"{DEMO_CMD} --stop")
    if len(set(cfg.ports.values())) != len(cfg.ports):
        raise DemoError("the demo's ports must differ: " + ", ".join(
            f"{var}={port}" for var, port in cfg.ports.items()))
    for var, port in cfg.ports.items():
        if port_taken(port):
            raise DemoError(f"port {port} on 127.0.0.1 is already in use (by another program or "
                            f"an earlier demo); free it or choose another one, e.g. "
                            f"{var}={port + 10000 if port < 55535 else port - 10000} {DEMO_CMD}")
    if os.path.lexists(cfg.dir):
        if not os.path.isdir(cfg.dir) or (not os.path.exists(cfg.path(MARKER))
                                           and os.listdir(cfg.dir)):
            raise DemoError(f"{cfg.dir} exists and is not a demo directory; remove it or set "
                            f"OFFTOK_DEMO_DIR to another path")
    # httpd's children run as www-data: every directory above the demo must let them through.
    parent = os.path.dirname(cfg.dir)
    while True:
        if os.path.isdir(parent) and not os.stat(parent).st_mode & 0o001:
            raise DemoError(f"{parent} is not searchable by others, so httpd's children (www-data) "
                            f"could not reach {cfg.dir}; set OFFTOK_DEMO_DIR elsewhere, e.g. "
                            f"under /tmp")
        if parent == "/":
            break
        parent = os.path.dirname(parent)


def prepare_dir(cfg):
    """An empty demo directory with the marker, readable by www-data."""
    if os.path.exists(cfg.path(MARKER)):
        shutil.rmtree(cfg.dir)      # a previous demo that did not clean up (crash, kill -9)
    os.makedirs(cfg.dir, exist_ok=True)
    os.chmod(cfg.dir, 0o755)
    with open(cfg.path(MARKER), "w") as f:
        f.write("directory of mod_offtok's demo (demo/demo); removed when it stops\n")


# -- the legacy app behind mod_proxy -------------------------------------------------------------

class LegacyApp(BaseHTTPRequestHandler):
    """Knows nothing about tokens: it trusts the identity headers httpd puts in front of it."""

    protocol_version = "HTTP/1.1"
    server_version = "legacy-app/1.0"

    def do_GET(self):
        lines = ["Hello from the legacy app behind mod_proxy; it trusts the headers httpd sets.", ""]
        for name in ("X-Remote-User", "X-User-Scope"):
            values = self.headers.get_all(name) or []
            lines.append(f"{name}: {', '.join(values) if values else '(not sent)'}")
        lines.append("Authorization: " + ("(forwarded)" if self.headers.get("Authorization")
                                          else "(not forwarded: OfftokForwardToken Off)"))
        lines.append(f"path: {self.path}")
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_app(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), LegacyApp)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- the issuer ----------------------------------------------------------------------------------

def demo_issuer_class():
    from issuers import OidcIssuer

    class DemoIssuer(OidcIssuer):
        """The integration tests' oidc-provider issuer, on a fixed port instead of a free one."""

        def __init__(self, workdir, pki, port):
            self._fixed_port = port
            super().__init__(workdir, pki)

        def command(self):
            if not self.port:
                self.port = self._fixed_port
            return super().command()

    return DemoIssuer


def revoke_rfc7009(issuer, token):
    """What the printed revocation curl line does: RFC 7009 revocation as the app client."""
    credentials = f"{issuer.app_client_id}:{issuer.app_client_secret}".encode()
    request = urllib.request.Request(
        issuer.revocation_url, method="POST",
        data=urllib.parse.urlencode({"token": token, "token_type_hint": "refresh_token"}).encode(),
        headers={"Authorization": "Basic " + base64.b64encode(credentials).decode(),
                 "Content-Type": "application/x-www-form-urlencoded"})
    context = ssl.create_default_context(cafile=issuer.ca_file)
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return response.status


# -- httpd ---------------------------------------------------------------------------------------

def httpd_config(issuer, cfg):
    from httpd import offtok_lines

    common = offtok_lines(issuer, OfftokAlwaysValidate="Offline")
    return f"""
# ---- mod_offtok demo ----------------------------------------------------------------------
# Offline tokens are asked about at the issuer on every request (OfftokAlwaysValidate Offline),
# so revoking one takes effect at once; access tokens may be answered from the cache.

# A CGI script: REMOTE_USER, OFFTOK_TOKEN_KIND and OFFTOK_CLAIM_* in its environment.
<Location "/cgi/">
    AuthType offtok
    AuthName "{REALM}"
    {common}
    Require valid-user
</Location>

# A legacy app behind mod_proxy: it gets the identity as request headers, and no token.
<Location "/app/">
    AuthType offtok
    AuthName "{REALM}"
    {common}
    OfftokPassHeader X-Remote-User sub
    OfftokPassHeader X-User-Scope scope
    OfftokForwardToken Off
    Require valid-user
    ProxyPass "http://127.0.0.1:{cfg.app_port}/"
    ProxyPassReverse "http://127.0.0.1:{cfg.app_port}/"
</Location>
"""


def start_httpd(cfg, issuer, pki):
    from httpd import Httpd

    server = Httpd(cfg.path("httpd"), ca_file=pki.ca_file)
    server.port = cfg.httpd_port  # the harness picked a free port; the demo has a fixed one
    script = os.path.join(server.root, "cgi-bin", "whoami")
    with open(script, "w") as f:
        f.write(WHOAMI_CGI)
    os.chmod(script, 0o755)
    return server.start(httpd_config(issuer, cfg))


# -- self-check, then what to type --------------------------------------------------------------

def self_check(server, issuer):
    """Walk the newcomer's path once with throw-away tokens; answer a list of problems."""
    problems = []

    def expect(what, response, status, *needles):
        if response.status_code != status or not all(n in response.text for n in needles):
            problems.append(f"{what}: expected {status} with {needles}, got "
                            f"{response.status_code}: {response.text.strip()[:300]}")

    access = issuer.mint_access(sub=USER, scope="openid profile", ttl=600)
    offline = issuer.mint_offline(sub=USER, scope="openid profile")
    expect("no token", server.get("/cgi/whoami"), 401)
    expect("access token, CGI", server.get("/cgi/whoami", token=access), 200,
           f"REMOTE_USER={USER}", "OFFTOK_TOKEN_KIND=access")
    expect("access token, proxy", server.get("/app/", token=access), 200,
           f"X-Remote-User: {USER}")
    expect("offline token, CGI", server.get("/cgi/whoami", token=offline), 200,
           "OFFTOK_TOKEN_KIND=offline")
    expect("spoofed X-Remote-User", server.get("/app/", token=access,
                                               headers={"X-Remote-User": "mallory"}), 200,
           f"X-Remote-User: {USER}\n")
    try:
        revoke_rfc7009(issuer, offline)
    except (OSError, urllib.error.HTTPError) as err:
        problems.append(f"RFC 7009 revocation of an offline token failed: {err}")
    expect("revoked offline token", server.get("/cgi/whoami", token=offline), 401)
    issuer.revoke(access)
    return problems


def banner(cfg, server, issuer, access, offline, problems):
    base = server.base
    ca = shlex.quote(issuer.ca_file)

    def bearer(token, path, flags=""):
        return f"curl {flags}-H 'Authorization: Bearer {token}' {base}{path}"

    revoke = (f"curl --cacert {ca} -u {issuer.app_client_id}:{issuer.app_client_secret} "
              f"-d token={offline} -d token_type_hint=refresh_token {issuer.revocation_url}")
    mint = (f"curl --cacert {ca} -H 'Content-Type: application/json' -d '{{\"sub\":\"bob\"}}' "
            f"{issuer.url}/test/mint")
    lines = [
        f"mod_offtok demo is up on loopback (files and logs in {cfg.dir}):",
        f"  httpd   {base}  AuthType offtok, OfftokAlwaysValidate Offline, in front of",
        f"          /cgi/whoami (a CGI script) and /app/ (mod_proxy to 127.0.0.1:{cfg.app_port})",
        f"          log {server.root}/logs/error.log, configuration {server.root}/httpd.conf",
        f"  issuer  {issuer.url}  oidc-provider 8, test CA {issuer.ca_file}",
        "",
        f"Tokens for {USER}, both live now:",
        f"  access   (1 hour)   {access}",
        f"  offline  (30 days)  {offline}",
        "",
        "# No token: 401 with a Bearer challenge",
        f"curl -i {base}/cgi/whoami",
        "",
        "# The access token: the CGI script sees REMOTE_USER, OFFTOK_TOKEN_KIND=access and",
        "# OFFTOK_CLAIM_*; the proxied app sees X-Remote-User (a client-sent one is replaced)",
        bearer(access, "/cgi/whoami"),
        bearer(access, "/app/"),
        bearer(access, "/app/", "-H 'X-Remote-User: mallory' "),
        "",
        "# The offline token, the same two places (OFFTOK_TOKEN_KIND=offline)",
        bearer(offline, "/cgi/whoami"),
        bearer(offline, "/app/"),
        "",
        "# Revoke the offline token: RFC 7009 revocation at the issuer, authenticated as the",
        "# client it was issued to (app-client); the issuer answers 200 with an empty body",
        revoke,
        "",
        "# ...and the very next request with it is refused, 401 error=\"invalid_token\", because",
        "# OfftokAlwaysValidate Offline asks the issuer about offline tokens on every request",
        bearer(offline, "/cgi/whoami", "-i "),
        "",
        "# More tokens from the issuer's test control API (loopback only, no authentication);",
        "# the answer's \"token\" member is the token",
        f"{mint}/access",
        f"{mint}/offline",
    ]
    if problems:
        lines += ["", "WARNING: the demo's self-check found problems (see httpd's log):"]
        lines += [f"  - {p}" for p in problems]
    return "\n".join(lines) + "\n"


# -- running -------------------------------------------------------------------------------------

class Stop(Exception):
    """A signal asked the demo to stop."""


def _on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def serve(cfg, detached):
    """Start everything, show how to use it, wait for a signal, stop everything."""
    sys.path.insert(0, INTEGRATION)
    from issuers import IssuerError
    from pki import make_pki

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    with open(cfg.path(PID_FILE), "w") as f:
        f.write(f"{os.getpid()}\n")

    app = issuer = server = None
    clean = False
    status = 1
    try:
        pki = make_pki(cfg.path("pki"))
        os.chmod(pki.dirpath, 0o755)
        app = start_app(cfg.app_port)
        issuer = demo_issuer_class()(cfg.path("issuer"), pki, cfg.issuer_port)
        server = start_httpd(cfg, issuer, pki)
        problems = self_check(server, issuer)
        access = issuer.mint_access(sub=USER, scope="openid profile", ttl=3600,
                                    claims={"email": f"{USER}@example.org",
                                            "realm_access": {"roles": ["reader"]}})
        offline = issuer.mint_offline(sub=USER, scope="openid profile",
                                      claims={"email": f"{USER}@example.org"})
        text = banner(cfg, server, issuer, access, offline, problems)
        if detached:
            tmp = cfg.path(BANNER_FILE + ".tmp")
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, cfg.path(BANNER_FILE))
        else:
            print("\n" + text, flush=True)
            print("Running in the foreground: Ctrl-C stops everything and removes "
                  f"{cfg.dir}.", flush=True)
        while True:
            time.sleep(1)
            for name, proc in (("httpd", server.proc), ("the issuer", issuer.process)):
                if proc is None or proc.poll() is not None:
                    time.sleep(0.5)  # a Ctrl-C reaches the children too; let ours arrive
                    raise DemoError(f"{name} exited unexpectedly; its log is kept in {cfg.dir}")
    except Stop as stop:
        print(f"\ndemo: {stop}: stopping", flush=True)
        clean = True
        status = 0
    except (DemoError, IssuerError, AssertionError, OSError, RuntimeError) as err:
        print(f"demo: {err}\ndemo: logs are kept in {cfg.dir}", file=sys.stderr, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if server is not None:
            server.stop()
        if issuer is not None:
            issuer.stop()
        if app is not None:
            app.shutdown()
            app.server_close()
        if clean:
            shutil.rmtree(cfg.dir, ignore_errors=True)
        else:
            try:
                os.unlink(cfg.path(PID_FILE))
            except OSError:
                pass
    if clean:
        print("demo: stopped; everything is cleaned up", flush=True)
    return status


def detach(cfg):
    """Start the demo as a background process in its own session; print what it prints."""
    log_path = cfg.path(LOG_FILE)
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-detached"],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if os.path.exists(cfg.path(BANNER_FILE)):
            with open(cfg.path(BANNER_FILE)) as f:
                print("\n" + f.read(), end="")
            print(f"\nRunning in the background (pid {child.pid}). Stop it, and remove "
                  f"{cfg.dir}, with:\n  {DEMO_CMD} --stop")
            return 0
        if child.poll() is not None:
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"demo: the background demo exited while starting; its output ({log_path}):\n"
                  f"{tail}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    child.terminate()
    child.wait()
    print(f"demo: not ready after 180 s; see {log_path}", file=sys.stderr)
    return 1


def stop(cfg):
    pid = running_pid(cfg)
    if not pid:
        print(f"demo: no demo is running from {cfg.dir}")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            print(f"demo: stopped (pid {pid}); {cfg.dir} is removed")
            return 0
        time.sleep(0.2)
    print(f"demo: pid {pid} did not stop within 40 s", file=sys.stderr)
    return 1


def main():
    parser = argparse.ArgumentParser(
        description="mod_offtok's demo: issuer, httpd with the module, curl lines to try.",
        epilog="Environment: OFFTOK_DEMO_DIR, OFFTOK_DEMO_HTTPD_PORT (8080), "
               "OFFTOK_DEMO_ISSUER_PORT (8443), OFFTOK_DEMO_APP_PORT (8081), OFFTOK_MODULE.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true",
                      help="leave the demo running in the background and return")
    mode.add_argument("--stop", action="store_true", help="stop a running demo")
    mode.add_argument("--preflight", action="store_true",
                      help="only check that the demo can start")
    mode.add_argument("--serve-detached", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        cfg = Settings()
        if args.stop:
            return stop(cfg)
        if args.serve_detached:
            return serve(cfg, detached=True)
        preflight(cfg)
        if args.preflight:
            return 0
        prepare_dir(cfg)
        if args.detach:
            return detach(cfg)
        return serve(cfg, detached=False)
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
