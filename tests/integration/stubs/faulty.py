"""A fault-injecting introspection endpoint for the integration tests.

    python3 faulty.py [--cert C --key K] [--port P] [--control-port Q] [--close]

Serves HTTPS (plain HTTP without --cert) on 127.0.0.1:P and a plain-HTTP control API on
127.0.0.1:Q, then prints "READY <url> <control url>". TLS faults (unknown CA, wrong host
name, expired certificate) are made by starting it with that certificate.

The answer is chosen by the request's path, whatever the method; each path answers as named:

    /ok                 200, an active answer (claims: defaults < /control/ok-claims < ?claims=JSON)
    /inactive           200, {"active":false}
    /status/N           status N (401 with WWW-Authenticate: Basic)
    /redirect/N         status N (301, 302, ...) with Location: <url>/ok
    /garbage            200, application/json that is not JSON
    /array              200, a JSON array holding an active answer
    /noactive           200, an answer without "active"
    /active-string      200, "active": "true" (a string)
    /huge               200, an active answer padded to 16 MiB
    /big?bytes=N        200, an active answer padded to exactly N bytes (at least its own size)
    /slow?seconds=S     the /ok answer after S seconds
    /stamped?seconds=S  the /ok answer after S seconds, with "stub_started": when handling began
    /drip?interval=S    /ok's headers at once, then its body one byte every S seconds (default 1)
    /deep?levels=N      200, an active answer holding arrays nested N deep (default 100,000)
    /badutf8            200, invalid UTF-8 inside the "sub" string
    /nul                200, a NUL (as \\u0000) inside "sub"
    /longsub?len=N      200, a "sub" of N characters (default 10,000)
    /reset              headers and half the body, then a TCP reset
    /reset-reused       the /ok answer to a connection's first request; to later ones on the same
                        connection, what /reset sends (a kept connection breaking mid-answer)
    /hang               reads the request and never answers (until the client leaves)
    /crlf               200, claims holding CR and LF
    /signed             200, the /ok answer as an RFC 9701 signed answer (RS256, key in /jwks),
                        Content-Type application/token-introspection+jwt; the query changes it:
                        aud (default rs-client), iss (default https://faulty.example), typ (the
                        header's, default token-introspection+jwt), iat (seconds added to now),
                        key=wrong (signed with a key that is not in /jwks), alg=none (unsigned)
    /jwks               the JWKS that holds /signed's key

Every answer is HTTP/1.1 with keep-alive and a Content-Length, so connection reuse shows in the
log (same client_port), unless close mode is on: then each answer says "Connection: close" and
the connection ends after it.

Control API (JSON): GET /counts -> {"connections", "requests"}; GET /log -> {"requests": [...]};
POST /reset (zeroes counters and log); POST /ok-claims {"claims": {...}}; POST /mode
{"close": bool}. "connections" counts accepted TCP connections, including those whose TLS
handshake failed. A log entry, made when handling of a request starts, has: time (epoch
seconds), method, path (with query), client_port, authorization (whether the header was sent),
content_type and form: the form fields, a repeated field as a list, with "token" replaced by
"token_sha256".
"""

import json
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from common import (StubHandler, StubServer, announce, b64url, compact_json, sha256_hex,
                    tls_arguments)

MiB = 1024 * 1024
SIGNED_ISSUER = "https://faulty.example"
# The key of /signed and /jwks, and one that /jwks does not hold (key=wrong).
SIGNING_KEYS = {name: rsa.generate_private_key(public_exponent=65537, key_size=2048)
                for name in ("good", "wrong")}


def rsa_jwk(key, kid):
    numbers = key.public_key().public_numbers()
    def uint(value):
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": uint(numbers.n),
            "e": uint(numbers.e)}


