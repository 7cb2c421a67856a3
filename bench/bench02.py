"""The scenarios of the 0.2 features (issues 15-18), for bench/run.

- local-4k, local-unique (issue 15): `OfftokAccessTokens Local`, RS256 access tokens signed here
  with the fast issuer's key, which nginx serves as a JWKS beside its metadata; with
  mod_auth_openidc and mod_oauth2 verifying the same tokens by JWKS (bench/peers02.py);
- dpop-cached (issue 16): a DPoP-bound token whose answer is cached, a fresh ES256 proof on every
  request (proofs made before each run, each sent once); with mod_oauth2's type=dpop;
- flood (issue 17, bench/flood02.py): legitimate cached traffic while a second wrk floods
  made-up tokens from another client address (mod_remoteip: the X-Client header names it), with
  and without `OfftokMissRate`, against the same flood of a path the module never sees;
- always-pkjwt-es256, always-pkjwt-rs256, always-signed (issue 18): always-validate with
  `private_key_jwt` and with `OfftokSignedAnswers On`, against always-validate with
  client_secret_basic in the same run.

Keys and signatures use python3-cryptography (Debian's python3-cryptography). The fast issuer
(nginx) checks no client authentication: it answers every call alike, so these scenarios measure
what the module spends, not what an issuer would.
"""
import hashlib
import json
import os
import secrets
import subprocess
import time

import benchlib as bl
import flood02 as fl
import peers02 as peers

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:         # bench/run --dry-run says so; the 0.2 scenarios fail without it
    ec = None

NAMES = ("local-4k", "local-unique", "dpop-cached", "flood", "always-pkjwt-es256",
         "always-pkjwt-rs256", "always-signed")
AUDIENCE = "bench-rs"
KID = "bench-issuer-rs256"
BEAT_PEERS = ("local-4k", "local-unique")   # met only if the module's rate beats each peer's
LOCAL_TOKENS = 24000        # local-unique cycles through these (see local_unique)
PROOFS = 65000              # DPoP proofs per run of dpop-cached: the replay table's 65,536
DPOP_SECONDS = 5            # at most 13,000 req/s for 5 s
DPOP_WINDOW = 31            # seconds a recorded proof is kept: OfftokDPoPMaxAge 30 + 0 + 1


def b64(data):
    return bl.b64url(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def sign_rs256(key, header, payload):
    head = b64(compact(header).encode()) + "." + b64(compact(payload).encode())
    sig = key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256())
    return head + "." + b64(sig)


def sign_es256(key, header, payload):
    head = b64(compact(header).encode()) + "." + b64(compact(payload).encode())
    r, s = decode_dss_signature(key.sign(head.encode(), ec.ECDSA(hashes.SHA256())))
    return head + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def ec_jwk(key):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")),
            "y": b64(n.y.to_bytes(32, "big"))}


def jkt(jwk):
    """RFC 7638 thumbprint of an EC P-256 JWK."""
    canon = compact({k: jwk[k] for k in ("crv", "kty", "x", "y")})
    return b64(hashlib.sha256(canon.encode()).digest())


def write_pem(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o644)


