"""OfftokIssuerMaxPending with two issuers (issue 17, "No 503 from a healthy issuer"): slowness
is judged per issuer (per OfftokIntrospectionURL), so a slow issuer does not make a burst to a
healthy one over the bound answer 503. The bound still counts the requests of both.

Both issuers are endpoints of the fault stub (stubs/faulty.py): /slow?seconds=1.5 (slow) and /ok
(healthy, answers at once); one httpd child, so every request shares one coalescer and its bound.
"""
import concurrent.futures
import threading
import time

from httpd import protected
from test_flood import get_from, made_up

STATUS = """
<Location "/offtok-status">
    SetHandler offtok-status
    Require ip 127.0.0.1
</Location>
"""


def test_slow_issuer_does_not_shed_a_healthy_ones_burst(httpd, faulty):
    """Three clients keep three calls to the slow issuer under way (1.5 s each: slow steadily,
    and each call overdue long before it ends) under a bound of five. Bursts of twelve requests
    with new tokens to the healthy issuer then exceed the bound: they wait for its places and
    are all answered 200. (With one latency per process they were answered 503, OT0004: the
    slow issuer's calls made the process's issuer "slow".)"""
    httpd.start(protected("/protected/", faulty, OfftokIntrospectionURL=faulty.url_for("ok"))
                + protected("/slow/", faulty, OfftokIntrospectionURL=faulty.url_for(
                    "slow?seconds=1.5"), OfftokTimeout="2 5") + STATUS,
                server="OfftokIssuerMaxPending 5", servers=1, threads=32)
    assert get_from(httpd, "127.0.0.1", made_up())[0] == 200      # the healthy one's latency
    stop = threading.Event()
    slow_statuses = []

    def slow_client():
        while not stop.is_set():
            slow_statuses.append(get_from(httpd, "127.0.0.2", made_up(), "/slow/")[0])

    def burst(n):
        barrier = threading.Barrier(n)

        def one():
            barrier.wait()
            return get_from(httpd, "127.0.0.3", made_up())[0]
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return [f.result() for f in [pool.submit(one) for _ in range(n)]]

    statuses = []
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        clients = [pool.submit(slow_client) for _ in range(3)]
        try:
            time.sleep(2)                      # the slow issuer's calls have a history
            for _ in range(4):
                statuses += burst(12)
                time.sleep(0.3)
        finally:
            stop.set()
        for c in clients:
            c.result()
    assert statuses == [200] * 48, statuses
    # The slow issuer's own requests were answered (404: /slow/ has no file), never shed: its
    # three requests fit under the bound.
    assert slow_statuses and set(slow_statuses) == {404}, slow_statuses
    assert httpd.get("/offtok-status").json()["flood"]["shed_slow"] == 0