class State:
    """What the control API reads and changes, shared by the handler threads."""

    def __init__(self, close):
        self.lock = threading.Lock()
        self.close = close
        self.ok_claims = {}
        self.requests = []
        self.server = None  # the fault server, for its URL and connection count

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    def active_answer(self, overrides=None):
        now = int(time.time())
        answer = {"active": True, "sub": "faulty-user", "scope": "openid",
                  "client_id": "app-client", "token_type": "Bearer", "iat": now,
                  "exp": now + 300}
        with self.lock:
            answer.update(self.ok_claims)
        answer.update(overrides or {})
        return answer


def padded(answer, size):
    """answer as JSON of exactly size bytes (or its natural size, if larger)."""
    bare = compact_json({**answer, "padding": ""})
    return compact_json({**answer, "padding": "x" * max(0, size - len(bare))})


class FaultHandler(StubHandler):
    state = None  # set in main()

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        entry = {"time": time.time(), "method": self.command, "path": self.path,
                 "client_port": self.client_address[1],
                 "authorization": "Authorization" in self.headers,
                 "content_type": self.headers.get("Content-Type")}
        entry["form"] = hashed_form(self.read_form())
        self.state.record(entry)
        self.started = entry["time"]

        url = urlsplit(self.path)
        self.query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        segments = url.path.strip("/").split("/")
        fault = getattr(self, "fault_" + segments[0].replace("-", "_"), None)
        if fault is None:
            self.send_json(404, {"error": "no such fault"})
        else:
            fault(*segments[1:])

    # -- helpers -------------------------------------------------------------------------------

    def send_body(self, status, body, content_type="application/json", headers=()):
        with self.state.lock:
            close = self.state.close
        if close:
            headers = [*headers, ("Connection", "close")]
            self.close_connection = True
        super().send_body(status, body, content_type, headers)

    def number(self, name, default):
        return float(self.query.get(name, default))

    def ok_answer(self):
        return self.state.active_answer(json.loads(self.query.get("claims", "{}")))

    # -- faults --------------------------------------------------------------------------------

    def fault_ok(self):
        self.send_json(200, self.ok_answer())

    def fault_inactive(self):
        self.send_json(200, {"active": False})

    def fault_status(self, code="500"):
        headers = [("WWW-Authenticate", 'Basic realm="faulty"')] if code == "401" else []
        self.send_json(int(code), {"error": "injected", "status": int(code)}, headers=headers)

    def fault_redirect(self, code="302"):
        location = self.state.server.url + "/ok"
        self.send_json(int(code), {"location": location}, headers=[("Location", location)])

    def fault_garbage(self):
        self.send_body(200, b"<html><body>this is not JSON</body></html>")

    def fault_array(self):
        self.send_json(200, [self.ok_answer()])

    def fault_noactive(self):
        answer = self.ok_answer()
        del answer["active"]
        self.send_json(200, answer)

    def fault_active_string(self):
        self.send_json(200, {**self.ok_answer(), "active": "true"})

    def fault_huge(self):
        self.send_body(200, padded(self.ok_answer(), 16 * MiB))

    def fault_big(self):
        self.send_body(200, padded(self.ok_answer(), int(self.number("bytes", 0))))

    def fault_slow(self):
        time.sleep(self.number("seconds", 10))
        self.fault_ok()

    def fault_stamped(self):
        time.sleep(self.number("seconds", 0))
        self.send_json(200, {**self.ok_answer(), "stub_started": self.started})

    def fault_drip(self):
        interval = self.number("interval", 1)
        body = compact_json(self.ok_answer())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(len(body)):
            self.wfile.write(body[i:i + 1])
            time.sleep(interval)

    def fault_deep(self):
        levels = int(self.number("levels", 100_000))
        head = compact_json(self.ok_answer())[:-1]
        self.send_body(200, head + b',"nested":' + b"[" * levels + b"]" * levels + b"}")

    def fault_badutf8(self):
        body = compact_json(self.state.active_answer({"sub": "BADUTF8"}))
        self.send_body(200, body.replace(b"BADUTF8", b"bad\xc3\x28\xffutf8"))

    def fault_nul(self):
        self.send_json(200, self.state.active_answer({"sub": "before\u0000after"}))

    def fault_longsub(self):
        length = int(self.number("len", 10_000))
        self.send_json(200, self.state.active_answer({"sub": "u" * length}))

    def fault_crlf(self):
        self.send_json(200, self.state.active_answer({
            "sub": "alice\r\nX-Injected: yes", "name": "line one\nline two", "note": "cr\ronly"}))

    def fault_jwks(self):
        self.send_json(200, {"keys": [rsa_jwk(SIGNING_KEYS["good"], "faulty-rs256")]})

    def fault_signed(self):
        now = int(time.time())
        payload = {"iss": self.query.get("iss", SIGNED_ISSUER),
                   "aud": self.query.get("aud", "rs-client"),
                   "iat": now + int(self.query.get("iat", "0")),
                   "token_introspection": self.ok_answer()}
        alg = self.query.get("alg", "RS256")
        header = {"alg": alg, "kid": "faulty-rs256",
                  "typ": self.query.get("typ", "token-introspection+jwt")}
        signing_input = (b64url(compact_json(header)) + "." + b64url(compact_json(payload)))
        signature = ""
        if alg != "none":
            key = SIGNING_KEYS["wrong" if self.query.get("key") == "wrong" else "good"]
            signature = b64url(key.sign(signing_input.encode(), padding.PKCS1v15(),
                                        hashes.SHA256()))
        self.send_body(200, (signing_input + "." + signature).encode(),
                       "application/token-introspection+jwt")

    def fault_reset(self):
        body = compact_json(self.ok_answer())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2])
        # Linger 0 turns close() into a reset; the read side holds a reference to the socket,
        # so it is closed first for close() to take effect at once (and without TLS close_notify).
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def fault_reset_reused(self):
        # One handler object serves one connection: it counts that connection's requests.
        self.served = getattr(self, "served", 0) + 1
        if self.served == 1:
            self.fault_ok()
        else:
            self.fault_reset()

    def fault_hang(self):
        while self.rfile.read(1):
            pass
        self.close_connection = True


