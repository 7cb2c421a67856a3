"""The soak's plan (tests/soak/soak.py): the locations and their settings, the kinds of request
and their shares of the load, the answers the contract gives them, and httpd's configuration."""
import hashlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import httpd as harness  # noqa: E402

CACHE_TTL = 3                 # OfftokCacheTTL of the cached locations
NEGATIVE_TTL = 2              # OfftokNegativeCacheTTL of the cached locations
GRACE = 1.0                   # the brief's allowance after revocation + TTL, and after exp
CLOCK_SLACK = 0.005           # the issuer logs milliseconds, Python microseconds
SCOPE = "soak:read"
# The soak's httpd keeps less freed memory around than it would by default: glibc's per-thread
# caches of freed chunks (tcache) off, and each APR allocator (one per connection being served)
# giving back what it holds free beyond 64 KiB instead of 2 MiB. With 32 threads per child both
# take hundreds of thousands of requests to reach their high-water marks, and check 3 would read
# their filling as growth (docs/soak.md, "Check 3: what it measures, and why"). An administrator
# can set both (GLIBC_TUNABLES in /etc/apache2/envvars, MaxMemFree in apache2.conf). A leaked
# allocation is never freed, so it reaches neither cache: this hides no leak (the control runs in
# docs/soak.md). --allocator-defaults runs httpd without them.
HTTPD_GLIBC_TUNABLES = "glibc.malloc.tcache_count=0"
HTTPD_MAX_MEM_FREE = 64       # KiB, httpd's MaxMemFree
THREADS_PER_CHILD = 32
CHILDREN = 2
# The saturation warm-up of the last generation (docs/soak.md, "The warm-up"): right after the
# last restart, while the load is paused, more connections than the server has threads send, for
# a few seconds, requests of the mix that reach the module's pools, a share of them to /f-slow/,
# which holds a thread for 0.5 s. Each child then meets early the most threads busy at once, and
# the most issuer calls at once (its waiting bound, and so its pool of libcurl handles), that a
# long-lived child meets sooner or later. These requests are not part of the run's count; checks
# 1, 2 and 5 judge them with one difference: a request that asks an issuer may also be answered
# 503, which is the contract's answer once more calls wait than OfftokIssuerMaxPending allows.
WARM_UP_SECONDS = 5.0
WARM_UP_CONNECTIONS = 3 * CHILDREN * THREADS_PER_CHILD // 2     # 96, for 64 threads
WARM_UP_SLOW_SHARE = 0.05

# httpd's children: two of 32 threads, and always two: MinSpareThreads above one child's threads
# makes httpd start the second one after a graceful restart too, MaxRequestWorkers keeps it from
# starting a third and MaxSpareThreads (all of them) from stopping one; no request limit per
# child. ServerLimit 4 leaves room in the scoreboard for the old generation to finish its
# requests while the new one starts.
harness.MPM_CONF["soak"] = ("""
LoadModule mpm_event_module {moddir}/mod_mpm_event.so
LoadModule cgid_module {moddir}/mod_cgid.so
ScriptSock {root}/cgid.sock
StartServers {servers}
ServerLimit 4
ThreadsPerChild {threads}
ThreadLimit {threads}
MaxRequestWorkers {workers}
MinSpareThreads {min_spare}
MaxSpareThreads {workers}
MaxConnectionsPerChild 0
""").replace("{min_spare}", str(THREADS_PER_CHILD + 1))

# -- what is sent where ------------------------------------------------------------------------

# The locations that ask oidc-provider, and what sets them apart (docs/soak.md). Every location
# serves the static file x.txt.
OIDC_LOCATIONS = {
    "cached": f"OfftokCacheTTL {CACHE_TTL}, OfftokNegativeCacheTTL {NEGATIVE_TTL}",
    "always": "OfftokAlwaysValidate On",
    "proxied": f"OfftokCacheTTL {CACHE_TTL}, OfftokForwardToken Off, ProxyPass to /backend/",
    "scoped": f"OfftokCacheTTL {CACHE_TTL}, Require offtok-scope {SCOPE}",
}
# The failing issuers: location -> (fault path at the stub, or None for a refused connection;
# OfftokTimeout; the answer every request must get).
FAULTS = {
    "f-500": ("status/500", "2 5", 503),
    "f-reset": ("reset", "2 5", 503),
    "f-garbage": ("garbage", "2 5", 503),
    "f-slow": ("slow?seconds=2", "0.25 0.5", 503),
    "f-refused": (None, "0.5 1", 503),
    "f-inactive": ("inactive", "2 5", 401),
}
CACHED_LIKE = ("cached", "proxied", "scoped")     # locations that reuse answers for CACHE_TTL