class Issuer:
    """What the fast issuer serves besides its fixed answer, and the keys behind it: metadata
    (/.well-known/openid-configuration), a JWKS (/jwks) with one RSA key, the answer bound to a
    DPoP key (/introspect-dpop), and one RFC 9701 signed answer (/introspect-signed, signed once
    here: iat is the start of the run, so the module's OfftokClockSkew is raised to 3600)."""

    def __init__(self, workdir, port, answer_json):
        if ec is None:
            raise RuntimeError("python3-cryptography is missing (apt-get install "
                               "python3-cryptography)")
        self.url = f"https://127.0.0.1:{port}"
        self.dir = os.path.join(workdir, "keys")
        os.makedirs(self.dir, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = self.key.public_key().public_numbers()
        self.jwks = {"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
                               "n": b64(pub.n.to_bytes(256, "big")), "e": b64(b"\x01\x00\x01")}]}
        self.metadata = {"issuer": self.url, "jwks_uri": self.url + "/jwks",
                         "introspection_endpoint": self.url + "/introspect",
                         "token_endpoint": self.url + "/token"}
        self.claims = json.loads(answer_json)
        # The DPoP key of the dpop-cached scenario's client, and the answer bound to it.
        self.dpop_key = ec.generate_private_key(ec.SECP256R1())
        self.dpop_jwk = ec_jwk(self.dpop_key)
        bound = dict(self.claims, cnf={"jkt": jkt(self.dpop_jwk)}, token_type="DPoP")
        bound["typ"] = "DPoP"
        self.dpop_answer = compact(bound)
        # One signed answer for every call (no jti: the benchmark tokens share theirs).
        inner = {k: v for k, v in self.claims.items() if k != "jti"}
        inner["iss"] = self.url
        self.signed_answer = sign_rs256(
            self.key, {"alg": "RS256", "typ": "token-introspection+jwt", "kid": KID},
            {"iss": self.url, "aud": "rs-client", "iat": int(time.time()),
             "token_introspection": inner})
        # Client keys for private_key_jwt.
        self.client_keys = {}
        for alg, key in (("ES256", ec.generate_private_key(ec.SECP256R1())),
                         ("RS256", rsa.generate_private_key(public_exponent=65537,
                                                            key_size=2048))):
            path = os.path.join(self.dir, f"client-{alg.lower()}.pem")
            write_pem(path, key)
            self.client_keys[alg] = path

    def template(self):
        """The always-* scenarios' token start: bench/run's Keycloak-shaped JWT naming this
        issuer (OfftokIssuer refuses a JWT naming another without a call)."""
        claims = dict(self.claims, iss=self.url)
        return bl.jwt_like(0, claims)[:-7]

    def nginx_locations(self):
        def loc(path, ctype, body):
            if "'" in body or "$" in body:
                raise ValueError(f"{path}: cannot hold ' or $ in an nginx return string")
            return (f"        location = {path} {{\n            default_type {ctype};\n"
                    f"            return 200 '{body}';\n        }}\n")
        return (loc("/.well-known/openid-configuration", "application/json",
                    compact(self.metadata))
                + loc("/jwks", "application/json", compact(self.jwks))
                + loc("/introspect-dpop", "application/json", self.dpop_answer)
                + loc("/introspect-signed", "application/token-introspection+jwt",
                      self.signed_answer))

    def access_token(self, i):
        """An RFC 9068-ish Keycloak access token signed RS256 with the issuer's key, kid in the
        header, typ claim Bearer, valid a day."""
        now = int(time.time())
        claims = {k: v for k, v in self.claims.items()
                  if k not in ("active", "client_id", "username", "token_type")}
        claims.update(iss=self.url, aud=AUDIENCE, exp=now + 86400, iat=now - 60, typ="Bearer",
                      sub=f"bench-user-{i}", jti=f"onrtac:{secrets.token_hex(16)}-{i}")
        return sign_rs256(self.key, {"alg": "RS256", "typ": "JWT", "kid": KID}, claims)

    def token_file(self, count):
        """count signed tokens, one a line, made once per run and shared by the local
        scenarios (the first 4,000 are local-4k's)."""
        path = os.path.join(self.dir, "local-tokens.txt")
        have = 0
        if os.path.exists(path):
            with open(path) as f:
                have = sum(1 for _ in f)
        if have < count:
            t0 = time.monotonic()
            with open(path, "a") as f:
                for i in range(have, count):
                    f.write(self.access_token(i) + "\n")
            bl.log(f"    signed {count - have} RS256 tokens in {time.monotonic() - t0:.1f}s")
        return path

    def proofs(self, url, token, count, threads, prefix):
        """count DPoP proofs (ES256, distinct jti, iat now, htu url, ath of token), split into
        one file per wrk thread: prefix1, prefix2, ..."""
        ath = b64(hashlib.sha256(token.encode()).digest())
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_jwk}
        now = int(time.time())
        files = [open(f"{prefix}{k + 1}", "w") for k in range(threads)]
        try:
            for i in range(count):
                files[i % threads].write(sign_es256(self.dpop_key, header, {
                    "jti": secrets.token_urlsafe(12), "htm": "GET", "htu": url, "iat": now,
                    "ath": ath}) + "\n")
        finally:
            for f in files:
                f.close()
        return prefix


