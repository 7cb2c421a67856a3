"""A real httpd (Debian's apache2 binary) with the built mod_offtok, one configuration per test.

The harness renders httpd.conf from a test's own lines, starts httpd in the foreground, waits
until it answers, and after the test fails it on unexpected [error]/[crit] lines or crashes in
the error log, the way mod_md's and mod_h2's pyhttpd fixtures do.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODDIR = "/usr/lib/apache2/modules"
HTTPD_BIN = os.environ.get("OFFTOK_HTTPD", "/usr/sbin/apache2")

# Log lines that are part of normal operation in these tests.
ALWAYS_ALLOWED = [
    r"AH01630",            # mod_authz_core logs every 403 at error level
    r"AH00489",            # "resuming normal operations" (notice, but be safe)
    r"AH00094",            # "Command line: ..."
]
BAD = re.compile(r"\[(?:[a-z_]+:)?(error|crit|alert|emerg)\]|Segmentation fault|exit signal|"
                 r"AddressSanitizer|runtime error:|LeakSanitizer")


def module_path():
    """Where the built module is: $OFFTOK_MODULE, else the usual build directories."""
    env = os.environ.get("OFFTOK_MODULE")
    if env:
        return env
    for cand in ("build/.libs/mod_offtok.so", ".libs/mod_offtok.so"):
        path = os.path.join(REPO, cand)
        if os.path.exists(path):
            return path
    raise RuntimeError("mod_offtok.so not found: build it or set OFFTOK_MODULE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _threads(pid):
    """How many threads process pid has; 0 once it has exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return 0 if fields[0] == "Z" else int(fields[17])


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate until it is true or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# event and worker take the same settings; only the module differs.
THREADED_MPM_CONF = """
LoadModule mpm_{mpm}_module {moddir}/mod_mpm_{mpm}.so
LoadModule cgid_module {moddir}/mod_cgid.so
ScriptSock {root}/cgid.sock
StartServers {servers}
ServerLimit {servers}
ThreadsPerChild {threads}
ThreadLimit {threads}
MaxRequestWorkers {workers}
MinSpareThreads 1
MaxSpareThreads {workers}
"""

MPM_CONF = {
    "event": THREADED_MPM_CONF,
    "worker": THREADED_MPM_CONF,
    "prefork": """
LoadModule mpm_prefork_module {moddir}/mod_mpm_prefork.so
LoadModule cgi_module {moddir}/mod_cgi.so
StartServers {servers}
MinSpareServers {servers}
MaxSpareServers {servers}
ServerLimit {servers}
MaxRequestWorkers {servers}
""",
}

BASE_CONF = """
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1:{port}
{user}
ErrorLog "{root}/logs/error.log"
LogLevel {loglevel}
LogFormat "%h %u \\"%r\\" %>s %D" short
CustomLog "{root}/logs/access.log" short
Timeout 30
KeepAlive On
{mpm}
LoadModule authn_core_module {moddir}/mod_authn_core.so
LoadModule authz_core_module {moddir}/mod_authz_core.so
LoadModule authz_host_module {moddir}/mod_authz_host.so
LoadModule authz_user_module {moddir}/mod_authz_user.so
LoadModule mime_module {moddir}/mod_mime.so
LoadModule alias_module {moddir}/mod_alias.so
LoadModule env_module {moddir}/mod_env.so
LoadModule headers_module {moddir}/mod_headers.so
LoadModule proxy_module {moddir}/mod_proxy.so
LoadModule proxy_http_module {moddir}/mod_proxy_http.so
LoadModule rewrite_module {moddir}/mod_rewrite.so
LoadModule include_module {moddir}/mod_include.so
LoadModule offtok_module "{module}"
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
    Require all granted
</Directory>
ScriptAlias /cgi/ "{root}/cgi-bin/"
<Directory "{root}/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>
{server}
"""


