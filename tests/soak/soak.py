#!/usr/bin/python3
"""mod_offtok's soak: many requests of every kind, graceful restarts, and what must hold after.

    tests/soak/soak.py [--requests N | --quick] [--concurrency C] [--max-seconds S]
                       [--restarts P,P,...] [--seed N] [--workdir DIR] [--keep] [--json FILE]
                       [--warm-up S] [--no-malloc-stats] [--allocator-defaults]

On 127.0.0.1 it starts the real issuer (oidc-provider, tests/issuer/), the fault-injecting stub
(tests/integration/stubs/faulty.py) and Debian's httpd (event MPM, two children of 32 threads)
with the built module (OFFTOK_MODULE, else build/.libs/mod_offtok.so), and sends N requests
(200,000; 20,000 with --quick) from C threads (16), each on its own keep-alive connection. The
requests mix valid access and offline tokens, unknown tokens, tokens revoked at the issuer during
the run, tokens that expire during the run, malformed Authorization headers, and locations whose
issuer fails; httpd is restarted gracefully at a few points, and after the last restart the new
children are saturated for a few seconds (the warm-up: more connections than they have threads,
requests not counted in the run) so that they reach their most threads busy and their pools'
bound before the quarters check 3 compares. Afterwards it checks:

  1. no request with an inactive, expired, revoked or unknown token was answered 200, checked
     against when each token was revoked or expired and against the issuer's own record;
  2. no 5xx but the expected 503s of the failing-issuer locations, no 500 at all, no request
     left unanswered and no crashed child;
  3. each child's RSS, less the pages of the shared cache segment (VmRSS - RssShmem), grew by
     less than 5 % between the second and the last quarter of the run; httpd runs with glibc's
     per-thread malloc caches off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0) and APR's
     allocators keeping at most 64 KiB of freed memory each (MaxMemFree 64): both caches fill up
     over hundreds of thousands of requests, which is not a leak (docs/soak.md explains all of
     this; --allocator-defaults runs httpd without the two settings);
  4. each child's open file descriptors are back, once idle, to where they started;
  5. every other answer is the one the contract gives (the load is not vacuous: valid tokens are
     let in, malformed headers get 400, and so on).

It prints a table per kind of request, RSS and descriptor figures per child, one line per check
and `soak: N passed, M failed`; it exits 1 if a check failed. docs/soak.md explains the choices.
Run it as root (httpd's children then run as www-data, and their /proc entries are readable).
"""
import argparse
import bisect
import collections
import contextlib
import datetime
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import httpd as harness  # noqa: E402
from httpd import Httpd, free_port, wait_until  # noqa: E402
from issuers import FaultyIssuer, OidcIssuer  # noqa: E402
from pki import make_pki  # noqa: E402

FULL_REQUESTS = 200_000
QUICK_REQUESTS = 20_000
CACHE_TTL = 3                 # OfftokCacheTTL of the cached locations
NEGATIVE_TTL = 2              # OfftokNegativeCacheTTL of the cached locations
GRACE = 1.0                   # the brief's allowance after revocation + TTL, and after exp
CLOCK_SLACK = 0.005           # the issuer logs milliseconds, Python microseconds
SCOPE = "soak:read"
RSS_LIMIT = 5.0               # per cent, Q2 -> Q4
# The soak's httpd keeps less freed memory around than it would by default: glibc's per-thread
# caches of freed chunks (tcache) off, and each APR allocator (one per connection being served)
# giving back what it holds free beyond 64 KiB instead of 2 MiB. With 32 threads per child both
# take hundreds of thousands of requests to reach their high-water marks, and check 3 would read
# their filling as growth (docs/soak.md, "Check 3: what it measures, and why"). An administrator
# can set both (GLIBC_TUNABLES in /etc/apache2/envvars, MaxMemFree in apache2.conf). A leaked
# allocation is never freed, so it reaches neither cache: this hides no leak (the control runs in
# docs/soak.md). --allocator-defaults runs httpd without them.
HTTPD_GLIBC_TUNABLES = "glibc.malloc.tcache_count=0"
HTTPD_MAX_MEM_FREE = 64       # KiB, httpd's MaxMemFree
THREADS_PER_CHILD = 32
CHILDREN = 2
# The saturation warm-up of the last generation (docs/soak.md, "The warm-up"): right after the
# last restart, while the load is paused, more connections than the server has threads send, for
# a few seconds, requests of the mix that reach the module's pools, a share of them to /f-slow/,
# which holds a thread for 0.5 s. Each child then meets early the most threads busy at once, and
# the most issuer calls at once (its waiting bound, and so its pool of libcurl handles), that a
# long-lived child meets sooner or later. These requests are not part of the run's count; checks
# 1, 2 and 5 judge them with one difference: a request that asks an issuer may also be answered
# 503, which is the contract's answer once more calls wait than OfftokIssuerMaxPending allows.
WARM_UP_SECONDS = 5.0
WARM_UP_CONNECTIONS = 3 * CHILDREN * THREADS_PER_CHILD // 2     # 96, for 64 threads
WARM_UP_SLOW_SHARE = 0.05

# httpd's children: two of 32 threads, and always two: MinSpareThreads above one child's threads
# makes httpd start the second one after a graceful restart too, MaxRequestWorkers keeps it from
# starting a third and MaxSpareThreads (all of them) from stopping one; no request limit per
# child. ServerLimit 4 leaves room in the scoreboard for the old generation to finish its
# requests while the new one starts.
harness.MPM_CONF["soak"] = ("""
LoadModule mpm_event_module {moddir}/mod_mpm_event.so
LoadModule cgid_module {moddir}/mod_cgid.so
ScriptSock {root}/cgid.sock
StartServers {servers}
ServerLimit 4
ThreadsPerChild {threads}
ThreadLimit {threads}
MaxRequestWorkers {workers}
MinSpareThreads {min_spare}
MaxSpareThreads {workers}
MaxConnectionsPerChild 0
""").replace("{min_spare}", str(THREADS_PER_CHILD + 1))

# -- what is sent where ------------------------------------------------------------------------

# The locations that ask oidc-provider, and what sets them apart (docs/soak.md). Every location
# serves the static file x.txt.
OIDC_LOCATIONS = {
    "cached": f"OfftokCacheTTL {CACHE_TTL}, OfftokNegativeCacheTTL {NEGATIVE_TTL}",
    "always": "OfftokAlwaysValidate On",
    "proxied": f"OfftokCacheTTL {CACHE_TTL}, OfftokForwardToken Off, ProxyPass to /backend/",
    "scoped": f"OfftokCacheTTL {CACHE_TTL}, Require offtok-scope {SCOPE}",
}
# The failing issuers: location -> (fault path at the stub, or None for a refused connection;
# OfftokTimeout; the answer every request must get).
FAULTS = {
    "f-500": ("status/500", "2 5", 503),
    "f-reset": ("reset", "2 5", 503),
    "f-garbage": ("garbage", "2 5", 503),
    "f-slow": ("slow?seconds=2", "0.25 0.5", 503),
    "f-refused": (None, "0.5 1", 503),
    "f-inactive": ("inactive", "2 5", 401),
}
CACHED_LIKE = ("cached", "proxied", "scoped")     # locations that reuse answers for CACHE_TTL

# Malformed or unusual Authorization headers: kind -> (the answer the contract's table gives,
# a function of a valid token giving [(header name, value)] and a query string).
MALFORMED = {
    "no-header": (401, lambda t: ([], "")),
    "basic": (401, lambda t: ([("Authorization", "Basic c29hazpzb2Fr")], "")),
    "bearer-glued": (401, lambda t: ([("Authorization", "Bearer" + t)], "")),
    "bearer-empty": (400, lambda t: ([("Authorization", "Bearer ")], "")),
    "tab": (400, lambda t: ([("Authorization", "Bearer\t" + t)], "")),
    "space-inside": (400, lambda t: ([("Authorization", f"Bearer {t[:8]} {t[8:]}")], "")),
    "bad-char": (400, lambda t: ([("Authorization", f"Bearer {t},")], "")),
    "non-ascii": (400, lambda t: ([("Authorization", b"Bearer " + t.encode() + b"\xe9")], "")),
    "two-headers": (400, lambda t: ([("Authorization", "Bearer " + t)] * 2, "")),
    "query-too": (400, lambda t: ([("Authorization", "Bearer " + t)], "?access_token=" + t)),
    # over httpd's own LimitRequestFieldSize (8190): httpd answers 400 before the module
    "oversized": (400, lambda t: ([("Authorization", "Bearer " + "A" * 17000)], "")),
}

