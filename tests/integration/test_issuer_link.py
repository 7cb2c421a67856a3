"""The link to the issuer: kept connections, coalesced checks that never predate the request,
an issuer restarting, and a hanging issuer that cannot take every worker."""
import concurrent.futures
import os
import threading
import time

import requests

from httpd import wait_until
from issuers import FaultyIssuer


def location(url, ca_file, extra=""):
    return f"""
<Location "/api/">
    AuthType offtok
    AuthName "test"
    OfftokIntrospectionURL {url}
    OfftokClientID rs-client
    OfftokClientSecret rs-secret
    OfftokCAFile {ca_file}
    OfftokAlwaysValidate On
    {extra}
    Require valid-user
</Location>
"""


def test_connections_are_kept_and_reused(httpd, faulty, pki):
    httpd.start(location(faulty.url_for("ok"), pki.ca_file), servers=1, threads=8)
    faulty.reset_counts()
    with requests.Session() as s:
        for i in range(40):
            r = s.get(httpd.url("/api/index.html"), headers={"Authorization": f"Bearer t{i}"})
            assert r.status_code == 404          # authenticated; the file does not exist
    assert faulty.requests() == 40
    assert faulty.connections() <= 3


def test_coalesced_calls_never_predate_the_request(httpd, faulty, pki, backend):
    httpd.start(location(faulty.url_for("stamped?seconds=0.4"), pki.ca_file,
                         extra=f'OfftokPassHeader X-Stub-Started stub_started\n'
                               f'    ProxyPass "{backend}/"'),
                servers=1, threads=32)
    faulty.reset_counts()
    results = []
    lock = threading.Lock()

    def one(i):
        time.sleep(i * 0.03)                     # arrivals spread over a call's duration
        sent = time.time()
        r = requests.get(httpd.url("/api/x"), headers={"Authorization": "Bearer hot-token"},
                         timeout=20)
        with lock:
            results.append((sent, r))

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        list(pool.map(one, range(24)))
    assert all(r.status_code == 200 for _, r in results)
    calls = faulty.requests()
    assert calls < 24, f"{calls} issuer calls for 24 requests: nothing was coalesced"
    for sent, r in results:
        started = float(r.json()["headers"]["x-stub-started"][0])
        # The call that answered began after the request was sent (10 ms for clock reads).
        assert started >= sent - 0.01, (started, sent)


def test_issuer_restart_mid_run(httpd, workdir, pki):
    with FaultyIssuer(os.path.join(workdir, "faulty-restart"), pki) as stub:
        httpd.start(location(stub.url_for("ok"), pki.ca_file), servers=1, threads=4)
        with requests.Session() as s:
            for i in range(5):
                assert s.get(httpd.url("/api/index.html"),
                             headers={"Authorization": f"Bearer a{i}"}).status_code == 404
            stub.stop()
            stub.start()                         # every kept connection is now dead
            for i in range(10):
                r = s.get(httpd.url("/api/index.html"), headers={"Authorization": f"Bearer b{i}"})
                assert r.status_code == 404, r.status_code
    assert "OT0002" not in httpd.error_log()


def test_issuer_closing_every_connection(httpd, workdir, pki):
    with FaultyIssuer(os.path.join(workdir, "faulty-close"), pki, close=True) as stub:
        httpd.start(location(stub.url_for("ok"), pki.ca_file), servers=1, threads=4)
        for i in range(10):
            assert httpd.get("/api/index.html", token=f"c{i}").status_code == 404
        assert stub.connections() == 10


def test_hanging_issuer_is_bounded(httpd, faulty, pki):
    httpd.allow_errors("OT0002", "OT0004")
    httpd.start(location(faulty.url_for("hang"), pki.ca_file, extra="OfftokTimeout 1 2"),
                server="OfftokIssuerMaxPending 2", servers=1, threads=16)
    codes, times = [], []
    lock = threading.Lock()

    def one(i):
        started = time.monotonic()
        r = requests.get(httpd.url("/api/index.html"),
                         headers={"Authorization": f"Bearer hang{i}"}, timeout=20)
        with lock:
            codes.append(r.status_code)
            times.append(time.monotonic() - started)
            assert r.headers.get("Retry-After")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, i) for i in range(8)]
        time.sleep(0.3)
        # Meanwhile a location that does not need the issuer answers at once.
        quick = time.monotonic()
        assert requests.get(httpd.url("/index.html"), timeout=5).status_code == 200
        assert time.monotonic() - quick < 1.0
        for f in futures:
            f.result()
    assert codes == [503] * 8
    assert max(times) < 2 + 1.5
    log = httpd.error_log()
    assert "OT0004: too many requests are waiting for the issuer" in log
    assert "could not be asked (timeout)" in log
