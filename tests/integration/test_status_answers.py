"""Status for people and for alerting (issue 20; contract "Added in 0.2", Status):
offtok_answers_total{status,reason} in the Prometheus text and the JSON, the HTML page of
offtok-status?format=html, and the module's section in mod_status's own server-status page.

The issuer here is the fault-injecting stub (stubs/faulty.py): /ok answers active (scope "openid"),
/inactive answers inactive, /status/500 fails. Every answer is decided by the real module in a
real httpd."""
from html.parser import HTMLParser

import requests

from httpd import MODDIR
from test_status import parse_prometheus

STATUS = "/offtok-status"


def location(path, issuer, url, require="valid-user"):
    return f"""
<Location "{path}">
    AuthType offtok
    AuthName "status-test"
    OfftokIntrospectionURL {url}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile {issuer.ca_file}
    Require {require}
</Location>
"""


def conf(httpd, faulty, with_mod_status=False):
    body = (f'Alias "/ok/" "{httpd.root}/htdocs/protected/"\n' + location("/ok/", faulty, faulty.url_for("ok"))
            + location("/scoped/", faulty, faulty.url_for("ok"), "offtok-scope reports")
            + location("/inactive/", faulty, faulty.url_for("inactive"))
            + location("/down/", faulty, faulty.url_for("status/500"))
            + f"""
<Location "/unconfigured/">
    AuthType offtok
    Require valid-user
</Location>
<Location "{STATUS}">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
""")
    if with_mod_status:
        body = f"""
LoadModule status_module {MODDIR}/mod_status.so
ExtendedStatus On
<Location "/server-status">
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
""" + body
    return body


def make_answers(httpd):
    """One request of each kind; returns the (status, reason) each must be counted under."""
    expected = [
        (httpd.get("/ok/index.html", token="good-token-1"), "200", "granted"),
        (httpd.get("/ok/index.html"), "401", "no_token"),
        (httpd.get("/ok/index.html", headers={"Authorization": "Bearer a b"}), "400",
         "malformed"),
        (httpd.get("/ok/index.html?access_token=x", token="good-token-2"), "400", "query_token"),
        (httpd.get("/inactive/index.html", token="dead-token"), "401", "inactive"),
        (httpd.get("/scoped/index.html", token="good-token-3"), "403", "scope"),
        (httpd.get("/down/index.html", token="some-token"), "503", "status"),
        (httpd.get("/unconfigured/index.html", token="some-token"), "500", "config"),
    ]
    for response, status, reason in expected:
        assert str(response.status_code) == status, (status, reason, response.status_code)
    return [(status, reason) for _, status, reason in expected]


def prometheus(httpd):
    r = httpd.get(STATUS + "?format=prometheus")
    assert r.status_code == 200
    return parse_prometheus(r.text)


def answers(samples):
    return {(dict(labels)["status"], dict(labels)["reason"]): value
            for labels, value in samples["offtok_answers_total"].items()}


def test_every_decided_answer_is_counted_once_by_status_and_reason(httpd, faulty):
    httpd.allow_errors(r"OT0001", r"OT0002")
    httpd.start(conf(httpd, faulty))
    before, types = prometheus(httpd)
    assert types["offtok_answers_total"] == "counter"
    assert types["offtok_redis_errors_total"] == "counter"
    assert types["offtok_cache_too_big_total"] == "counter"
    start = answers(before)
    statuses = {s for s, _ in start}
    assert statuses == {"200", "400", "401", "403", "429", "500", "503"}
    assert ("429", "miss_rate") in start and ("429", "issuer_rate") in start

    made = make_answers(httpd)
    after = answers(prometheus(httpd)[0])
    for key in start:
        assert after[key] == start[key] + made.count(key), key

    by_json = httpd.get(STATUS).json()["answers"]
    for (status, reason), value in after.items():
        assert by_json[status][reason] == value, (status, reason)


def test_a_subrequest_or_a_second_look_does_not_count_twice(httpd, faulty):
    """The 403 is one answer: the token was accepted first (that is not a 200 as well)."""
    httpd.start(conf(httpd, faulty))
    start = answers(prometheus(httpd)[0])
    assert httpd.get("/scoped/index.html", token="good-token-4").status_code == 403
    after = answers(prometheus(httpd)[0])
    changed = {k: after[k] - start[k] for k in after if after[k] != start[k]}
    assert changed == {("403", "scope"): 1}