# Kinds of request and their shares of the load.
MIX = [
    ("valid", 0.40),          # a valid access token at cached/always/proxied/scoped
    ("lowercase", 0.01),      # the same with "bearer" in lower case (it is accepted)
    ("offline", 0.04),        # a valid offline token at cached/always
    ("revocable", 0.14),      # tokens revoked at the issuer during the run
    ("expiring", 0.04),       # tokens that expire during the run
    ("unknown", 0.12),        # tokens the issuer never issued (half of them never seen before)
    ("malformed", 0.10),      # MALFORMED, at cached/always
    ("fault", 0.12),          # FAULTS
    ("open", 0.03),           # /index.html, no protection
]


class Token:
    __slots__ = ("tid", "value", "kind", "scoped", "exp", "sha", "revoke_sent", "revoked_at",
                 "revoke_at")

    def __init__(self, tid, value, kind, scoped=True, exp=None):
        self.tid, self.value, self.kind, self.scoped, self.exp = tid, str(value), kind, scoped, exp
        self.sha = hashlib.sha256(self.value.encode()).hexdigest()
        self.revoke_sent = self.revoked_at = None
        self.revoke_at = None          # progress (request count) at which to revoke it


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- /proc ----------------------------------------------------------------------------------------

def proc_status(pid):
    """VmRSS, RssAnon, RssFile, RssShmem in KiB (None if the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[name] = int(value.split()[0])
    except OSError:
        return None
    return out if "VmRSS" in out else None


def malloc_totals(httpd, pids):
    """pid -> (bytes glibc's malloc holds from the system, bytes of it in use), asked of each
    idle child with gdb (malloc_stats() prints to the child's stderr, httpd's error log)."""
    if not shutil.which("gdb"):
        return {}
    for pid in pids:
        try:
            subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                           capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            return {}
    time.sleep(0.5)
    lines = httpd.error_log().splitlines()
    totals = []
    for i, line in enumerate(lines):
        if line.startswith("Total (incl. mmap):") and i + 2 < len(lines):
            try:
                totals.append((int(lines[i + 1].split("=")[1]), int(lines[i + 2].split("=")[1])))
            except (IndexError, ValueError):
                pass
    if len(totals) < len(pids):
        return {}
    return dict(zip(pids, totals[-len(pids):]))


ARENA_ALIGN = 64 << 20      # glibc maps its per-thread arenas at multiples of HEAP_MAX_SIZE


def anon_breakdown(pid):
    """The resident anonymous memory of pid in KiB by where it lies (/proc/<pid>/smaps):
    malloc's heaps (the brk heap and glibc's per-thread arenas), other anonymous mappings (APR's
    pool memory, which Debian's APR maps itself rather than through malloc, thread stacks, ...),
    and private copies of file pages (written data segments). None if the process is gone."""
    kinds = collections.Counter()
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 6)
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    start = int(head[0].split("-")[0], 16)
                    name = head[5].strip() if len(head) > 5 else ""
                    if name == "[heap]" or (not name and start % ARENA_ALIGN == 0):
                        kind = "malloc"
                    elif not name or name.startswith("[stack"):
                        kind = "other"
                    else:
                        kind = "file"
                elif head[0] == "Anonymous:" and kind:
                    kinds[kind] += int(head[1])
    except (OSError, ValueError, IndexError):
        return None
    return dict(kinds)


def environ_of(pid):
    """The environment a process started with ({} if it is gone)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").partition("=")[::2]
                for item in raw.split(b"\0") if b"=" in item)


@contextlib.contextmanager
def httpd_environment(args):
    """os.environ for the httpd started inside (the harness hands os.environ to it): glibc's
    per-thread malloc caches off, unless --allocator-defaults. Only httpd: the client, the
    issuers and gdb keep the environment they had."""
    saved = os.environ.get("GLIBC_TUNABLES")
    if not args.allocator_defaults:
        os.environ["GLIBC_TUNABLES"] = ":".join(v for v in (saved, HTTPD_GLIBC_TUNABLES) if v)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = saved


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def threads_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return 0 if fields[0] == "Z" else int(fields[17])


def tcp_table(pid):
    """inode -> (local port, remote port, state) for the process's network namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
                    table[inode] = (int(local.rsplit(":", 1)[1], 16),
                                    int(remote.rsplit(":", 1)[1], 16), state)
        except OSError:
            pass
    return table


def unix_inodes(pid):
    """Inodes of the Unix sockets of the process's network namespace."""
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            return {int(line.split()[6]) for line in f if len(line.split()) > 6}
    except OSError:
        return set()


def fd_breakdown(pid, ports):
    """Descriptors of pid by kind: client connections, connections to each issuer, to the
    proxied back end, listeners, Unix sockets (libcurl's socket pairs), other sockets, files,
    pipes, anon inodes."""
    kinds = collections.Counter()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    tcp = unix = None
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            if tcp is None:
                tcp = tcp_table(pid)
            entry = tcp.get(int(target[8:-1]))
            if entry is None:
                if unix is None:
                    unix = unix_inodes(pid)
                # a TCP socket no longer (or not yet) in the kernel's table: one that a reset
                # or a refused connect left in state CLOSE, until libcurl closes it
                kinds[PAIRS if int(target[8:-1]) in unix else OTHER_SOCKETS] += 1
                continue
            local, remote, state = entry
            if state == "0A":
                kinds["listening"] += 1
            elif local == ports["httpd"]:
                kinds["client conn"] += 1
            elif remote == ports["oidc"]:
                kinds["to oidc issuer"] += 1
            elif remote == ports["faulty"]:
                kinds["to faulty issuer"] += 1
            elif remote == ports["httpd"]:
                kinds["to proxied back end"] += 1
            else:
                kinds["tcp (other)"] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target] += 1
        else:
            kinds["file"] += 1
    return dict(kinds)


PAIRS = "socket (unix)"          # a libcurl handle keeps a socket pair (its wake-up pipe)
OTHER_SOCKETS = "socket (other)"
POOL_KINDS = (PAIRS, "to oidc issuer", "to faulty issuer", "to proxied back end", OTHER_SOCKETS)


# -- the client -----------------------------------------------------------------------------------

