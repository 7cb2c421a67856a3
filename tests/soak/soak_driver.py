"""The soak's driver (tests/soak/soak.py): the clients, the run's state and its results by request,
the load with its graceful restarts, revocations, expiring tokens and warm-up, and the samples
of httpd's children taken meanwhile."""
import collections
import contextlib
import http.client
import itertools
import os
import random
import secrets
import threading
import time

from soak_plan import (CHILDREN, FAULT_CHOICES, FAULTS, HTTPD_GLIBC_TUNABLES,
                       MALFORMED, MALFORMED_KINDS, MIX_KINDS, MIX_WEIGHTS, SCOPE,
                       WARM_UP_CONNECTIONS, WARM_UP_SLOW_SHARE, Token, bearer, log)
from soak_proc import (anon_breakdown, fd_breakdown, fd_count, malloc_totals, proc_status,
                       threads_of)
from httpd import wait_until


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
