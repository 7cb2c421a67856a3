"""The pieces bench/run puts together: processes it owns, a throw-away CA, the nginx issuer,
httpd instances, wrk and its output, and CPU accounting.

Everything listens on 127.0.0.1 only. Every process started here is recorded and stopped by
Procs.stop_all(), which bench/run calls on any exit (normal end, error, Ctrl-C, SIGTERM).
"""
import base64
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

MODDIR = "/usr/lib/apache2/modules"
HTTPD_BIN = os.environ.get("OFFTOK_HTTPD", "/usr/sbin/apache2")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LUA = os.path.join(HERE, "lua")


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- processes ---------------------------------------------------------------------------------

class Procs:
    """The processes this run started, each in its own session so that it can be stopped with
    its children (httpd and nginx workers) by its own id."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log_path, env=None):
        out = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                             start_new_session=True)
        out.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=15):
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The process group is the session this run created for it (pgid == its pid).
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            except ProcessLookupError:
                pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=10)


# -- PKI -----------------------------------------------------------------------------------------

class Pki:
    """A one-certificate CA and a server certificate for 127.0.0.1/localhost (ECDSA P-256), made
    with the openssl command. Attribute names match tests/integration/pki.py's."""

    def __init__(self, dirpath):
        self.dirpath = dirpath
        self.ca_file = os.path.join(dirpath, "ca.pem")
        self.ca_key = os.path.join(dirpath, "ca.key")
        self.cert = os.path.join(dirpath, "server.pem")
        self.key = os.path.join(dirpath, "server.key")
        csr = os.path.join(dirpath, "server.csr")
        ext = os.path.join(dirpath, "server.ext")
        os.makedirs(dirpath, exist_ok=True)

        def run(*argv):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)

        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.ca_key, "-out", self.ca_file, "-days", "2", "-subj",
            "/CN=mod_offtok bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.key, "-out", csr, "-subj", "/CN=127.0.0.1")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self.ca_key,
            "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", ext)
        for name in os.listdir(dirpath):
            os.chmod(os.path.join(dirpath, name), 0o644)