# -- httpd variants --------------------------------------------------------------------------------
# RUN is bench/run's module (set by it): offtok_variant, summarize, module_status, ...
RUN = None


def local_variant(b, ttl=86400):
    """OfftokAccessTokens Local, the issuer found by discovery from OfftokIssuer. The server
    level says OfftokCacheTTL 86400: the longest TTL of the configuration is how long the cache
    keeps anything, the issuer's metadata and keys included."""
    load, server, _ = RUN.offtok_variant(b)
    server += "\nOfftokCacheTTL 86400"
    location = f"""
    AuthType offtok
    AuthName bench
    OfftokIssuer {b.issuer.url}
    OfftokAudience {AUDIENCE}
    OfftokAccessTokens Local
    OfftokClientID {RUN.CLIENT_ID}
    OfftokClientSecret {RUN.CLIENT_SECRET}
    OfftokCAFile {b.pki.ca_file}
    OfftokCacheTTL {ttl}
    Require valid-user"""
    return load, server, location


def dpop_variant(b):
    """The answer bound to the bench DPoP key, cached a day; proofs accepted up to 30 s old
    (see dpop_cached)."""
    load, server, location = RUN.offtok_variant(b, url=b.nginx.url + "-dpop")
    return load, server, location.replace("    Require valid-user", """    OfftokDPoP Allow
    OfftokDPoPMaxAge 30
    OfftokClockSkew 0
    Require valid-user""")


def always_auth_variant(b, auth):
    """Always-validate with client authentication auth: basic, ES256, RS256 (private_key_jwt)
    or signed (client_secret_basic, OfftokSignedAnswers On)."""
    if auth == "signed":
        load, server, location = RUN.offtok_variant(b, always=True,
                                                    url=b.nginx.url + "-signed")
        extra = f"""
    OfftokIssuer {b.issuer.url}
    OfftokJWKSURL {b.issuer.url}/jwks
    OfftokSignedAnswers On
    OfftokClockSkew 3600"""
    else:
        load, server, location = RUN.offtok_variant(b, always=True)
        extra = ""
        if auth != "basic":
            location = location.replace(f"    OfftokClientSecret {RUN.CLIENT_SECRET}\n", "")
            extra = f"""
    OfftokClientAuth private_key_jwt
    OfftokClientKey file:{b.issuer.client_keys[auth]} bench-client-{auth.lower()}
    OfftokClientAssertionAudience {b.issuer.url}"""
    return load, server, location.replace("\n    Require valid-user", extra + "\n    Require valid-user")


def check(h, token, headers=None):
    status, body = h.get(token) if headers is None else get(h, headers)
    if status != 200:
        raise RuntimeError(f"{h.name}: a valid token got {status}: {body[:200]!r}\n"
                           + h.error_log()[-2000:])


