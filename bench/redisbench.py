"""What bench/run's two Redis scenarios (issue 7) need: a redis-server of their own, the
OfftokRedis lines, and the push-to-refusal measurement between two nodes.

    redis-cached  the cached scenarios with OfftokRedis configured: the local tier answers first,
                  so the ratio to the unauthenticated httpd must stay >= 0.90 for one hot token
    redis-push    time from a back-channel logout answered by node A to the first 401 on node B
                  for a token B had cached, over 100 pushes: median and worst (goal: 100 ms);
                  also to B's first issuer call for that token ("noticed"), which leaves out the
                  issuer's own answer time
"""
import http.client
import os
import shutil
import socket
import statistics
import sys
import time

import benchlib as bl

LOGOUT = "/offtok/backchannel-logout"


def _ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(b):
    """A redis-server on a free loopback port with nothing saved; its port. bench/run's Procs
    stops it with everything else."""
    server = shutil.which("redis-server")
    if not server:
        raise RuntimeError("redis-server is missing (apt-get install redis-server)")
    root = os.path.join(b.workdir, f"redis-{bl.free_port()}")
    os.makedirs(root)
    port = bl.free_port()
    b.procs.start([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", root], os.path.join(root, "redis.log"))
    bl.wait_until(lambda: _ping(port), 10, "redis-server to answer")
    return port


def server_lines(b, port):
    """OfftokRedis and OfftokRedisKey (a key file in the work directory, made once)."""
    key = os.path.join(b.workdir, "redis.key")
    if not os.path.exists(key):
        with open(key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key, 0o600)
    return f"\nOfftokRedis redis://127.0.0.1:{port}\nOfftokRedisKey file:{key}\n"


def wait_caught_up(node, children=2):
    """Every child of node has subscribed (OT0202 needs offtok:info)."""
    bl.wait_until(lambda: node.error_log().count("OT0202") >= children, 20,
                  f"{node.name} to subscribe to Redis")


# -- redis-push -----------------------------------------------------------------------------------

def push_nodes(b, module, port):
    """Keycloak stand-in (it signs logout tokens) and two nodes sharing port's Redis."""
    sys.path.insert(0, os.path.join(bl.REPO, "tests", "integration"))
    from issuers import KeycloakStandin
    kc = KeycloakStandin(os.path.join(b.workdir, "keycloak"), b.pki)
    common = f"""
    OfftokIntrospectionURL {kc.introspection_url}
    OfftokClientID {kc.rs_client_id}
    OfftokClientSecret {kc.rs_client_secret}
    OfftokCAFile {b.pki.ca_file}
    OfftokIssuer {kc.issuer}"""
    server = f"""LogLevel warn offtok:info
{server_lines(b, port)}
<Location "{LOGOUT}">
    SetHandler offtok-backchannel-logout
    {common}
    OfftokJWKSURL {kc.jwks_url}
    Require ip 127.0.0.1
</Location>"""
    location = f"""
    AuthType offtok
    {common}
    OfftokCacheTTL 300
    Require valid-user"""
    load = f'LoadModule offtok_module "{module}"'
    nodes = [b.httpd(f"node-{n}", load, server, location) for n in "ab"]
    for node in nodes:
        wait_caught_up(node)
    return kc, nodes


def _status(conn, token):
    conn.request("GET", bl.PATH, headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    r.read()
    return r.status


def one_push(kc, a, b_node, i, poll_timeout=5.0):
    """(refused, noticed) in seconds after node A answered a logout: node B's first 401 for a
    token it had cached, and its first issuer call for it (B knows of the logout by then; the
    401 adds that call's round trip)."""
    token = kc.mint_access(sub=f"push-{i}", sid=f"sid-push-{i}")
    conn_a = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    conn_b = http.client.HTTPConnection("127.0.0.1", b_node.port, timeout=10)
    try:
        if _status(conn_a, token) != 200 or _status(conn_b, token) != 200:
            raise RuntimeError(f"push {i}: the token was not accepted before the logout")
        kc.revoke(token)    # the issuer knows too: once B drops its answer, it gets 401
        body = "logout_token=" + kc.logout_token(sid=f"sid-push-{i}")
        calls = len(kc.introspection_log())
        conn_a.request("POST", LOGOUT, body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn_a.getresponse()
        r.read()
        t0, wall0 = time.monotonic(), time.time()
        if r.status != 200:
            raise RuntimeError(f"push {i}: node A answered {r.status} to the logout")
        while _status(conn_b, token) != 401:
            if time.monotonic() - t0 > poll_timeout:
                raise RuntimeError(f"push {i}: node B still accepts the token after "
                                   f"{poll_timeout}s")
            time.sleep(0.001)
        refused = time.monotonic() - t0
        later = kc.introspection_log()[calls:]
        return refused, (later[0]["time"] - wall0) if later else refused
    finally:
        conn_a.close()
        conn_b.close()


def measure_pushes(kc, a, b_node, count=100):
    """Median and worst over count pushes, in milliseconds."""
    refused, noticed = zip(*(one_push(kc, a, b_node, i) for i in range(count)))

    def ms(values):
        values = sorted(v * 1000 for v in values)
        return {"median_ms": round(statistics.median(values), 2),
                "p90_ms": round(values[int(0.9 * (count - 1))], 2),
                "worst_ms": round(values[-1], 2)}
    res = dict(ms(refused), pushes=count, noticed=ms(noticed))
    bl.log(f"    {count} pushes: node B refuses after median {res['median_ms']} ms, worst "
           f"{res['worst_ms']} ms; asks the issuer again after median "
           f"{res['noticed']['median_ms']} ms, worst {res['noticed']['worst_ms']} ms")
    return res
