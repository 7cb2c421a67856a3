"""The soak's five checks (tests/soak/soak.py), judged from the driver's results, the issuer's
own record of its introspections and the samples of httpd's children; each adds one result to
the report."""
import bisect
import collections
import datetime
import re
import statistics

from soak_plan import (CACHE_TTL, CACHED_LIKE, CLOCK_SLACK, FAULTS, GRACE, HTTPD_GLIBC_TUNABLES,
                       HTTPD_MAX_MEM_FREE, OIDC_LOCATIONS, THREADS_PER_CHILD)
from soak_proc import OTHER_SOCKETS, PAIRS, POOL_KINDS, environ_of

RSS_LIMIT = 5.0               # per cent, Q2 -> Q4


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


def contract_check(soak, wrong, warm_wrong, report):
    """Check 5, from what run_checks found: every other answer is the one the contract gives."""
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
