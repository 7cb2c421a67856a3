"""The flood scenario of issue 17, for bench/bench02.py.

One wrk (-c16 -t1) sends one cached token as client 10.0.0.2 (mod_remoteip: the X-Client
header names the client) in three conditions, on the module with `OfftokMissRate` and on the
same without it:
  alone    nothing else runs;
  neutral  a second, equally aggressive wrk (-c16 -t1, the same requests: unique.lua, new
           tokens as client 10.0.0.1) floods /neutral.txt, a static file of the same httpd
           outside the protected location, which costs the module nothing;
  flooded  the same wrk floods the protected file: every token is new to the module.
On a 2-core machine the flooding wrk takes a core whatever it floods, so flooded / alone (the
raw ratio, kept) measures CPU sharing as much as the defence; flooded / neutral (the defence's
ratio) compares two equally aggressive floods, one the module must handle and one it never
sees. A fourth run, the flood alone, gives the httpd's CPU per flood request (with the budget:
per refused, 429, request). The issuer's calls are counted over the flooded run.
`bench/run --flood-cpu N` pins the flooding wrk to core N (taskset) in every condition.
"""
import os
import time
import urllib.request

import benchlib as bl

RUN = None          # bench/run's module (set by bench02)
FLOOD_RATE = "20 20"        # OfftokMissRate of the flood scenario: 20 a second, burst 20
FLOOD_BURST = 20
NEUTRAL = "/neutral.txt"


def flood_variant(b, budget=True):
    """The cached variant behind mod_remoteip (X-Client from 127.0.0.1 names the client), with
    OfftokMissRate or without."""
    load, server, location = RUN.offtok_variant(b)
    load += f"\nLoadModule remoteip_module {bl.MODDIR}/mod_remoteip.so"
    server += "\nRemoteIPHeader X-Client\nRemoteIPInternalProxy 127.0.0.1"
    if budget:
        server += f"\nOfftokMissRate {FLOOD_RATE}"
    return load, server, location


def neutral_url(h):
    """The httpd's /neutral.txt (the same 13 bytes as the protected file, no authentication:
    outside <Location /p/>), written here."""
    path = os.path.join(h.root, "htdocs", NEUTRAL.lstrip("/"))
    with open(path, "w") as f:
        f.write(bl.BODY)
    os.chmod(path, 0o644)
    return f"http://127.0.0.1:{h.port}{NEUTRAL}"


def under_flood(b, h, legit, legit_kw, flooder, flood_url, flood_env):
    """The legitimate client's run while flooder floods flood_url; its figures, the flood's,
    and the issuer's calls over the flood."""
    before = b.nginx.requests()
    t0 = time.monotonic()
    p, fout = flooder.start(flood_url, b.args.duration + 3, "unique.lua", env=flood_env)
    time.sleep(1)
    run = legit.run(h.url, b.args.duration, groups={"server": h.pid}, **legit_kw)
    p.wait(timeout=b.args.duration + 60)
    b.procs.stop(p)
    seconds = time.monotonic() - t0
    calls = b.nginx.requests() - before - 1
    with open(fout) as f:
        fres = bl.parse_wrk(f.read())
    return run, fres, calls, seconds


def ratio(a, c):
    return round(a / c, 3) if c else None


def one_round(b, i, label, h, legit, legit_kw, flooder, flood_env, neutral):
    alone = legit.run(h.url, b.args.duration, groups={"server": h.pid}, **legit_kw)
    # The neutral and the token flood alternate in order from round to round.
    out = {}
    for kind in (("neutral", "flooded") if i % 2 == 0 else ("flooded", "neutral")):
        env = dict(flood_env, BENCH_TEMPLATE=flood_env["BENCH_TEMPLATE"] + f"-{kind}{i}")
        out[kind] = under_flood(b, h, legit, legit_kw, flooder,
                                neutral if kind == "neutral" else h.url, env)
    flooded, fres, calls, seconds = out["flooded"]
    neutral_run, nres = out["neutral"][0], out["neutral"][1]
    env = dict(flood_env, BENCH_TEMPLATE=flood_env["BENCH_TEMPLATE"] + f"-alone{i}")
    falone = flooder.run(h.url, b.args.duration, "unique.lua", env=env,
                         groups={"server": h.pid})
    run = {"alone": alone, "neutral": neutral_run, "neutral_flood": nres, "flooded": flooded,
           "flood": fres, "flood_alone": falone,
           "issuer_calls": calls, "issuer_calls_per_s": round(calls / seconds, 1),
           # the burst is spent once; what is left is the sustained rate
           "issuer_calls_per_s_after_burst": round(max(calls - FLOOD_BURST, 0) / seconds, 1),
           "flood_seconds": round(seconds, 1),
           "ratio": ratio(flooded["rps"], alone["rps"]),
           "defence_ratio": ratio(flooded["rps"], neutral_run["rps"]),
           "neutral_ratio": ratio(neutral_run["rps"], alone["rps"])}
    foreign = max(r["cpu"]["foreign"] for r in (alone, neutral_run, flooded))
    bl.log(f"    {label} {i + 1}: legit alone {alone['rps']:.0f}/s, under neutral flood "
           f"{neutral_run['rps']:.0f}/s, under token flood {flooded['rps']:.0f}/s (raw "
           f"{run['ratio']}, defence {run['defence_ratio']}); token flood {fres['rps']:.0f}/s "
           f"({fres['non_2xx']} refused), neutral flood {nres['rps']:.0f}/s; issuer "
           f"{run['issuer_calls_per_s']}/s; flood alone: httpd "
           f"{falone.get('server_us_per_request')} us/req, {falone['non_2xx']} of "
           f"{falone['requests']} refused  (foreign cpu {foreign:.0%})")
    return run