def get(h, headers):
    import urllib.request
    req = urllib.request.Request(h.url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def counters(h):
    st = RUN.module_status(h)
    return st


# -- scenarios ---------------------------------------------------------------------------------


def local_4k(b, name):
    """Issue 15: 4,000 distinct RS256 access tokens verified locally, all seen before (each
    sent once first); each wrk thread walks its share in order."""
    path = b.issuer.token_file(LOCAL_TOKENS)
    four = os.path.join(b.issuer.dir, "local-4k.txt")
    with open(path) as f, open(four, "w") as out:
        for _ in range(4000):
            out.write(f.readline())
    ours = b.variant("offtok-local", "mod_offtok-local", local_variant)
    good = open(four).readline().strip()
    check(ours, good)
    ours_sanity = peers.check_jwt_peer(b, ours, good, 10)
    peer_hs, sanity = peers.jwt_peers(b, False, good)
    # Each sent once first: the module keeps their claims, mod_oauth2 their payloads (expiry
    # 86400); mod_auth_openidc keeps nothing and verifies every request anyway.
    # The floor (hit-floor, bench/floor/mod_bench_floor.c) keeps its verdicts per process, and
    # a token reaches one process when sent once: it is warmed four times, after which each
    # process has seen all but a few per cent of the tokens (their first sight costs a verify).
    floor = bearer_floor(b, HIT_FLOOR, good, sanity)
    for h in [ours] + [h for label, h in peer_hs if label.startswith(peers.OAUTH2_SO)] \
            + ([floor] * 4 if floor else []):
        b.warm(h, 4000, env={"BENCH_TOKENS": four})
    kw = {"script": "cycle.lua", "env": {"BENCH_TOKENS": four}}
    return local_rounds(b, name, ours, peer_hs, kw, dict(sanity, mod_offtok=ours_sanity), 4000,
                        floor)


def local_rounds(b, name, ours, peer_hs, kw, sanity, tokens, floor=None):
    """The measured rounds of a local-* scenario: the unauthenticated httpd, the module, its
    floor (bearer_floor; None when it could not be built) and the JWKS peers
    (bench/peers02.py) with the same requests."""
    before = counters(ours)
    rounds = b.rounds([("unauthenticated", b.baseline, kw), ("mod_offtok", ours, kw)]
                      + ([(floor.name, floor, kw)] if floor else [])
                      + [(label, h, kw) for label, h in peer_hs])
    res = RUN.summarize(rounds, "unauthenticated", "mod_offtok")
    if floor is not None:
        res["floor"] = floor_summary(rounds, floor.name)
    res["local_counters"] = local_delta(before, counters(ours))
    res["peers"] = {label: RUN.summarize(rounds, "unauthenticated", label)
                    for label, _ in peer_hs}
    for label, _ in peer_hs:
        res["peers"][label]["vs_mod_offtok"] = RUN.summarize(rounds, label, "mod_offtok")["ratio"]
    res["sanity"] = sanity
    b.profile(name, ours, kw)
    res["rounds"] = rounds
    res["tokens"] = tokens
    if not peer_hs:
        res["peers_note"] = peers_note()
    return res


def local_unique(b, name):
    """Issue 15: every request a token whose signature is verified. The module's variant has
    OfftokCacheTTL 1 and wrk's threads walk 24,000 signed tokens in order, so a token comes
    back after 24,000 / rate > 1 s: its kept claims are too old and it is verified again, as on
    first sight (local_counters.cached shows that none was answered from the cache)."""
    path = b.issuer.token_file(LOCAL_TOKENS)
    ours = b.variant("offtok-local-ttl1", "mod_offtok-local-ttl1", local_variant, ttl=1)
    good = open(path).readline().strip()
    check(ours, good)
    ours_sanity = peers.check_jwt_peer(b, ours, good, 20)
    # mod_oauth2 with expiry=0 keeps no payload; mod_auth_openidc keeps none at all.
    peer_hs, sanity = peers.jwt_peers(b, True, good)
    floor = bearer_floor(b, RS256_FLOOR, good, sanity)
    kw = {"script": "cycle.lua", "env": {"BENCH_TOKENS": path}}
    return local_rounds(b, name, ours, peer_hs, kw, dict(sanity, mod_offtok=ours_sanity),
                        LOCAL_TOKENS, floor)


def local_delta(a, c):
    try:
        la, lc = a["local"], c["local"]
        return {k: lc[k] - la[k] for k in lc if isinstance(lc[k], int)}
    except (KeyError, TypeError):
        return None


def peers_note():
    missing = [p for p in RUN.PEERS if not os.path.exists(os.path.join(bl.MODDIR, p + ".so"))]
    if missing:
        return ("not run: " + " and ".join(missing) + " not installed on the bench machine "
                "(libapache2-mod-auth-openidc, libapache2-mod-oauth2)")
    return "not run: --no-peers"


def dpop_cached(b, name):
    """Issue 16: one DPoP-bound token, its answer cached, a fresh ES256 proof per request.
    Before every run of the module (5 s long), PROOFS proofs are made (iat now, each sent once); the
    unauthenticated httpd gets the same headers from a fixed set of proofs.

    The module records every accepted proof's jti in a table of 65,536 slots until iat +
    OfftokDPoPMaxAge + OfftokClockSkew + 1 s, and answers 503 when it is full: one run fits in
    it, so the next run waits until the previous run's proofs have expired (OfftokDPoPMaxAge 30,
    OfftokClockSkew 0: 31 s after their iat)."""
    ours = b.variant("offtok-dpop", "mod_offtok-dpop", dpop_variant)
    token = b.hot_token()
    T = b.args.threads
    fixed = b.issuer.proofs(ours.url, token, 20000, T, os.path.join(b.issuer.dir, "proofs-b-"))
    with open(fixed + "1") as f:
        check(ours, None, {"Authorization": "DPoP " + token, "DPoP": f.readline().strip()})
    sanity = {"mod_offtok": peers.check_dpop(b, ours, token, True)}
    base_kw = {"script": "dpop.lua", "env": {"BENCH_PROOFS": fixed, "BENCH_TOKEN": token}}
    variants = [("unauthenticated", b.baseline, base_kw),
                ("mod_offtok", ours, fresh_proofs(b, ours, token, wait=True))]
    # mod_oauth2 checks DPoP proofs (liboauth2 1.4.5, type=dpop; bench/peers02.py): the same
    # bound answer, cached, and fresh proofs made for its URL before each of its runs.
    if not b.args.no_peers and peers.installed(peers.OAUTH2_SO):
        label = peers.OAUTH2_SO + "-dpop"
        h = b.variant(label, label, peers.oauth2_dpop_variant)
        sanity[label] = peers.check_dpop(b, h, token, False)
        variants.append((label, h, fresh_proofs(b, h, token, wait=False)))
    # The floor (bench/floor/mod_bench_floor.c): the proof's ES256 signature checked and nothing
    # else, on the fixed proofs (it keeps no replay table).
    floor = floor_httpd(b)
    if floor is not None:
        with open(fixed + "1") as f:
            proof = f.readline().strip()
        check(floor, None, {"DPoP": proof})
        status, _ = get(floor, {"DPoP": proof[:-4] + ("AAAA" if proof[-4:] != "AAAA" else "BBBB")})
        if status != 401:
            raise RuntimeError(f"{FLOOR}: a proof with a broken signature got {status}")
        sanity[FLOOR] = "a proof with a broken signature got 401"
        variants.append((FLOOR, floor, base_kw))
    # Runs of 5 s at most: more proofs than the table holds would be replays (401s) or 503s.
    rounds = b.rounds(variants, duration=min(b.args.duration, DPOP_SECONDS))
    res = RUN.summarize(rounds, "unauthenticated", "mod_offtok")
    res["peers"] = {label: RUN.summarize(rounds, "unauthenticated", label)
                    for label, _, _ in variants[2:] if label != FLOOR}
    if floor is not None:
        res["floor"] = floor_summary(rounds, FLOOR)
    for label in res["peers"]:
        res["peers"][label]["vs_mod_offtok"] = RUN.summarize(rounds, label, "mod_offtok")["ratio"]
    res["sanity"] = sanity
    res["rounds"] = rounds
    res["seconds_per_run"] = min(b.args.duration, DPOP_SECONDS)
    if not res["peers"]:
        res["peers_note"] = peers_note()
    if b.args.perf:
        kw = variants[1][2]
        kw["prepare"]()     # fresh proofs for the profiled run, after the last ones expired
        b.profile(name, ours, {k: v for k, v in kw.items() if k != "prepare"})
    return res


FLOOR = "es256-floor"          # dpop-cached
RS256_FLOOR = "rs256-floor"    # local-unique
HIT_FLOOR = "hit-floor"        # local-4k
FLOOR_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor", "mod_bench_floor.c")
FLOOR_WHAT = {
    FLOOR: ("signature only", "mod_bench_floor: the proof's ES256 signature checked and "
            "nothing else; module_vs_floor is what the rest of the DPoP path costs"),
    RS256_FLOOR: ("signature only", "mod_bench_floor: the bearer token's RS256 signature "
                  "checked in httpd's auth phase (AuthType, Require valid-user) and nothing "
                  "else: no JSON, no claims, no cache; module_vs_floor is what the rest of a "
                  "first sight costs"),
    HIT_FLOOR: ("verdict kept", "mod_bench_floor: each token's verdict kept per process "
                "(apr_hash keyed by the token's bytes), r->user and its string and number "
                "claims set from it on a hit, in httpd's auth phase; no shared memory, no "
                "digest, no exp or revocation checks; module_vs_floor is what the rest of a hit "
                "costs"),
}


def floor_summary(rounds, label):
    """A floor's figures: its ratio to the unauthenticated httpd, the module's to it."""
    res = RUN.summarize(rounds, "unauthenticated", label)
    res["module_vs_floor"] = RUN.summarize(rounds, label, "mod_offtok")["ratio"]
    res["short"], res["what"] = FLOOR_WHAT[label]
    res["name"] = label
    return res


def floor_module(b):
    """bench/floor/mod_bench_floor.c built with apxs in the work directory, once per run: the
    .so and its directory, or (None, directory) and a line saying why."""
    d = os.path.join(b.workdir, "floor")
    so = os.path.join(d, ".libs", "mod_bench_floor.so")
    if os.path.exists(so):
        return so, d
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    src = os.path.join(d, "mod_bench_floor.c")
    with open(FLOOR_SRC) as f, open(src, "w") as out:
        out.write(f.read())
    apxs = next((a for a in ("/usr/bin/apxs", "/usr/bin/apxs2") if os.path.exists(a)), None)
    res = subprocess.run([apxs or "apxs", "-c", "-Wc,-O2", "-lcrypto", "-ljansson", src], cwd=d,
                         capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(so):
        bl.log(f"    mod_bench_floor: not built ({(res.stderr or res.stdout).strip()[-300:]})")
        return None, d
    return so, d


def public_pem(d, name, key):
    pem = os.path.join(d, name)
    with open(pem, "wb") as f:
        f.write(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pem, 0o644)
    return pem


def floor_httpd(b):
    """An httpd whose only work beyond the unauthenticated one is checking each request's DPoP
    proof signature (es256-floor); None when mod_bench_floor cannot be built."""
    if "floor" in b.httpds:
        return b.httpds["floor"]
    so, d = floor_module(b)
    if so is None:
        return None
    pem = public_pem(d, "dpop-key.pem", b.issuer.dpop_key)
    b.httpds["floor"] = b.httpd(FLOOR, f'LoadModule bench_floor_module "{so}"',
                                f"BenchFloorKey {pem}", "    Require all granted")
    return b.httpds["floor"]


def bearer_floor(b, label, good, sanity):
    """The floor of a local-* scenario (rs256-floor or hit-floor), authenticating in httpd's
    auth phase as the module's variant does (AuthType, Require valid-user), checked first: a
    good token 200, the same token with a broken signature 401, a token signed with another
    key's signature 401 (sanity[label] says so). None when mod_bench_floor cannot be built."""
    if label not in b.httpds:
        so, d = floor_module(b)
        if so is None:
            return None
        pem = public_pem(d, "bearer-key.pem", b.issuer.key)
        server = f"BenchFloorBearerKey {pem}"
        if label == HIT_FLOOR:
            server += "\nBenchFloorRemember On"
        b.httpds[label] = b.httpd(label, f'LoadModule bench_floor_module "{so}"', server, """
    AuthType benchfloor
    AuthName bench
    Require valid-user""")
    h = b.httpds[label]
    check(h, good)
    head, sig = good.rsplit(".", 1)
    status, body = h.get(head + "." + sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"))
    peers.must_refuse(h, "its token with a broken signature", status, body)
    if status != 401:
        raise RuntimeError(f"{label}: a token with a broken signature got {status}")
    bad = peers.check_jwt_peer(b, h, good, 30)["bad_signature"]
    if bad != 401:
        raise RuntimeError(f"{label}: a token with another's signature got {bad}")
    sanity[label] = "a token with a broken signature got 401, one with another's signature 401"
    return h


def fresh_proofs(b, h, token, wait):
    """wrk arguments for dpop.lua whose prepare() makes PROOFS proofs for h (iat now) before
    each run; wait: first wait until the previous run's proofs have left the module's replay
    table (DPOP_WINDOW after their iat)."""
    state = {"n": 0}
    kw = {"script": "dpop.lua", "env": {"BENCH_PROOFS": "", "BENCH_TOKEN": token}}

    def prepare():
        state["n"] += 1
        if wait and state.get("iat"):
            left = state["iat"] + DPOP_WINDOW + 2 - time.time()
            if left > 0:
                bl.log(f"    waiting {left:.0f}s for the last run's proofs to expire")
                time.sleep(left)
        state["iat"] = time.time()
        prefix = os.path.join(b.issuer.dir, f"proofs-{h.name}-{state['n']}-")
        t0 = time.monotonic()
        b.issuer.proofs(h.url, token, PROOFS, b.args.threads, prefix)
        bl.log(f"    made {PROOFS} proofs for {h.name} in {time.monotonic() - t0:.1f}s")
        kw["env"]["BENCH_PROOFS"] = prefix
    kw["prepare"] = prepare
    return kw


def always_auth(b, name, auth):
    """Issue 18: always-validate, a new token every request (unique.lua, as always-unique), with
    client authentication auth, against client_secret_basic in the same rounds; the
    unauthenticated httpd runs too, for scale."""
    basic = b.variant("offtok-always", "mod_offtok", RUN.offtok_variant, always=True)
    ours = b.variant(f"offtok-always-{auth}", f"mod_offtok-{auth}", always_auth_variant,
                     auth=auth)
    template = b.issuer.template()
    for h in (basic, ours):
        check(h, template + "probe")
    kw = {"script": "unique.lua", "env": {"BENCH_TEMPLATE": template}}
    rounds = b.rounds([("client_secret_basic", basic, kw), (name, ours, kw),
                       ("unauthenticated", b.baseline, kw)])
    res = RUN.summarize(rounds, "client_secret_basic", name)
    res["vs_unauthenticated"] = RUN.summarize(rounds, "unauthenticated", name)["ratio"]
    res["basic_vs_unauthenticated"] = RUN.summarize(rounds, "unauthenticated",
                                                    "client_secret_basic")["ratio"]
    res["rounds"] = rounds
    b.drop(f"offtok-always-{auth}")
    return res


SCENARIOS = {
    "local-4k": (local_4k, ">= 0.95, > peers", 0.95),
    "local-unique": (local_unique, ">= 0.70, > peers", 0.70),
    "dpop-cached": (dpop_cached, ">= 0.60", 0.60),
    "flood": (fl.flood, "flooded >= 0.90", 0.90),
    "always-pkjwt-es256": (lambda b, n: always_auth(b, n, "ES256"), "ratio to basic", None),
    "always-pkjwt-rs256": (lambda b, n: always_auth(b, n, "RS256"), "ratio to basic", None),
    "always-signed": (lambda b, n: always_auth(b, n, "signed"), "ratio to basic", None),
}
