#!/usr/bin/env python3
"""Proxy-miss latency for the load benchmark: what batlehub adds to a slow upstream.

    miss.py serve PORT          an npm upstream answering every request after 20 ms
    miss.py measure UPSTREAM HUB N
                                N cold packuments and N cold tarballs, each asked once
                                through the hub and once from the upstream directly;
                                prints a markdown table of p50/p99 (ms) and the difference

The upstream serves `miss-<i>` (one version) and its tarball for any i, so every request
through the hub is a cache miss. Requests are sequential: this measures latency, not
throughput.
"""
import base64
import hashlib
import http.client
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DELAY = 0.020
TARBALL = b"\x1f\x8b" + b"miss tarball bytes " * 500


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise the head and the body go out in two
    # segments and the second waits for a delayed ACK (40 ms), on either side.
    disable_nagle_algorithm = True
    wbufsize = 1 << 20

    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(DELAY)
        path = self.path.split("?")[0].lstrip("/")
        host = self.headers.get("Host")
        if "/-/" in path:
            body, ctype = TARBALL, "application/octet-stream"
        elif path.startswith("miss-"):
            name = path
            sri = "sha512-" + base64.b64encode(hashlib.sha512(TARBALL).digest()).decode()
            body = json.dumps(
                {
                    "name": name,
                    "dist-tags": {"latest": "1.0.0"},
                    "versions": {
                        "1.0.0": {
                            "name": name,
                            "version": "1.0.0",
                            "dist": {
                                "tarball": f"http://{host}/{name}/-/{name}-1.0.0.tgz",
                                "integrity": sri,
                            },
                        }
                    },
                    "time": {"1.0.0": "2020-01-01T00:00:00.000Z"},
                }
            ).encode()
            ctype = "application/json"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def timed_get(conn, path):
    t = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise SystemExit(f"miss.py: GET {path} answered {resp.status}")
    return (time.perf_counter() - t) * 1000


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure(upstream, hub, n):
    up, hb = urlsplit(upstream), urlsplit(hub)
    cu = http.client.HTTPConnection(up.hostname, up.port)
    ch = http.client.HTTPConnection(hb.hostname, hb.port)
    for c in (cu, ch):
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    run = int(time.time())
    rows = []
    for what, path in (
        ("packument", lambda i: f"miss-{run}-{i}"),
        ("tarball", lambda i: f"miss-{run}-{i}/-/miss-{run}-{i}-1.0.0.tgz"),
    ):
        direct, through = [], []
        for i in range(n):
            direct.append(timed_get(cu, f"{up.path.rstrip('/')}/{path(i + n)}"))
            through.append(timed_get(ch, f"{hb.path.rstrip('/')}/{path(i)}"))
        rows.append((what, direct, through))
    print("| proxy miss (upstream delays 20 ms) | upstream p50 | upstream p99 | batlehub p50 | batlehub p99 | added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|")
    for what, direct, through in rows:
        d50, d99, t50, t99 = pct(direct, 50), pct(direct, 99), pct(through, 50), pct(through, 99)
        print(f"| {what} | {d50:.2f} | {d99:.2f} | {t50:.2f} | {t99:.2f} | {t50 - d50:.2f} | {t99 - d99:.2f} |")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Upstream)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        threading.Event().wait()
    else:
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))