# -- the fast issuer: nginx ----------------------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process on;
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:SSL:1m;
{extra}
        location / {{
            default_type application/json;
            return 200 '{answer}';
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""


def keycloak_answer(path):
    """The typical Keycloak answer of bench/keycloak-answer.json, compact, issued a minute ago and
    expiring in 2100, so that it stays valid for any run."""
    with open(path) as f:
        answer = json.load(f)
    now = int(time.time())
    answer.update(iat=now - 60, auth_time=now - 70, exp=4102444800)
    return json.dumps(answer, separators=(",", ":"))


class Nginx:
    """nginx over TLS answering every request with one fixed active introspection answer; a
    plain-HTTP stub_status port counts the requests it served."""

    def __init__(self, procs, root, pki, answer, workers=1, port=None, extra=""):
        """port: chosen beforehand when documents it serves must name it; extra: more
        locations of the TLS server (bench02.py: metadata, JWKS, other fixed answers)."""
        self.procs, self.root, self.answer = procs, root, answer
        self.port, self.status_port = port or free_port(), free_port()
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        if "'" in answer or "$" in answer:
            raise ValueError("the fixed answer cannot hold ' or $ in an nginx return string")
        conf = NGINX_CONF.format(root=root, port=self.port, status_port=self.status_port,
                                 cert=pki.cert, key=pki.key, answer=answer, workers=workers,
                                 extra=extra)
        self.conf = os.path.join(root, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        subprocess.run(["nginx", "-t", "-c", self.conf, "-p", root], check=True,
                       capture_output=True)
        self.proc = procs.start(["nginx", "-c", self.conf, "-p", root],
                                os.path.join(root, "nginx.out"))
        wait_until(self._up, 10, "nginx to answer")
        self.url = f"https://127.0.0.1:{self.port}/introspect"

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited at start; see " + self.root)
        try:
            self.requests()
            return True
        except OSError:
            return False

    def requests(self):
        """Requests served so far (stub_status counts its own requests too)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/", timeout=5) as r:
            text = r.read().decode()
        return int(text.splitlines()[2].split()[2])

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.procs.stop(self.proc)


class Target:
    """Something wrk drives: its URL and the pid whose process tree serves it."""

    def __init__(self, url, pid):
        self.url, self.pid = url, pid


# -- httpd -----------------------------------------------------------------------------------------

MPM_EVENT = """
LoadModule mpm_event_module {moddir}/mod_mpm_event.so
StartServers {servers}
ServerLimit {servers}
ThreadsPerChild {threads}
ThreadLimit {threads}
MaxRequestWorkers {workers}
MinSpareThreads {threads}
MaxSpareThreads {workers}
"""

HTTPD_CONF = """
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1:{port}
{user}
ErrorLog "{root}/logs/error.log"
LogLevel warn
Timeout 30
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
{mpm}
LoadModule authn_core_module {moddir}/mod_authn_core.so
LoadModule authz_core_module {moddir}/mod_authz_core.so
LoadModule authz_user_module {moddir}/mod_authz_user.so
LoadModule authz_host_module {moddir}/mod_authz_host.so
LoadModule mime_module {moddir}/mod_mime.so
{load}
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
# As Debian's apache2.conf: no .htaccess lookups, nothing outside the document root.
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{root}/htdocs">
    AllowOverride None
    Require all granted
</Directory>
{server}
<Location "/p/">
{location}
</Location>
"""

PATH = "/p/hello.txt"      # the small static file every scenario asks for
BODY = "hello, world\n"


class Httpd:
    """Debian's apache2 with the same MPM, modules and static file for every variant; only the
    lines for the module under test differ. No access log (the same for all)."""

    def __init__(self, procs, root, name, load="", server="", location="", mpm=None):
        self.procs, self.root, self.name = procs, root, name
        self.port = free_port()
        for sub in ("run", "logs", "htdocs/p"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, "htdocs", PATH.lstrip("/")), "w") as f:
            f.write(BODY)
        for dirpath, _, filenames in os.walk(root):
            os.chmod(dirpath, 0o755)
            for fn in filenames:
                os.chmod(os.path.join(dirpath, fn), 0o644)
        mpm = mpm or {"servers": 2, "threads": 32}
        conf = HTTPD_CONF.format(
            root=root, port=self.port, moddir=MODDIR, load=load, server=server,
            location=location,
            user="User www-data\nGroup www-data" if os.geteuid() == 0 else "",
            mpm=MPM_EVENT.format(moddir=MODDIR, servers=mpm["servers"],
                                 threads=mpm["threads"],
                                 workers=mpm["servers"] * mpm["threads"]))
        self.conf = os.path.join(root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        res = subprocess.run([HTTPD_BIN, "-t", "-f", self.conf], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{name}: httpd -t failed:\n{res.stdout}{res.stderr}")
        env = {k: v for k, v in os.environ.items() if k not in ("http_proxy", "https_proxy")}
        self.proc = procs.start([HTTPD_BIN, "-f", self.conf, "-DFOREGROUND"],
                                os.path.join(root, "logs", "stderr.log"), env=env)
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        wait_until(self._up, 20, f"{name} to answer")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start:\n" + self.error_log()[-3000:])
        try:
            status, _ = self.get()
            return status > 0
        except OSError:
            return False

    def get(self, token=None):
        req = urllib.request.Request(self.url)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def error_log(self):
        try:
            with open(os.path.join(self.root, "logs", "error.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        self.procs.stop(self.proc)


# -- tokens ---------------------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_like(i, claims):
    """A Keycloak-shaped access token (RS256 JWT, ~1.3 KB): real header and payload, unique
    jti; the signature is random bytes (the module never verifies it, the issuer does)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": "bench-kid-0123456789abcdefghijklmnopqrs"}
    payload = dict(claims)
    payload["jti"] = f"onrtac:{secrets.token_hex(16)}-{i}"
    for k in ("active", "client_id", "username", "token_type"):
        payload.pop(k, None)
    return ".".join([b64url(json.dumps(header, separators=(",", ":")).encode()),
                     b64url(json.dumps(payload, separators=(",", ":")).encode()),
                     b64url(secrets.token_bytes(256))])


def opaque(i):
    """An opaque token as oidc-provider makes them (43 base64url characters)."""
    return b64url(secrets.token_bytes(32))


# -- wrk ------------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text):
    def num(pattern, cast=float, default=None):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else default

    out = {
        "requests": num(r"(\d+) requests in", int, 0),
        "seconds": num(r"requests in ([\d.]+)s", float, 0.0),
        "rps": num(r"Requests/sec:\s+([\d.]+)", float, 0.0),
        "non_2xx": num(r"Non-2xx or 3xx responses: (\d+)", int, 0),
        "socket_errors": 0,
    }
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
        out["socket_error_kinds"] = dict(zip(("connect", "read", "write", "timeout"),
                                             (int(x) for x in m.groups())))
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\b", text)
    if m:
        out["latency_ms"] = round(float(m.group(1)) * UNITS[m.group(2)], 3)
    return out


class Wrk:
    def __init__(self, procs, workdir, connections=32, threads=2):
        self.procs, self.workdir = procs, workdir
        self.connections, self.threads = connections, threads
        self.n = 0
        self.pin = None         # a CPU number: run wrk under taskset -c pin

    def argv(self, url, duration, script=None, headers=()):
        argv = ["wrk", f"-c{self.connections}", f"-t{self.threads}",
                f"-d{max(1, round(duration))}s", "--timeout", "10s"]
        for h in headers:
            argv += ["-H", h]
        if script:
            argv += ["-s", os.path.join(LUA, script)]
        return argv + [url]

    def start(self, url, duration, script=None, env=None, headers=()):
        self.n += 1
        out = os.path.join(self.workdir, f"wrk-{self.n}.out")
        e = dict(os.environ, BENCH_THREADS=str(self.threads), **(env or {}))
        # Line-buffered, so that "Running ..." shows when the timed part begins (after the
        # scripts' init, which may read 100,000 tokens).
        argv = ["stdbuf", "-oL"] + self.argv(url, duration, script, headers)
        if self.pin is not None:
            argv = ["taskset", "-c", str(self.pin)] + argv
        return self.procs.start(argv, out, env=e), out

    def run(self, url, duration, script=None, env=None, headers=(), groups=None):
        """One timed run; its figures, with the CPU use of the machine while it ran and of
        groups ({name: root pid}) of processes."""
        meter = CpuMeter()
        p, out = self.start(url, duration, script, env, headers)
        deadline = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < deadline:
            with open(out) as f:
                if "Running" in f.read(200):
                    break
            time.sleep(0.01)
        meter.start(groups, client_pid=p.pid)
        try:
            p.wait(timeout=duration + 120)
        except subprocess.TimeoutExpired:
            self.procs.stop(p, signal.SIGKILL)
            raise RuntimeError("wrk did not finish")
        self.procs.stop(p)
        cpu = meter.stop()
        with open(out) as f:
            text = f.read()
        if "requests in" not in text:
            raise RuntimeError("wrk failed:\n" + text)
        res = dict(parse_wrk(text), cpu=cpu)
        for name in (groups or {}):
            if res["requests"]:
                res[name + "_us_per_request"] = round(cpu[name + "_ms"] * 1000 / res["requests"], 1)
        return res


# -- CPU accounting -------------------------------------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def _descendants(root_pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])     # utime + stime, in ticks
    except (OSError, IndexError):
        return 0


def _busy_total():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


class CpuMeter:
    """How busy the machine was during a run, how much of that was not this run's own processes
    (other people's builds and tests on the same 2 cores), and the CPU time of named groups of
    processes (a server and its children) in milliseconds."""

    def start(self, groups=None, client_pid=None):
        """client_pid: a child (wrk) whose CPU so far is not to count (its set-up)."""
        self.groups = groups or {}
        self.client0 = _proc_cpu(client_pid) if client_pid else 0
        self.pids = _descendants(os.getpid())
        self.ours0 = {pid: _proc_cpu(pid) for pid in self.pids}
        self.group0 = {name: {pid: _proc_cpu(pid) for pid in _descendants(root)}
                       for name, root in self.groups.items()}
        self.reaped0 = self._reaped()
        self.busy0, self.total0 = _busy_total()

    @staticmethod
    def _reaped():
        """CPU of children this process has waited for (wrk), in ticks."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (ru.ru_utime + ru.ru_stime) * CLK

    def stop(self):
        busy1, total1 = _busy_total()
        pids = _descendants(os.getpid())
        ours = sum(_proc_cpu(pid) - self.ours0.get(pid, 0) for pid in pids)
        client = max(self._reaped() - self.reaped0 - self.client0, 0)
        ours += client
        total = max(total1 - self.total0, 1)
        busy = busy1 - self.busy0
        out = {"busy": round(busy / total, 3),
               "foreign": round(max(busy - ours, 0) / total, 3),
               "client_ms": round(client * 1000 / CLK)}
        for name, root in self.groups.items():
            before = self.group0[name]
            ticks = sum(_proc_cpu(pid) - before.get(pid, 0) for pid in _descendants(root))
            out[name + "_ms"] = round(ticks * 1000 / CLK)
        return out


# -- profiles -------------------------------------------------------------------------------------

INTERESTING = re.compile(r"^(ot_|offtok_|json_|curl_|Curl_|SSL_|ssl3_|EVP_|SHA256|ap_run_|"
                         r"ap_process_request_internal|ap_invoke_handler|apr_pool_|malloc|free)")


def inclusive(perf_script_text, limit=60):
    """From `perf script` output: the share of samples whose stack contains each interesting
    function (inclusive time), most first."""
    counts, total, stack = {}, 0, []

    def flush():
        nonlocal total
        if stack:
            total += 1
            for sym in set(stack):
                if INTERESTING.search(sym):
                    counts[sym] = counts.get(sym, 0) + 1

    for line in perf_script_text.splitlines():
        if not line.strip():
            flush()
            stack = []
        elif line[:1] in ("\t", " "):
            parts = line.split()
            if len(parts) >= 2:
                stack.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1]))
    flush()
    rows = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return f"samples {total}\n" + "".join(f"{100 * n / max(total, 1):6.2f}%  {sym}\n"
                                          for sym, n in rows)