class Connection:
    """One keep-alive connection; a request that finds it closed by httpd (a graceful restart,
    MaxKeepAliveRequests, the keep-alive timeout) is sent again once on a new connection, as
    every HTTP client does for a GET, and counted."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def get(self, path, headers):
        """(status or None, send time, receive time, attempts, error)."""
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn = self.conn
            sent = time.time()
            try:
                conn.putrequest("GET", path, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders()
                response = conn.getresponse()
                response.read()
                received = time.time()
                if response.will_close:
                    self.close()
                return response.status, sent, received, attempt, None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ConnectionAbortedError) as err:
                self.close()
                if fresh or attempt == 2:
                    return None, sent, time.time(), attempt, f"{type(err).__name__}: {err}"
            except (OSError, http.client.HTTPException) as err:
                self.close()
                return None, sent, time.time(), attempt, f"{type(err).__name__}: {err}"
        raise AssertionError("unreachable")


# -- the run --------------------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.total = args.requests
        self.lock = threading.Lock()
        self.tokens = []                      # every Token, by tid
        self.valid, self.offline, self.revocable, self.expiring = [], [], [], []
        self.unknown = []
        # results, by request index
        n = self.total
        self.r_kind = [None] * n
        self.r_loc = [None] * n
        self.r_tid = [-1] * n
        self.r_status = [None] * n
        self.r_sent = [0.0] * n
        self.r_recv = [0.0] * n
        self.r_attempts = [0] * n
        self.r_expect = [None] * n
        self.errors = []
        self.next_index = itertools.count()
        self.done = [0] * args.concurrency
        self.stop = threading.Event()
        self.pause_request = threading.Event()
        self.resume = threading.Event()
        self.paused = 0
        self.paused_since = None
        self.paused_seconds = 0.0             # the load stood still for idle readings
        self.finished_workers = 0
        self.samples = []                     # (time, progress, pid, role, status, fds)
        self.generation = 0
        self.first_seen = {}                  # pid -> generation when first seen
        self.restarts = []                    # (progress, time, seconds it took)
        self.snapshots = {}                   # name -> {pid: breakdown}, {"parent": ...}
        self.breakdowns = []                  # (progress, {pid: fd_breakdown}) every 5 s
        self.issuer_errors = []               # control calls that failed (revocations, mints)
        self.restart_races = set()            # 502s httpd's proxy race at a restart explains
        # the warm-up after the last restart: (kind, location, tid, status, sent, received,
        # allowed answers, error); not part of the run's requests
        self.warm = []
        self.warm_seconds = 0.0
        self.warm_most = collections.Counter()   # (pid, kind) -> most descriptors seen

    # ---- progress

    def progress(self):
        return sum(self.done)

    # ---- set-up

    def mint_tokens(self, oidc):
        def add(value, kind, scoped=True, exp=None):
            token = Token(len(self.tokens), value, kind, scoped, exp)
            self.tokens.append(token)
            return token

        small = self.total < 50_000
        for i in range(60 if small else 200):
            scoped = i % 2 == 0
            t = oidc.mint_access(sub=f"user-{i}", scope="openid " + SCOPE if scoped else "openid",
                                 ttl=7200)
            self.valid.append(add(t, "valid", scoped, t.exp))
        for i in range(10 if small else 20):
            t = oidc.mint_offline(sub=f"offline-{i}", scope="openid " + SCOPE)
            self.offline.append(add(t, "offline", True, t.exp))
        n_revocable = 20 if small else 60
        for i in range(n_revocable):
            if i % 4 == 3:
                t = oidc.mint_offline(sub=f"revoked-{i}", scope="openid " + SCOPE)
            else:
                t = oidc.mint_access(sub=f"revoked-{i}", scope="openid " + SCOPE, ttl=7200)
            token = add(t, "revocable", True, t.exp)
            # revoked one after the other between 3 % and 95 % of the run
            token.revoke_at = int(self.total * (0.03 + 0.92 * i / max(1, n_revocable - 1)))
            self.revocable.append(token)
        for i in range(300):
            self.unknown.append(add(secrets.token_urlsafe(32), "unknown", True))

    def mint_expiring(self, oidc, ttl):
        t = oidc.mint_access(sub=f"expiring-{len(self.expiring)}", scope="openid " + SCOPE,
                             ttl=ttl)
        with self.lock:
            token = Token(len(self.tokens), t, "expiring", True, t.exp)
            self.tokens.append(token)
            self.expiring.append(token)

    # ---- choosing a request

    def choose(self, rng):
        """(kind, location, token or None, path, headers, expected status or None)."""
        kind = rng.choices(MIX_KINDS, MIX_WEIGHTS)[0]
        if kind == "open":
            return kind, "open", None, "/index.html", [], 200
        if kind == "fault":
            loc = rng.choice(FAULT_CHOICES)
            token = rng.choice(self.valid)
            return kind, loc, token, f"/{loc}/x.txt", bearer(token), FAULTS[loc][2]
        if kind == "malformed":
            sub = rng.choice(MALFORMED_KINDS)
            loc = rng.choice(("cached", "always"))
            token = rng.choice(self.valid)
            expected, make = MALFORMED[sub]
            headers, query = make(token.value)
            return "malformed:" + sub, loc, token, f"/{loc}/x.txt{query}", headers, expected
        if kind in ("valid", "lowercase"):
            token = rng.choice(self.valid)
            loc = rng.choice(("cached", "always", "proxied", "scoped"))
            expected = 403 if loc == "scoped" and not token.scoped else 200
            headers = bearer(token) if kind == "valid" else [("Authorization",
                                                               "bearer " + token.value)]
            return kind, loc, token, f"/{loc}/x.txt", headers, expected
        if kind == "offline":
            token = rng.choice(self.offline)
            loc = rng.choice(("cached", "always"))
            return kind, loc, token, f"/{loc}/x.txt", bearer(token), 200
        if kind == "revocable":
            token = self.pick_revocable(rng)
            loc = rng.choice(("cached", "always", "proxied", "always"))
            return kind, loc, token, f"/{loc}/x.txt", bearer(token), None   # judged later
        if kind == "expiring":
            with self.lock:
                pool = self.expiring[-4:]
            if not pool:
                kind = "unknown"
            else:
                token = rng.choice(pool)
                loc = rng.choice(("cached", "always", "proxied"))
                return kind, loc, token, f"/{loc}/x.txt", bearer(token), None
        # unknown: a token from the pool, or one nobody has seen before
        loc = rng.choice(("cached", "always", "proxied"))
        if rng.random() < 0.5:
            token = rng.choice(self.unknown)
            return "unknown", loc, token, f"/{loc}/x.txt", bearer(token), 401
        value = secrets.token_urlsafe(rng.choice((16, 32, 48)))
        return ("unknown-fresh", loc, None, f"/{loc}/x.txt",
                [("Authorization", "Bearer " + value)], 401)

    def pick_revocable(self, rng):
        """Mostly a token revoked in the last 8 seconds or one of the next two to be revoked,
        so that many requests fall around each revocation; otherwise any."""
        if rng.random() < 0.7:
            now = time.time()
            hot = [t for t in self.revocable
                   if t.revoked_at is not None and now - t.revoked_at < 8]
            hot += [t for t in self.revocable if t.revoked_at is None][:2]
            if hot:
                return rng.choice(hot)
        return rng.choice(self.revocable)

    # ---- the load

    def worker(self, n, port):
        rng = random.Random(self.args.seed * 1000 + n)
        conn = Connection(port)
        try:
            while not self.stop.is_set():
                if self.pause_request.is_set():
                    conn.close()
                    with self.lock:
                        self.paused += 1
                    self.resume.wait()
                    with self.lock:
                        self.paused -= 1
                    continue
                i = next(self.next_index)
                if i >= self.total:
                    break
                kind, loc, token, path, headers, expected = self.choose(rng)
                status, sent, received, attempts, error = conn.get(path, headers)
                self.r_kind[i], self.r_loc[i] = kind, loc
                self.r_tid[i] = token.tid if token is not None else -1
                self.r_status[i], self.r_sent[i], self.r_recv[i] = status, sent, received
                self.r_attempts[i], self.r_expect[i] = attempts, expected
                if error:
                    with self.lock:
                        self.errors.append((i, kind, loc, error))
                self.done[n] += 1
        finally:
            conn.close()
            with self.lock:
                self.finished_workers += 1

    def pause_load(self, what):
        """Stop sending and close every connection, so that httpd goes idle."""
        self.paused_since = time.monotonic()
        self.resume.clear()
        self.pause_request.set()
        wait_until(lambda: self.paused + self.finished_workers >= self.args.concurrency,
                   timeout=60, interval=0.01, what=f"the clients to pause ({what})")
        return True

    def resume_load(self):
        self.paused_seconds += time.monotonic() - self.paused_since
        self.pause_request.clear()
        self.resume.set()

    # ---- the warm-up of the last generation

    def choose_warm(self, rng):
        """A request of the mix for the warm-up, and the answers it may get: /f-slow/ with a
        share of WARM_UP_SLOW_SHARE, else any kind of the mix whose answer does not depend on
        time (no revocable or expiring token), anywhere but /proxied/: with every thread busy,
        the event MPM closes idle keep-alive connections, mod_proxy's kept ones to the back end
        among them, and mod_proxy answers 502 (AH01102) when it has just sent a request on one.
        A request that asks an issuer may also get 503: the warm-up sends more at once than the
        module's waiting bound lets wait."""
        if rng.random() < WARM_UP_SLOW_SHARE:
            token = rng.choice(self.valid)
            return "fault", "f-slow", token, "/f-slow/x.txt", bearer(token), {503}
        while True:
            kind, loc, token, path, headers, expected = self.choose(rng)
            if kind not in ("revocable", "expiring") and loc != "proxied":
                break
        asks_issuer = (token is not None or kind == "unknown-fresh") and loc != "open" \
            and not kind.startswith("malformed:")
        return kind, loc, token, path, headers, {expected, 503} if asks_issuer else {expected}

    def warm_up(self, httpd, ports, seconds, connections):
        """With the load paused: `connections` threads, each on its own keep-alive connection,
        send warm-up requests for `seconds`; every descriptor kind of the children is read every
        0.5 s meanwhile, for the most seen."""
        deadline = time.monotonic() + seconds
        done = threading.Event()

        def worker(n):
            rng = random.Random(self.args.seed * 1000 + 500 + n)
            conn = Connection(httpd.port)
            try:
                while time.monotonic() < deadline:
                    kind, loc, token, path, headers, allowed = self.choose_warm(rng)
                    status, sent, received, attempts, error = conn.get(path, headers)
                    with self.lock:
                        self.warm.append((kind, loc, token.tid if token is not None else -1,
                                          status, sent, received, allowed, error))
            finally:
                conn.close()

        def watch():
            while not done.is_set():
                for pid in self.workers_of(httpd):
                    for kind, v in (fd_breakdown(pid, ports) or {}).items():
                        self.warm_most[(pid, kind)] = max(self.warm_most[(pid, kind)], v)
                done.wait(0.5)

        started = time.monotonic()
        watcher = threading.Thread(target=watch, daemon=True)
        threads = [threading.Thread(target=worker, args=(n,), daemon=True)
                   for n in range(connections)]
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        done.set()
        watcher.join(5)
        self.warm_seconds = time.monotonic() - started

    # ---- sampling

    def workers_of(self, httpd):
        """httpd's child processes that serve requests (mod_cgid's daemon has one thread)."""
        if httpd.proc is None:
            return []
        return [pid for pid in httpd.child_pids() if threads_of(pid) > 1]

    def sampler(self, httpd):
        while not self.stop.is_set():
            self.sample(httpd)
            self.stop.wait(0.5)

    def sample(self, httpd):
        now, progress = time.time(), self.progress()
        parent = httpd.proc.pid
        rows = [(parent, "parent")] + [(pid, "child") for pid in self.workers_of(httpd)]
        for pid, role in rows:
            if role == "child" and pid not in self.first_seen:
                self.first_seen[pid] = self.generation
            status = proc_status(pid)
            fds = fd_count(pid)
            if status is not None and fds is not None:
                self.samples.append((now, progress, pid, role, status, fds))

    def idle_snapshot(self, httpd, name, ports):
        """Descriptors of every child (and the parent) once they are stable: the same count in
        four readings 0.5 s apart (at most 20 s)."""
        deadline = time.monotonic() + 20
        last, same = None, 0
        while time.monotonic() < deadline:
            pids = self.workers_of(httpd)
            counts = tuple((pid, fd_count(pid)) for pid in pids)
            clients = sum((fd_breakdown(pid, ports) or {}).get("client conn", 0) for pid in pids)
            if counts == last and clients == 0:
                same += 1
                if same >= 3:
                    break
            else:
                same = 0
            last = counts
            time.sleep(0.5)
        pids = self.workers_of(httpd)
        snap = {pid: fd_breakdown(pid, ports) for pid in pids}
        snap["parent"] = fd_breakdown(httpd.proc.pid, ports)
        self.snapshots[name] = {"time": time.time(), "progress": self.progress(), "fds": snap}
        self.snapshots[name]["anon"] = {pid: anon_breakdown(pid) for pid in pids}
        if name in ("start", "end") and self.args.malloc_stats:
            self.snapshots[name]["malloc"] = malloc_totals(httpd, pids)
        return snap


