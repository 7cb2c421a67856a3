"""SetHandler offtok-status: the counters as JSON, and as Prometheus text on ?format=prometheus.
Both must parse, and move when requests are served and pushes received."""
import re

from httpd import protected

STATUS = "/offtok-status"


def status_conf(issuer, **kw):
    return protected("/protected/", issuer, OfftokIssuer=issuer.issuer, **kw) + f"""
<Location "{STATUS}">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
<Location "/logout">
    SetHandler offtok-backchannel-logout
    OfftokJWKSURL {issuer.jwks_url}
    OfftokIssuer {issuer.issuer}
    OfftokClientID {issuer.rs_client_id}
    OfftokCAFile {issuer.ca_file}
    Require ip 127.0.0.1
</Location>
"""


def status(httpd):
    r = httpd.get(STATUS)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-store"
    return r.json()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)\})? (\S+)$')


def parse_prometheus(text):
    """The text exposition format, strictly: {name: {labels-tuple: value}}, {name: type}."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, "TYPE given twice: " + name
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: " + repr(line)
            labels = tuple(re.findall(r'([a-zA-Z_]\w*)="([^"]*)"', m.group(3) or ""))
            samples.setdefault(m.group(1), {})[labels] = float(m.group(5))
    for name in samples:
        assert name.startswith("offtok_"), name
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or types.get(family) == "histogram", "no TYPE for " + name
        assert (name if name in types else family) in helps, "no HELP for " + name
    return samples, types


def test_json_has_the_contract_members_and_moves(httpd, oidc):
    httpd.start(status_conf(oidc))
    before = status(httpd)
    assert before["version"]
    for member in ("entries", "capacity", "hits", "misses", "evictions"):
        assert isinstance(before["cache"][member], int)
    assert before["cache"]["capacity"] > 0
    issuer = before["issuer"]
    for member in ("calls", "coalesced", "connections_opened", "retries", "errors_total"):
        assert isinstance(issuer[member], int)
    assert set(issuer["errors"]) >= {"connect", "timeout", "tls", "status", "parse"}
    assert set(before["pushes"]) == {"accepted", "refused"}
    assert before["redis"]["errors"] == 0

    token = oidc.mint_access()
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    assert httpd.get("/protected/index.html", token=token).status_code == 200
    after = status(httpd)
    assert after["issuer"]["calls"] == before["issuer"]["calls"] + 1
    assert after["cache"]["entries"] == before["cache"]["entries"] + 1
    assert after["cache"]["hits"] >= before["cache"]["hits"] + 1
    assert after["cache"]["misses"] >= before["cache"]["misses"] + 1
    latency = after["issuer"]["latency"]
    assert latency["count"] == before["issuer"]["latency"]["count"] + 1
    assert latency["buckets"][-1] == {"le_ms": "+Inf", "count": latency["count"]}
    counts = [b["count"] for b in latency["buckets"]]
    assert counts == sorted(counts), "buckets are cumulative"
    assert latency["sum_ms"] > 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]


def test_pushes_are_counted(httpd, keycloak):
    httpd.start(status_conf(keycloak))
    before = status(httpd)["pushes"]
    assert httpd.post("/logout", data={"logout_token": "junk"}).status_code == 400
    good = keycloak.logout_token(sub="counted")
    assert httpd.post("/logout", data={"logout_token": good}).status_code == 200
    after = status(httpd)
    assert after["pushes"] == {"accepted": before["accepted"] + 1,
                               "refused": before["refused"] + 1}
    assert after["issuer"]["jwks_fetches"] >= 1


def test_prometheus_text_parses_and_moves(httpd, oidc):
    httpd.start(status_conf(oidc))
    r = httpd.get(STATUS + "?format=prometheus")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    before, types = parse_prometheus(r.text)
    assert types["offtok_issuer_latency_seconds"] == "histogram"
    assert types["offtok_issuer_calls_total"] == "counter"
    assert types["offtok_cache_entries"] == "gauge"
    for name in ("offtok_cache_hits_total", "offtok_cache_misses_total",
                 "offtok_cache_evictions_total", "offtok_cache_capacity",
                 "offtok_pushes_accepted_total", "offtok_pushes_refused_total",
                 "offtok_issuer_coalesced_total"):
        assert name in before, name
    assert (("kind", "timeout"),) in before["offtok_issuer_errors_total"]

    httpd.get("/protected/index.html", token=oidc.mint_access())
    after, _ = parse_prometheus(httpd.get(STATUS + "?format=prometheus").text)
    calls = after["offtok_issuer_calls_total"][()]
    assert calls == before["offtok_issuer_calls_total"][()] + 1
    buckets = after["offtok_issuer_latency_seconds_bucket"]
    bounds = sorted((float(dict(labels)["le"]), value) for labels, value in buckets.items())
    assert bounds[-1][0] == float("inf")
    assert [v for _, v in bounds] == sorted(v for _, v in bounds), "cumulative"
    assert bounds[-1][1] == after["offtok_issuer_latency_seconds_count"][()]
    assert after["offtok_issuer_latency_seconds_count"][()] == \
        before["offtok_issuer_latency_seconds_count"][()] + 1
    assert after["offtok_cache_entries"][()] == before["offtok_cache_entries"][()] + 1


def test_status_is_read_only(httpd, oidc):
    httpd.start(status_conf(oidc))
    r = httpd.post(STATUS, data="x")
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    assert httpd.get(STATUS + "?format=json").json()["version"]
