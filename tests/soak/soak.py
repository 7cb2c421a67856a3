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

This file is the command line and the run's set-up; the rest lives beside it: soak_plan.py (the
locations, the mix of requests and the answers they must get), soak_driver.py (the clients, the
load, the restarts and the samples), soak_proc.py (what is read in /proc), soak_checks.py (the
five checks) and soak_report.py (the printed summary and the JSON figures).
"""
import argparse
import os
import shutil
import signal
import sys
import time

# soak_plan first: it puts tests/integration (the harness, the issuers, the PKI) on the path.
from soak_plan import (CHILDREN, HTTPD_GLIBC_TUNABLES, HTTPD_MAX_MEM_FREE, THREADS_PER_CHILD,
                       WARM_UP_CONNECTIONS, WARM_UP_SECONDS, configuration, install_content,
                       log)
import httpd as harness
from httpd import Httpd, free_port
from issuers import FaultyIssuer, OidcIssuer
from pki import make_pki
from soak_checks import contract_check, fd_check, rss_check, run_checks
from soak_driver import Soak, drive, httpd_environment
from soak_report import Report, print_summary, write_json

FULL_REQUESTS = 200_000
QUICK_REQUESTS = 20_000


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
        contract_check(soak, wrong, warm_wrong, report)
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



if __name__ == "__main__":
    sys.exit(main())