def summary(runs):
    med = RUN.median
    falone = [r["flood_alone"] for r in runs]
    return {
        "alone_rps": med(r["alone"]["rps"] for r in runs),
        "neutral_rps": med(r["neutral"]["rps"] for r in runs),
        "flooded_rps": med(r["flooded"]["rps"] for r in runs),
        "ratio": med(r["ratio"] for r in runs),
        "ratios": [r["ratio"] for r in runs],
        "defence_ratio": med(r["defence_ratio"] for r in runs),
        "defence_ratios": [r["defence_ratio"] for r in runs],
        "neutral_ratio": med(r["neutral_ratio"] for r in runs),
        "flood_rps": med(r["flood"]["rps"] for r in runs),
        "neutral_flood_rps": med(r["neutral_flood"]["rps"] for r in runs),
        "flood_refused": sum(r["flood"]["non_2xx"] for r in runs),
        "issuer_calls_per_s": med(r["issuer_calls_per_s"] for r in runs),
        "issuer_calls_per_s_after_burst": med(r["issuer_calls_per_s_after_burst"]
                                              for r in runs),
        # The flood alone: httpd CPU per flood request, and the share of them refused (429
        # with the budget after its burst; 0 without it, where each is an issuer call).
        "flood_alone_rps": med(f["rps"] for f in falone),
        "flood_alone_server_us_per_request": med(f.get("server_us_per_request")
                                                 for f in falone),
        "flood_alone_refused_share": med(round(f["non_2xx"] / f["requests"], 4)
                                         if f["requests"] else None for f in falone),
        "legit_errors": sum(RUN.errors(r[k]) for r in runs
                            for k in ("alone", "neutral", "flooded")),
        "foreign_cpu_max": max(r[k]["cpu"]["foreign"] for r in runs
                               for k in ("alone", "neutral", "flooded")),
        "runs": runs,
    }


def flood(b, name):
    """Issue 17 (see the module's docstring): per label (with OfftokMissRate, without), --pairs
    rounds of: legitimate alone, under a neutral flood, under a token flood, the flood alone."""
    token = b.hot_token()
    dirs = [os.path.join(b.workdir, d) for d in ("wrk-legit", "wrk-flood")]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    legit = bl.Wrk(b.procs, dirs[0], 16, 1)
    flooder = bl.Wrk(b.procs, dirs[1], 16, 1)
    flooder.pin = getattr(b.args, "flood_cpu", None)
    legit_kw = {"headers": ("Authorization: Bearer " + token, "X-Client: 10.0.0.2")}
    flood_env = {"BENCH_TEMPLATE": b.template() + "-flood", "BENCH_XCLIENT": "10.0.0.1"}
    out = {}
    for label, budget in (("budget", True), ("no_budget", False)):
        h = b.variant(f"offtok-flood-{label}", f"mod_offtok-flood-{label}", flood_variant,
                      budget=budget)
        status, body = h.get(token)
        if status != 200:
            raise RuntimeError(f"{h.name}: a valid token got {status}: {body[:200]!r}\n"
                               + h.error_log()[-2000:])
        neutral = neutral_url(h)
        with urllib.request.urlopen(neutral, timeout=30) as r:
            if r.status != 200:
                raise RuntimeError(f"{h.name}: {NEUTRAL} got {r.status}")
        runs = [one_round(b, i, label, h, legit, legit_kw, flooder, flood_env, neutral)
                for i in range(b.args.pairs)]
        out[label] = summary(runs)
        b.drop(f"offtok-flood-{label}")
    res = out["budget"]
    return {"reference_rps": res["alone_rps"], "rps": res["flooded_rps"], "ratio": res["ratio"],
            "defence_ratio": res["defence_ratio"], "cpu_ratio": None,
            "errors": res["legit_errors"], "miss_rate": FLOOD_RATE,
            "flood_cpu": flooder.pin, "budget": out["budget"], "no_budget": out["no_budget"]}