def hashed_form(pairs):
    form = {}
    for name, value in pairs:
        if name == "token":
            name, value = "token_sha256", sha256_hex(value)
        if name in form:
            previous = form[name]
            form[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            form[name] = value
    return form


class ControlHandler(StubHandler):
    state = None  # set in main()

    def do_GET(self):
        state = self.state
        with state.lock:
            if self.path == "/counts":
                self.send_json(200, {"connections": state.server.connections_accepted,
                                     "requests": len(state.requests)})
            elif self.path == "/log":
                self.send_json(200, {"requests": list(state.requests)})
            else:
                self.send_json(404, {"error": "no such path"})

    def do_POST(self):
        body = self.read_json()
        state = self.state
        with state.lock:
            if self.path == "/reset":
                state.requests.clear()
                with state.server.lock:
                    state.server.connections_accepted = 0
            elif self.path == "/ok-claims":
                state.ok_claims = dict(body.get("claims") or {})
            elif self.path == "/mode":
                state.close = bool(body.get("close"))
            else:
                self.send_json(404, {"error": "no such path"})
                return
        self.send_json(200, {"ok": True})


def main():
    parser = tls_arguments("Fault-injecting introspection endpoint")
    parser.add_argument("--control-port", type=int, default=0,
                        help="plain-HTTP control port on 127.0.0.1 (0: one the system picks)")
    parser.add_argument("--close", action="store_true",
                        help="close every connection after its answer")
    args = parser.parse_args()

    state = State(close=args.close)
    FaultHandler.state = ControlHandler.state = state
    state.server = StubServer(args.port, FaultHandler, args.cert, args.key)
    control = StubServer(args.control_port, ControlHandler)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    announce(state.server.url, control.url)
    state.server.serve_forever()


if __name__ == "__main__":
    main()