def fd_summary(snap):
    return ", ".join(f"{pid}: {sum(v.values())}" for pid, v in snap.items() if v)


def bearer(token):
    return [("Authorization", "Bearer " + token.value)]


MIX_KINDS = [k for k, _ in MIX]
MIX_WEIGHTS = [w for _, w in MIX]
MALFORMED_KINDS = sorted(MALFORMED)
# f-slow holds a client thread for OfftokTimeout (0.5 s): rarer than the others
FAULT_CHOICES = ["f-500"] * 5 + ["f-reset"] * 4 + ["f-garbage"] * 4 + ["f-refused"] * 4 + \
                ["f-inactive"] * 3 + ["f-slow"]


# -- configuration ---------------------------------------------------------------------------------

def configuration(oidc, faulty, pki, refused_port, port):
    def common(url):
        return (f"OfftokIntrospectionURL {url}\n"
                f"    OfftokClientID rs-client\n"
                f"    OfftokClientSecret rs-secret\n"
                f"    OfftokCAFile {pki.ca_file}")

    def location(path, url, lines, require="valid-user"):
        return f"""
<Location "/{path}/">
    AuthType offtok
    AuthName "soak"
    {common(url)}
    {lines}
    Require {require}
</Location>
"""
    parts = [
        location("cached", oidc.introspection_url,
                 f"OfftokCacheTTL {CACHE_TTL}\n    OfftokNegativeCacheTTL {NEGATIVE_TTL}"),
        location("always", oidc.introspection_url, "OfftokAlwaysValidate On"),
        location("scoped", oidc.introspection_url, f"OfftokCacheTTL {CACHE_TTL}",
                 require=f"offtok-scope {SCOPE}"),
        location("proxied", oidc.introspection_url,
                 f"OfftokCacheTTL {CACHE_TTL}\n    OfftokForwardToken Off\n"
                 f"    OfftokPassHeader X-Soak-User sub\n"
                 f"    ProxyPass \"http://127.0.0.1:{port}/backend/\""),
        # the back end refuses any request that still carries the token
        """
<Location "/backend/">
    <If "-n req('Authorization')">
        Require all denied
    </If>
</Location>
""",
    ]
    for loc, (fault, timeout, _) in FAULTS.items():
        url = (faulty.url_for(fault) if fault else f"https://127.0.0.1:{refused_port}/introspect")
        parts.append(location(loc, url, f"OfftokTimeout {timeout}\n    OfftokNegativeCacheTTL 0"))
    server = "KeepAliveTimeout 5\nMaxKeepAliveRequests 100\nOfftokCacheSize 16M\n"
    return "\n".join(parts), server


def install_content(root):
    for loc in list(OIDC_LOCATIONS) + list(FAULTS) + ["backend"]:
        d = os.path.join(root, "htdocs", loc)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "x.txt"), "w") as f:
            f.write("soak\n")
        os.chmod(os.path.join(d, "x.txt"), 0o644)


# -- the checks ----------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.results = []          # (number, title, passed, details)

    def check(self, number, title, passed, details):
        self.results.append((number, title, passed, details))


def issuer_record(log):
    """sha256 -> (sorted arrival times, whether each answer was active) of the issuer's
    introspections."""
    by_token = collections.defaultdict(list)
    for entry in log:
        sha = entry.get("token_sha256")
        if sha:
            by_token[sha].append((entry["time"], entry.get("active") is True))
    record = {}
    for sha, entries in by_token.items():
        entries.sort()
        record[sha] = ([e[0] for e in entries], [e[1] for e in entries])
    return record


def backed(record, sha, start, end):
    """Whether the issuer answered active for this token to a call that arrived in
    [start, end]."""
    times, actives = record.get(sha, ((), ()))
    i = bisect.bisect_left(times, start - CLOCK_SLACK)
    while i < len(times) and times[i] <= end + CLOCK_SLACK:
        if actives[i]:
            return True
        i += 1
    return False


def judge_warm_up(soak, record):
    """The warm-up's requests (not part of the run's count), by the rules of checks 1, 2 and 5,
    with one difference: a request that asks an issuer may get 503 (the warm-up sends more calls
    at once than OfftokIssuerMaxPending lets wait). {check: [(j, kind, loc, what)]}."""
    out = {1: [], 2: [], 5: []}
    for j, (kind, loc, tid, status, sent, received, allowed, error) in enumerate(soak.warm):
        token = soak.tokens[tid] if tid >= 0 else None
        if status is None:
            out[2].append((j, kind, loc, f"no answer: {error}"))
            continue
        if status not in allowed:
            out[5].append((j, kind, loc, f"{status}, expected {sorted(allowed)}"))
            if status >= 500:
                out[2].append((j, kind, loc, status))
        if status != 200:
            continue
        if kind in ("unknown", "unknown-fresh") or kind.startswith("malformed:") \
                or loc == "f-inactive":
            out[1].append((j, kind, loc, "200 for an inactive, unknown or malformed token"))
        elif token is not None and loc in OIDC_LOCATIONS:
            start = sent - (CACHE_TTL + GRACE if loc in CACHED_LIKE else 0.0)
            if not backed(record, token.sha, start, received):
                out[1].append((j, kind, loc, f"no active answer from the issuer for this token "
                                             f"between {start:.3f} and {received:.3f}"))
    return out