class Tables(HTMLParser):
    """The cells of every table of a page, and whether any markup came from outside a tag."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.headings = [], None, None, []
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr":
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.tags and self.tags[-1] in ("h1", "h2"):
            self.headings.append(data.strip())


def parse_page(text):
    p = Tables()
    p.feed(text)
    p.close()
    counters = {row[0]: int(row[1]) for row in p.rows if len(row) == 3 and row[1].isdigit()
                and "." in row[0]}
    decided = {(row[0], row[1]): int(row[2]) for row in p.rows
               if len(row) == 3 and row[0].isdigit() and row[2].isdigit()}
    return p, counters, decided


def test_html_page_shows_the_same_counters_as_the_json(httpd, faulty):
    httpd.allow_errors(r"OT0001", r"OT0002")
    httpd.start(conf(httpd, faulty))
    made = make_answers(httpd)
    r = httpd.get(STATUS + "?format=html")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-store"
    page, counters, decided = parse_page(r.text)
    assert r.text.startswith("<!DOCTYPE html>")
    assert page.headings and page.headings[0].startswith("mod_offtok ")
    j = httpd.get(STATUS).json()
    assert j["version"] in page.headings[0]
    for section in ("cache", "issuer", "pushes", "redis"):
        for key, value in j[section].items():
            if isinstance(value, int):
                assert counters[f"{section}.{key}"] == value, (section, key)
    for status, reason in set(made):
        assert decided[(status, reason)] == j["answers"][status][reason] >= 1
    head = requests.head(httpd.base + STATUS + "?format=html", timeout=30)
    assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/html")


def test_server_status_has_a_mod_offtok_section(httpd, faulty):
    httpd.allow_errors(r"OT0001", r"OT0002")
    httpd.start(conf(httpd, faulty, with_mod_status=True))
    made = make_answers(httpd)
    r = httpd.get("/server-status")
    assert r.status_code == 200
    page, counters, decided = parse_page(r.text)
    assert any(h.startswith("mod_offtok ") for h in page.headings), page.headings
    j = httpd.get(STATUS).json()
    assert counters["cache.capacity"] == j["cache"]["capacity"] > 0
    assert counters["issuer.calls"] == j["issuer"]["calls"]
    for status, reason in set(made):
        assert decided[(status, reason)] == j["answers"][status][reason]

    auto = httpd.get("/server-status?auto")
    assert auto.status_code == 200
    lines = dict(line.split(": ", 1) for line in auto.text.splitlines() if ": " in line)
    assert int(lines["offtok_cache_capacity"]) == j["cache"]["capacity"]
    assert int(lines["offtok_answers_401_inactive"]) == j["answers"]["401"]["inactive"] >= 1
    assert "<" not in auto.text


def test_a_scope_denial_that_httpd_answers_401_counts_as_401_scope(httpd, faulty):
    """Next to a provider that needs a user, httpd decides after authentication and answers 401
    (docs/authorization.md): that is counted once, as 401 scope, not as a 200."""
    httpd.start(f"""
<Location "/either/">
    AuthType offtok
    AuthName "either"
    OfftokIntrospectionURL {faulty.url_for("ok")}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile {faulty.ca_file}
    <RequireAny>
        Require offtok-scope reports
        Require user somebody-else
    </RequireAny>
</Location>
<Location "{STATUS}">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
""")
    httpd.allow_errors(r"AH01631")
    start = answers(prometheus(httpd)[0])
    r = httpd.get("/either/index.html", token="good-token-5")
    assert r.status_code == 401
    after = answers(prometheus(httpd)[0])
    changed = {k: after[k] - start[k] for k in after if after[k] != start[k]}
    assert changed == {("401", "scope"): 1}


def test_429s_are_counted_by_their_budget(httpd, faulty):
    """OfftokMissRate's 429 is counted as 429 miss_rate (the 429 itself is mod_offtok_flood.c's)."""
    httpd.start(conf(httpd, faulty), server="OfftokMissRate 0.1 1", servers=1)
    start = answers(prometheus(httpd)[0])
    assert httpd.get("/ok/index.html", token="first-unknown-token").status_code == 200
    assert httpd.get("/ok/index.html", token="second-unknown-token").status_code == 429
    after = answers(prometheus(httpd)[0])
    changed = {k: after[k] - start[k] for k in after if after[k] != start[k]}
    assert changed == {("200", "granted"): 1, ("429", "miss_rate"): 1}