# Malformed or unusual Authorization headers: kind -> (the answer the contract's table gives,
# a function of a valid token giving [(header name, value)] and a query string).
MALFORMED = {
    "no-header": (401, lambda t: ([], "")),
    "basic": (401, lambda t: ([("Authorization", "Basic c29hazpzb2Fr")], "")),
    "bearer-glued": (401, lambda t: ([("Authorization", "Bearer" + t)], "")),
    "bearer-empty": (400, lambda t: ([("Authorization", "Bearer ")], "")),
    "tab": (400, lambda t: ([("Authorization", "Bearer\t" + t)], "")),
    "space-inside": (400, lambda t: ([("Authorization", f"Bearer {t[:8]} {t[8:]}")], "")),
    "bad-char": (400, lambda t: ([("Authorization", f"Bearer {t},")], "")),
    "non-ascii": (400, lambda t: ([("Authorization", b"Bearer " + t.encode() + b"\xe9")], "")),
    "two-headers": (400, lambda t: ([("Authorization", "Bearer " + t)] * 2, "")),
    "query-too": (400, lambda t: ([("Authorization", "Bearer " + t)], "?access_token=" + t)),
    # over httpd's own LimitRequestFieldSize (8190): httpd answers 400 before the module
    "oversized": (400, lambda t: ([("Authorization", "Bearer " + "A" * 17000)], "")),
}

# Kinds of request and their shares of the load.
MIX = [
    ("valid", 0.40),          # a valid access token at cached/always/proxied/scoped
    ("lowercase", 0.01),      # the same with "bearer" in lower case (it is accepted)
    ("offline", 0.04),        # a valid offline token at cached/always
    ("revocable", 0.14),      # tokens revoked at the issuer during the run
    ("expiring", 0.04),       # tokens that expire during the run
    ("unknown", 0.12),        # tokens the issuer never issued (half of them never seen before)
    ("malformed", 0.10),      # MALFORMED, at cached/always
    ("fault", 0.12),          # FAULTS
    ("open", 0.03),           # /index.html, no protection
]


class Token:
    __slots__ = ("tid", "value", "kind", "scoped", "exp", "sha", "revoke_sent", "revoked_at",
                 "revoke_at")

    def __init__(self, tid, value, kind, scoped=True, exp=None):
        self.tid, self.value, self.kind, self.scoped, self.exp = tid, str(value), kind, scoped, exp
        self.sha = hashlib.sha256(self.value.encode()).hexdigest()
        self.revoke_sent = self.revoked_at = None
        self.revoke_at = None          # progress (request count) at which to revoke it


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bearer(token):
    return [("Authorization", "Bearer " + token.value)]


MIX_KINDS = [k for k, _ in MIX]
MIX_WEIGHTS = [w for _, w in MIX]
MALFORMED_KINDS = sorted(MALFORMED)
# f-slow holds a client thread for OfftokTimeout (0.5 s): rarer than the others
FAULT_CHOICES = ["f-500"] * 5 + ["f-reset"] * 4 + ["f-garbage"] * 4 + ["f-refused"] * 4 + \
                ["f-inactive"] * 3 + ["f-slow"]



# -- configuration ---------------------------------------------------------------------------------

def configuration(oidc, faulty, pki, refused_port, port):
    def common(url):
        return (f"OfftokIntrospectionURL {url}\n"
                f"    OfftokClientID rs-client\n"
                f"    OfftokClientSecret rs-secret\n"
                f"    OfftokCAFile {pki.ca_file}")

    def location(path, url, lines, require="valid-user"):
        return f"""
<Location "/{path}/">
    AuthType offtok
    AuthName "soak"
    {common(url)}
    {lines}
    Require {require}
</Location>
"""
    parts = [
        location("cached", oidc.introspection_url,
                 f"OfftokCacheTTL {CACHE_TTL}\n    OfftokNegativeCacheTTL {NEGATIVE_TTL}"),
        location("always", oidc.introspection_url, "OfftokAlwaysValidate On"),
        location("scoped", oidc.introspection_url, f"OfftokCacheTTL {CACHE_TTL}",
                 require=f"offtok-scope {SCOPE}"),
        location("proxied", oidc.introspection_url,
                 f"OfftokCacheTTL {CACHE_TTL}\n    OfftokForwardToken Off\n"
                 f"    OfftokPassHeader X-Soak-User sub\n"
                 f"    ProxyPass \"http://127.0.0.1:{port}/backend/\""),
        # the back end refuses any request that still carries the token
        """
<Location "/backend/">
    <If "-n req('Authorization')">
        Require all denied
    </If>
</Location>
""",
    ]
    for loc, (fault, timeout, _) in FAULTS.items():
        url = (faulty.url_for(fault) if fault else f"https://127.0.0.1:{refused_port}/introspect")
        parts.append(location(loc, url, f"OfftokTimeout {timeout}\n    OfftokNegativeCacheTTL 0"))
    server = "KeepAliveTimeout 5\nMaxKeepAliveRequests 100\nOfftokCacheSize 16M\n"
    return "\n".join(parts), server


def install_content(root):
    for loc in list(OIDC_LOCATIONS) + list(FAULTS) + ["backend"]:
        d = os.path.join(root, "htdocs", loc)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "x.txt"), "w") as f:
            f.write("soak\n")
        os.chmod(os.path.join(d, "x.txt"), 0o644)
