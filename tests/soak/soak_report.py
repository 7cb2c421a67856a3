"""The soak's report (tests/soak/soak.py): the results of the checks, the printed summary (a table
per kind of request, the children by generation, one line per check) and the JSON figures."""
import collections
import json
import time

from soak_plan import HTTPD_GLIBC_TUNABLES, HTTPD_MAX_MEM_FREE, WARM_UP_CONNECTIONS


class Report:
    def __init__(self):
        self.results = []          # (number, title, passed, details)

    def check(self, number, title, passed, details):
        self.results.append((number, title, passed, details))


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
