"""What the stub issuers share: a threaded HTTP(S) server that counts the connections it
accepts, request body and JSON helpers, and the start-up protocol (a "READY <url>" line on
stdout once the server listens)."""

import argparse
import base64
import hashlib
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


def sha256_hex(text):
    """SHA-256 of a token as hex: logs identify tokens by it (compare any prefix)."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode()


class StubServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1, with TLS when given a certificate.

    The TLS handshake runs in the connection's own thread, on its first read, so a client that
    connects and stalls (or rejects the certificate) never blocks accepting others. Failed
    handshakes and connections the client drops are not errors for a test stub and go unlogged.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, handler_class, cert=None, key=None):
        self.ssl_context = None
        if cert:
            self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_context.load_cert_chain(cert, key)
        self.lock = threading.Lock()
        self.connections_accepted = 0
        super().__init__(("127.0.0.1", port), handler_class)

    @property
    def url(self):
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def get_request(self):
        sock, address = super().get_request()
        with self.lock:
            self.connections_accepted += 1
        if self.ssl_context:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if not isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class StubHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, quiet, with helpers to read forms and answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_form(self):
        """The form fields as a list of (name, value), in order, duplicates kept."""
        return parse_qsl(self.read_body().decode("utf-8", "replace"), keep_blank_values=True)

    def read_json(self):
        body = self.read_body()
        return json.loads(body) if body else {}

    def send_body(self, status, body, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, value, headers=()):
        self.send_body(status, compact_json(value), headers=headers)


def tls_arguments(description):
    """Command-line parser with the options every stub takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0,
                        help="port on 127.0.0.1 (0: one the system picks)")
    parser.add_argument("--cert", help="server certificate (PEM); without it, plain HTTP")
    parser.add_argument("--key", help="its private key (PEM)")
    return parser


def announce(*urls):
    """Tell the starting process that the stub serves: one line, READY and its URLs."""
    print("READY", *urls, flush=True)