class Httpd:
    """One httpd instance living in its own directory."""

    def __init__(self, root, ca_file=None):
        self.root = root
        self.port = free_port()
        self.ca_file = ca_file
        self.proc = None
        self.allowed = list(ALWAYS_ALLOWED)
        self.log_offset = 0
        for sub in ("run", "logs", "htdocs", "cgi-bin"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chmod(root, 0o755)
        self._install_content()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    def _install_content(self):
        fixtures = os.path.join(HERE, "fixtures")
        shutil.copy(os.path.join(fixtures, "env.cgi"), os.path.join(self.root, "cgi-bin", "env"))
        os.chmod(os.path.join(self.root, "cgi-bin", "env"), 0o755)
        with open(os.path.join(self.root, "htdocs", "index.html"), "w") as f:
            f.write("<h1>hello</h1>\n")
        os.makedirs(os.path.join(self.root, "htdocs", "protected"), exist_ok=True)
        with open(os.path.join(self.root, "htdocs", "protected", "index.html"), "w") as f:
            f.write("protected content\n")
        for dirpath, dirnames, filenames in os.walk(self.root):
            os.chmod(dirpath, 0o755)

    def render(self, body, server="", mpm="event", servers=2, threads=16,
               loglevel="info offtok:debug"):
        conf = BASE_CONF.format(
            root=self.root, port=self.port, moddir=MODDIR, module=module_path(),
            user="User www-data\nGroup www-data" if os.geteuid() == 0 else "",
            loglevel=loglevel, server=server,
            mpm=MPM_CONF[mpm].format(mpm=mpm, moddir=MODDIR, root=self.root, servers=servers,
                                     threads=threads, workers=servers * threads))
        path = os.path.join(self.root, "httpd.conf")
        with open(path, "w") as f:
            f.write(conf + "\n" + body + "\n")
        return path

    def configtest(self, body, server=""):
        """Run `httpd -t` on a configuration: (exit code, output)."""
        path = self.render(body, server)
        res = subprocess.run([HTTPD_BIN, "-t", "-f", path], capture_output=True, text=True)
        return res.returncode, res.stdout + res.stderr

    def start(self, body, server="", **kw):
        path = self.render(body, server, **kw)
        res = subprocess.run([HTTPD_BIN, "-t", "-f", path], capture_output=True, text=True)
        assert res.returncode == 0, f"httpd -t failed:\n{res.stdout}{res.stderr}"
        env = dict(os.environ)
        env.pop("http_proxy", None)
        env.pop("https_proxy", None)
        # Its own session: prefork signals its whole process group at restarts and shutdown.
        self.proc = subprocess.Popen([HTTPD_BIN, "-f", path, "-DFOREGROUND"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        wait_until(self._answers, timeout=15, what="httpd to answer")
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("httpd exited at start:\n" + self.proc.stderr.read().decode()
                                 + self.error_log())
        try:
            requests.get(self.base + "/index.html", timeout=1)
            return True
        except (requests.ConnectionError, requests.Timeout):
            return False        # not listening yet, or too slow on a busy machine: ask again

    def graceful(self):
        """apachectl graceful: SIGUSR1 to the parent; wait for the new generation."""
        before = self.error_log().count("resuming normal operations")
        os.kill(self.proc.pid, signal.SIGUSR1)
        wait_until(lambda: self.error_log().count("resuming normal operations") > before,
                   timeout=15, what="graceful restart")
        wait_until(self._answers, timeout=10, what="httpd to answer after graceful")

    def stop(self):
        """Stop gracefully (SIGWINCH), and SIGTERM the parent once its threaded children are gone.

        A plain SIGTERM makes every event (or worker) MPM child close the sockets its worker
        threads are still using (close_worker_sockets), racing with a worker that is finishing
        the request the test has just had answered: the worker then logs "(9)Bad file
        descriptor: AH03093 ... apr_pollset_add failure for keep alive", or the child's main
        thread crashes in apr_os_sock_get on a socket the worker has freed. A graceful stop
        lets the workers finish; the SIGTERM after it only saves the parent's one-second poll.
        """
        if self.proc and self.proc.poll() is None:
            threaded = [pid for pid in self.child_pids() if _threads(pid) > 1]
            self.proc.send_signal(signal.SIGWINCH)
            deadline = time.monotonic() + 10
            while (self.proc.poll() is None and any(_threads(pid) for pid in threaded)
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def child_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    def error_log(self):
        try:
            with open(os.path.join(self.root, "logs", "error.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def allow_errors(self, *patterns):
        """Declare log lines this test expects (regular expressions)."""
        self.allowed.extend(patterns)

    def unexpected_errors(self):
        lines = []
        for line in self.error_log().splitlines():
            if BAD.search(line) and not any(re.search(p, line) for p in self.allowed):
                lines.append(line)
        return lines

    # -- a client ----------------------------------------------------------------------------

    def get(self, path, token=None, headers=None, **kw):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", 30)
        return requests.get(self.base + path, headers=h, allow_redirects=False, **kw)

    def post(self, path, data=None, headers=None, **kw):
        kw.setdefault("timeout", 30)
        return requests.post(self.base + path, data=data, headers=headers or {},
                             allow_redirects=False, **kw)


def challenges(resp):
    """The WWW-Authenticate fields of a requests answer, one per challenge, in order. Where both
    the Bearer and the DPoP schemes are allowed (OfftokDPoP Allow, the default), a 401 carries
    the Bearer challenge first, then the DPoP one."""
    return resp.raw.headers.getlist("WWW-Authenticate")


# -- configuration snippets ------------------------------------------------------------------

def offtok_lines(issuer, **extra):
    """The directives that point a location at an issuer, plus extra ones (name=value).

    Naming one of the four the issuer gives (OfftokIntrospectionURL, OfftokClientID,
    OfftokClientSecret, OfftokCAFile) puts that value in its place instead; a list or tuple
    value gives one line per item (OfftokPassHeader=["X-A a", "X-B b"])."""
    directives = {
        "OfftokIntrospectionURL": issuer.introspection_url,
        "OfftokClientID": getattr(issuer, "rs_client_id", "rs-client"),
        "OfftokClientSecret": getattr(issuer, "rs_client_secret", "rs-secret"),
        "OfftokCAFile": issuer.ca_file,
    }
    directives.update(extra)
    lines = []
    for name, value in directives.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            lines.append(f"{name} {item}")
    return "\n    ".join(lines)


def require_lines(require):
    """The authorization of a location: one line is the arguments of one Require
    ("valid-user", "offtok-scope read"); a list of lines or a text of several lines is the block
    as written (Require lines, <RequireAll> and the like)."""
    if isinstance(require, (list, tuple)):
        lines = list(require)
    elif "\n" in require.strip():
        lines = require.strip("\n").splitlines()
    else:
        return f"Require {require}"
    return "\n    ".join(lines)


def protected(path, issuer, require="valid-user", extra="", **directives):
    """A <Location> protected with AuthType offtok: offtok_lines(issuer, **directives), then the
    authorization (require_lines(require)), then the extra lines as written."""
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "test"
    {offtok_lines(issuer, **directives)}
    {require_lines(require)}
    {extra}
</Location>
"""