def warm_up_line(soak):
    counts = collections.Counter(w[3] for w in soak.warm)
    asks = sum(1 for w in soak.warm if w[3] == 503 and w[6] != {503})
    return (f"warm-up after the last restart (not counted above): {len(soak.warm):,} requests, "
            f"answers " + ", ".join(f"{k}: {v}" for k, v in sorted(
                counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
            + f"; of the 503s, {asks} where the mix's answer is another (the waiting bound)")


def run_checks(soak, httpd, oidc_log, n_done, ports, report):
    tokens = soak.tokens
    record = issuer_record(oidc_log)
    n = n_done
    warm = judge_warm_up(soak, record)

    # ---- 1: nothing inactive let in
    bad, unbacked, judged_revoked, judged_expired = [], [], collections.Counter(), 0
    for i in range(n):
        status = soak.r_status[i]
        kind, loc = soak.r_kind[i], soak.r_loc[i]
        if kind is None:
            continue
        token = tokens[soak.r_tid[i]] if soak.r_tid[i] >= 0 else None
        sent, received = soak.r_sent[i], soak.r_recv[i]
        cached = loc in CACHED_LIKE
        ttl = CACHE_TTL if cached else 0.0
        if kind == "revocable" and token.revoked_at is not None and sent >= token.revoked_at:
            judged_revoked[loc] += 1
        if kind == "expiring" and sent >= token.exp:
            judged_expired += 1
        if status != 200:
            continue
        why = None
        if kind in ("unknown", "unknown-fresh"):
            why = "an unknown token"
        elif kind.startswith("malformed:"):
            why = "a malformed Authorization header"
        elif loc == "f-inactive":
            why = "a token the issuer called inactive"
        elif kind == "revocable" and token.revoked_at is not None:
            limit = token.revoked_at + (ttl + GRACE if cached else 0.0)
            if sent >= limit:
                why = (f"revoked at {token.revoked_at:.3f}, sent {sent - token.revoked_at:.3f} s "
                       f"later (allowed: {limit - token.revoked_at:.1f} s)")
        elif kind == "expiring" and sent >= token.exp + GRACE:
            why = f"expired at {token.exp}, sent {sent - token.exp:.3f} s later"
        if why:
            bad.append((i, kind, loc, why))
        # the issuer's record: an active answer for this token from a call that began no earlier
        # than the request (always-validate) or the TTL (+1 s) before it, and before its answer
        if token is not None and loc in OIDC_LOCATIONS:
            start = sent - (ttl + GRACE if cached else 0.0)
            if not backed(record, token.sha, start, received):
                unbacked.append((i, kind, loc, f"no active answer from the issuer for this "
                                               f"token between {start:.3f} and {received:.3f}"))
    # the issuer itself: after each revocation it called the token inactive, every time
    issuer_after = issuer_after_active = 0
    for token in soak.revocable:
        if token.revoked_at is None:
            continue
        times, actives = record.get(token.sha, ((), ()))
        for when, active in zip(times, actives):
            if when > token.revoked_at + CLOCK_SLACK:
                issuer_after += 1
                issuer_after_active += active is True
    revoked = sum(1 for t in soak.revocable if t.revoked_at is not None)
    due = sum(1 for t in soak.revocable if t.revoke_at < n)     # all of them, unless timed out
    details = [f"{sum(judged_revoked.values())} requests sent after their token's revocation "
               f"({', '.join(f'{k} {v}' for k, v in sorted(judged_revoked.items()))}), "
               f"{revoked} tokens revoked",
               f"{judged_expired} requests sent after their token's exp",
               f"issuer's record: {len(oidc_log)} introspections; {issuer_after} of revoked "
               f"tokens after their revocation, {issuer_after_active} of them active",
               f"200s without an active answer from the issuer behind them: {len(unbacked)}"]
    details += [f"  #{i} {kind} at /{loc}/: {why}" for i, kind, loc, why in (bad + unbacked)[:20]]
    if soak.warm:
        details.append(f"warm-up: {len(warm[1])} 200s for an inactive, unknown or malformed "
                       f"token or not backed by the issuer, of {len(soak.warm):,} requests")
        details += [f"  warm-up #{j} {kind} at /{loc}/: {why}"
                    for j, kind, loc, why in warm[1][:10]]
    if soak.issuer_errors or revoked < due:
        details.append(f"revocations or mints that failed: {len(soak.issuer_errors)} "
                       f"{soak.issuer_errors[:3]}; tokens due for revocation but not revoked: "
                       f"{due - revoked}")
    report.check(1, "no inactive, revoked or unknown token answered 200",
                 not bad and not unbacked and not warm[1] and issuer_after_active == 0
                 and not soak.issuer_errors and revoked >= due,
                 [f"{len(bad)} such 200s"] + details)

    # ---- 2: no unexpected 5xx, no unanswered request, no crash
    fives = collections.Counter()
    unexpected5 = []
    for i in range(n):
        status = soak.r_status[i]
        if status is not None and status >= 500:
            loc = soak.r_loc[i]
            fives[(status, "fault" if loc in FAULTS else "other")] += 1
            if status != 503 or loc not in FAULTS or FAULTS[loc][2] != 503:
                unexpected5.append((i, soak.r_kind[i], loc, status))
    soak.restart_races = restart_races(soak, httpd, unexpected5)
    unexpected5 = [u for u in unexpected5 if u[0] not in soak.restart_races]
    unanswered = soak.errors
    crash_re = re.compile(r"exit signal|Segmentation fault|AH00052|AH00051|AH00060|"
                          r"\[(?:[a-z_]+:)?(crit|alert|emerg)\]")
    crashes = [line for line in httpd.error_log().splitlines() if crash_re.search(line)]
    retried = sum(1 for i in range(n) if soak.r_attempts[i] == 2)
    details = [f"503 on failing-issuer locations (expected): {fives[(503, 'fault')]}",
               f"5xx elsewhere: {sum(v for (s, w), v in fives.items() if w == 'other')}, "
               f"500s: {sum(v for (s, w), v in fives.items() if s == 500)}",
               f"502s at /proxied/ while httpd restarted, each with its AH01102 (mod_proxy reused "
               f"a back-end connection the restart closed: httpd's race, not judged): "
               f"{len(soak.restart_races)}",
               f"requests without an answer: {len(unanswered)}; answered on a second "
               f"connection after httpd closed a kept one: {retried}",
               f"crash or critical lines in the error log: {len(crashes)}"]
    details += [f"  #{i} {kind} at /{loc}/: {status}" for i, kind, loc, status in unexpected5[:10]]
    details += [f"  #{i} {kind} at /{loc}/: {err}" for i, kind, loc, err in unanswered[:10]]
    details += ["  " + line[:200] for line in crashes[:10]]
    if soak.warm:
        details.append(f"warm-up: {len(warm[2])} requests without an answer or with a 5xx other "
                       f"than 503, of {len(soak.warm):,}")
        details += [f"  warm-up #{j} {kind} at /{loc}/: {what}"
                    for j, kind, loc, what in warm[2][:10]]
    report.check(2, "no 5xx but the expected 503s, no 500, every request answered",
                 not unexpected5 and not unanswered and not crashes and not warm[2], details)

    # ---- 5: every other answer as the contract says
    wrong = []
    for i in range(n):
        expected = soak.r_expect[i]
        kind = soak.r_kind[i]
        if kind is None or soak.r_status[i] is None or i in soak.restart_races:
            continue
        token = tokens[soak.r_tid[i]] if soak.r_tid[i] >= 0 else None
        if kind in ("revocable", "expiring"):
            expected = judge_timed(kind, soak.r_loc[i], token, soak.r_sent[i], soak.r_recv[i])
        if expected is not None and soak.r_status[i] != expected:
            wrong.append((i, kind, soak.r_loc[i], soak.r_status[i], expected))
    return wrong, warm[5]


RACE_SECONDS = 1.0     # after a graceful restart has finished
AH01102 = re.compile(r"^\[(\w{3} \w{3} \d{2} [0-9:.]+ \d{4})\] \[proxy_http:error\] .* AH01102: "
                     r"error reading status line from remote server 127\.0\.0\.1:(\d+)")


def restart_races(soak, httpd, unexpected5):
    """The 502s at /proxied/ that httpd's own race at a graceful restart explains: the proxy
    (this httpd) sends the request on a kept back-end connection (to this httpd) just as the
    restart makes the old child close it, and answers 502 with AH01102 "error reading status
    line from remote server" (httpd documents the race under proxy-initial-not-pooled). A 502
    is put down to it only if the request was in flight during a restart (from the SIGUSR1 to
    RACE_SECONDS after httpd answered again), and only as many in each restart as the error log
    has AH01102 lines for this server's port in that window. Returns their request indexes."""
    windows = [(start, start + took + RACE_SECONDS) for _, start, took in soak.restarts]
    lines = collections.Counter()
    for line in httpd.error_log().splitlines():
        m = AH01102.match(line)
        if not m or int(m.group(2)) != httpd.port:
            continue
        try:
            when = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()
        except ValueError:
            continue
        for k, (lo, hi) in enumerate(windows):
            if lo <= when <= hi:
                lines[k] += 1
    explained = set()
    for i, kind, loc, status in unexpected5:
        if status != 502 or loc != "proxied":
            continue
        for k, (lo, hi) in enumerate(windows):
            if lines[k] and soak.r_recv[i] >= lo and soak.r_sent[i] <= hi:
                lines[k] -= 1
                explained.add(i)
                break
    return explained


def judge_timed(kind, loc, token, sent, received):
    """The answer a revocable or expiring token must get, or None inside the window where
    either answer is right."""
    cached = loc in CACHED_LIKE
    if kind == "revocable":
        if token.revoked_at is None or received < token.revoke_sent:
            return 200
        if cached:
            after = token.revoked_at + CACHE_TTL + GRACE
        else:
            after = token.revoked_at
        return 401 if sent >= after else None
    if received < token.exp - GRACE:
        return 200
    return 401 if sent >= token.exp + GRACE else None


RSS_MEASURES = (   # (name, what of a /proc/<pid>/status sample), the first one judged
    ("VmRSS-RssShmem", lambda s: s["VmRSS"] - s.get("RssShmem", 0)),
    ("VmRSS", lambda s: s["VmRSS"]),
    ("RssAnon", lambda s: s.get("RssAnon", 0)),
    ("RssShmem", lambda s: s.get("RssShmem", 0)),
)
MIN_QUARTER_SAMPLES = 5


def rss_check(soak, final_pids, n_done, report):
    """Per child alive at the end (the last generation, which has lived since the first quarter):
    the median of its samples in the second quarter of the run (by requests answered) against
    that of the last quarter, of its RSS less the pages of the shared cache segment it has
    touched (VmRSS - RssShmem: the segment is fixed-size, shared by every child, and filling up;
    it is not the child's memory). VmRSS itself, RssAnon and RssShmem are shown beside it, and
    the growth within the last quarter (its first half against its second) to tell a steady
    climb from one that levels off. httpd's allocator settings (MaxMemFree, and GLIBC_TUNABLES,
    read back from each child's environment) are part of the verdict: without them the figures
    measure glibc's and APR's caches of freed memory filling (docs/soak.md)."""
    rows, failed = [], False
    by_pid = collections.defaultdict(list)
    for when, progress, pid, role, status, fds in soak.samples:
        if role == "child":
            by_pid[pid].append((progress, status))
    q = n_done / 4

    def median(samples, get, lo, hi):
        values = [get(s) for p, s in samples if lo <= p < hi]
        return statistics.median(values) if values else None

    def growth(a, b):
        return 100.0 * (b - a) / a if a else None

    for pid in final_pids:
        samples = by_pid.get(pid, [])
        n2 = sum(1 for p, _ in samples if q <= p < 2 * q)
        n4 = sum(1 for p, _ in samples if 3 * q <= p < n_done + 1)
        row = {"pid": pid, "samples": len(samples), "samples_q2": n2, "samples_q4": n4,
               "judged": RSS_MEASURES[0][0], "growth": None, "measures": {}}
        if n2 < MIN_QUARTER_SAMPLES or n4 < MIN_QUARTER_SAMPLES:
            failed = True
            rows.append(row)
            continue
        for name, get in RSS_MEASURES:
            m2, m4 = median(samples, get, q, 2 * q), median(samples, get, 3 * q, n_done + 1)
            h1 = median(samples, get, 3 * q, 3.5 * q)
            h2 = median(samples, get, 3.5 * q, n_done + 1)
            row["measures"][name] = {"start": get(samples[0][1]), "q2": m2, "q4": m4,
                                     "growth": growth(m2, m4), "q4_trend": growth(h1, h2)}
        row["growth"] = row["measures"][RSS_MEASURES[0][0]]["growth"]
        failed |= row["growth"] is None or row["growth"] >= RSS_LIMIT
        rows.append(row)

    tunables = {pid: environ_of(pid).get("GLIBC_TUNABLES") for pid in final_pids}
    if soak.args.allocator_defaults:
        details = ["httpd ran with glibc's and APR's defaults (--allocator-defaults): the figures "
                   "include their caches of freed memory filling up, which is not a leak "
                   "(docs/soak.md)"]
    else:
        details = [f"httpd's children ran with MaxMemFree {HTTPD_MAX_MEM_FREE} and "
                   f"GLIBC_TUNABLES=" + ", ".join(sorted({str(v) for v in tunables.values()}))]
        unset = [pid for pid, v in tunables.items()
                 if not v or HTTPD_GLIBC_TUNABLES not in v.split(":")]
        if unset:
            failed = True
            details.append(f"children without {HTTPD_GLIBC_TUNABLES} in their environment: "
                           f"{unset}: the figures below do not measure what the check means to")
    details.append(f"{'pid':>8}  {'':<15} {'start':>7} {'Q2':>7} {'Q4':>7} {'growth':>8} "
                   f"{'within Q4':>9}  (KiB, medians; the first line is judged)")
    for row in rows:
        if row["growth"] is None:
            details.append(f"{row['pid']:>8}  too few samples in the second or the last quarter "
                           f"({row['samples_q2']}, {row['samples_q4']}; {row['samples']} in all): "
                           f"the child did not live through the run")
            continue
        for k, (name, _) in enumerate(RSS_MEASURES):
            m = row["measures"][name]
            pct = "-" if m["growth"] is None else f"{m['growth']:+.2f}%"
            trend = "-" if m["q4_trend"] is None else f"{m['q4_trend']:+.2f}%"
            details.append(f"{row['pid'] if k == 0 else '':>8}  {name:<15} {m['start']:>7} "
                           f"{m['q2']:>7.0f} {m['q4']:>7.0f} {pct:>8} {trend:>9}"
                           + ("  <- judged" if k == 0 else ""))
    a_before = soak.snapshots.get("start", {}).get("anon", {})
    a_after = soak.snapshots.get("end", {}).get("anon", {})
    for pid in final_pids:
        a, b = a_before.get(pid), a_after.get(pid)
        if a and b:
            details.append(
                f"child {pid}, anonymous memory when idle, start of Q2 -> end: malloc's heaps "
                f"{a.get('malloc', 0)} -> {b.get('malloc', 0)} KiB, other anonymous mappings "
                f"(APR's pools, thread stacks) {a.get('other', 0)} -> {b.get('other', 0)} KiB, "
                f"copied file pages {a.get('file', 0)} -> {b.get('file', 0)} KiB")
    before = soak.snapshots.get("start", {}).get("malloc", {})
    after = soak.snapshots.get("end", {}).get("malloc", {})
    for pid in final_pids:
        if pid in before and pid in after:
            (sa, ua), (sb, ub) = before[pid], after[pid]
            details.append(f"child {pid}, glibc malloc when idle, start of Q2 -> end: in use "
                           f"{ua // 1024} -> {ub // 1024} KiB ({(ub - ua) // 1024:+d}), held from "
                           f"the system {sa // 1024} -> {sb // 1024} KiB ({(sb - sa) // 1024:+d}), "
                           f"free inside the heap {(sa - ua) // 1024} -> {(sb - ub) // 1024} KiB")
    report.check(3, f"each child's RSS less the shared cache (VmRSS - RssShmem) grew by less than "
                    f"{RSS_LIMIT:.0f} % from Q2 to Q4", bool(rows) and not failed, details)
    return rows


# The module's idle libcurl handles per child: at most its waiting bound, whose default
# (OfftokIssuerMaxPending) is a child's threads less an eighth of them, at least one: 28 of 32.
POOL_HANDLES = min(64, THREADS_PER_CHILD - max(THREADS_PER_CHILD // 8, 1))


def fd_check(soak, final_pids, report):
    """Idle descriptors at the start of the second quarter ("start") and after the load ("end"),
    with those of the fresh children after the last restart for reference. What is not a
    connection pool must be back exactly; the pools (the module's idle libcurl handles, each
    with its wake-up socket pair and kept connections, and mod_proxy's back-end connections)
    must be within their bounds."""
    fresh = soak.snapshots.get("fresh", {}).get("fds", {})
    start = soak.snapshots.get("start", {}).get("fds", {})
    end = soak.snapshots.get("end", {}).get("fds", {})
    failed = not final_pids
    details = []
    for pid in final_pids:
        f, a, b = fresh.get(pid) or {}, start.get(pid), end.get(pid)
        if a is None or b is None:
            failed = True
            details.append(f"child {pid}: no idle reading at the {'start' if a is None else 'end'}")
            continue
        tf, ta, tb = sum(f.values()), sum(a.values()), sum(b.values())
        fixed_a = {k: v for k, v in a.items() if k not in POOL_KINDS}
        fixed_b = {k: v for k, v in b.items() if k not in POOL_KINDS}
        handles = (b.get(PAIRS, 0) - f.get(PAIRS, 0)) / 2
        problems = []
        fixed_f = {k: v for k, v in f.items() if k not in POOL_KINDS and v}
        if {k: v for k, v in fixed_a.items() if v} != {k: v for k, v in fixed_b.items() if v}:
            problems.append("descriptors outside the connection pools changed")
        if f and fixed_f != {k: v for k, v in fixed_b.items() if v}:
            problems.append("descriptors outside the connection pools differ from the fresh child")
        if handles > POOL_HANDLES:
            problems.append(f"{handles:.0f} libcurl handles kept, over the bound {POOL_HANDLES}")
        for kind in ("to oidc issuer", "to faulty issuer", OTHER_SOCKETS):
            if b.get(kind, 0) > max(handles, 0):
                problems.append(f"{b.get(kind, 0)} {kind}, more than handles")
        if b.get("to proxied back end", 0) > THREADS_PER_CHILD:
            problems.append("more back-end connections than threads")
        failed |= bool(problems)
        details.append(f"child {pid}: {tf} fresh, {ta} at the start of Q2, {tb} after the load "
                       f"({'same' if ta == tb else f'{tb - ta:+d}'}); outside the pools "
                       f"{sum(fixed_a.values())} -> {sum(fixed_b.values())}; "
                       f"{handles:.0f} pooled libcurl handles at the end"
                       + (": " + "; ".join(problems) if problems else ""))
        for kind in sorted(set(f) | set(a) | set(b)):
            if f.get(kind, 0) or a.get(kind, 0) or b.get(kind, 0):
                details.append(f"    {kind:<24} {f.get(kind, 0):>4} {a.get(kind, 0):>4} "
                               f"{b.get(kind, 0):>4}" + ("  (pool)" if kind in POOL_KINDS else ""))
    most = collections.Counter()
    for progress, snap in soak.breakdowns:
        for pid, kinds in snap.items():
            if pid in final_pids and kinds:
                for kind in POOL_KINDS:
                    most[(pid, kind)] = max(most[(pid, kind)], kinds.get(kind, 0))
    for pid in final_pids:
        details.append(f"child {pid}, most seen during the load: " + ", ".join(
            f"{kind} {most[(pid, kind)]}" for kind in POOL_KINDS))
        if soak.warm:
            details.append(f"child {pid}, most seen during the warm-up: " + ", ".join(
                f"{kind} {soak.warm_most[(pid, kind)]}" for kind in POOL_KINDS + ("client conn",)))
    pf, pa, pb = fresh.get("parent"), start.get("parent"), end.get("parent")
    if pa and pb:
        details.append(f"parent: {sum((pf or {}).values())} fresh, {sum(pa.values())} -> "
                       f"{sum(pb.values())}")
    report.check(4, "each child's open descriptors back to where they started once idle",
                 not failed, details)


# -- main -----------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=None,
                        help=f"requests to send (default {FULL_REQUESTS:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short run, {QUICK_REQUESTS:,} requests: every path, but too "
                             "short for the RSS check")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop sending after this long (default: 30 min, 10 min with --quick)")
    parser.add_argument("--restarts", default="0.03,0.06,0.09",
                        help="graceful restarts at these fractions of the run (default "
                             "0.03,0.06,0.09: the last generation lives through Q2 to Q4, and "
                             "has served 16 %% of the run when Q2 begins)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None,
                        help="default /var/tmp/soak-<pid>, removed at the end unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-malloc-stats", dest="malloc_stats", action="store_false",
                        help="do not ask the idle children for glibc's malloc_stats() with gdb "
                             "at the start of the second quarter and at the end")
    parser.add_argument("--allocator-defaults", action="store_true",
                        help=f"run httpd without GLIBC_TUNABLES={HTTPD_GLIBC_TUNABLES} and "
                             f"MaxMemFree {HTTPD_MAX_MEM_FREE}: check 3 then measures glibc's "
                             f"and APR's caches of freed memory filling up as well, and fails "
                             f"at 200,000 requests")
    parser.add_argument("--warm-up", type=float, default=WARM_UP_SECONDS, metavar="S",
                        help=f"after the last restart, saturate the new children for S seconds "
                             f"({WARM_UP_CONNECTIONS} connections, more than their threads; "
                             f"default {WARM_UP_SECONDS:g}; 0: none) before the load goes on")
    parser.add_argument("--json", default=None, help="write the figures here as JSON")
    args = parser.parse_args()
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else FULL_REQUESTS
    if args.max_seconds is None:
        args.max_seconds = 600 if args.quick else 1800
    args.restarts = sorted(float(x) for x in args.restarts.split(",") if x.strip())
    if any(not 0 < r < 0.25 for r in args.restarts):
        parser.error("--restarts: each fraction must lie in the first quarter (0 < P < 0.25), "
                     "so that the last generation of children lives through the quarters "
                     "compared")

    workdir = args.workdir or f"/var/tmp/soak-{os.getpid()}"
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    started = time.time()
    procs = []
    httpd = None

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    soak = Soak(args)
    report = Report()
    try:
        log(f"soak: {args.requests:,} requests, {args.concurrency} connections, "
            f"module {harness.module_path()}, work directory {workdir}, httpd with "
            + ("glibc's and APR's default caching of freed memory" if args.allocator_defaults
               else f"GLIBC_TUNABLES={HTTPD_GLIBC_TUNABLES}, MaxMemFree {HTTPD_MAX_MEM_FREE}"))
        pki = make_pki(os.path.join(workdir, "pki"))
        os.chmod(pki.dirpath, 0o755)
        for path in os.listdir(pki.dirpath):
            os.chmod(os.path.join(pki.dirpath, path), 0o644)
        oidc = OidcIssuer(os.path.join(workdir, "oidc"), pki)
        procs.append(oidc)
        faulty = FaultyIssuer(os.path.join(workdir, "faulty"), pki)
        procs.append(faulty)
        refused_port = free_port()      # nothing listens there
        httpd = Httpd(os.path.join(workdir, "httpd"), ca_file=pki.ca_file)
        install_content(httpd.root)
        body, server = configuration(oidc, faulty, pki, refused_port, httpd.port)
        if not args.allocator_defaults:
            server += f"MaxMemFree {HTTPD_MAX_MEM_FREE}\n"
        with httpd_environment(args):
            httpd.start(body, server=server, mpm="soak", servers=CHILDREN,
                        threads=THREADS_PER_CHILD, loglevel="notice")
        ports = {"httpd": httpd.port, "oidc": oidc.port, "faulty": faulty.port}
        soak.mint_tokens(oidc)
        log(f"httpd {httpd.base} (pid {httpd.proc.pid}), oidc-provider {oidc.url}, faulty "
            f"issuer {faulty.url}; {len(soak.tokens)} tokens minted")

        result = drive(soak, httpd, oidc, ports)
        n_done, elapsed, timed_out = result
        final_pids = soak.workers_of(httpd)
        log("load finished; reading the issuers' records")
        oidc_log = oidc.introspection_log()
        faulty_count = faulty.requests()
        wrong, warm_wrong = run_checks(soak, httpd, oidc_log, n_done, ports, report)
        rss_rows = rss_check(soak, final_pids, n_done, report)
        fd_check(soak, final_pids, report)
        details = [f"{len(wrong)} answers other than the contract's"]
        details += [f"  #{i} {kind} at /{loc}/: {status}, expected {expected}"
                    for i, kind, loc, status, expected in wrong[:20]]
        if soak.warm:
            details.append(warm_up_line(soak))
            details.append(f"warm-up: {len(warm_wrong)} answers other than the contract's")
            details += [f"  warm-up #{j} {kind} at /{loc}/: {what}"
                        for j, kind, loc, what in warm_wrong[:10]]
        report.check(5, "every other answer is the contract's (valid tokens let in, ...)",
                     not wrong and not warm_wrong, details)
        report.results.sort(key=lambda r: r[0])

        print_summary(soak, httpd, n_done, elapsed, timed_out, oidc_log, faulty_count,
                      final_pids, report, started)
        if args.json:
            write_json(args.json, soak, n_done, elapsed, rss_rows, report, started)
    except KeyboardInterrupt:
        log("interrupted")
        report.check(0, "the run completed", False, ["interrupted"])
    finally:
        soak.stop.set()
        soak.resume.set()
        if httpd is not None and httpd.proc is not None:
            httpd.stop()
        for p in reversed(procs):
            p.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or args.workdir:
            print(f"work directory kept: {workdir}")
    passed = sum(1 for r in report.results if r[2])
    failed = len(report.results) - passed
    print(f"soak: {passed} passed, {failed} failed")
    return 1 if failed or not report.results else 0


def drive(soak, httpd, oidc, ports):
    """Send the load with the restarts, revocations and expiring tokens; (requests done,
    seconds, whether the time limit stopped it)."""
    args = soak.args
    total = soak.total
    restart_at = [int(total * r) for r in args.restarts]
    expiring_at = [int(total * (0.02 + 0.9 * k / 29)) for k in range(30)]
    sampler = threading.Thread(target=soak.sampler, args=(httpd,), daemon=True)
    workers = [threading.Thread(target=soak.worker, args=(n, httpd.port), daemon=True)
               for n in range(args.concurrency)]
    side_done = threading.Event()

    def revoker():
        """Revokes tokens and mints expiring ones at their points in the run."""
        pending = sorted(soak.revocable, key=lambda t: t.revoke_at)
        expiring = list(expiring_at)
        while not side_done.is_set():
            progress = soak.progress()
            try:
                while pending and progress >= pending[0].revoke_at:
                    token = pending.pop(0)
                    token.revoke_sent = time.time()
                    if not oidc.revoke(token.value):
                        soak.issuer_errors.append(f"revoke {token.tid}: not found")
                    token.revoked_at = time.time()
                while expiring and progress >= expiring[0]:
                    expiring.pop(0)
                    soak.mint_expiring(oidc, ttl=5)
            except Exception as err:   # noqa: BLE001 - reported, and the run goes on
                soak.issuer_errors.append(f"{type(err).__name__}: {err}")
            side_done.wait(0.01)

    revoke_thread = threading.Thread(target=revoker, daemon=True)
    soak.sample(httpd)
    t0 = time.time()
    deadline = time.monotonic() + args.max_seconds
    sampler.start()
    revoke_thread.start()
    for w in workers:
        w.start()
    timed_out = False
    warm_taken = False
    last_report = last_breakdown = time.monotonic()
    try:
        while any(w.is_alive() for w in workers):
            progress = soak.progress()
            if restart_at and progress >= restart_at[0]:
                restart_at.pop(0)
                last = not restart_at
                if last:
                    # the last generation: stop sending first, so that its children are read
                    # idle before they have served anything
                    soak.pause_load("the last restart")
                started = time.time()
                old = set(soak.workers_of(httpd))
                soak.generation += 1
                httpd.graceful()
                took = time.time() - started
                soak.restarts.append((progress, started, took))
                log(f"graceful restart {len(soak.restarts)} at request {progress:,} "
                    f"({100 * progress / total:.0f} %), {took:.1f} s")
                if last:
                    wait_until(lambda: not (set(soak.workers_of(httpd)) & old)
                               and len(soak.workers_of(httpd)) == CHILDREN, timeout=60,
                               interval=0.1, what="the old generation to exit")
                    snap = soak.idle_snapshot(httpd, "fresh", ports)
                    log("idle descriptors of the new children: " + fd_summary(snap))
                    if args.warm_up > 0:
                        # more requests at once than both children have threads, and the
                        # module's pools at their bound, before the quarters check 3 compares
                        soak.warm_up(httpd, ports, args.warm_up, WARM_UP_CONNECTIONS)
                        counts = collections.Counter(w[3] for w in soak.warm)
                        log(f"warm-up: {len(soak.warm):,} requests on {WARM_UP_CONNECTIONS} "
                            f"connections in {soak.warm_seconds:.1f} s (not counted in the run); "
                            + ", ".join(f"{k}: {v}" for k, v in sorted(
                                counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))))
                    soak.resume_load()
            if not warm_taken and progress >= total // 4:
                # the start of the second quarter: the children have warmed up
                warm_taken = True
                soak.pause_load("the second quarter")
                snap = soak.idle_snapshot(httpd, "start", ports)
                log("idle descriptors at the start of the second quarter: " + fd_summary(snap))
                soak.resume_load()
            if time.monotonic() - last_breakdown > 5:
                last_breakdown = time.monotonic()
                soak.breakdowns.append((soak.progress(), {
                    pid: fd_breakdown(pid, ports) for pid in soak.workers_of(httpd)}))
            if time.monotonic() > deadline and not soak.stop.is_set():
                timed_out = True
                log(f"--max-seconds {args.max_seconds:.0f} reached: stopping the load")
                soak.stop.set()
                soak.resume.set()
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                elapsed = time.time() - t0
                log(f"{progress:,} requests ({100 * progress / total:.0f} %), "
                    f"{progress / elapsed:.0f}/s")
            time.sleep(0.02)
        elapsed = time.time() - t0
    finally:
        side_done.set()
        soak.stop.set()
        soak.resume.set()
    revoke_thread.join(30)
    sampler.join(5)
    n_done = soak.progress()
    log(f"{n_done:,} requests in {elapsed:.1f} s ({soak.paused_seconds:.1f} s paused): "
        f"{n_done / (elapsed - soak.paused_seconds):.0f} requests/s; waiting for httpd to go idle")
    snap = soak.idle_snapshot(httpd, "end", ports)
    soak.sample(httpd)
    log("idle descriptors after the load: " + fd_summary(snap))
    # the results are written by request index; an index handed out but not finished (the
    # time limit) has no kind and is skipped by the checks
    n_indexed = min(soak.total, max((i + 1 for i in range(soak.total)
                                     if soak.r_kind[i] is not None), default=0))
    return n_indexed, elapsed, timed_out


def print_summary(soak, httpd, n, elapsed, timed_out, oidc_log, faulty_count, final_pids,
                  report, started):
    print()
    busy = elapsed - soak.paused_seconds
    print(f"== soak: {n:,} requests in {elapsed:.1f} s, of which {soak.paused_seconds:.1f} s "
          f"paused for idle readings: {n / busy:.0f} requests/s while sending "
          f"({soak.args.concurrency} connections)"
          f"{'; STOPPED BY --max-seconds' if timed_out else ''}")
    print(f"   graceful restarts: {len(soak.restarts)} (" + ", ".join(
        f"at {p:,} ({100 * p / soak.total:.0f} %) in {t:.1f} s" for p, _, t in soak.restarts)
        + ")")
    revoked = [t for t in soak.revocable if t.revoked_at is not None]
    print(f"   tokens revoked at the issuer during the run: {len(revoked)} of "
          f"{len(soak.revocable)}; expiring tokens minted: {len(soak.expiring)}")
    print(f"   issuer calls: oidc-provider {len(oidc_log):,}, faulty stub {faulty_count:,}")
    if soak.issuer_errors:
        print(f"   control calls to the issuer that failed: {len(soak.issuer_errors)}: "
              f"{soak.issuer_errors[:3]}")
    print(f"   wall time including set-up: {time.time() - started:.0f} s")
    print()
    table = collections.defaultdict(collections.Counter)
    for i in range(n):
        if soak.r_kind[i] is None:
            continue
        kind = soak.r_kind[i]
        table[(kind, soak.r_loc[i])][soak.r_status[i]] += 1
    print(f"{'kind':<26} {'location':<11} {'requests':>9}  answers")
    for (kind, loc), counts in sorted(table.items()):
        answers = ", ".join(f"{status if status is not None else 'none'}: {count}"
                            for status, count in sorted(counts.items(),
                                                        key=lambda kv: (kv[0] is None, kv[0] or 0)))
        print(f"{kind:<26} {loc:<11} {sum(counts.values()):>9}  {answers}")
    print()
    # per generation: the children seen and their RSS
    gens = collections.defaultdict(list)
    for pid, gen in soak.first_seen.items():
        gens[gen].append(pid)
    by_pid = collections.defaultdict(list)
    for when, progress, pid, role, status, fds in soak.samples:
        by_pid[pid].append((progress, status["VmRSS"], fds))
    print("children by generation (VmRSS KiB: first, last, max; fds first, last sample):")
    for gen in sorted(gens):
        for pid in sorted(gens[gen]):
            rows = by_pid.get(pid)
            if not rows:
                continue
            print(f"   gen {gen} pid {pid:>7}: requests {rows[0][0]:>7,}..{rows[-1][0]:>7,}  "
                  f"rss {rows[0][1]:>6} {rows[-1][1]:>6} {max(r[1] for r in rows):>6}  "
                  f"fds {rows[0][2]:>3} {rows[-1][2]:>3}"
                  f"{'  (alive at the end)' if pid in final_pids else ''}")
    parent = [(p, s["VmRSS"], f) for _, p, pid, role, s, f in soak.samples if role == "parent"]
    if parent:
        print(f"   parent {httpd.proc.pid}: rss {parent[0][1]} -> {parent[-1][1]} KiB, "
              f"fds {parent[0][2]} -> {parent[-1][2]}")
    print()
    for number, title, passed, details in report.results:
        print(f"check {number}: {'PASS' if passed else 'FAIL'}: {title}")
        for line in details:
            print(f"    {line}")


def write_json(path, soak, n, elapsed, rss_rows, report, started):
    data = {
        "requests": n, "seconds": round(elapsed, 1),
        "paused_seconds": round(soak.paused_seconds, 1),
        "requests_per_second": round(n / (elapsed - soak.paused_seconds)),
        "concurrency": soak.args.concurrency,
        "restarts": [{"at": p, "seconds": round(t, 2)} for p, _, t in soak.restarts],
        "glibc_tunables": None if soak.args.allocator_defaults else HTTPD_GLIBC_TUNABLES,
        "max_mem_free": None if soak.args.allocator_defaults else HTTPD_MAX_MEM_FREE,
        "warm_up": {"requests": len(soak.warm), "seconds": round(soak.warm_seconds, 1),
                    "connections": WARM_UP_CONNECTIONS if soak.warm else 0,
                    "answers": {str(k): v for k, v in collections.Counter(
                        w[3] for w in soak.warm).items()},
                    "most": {f"{pid} {kind}": v for (pid, kind), v in soak.warm_most.items()}},
        "rss": rss_rows,
        "fds": {name: {str(k): v for k, v in snap["fds"].items()}
                for name, snap in soak.snapshots.items()},
        "samples": [{"time": round(t, 2), "progress": p, "pid": pid, "role": role, **st,
                     "fds": f} for t, p, pid, role, st, f in soak.samples],
        "checks": [{"check": num, "title": title, "passed": ok, "details": det}
                   for num, title, ok, det in report.results],
        "wall_seconds": round(time.time() - started),
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
