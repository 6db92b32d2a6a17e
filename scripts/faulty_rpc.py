"""A faulty JSON-RPC proxy: the public-testnet weather (drops, time-outs, HTTP 429, a lagging head)
in front of a local node, so the marketplace can be run and tested as it will meet a real chain.

    python scripts/faulty_rpc.py --upstream http://127.0.0.1:8545 --port 8546 \\
        --drop 0.05 --timeout 0.03 --rate-limit 0.05 --seed 7
    CHAIN_RPC_URL=http://127.0.0.1:8546 make run

Every fault is what a load-balanced public RPC does now and then:
- drop: the connection is closed without an answer;
- timeout: the answer never comes (the proxy holds the request `hang_seconds`, then closes);
- rate_limit: `HTTP 429 Too Many Requests` with `Retry-After: 1`;
- stale head (`stale_for(seconds)`): the request lands on a node that lags: `eth_blockNumber` and
  `latest` answer the head frozen at the start of the window, and blocks above it are unknown (null).

Faults are drawn from a seeded random generator, per request; `counts` says what was injected.
Standard library only: it can run wherever Python runs.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("drop", "timeout", "rate_limit")


class FaultyRpc:
    """A proxy in a thread of its own: `start()`, `url`, `stale_for(s)`, `calm()`, `stop()`."""

    def __init__(
        self,
        upstream: str,
        *,
        port: int = 0,
        drop: float = 0.0,
        timeout: float = 0.0,
        rate_limit: float = 0.0,
        hang_seconds: float = 3.0,
        seed: int = 0,
    ):
        self.upstream = upstream
        self.rates = {"drop": drop, "timeout": timeout, "rate_limit": rate_limit}
        self.hang_seconds = hang_seconds
        self.counts = {name: 0 for name in (*FAULTS, "stale", "forwarded")}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stale_head: int | None = None
        self._stale_until = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-rpc", daemon=True)

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyRpc:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calm(self) -> None:
        """No more faults (the weather clears): every request is forwarded as it is."""
        with self._lock:
            self.rates = {name: 0.0 for name in self.rates}
            self._stale_until = 0.0

    def stale_for(self, seconds: float) -> None:
        """Answer as a node whose head stays where it is now for `seconds`."""
        head = int(self._forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})["result"], 16)
        with self._lock:
            self._stale_head = head
            self._stale_until = time.monotonic() + seconds

    # ------------------------------------------------------------------ internals

    def _draw(self) -> str | None:
        with self._lock:
            roll = self._random.random()
            for name in FAULTS:
                rate = self.rates[name]
                if roll < rate:
                    self.counts[name] += 1
                    return name
                roll -= rate
            self.counts["forwarded"] += 1
            return None

    def _stale(self) -> int | None:
        with self._lock:
            if self._stale_head is not None and time.monotonic() < self._stale_until:
                return self._stale_head
            return None

    def _forward(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        request = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def _answer(self, call: dict) -> dict:
        head = self._stale()
        if head is not None:
            stale = self._stale_answer(call, head)
            if stale is not None:
                with self._lock:
                    self.counts["stale"] += 1
                return stale
        return self._forward(call)

    def _stale_answer(self, call: dict, head: int) -> dict | None:
        method, params = call.get("method"), call.get("params") or []
        answer = {"jsonrpc": "2.0", "id": call.get("id")}
        if method == "eth_blockNumber":
            return {**answer, "result": hex(head)}
        if method == "eth_getBlockByNumber" and params:
            tag = params[0]
            if tag in ("latest", "safe", "finalized", "pending"):
                return self._forward({**call, "params": [hex(head), *params[1:]]})
            if isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > head:
                return {**answer, "result": None}
        if method in ("eth_getTransactionReceipt",):
            reply = self._forward(call)
            result = reply.get("result")
            if result and int(result["blockNumber"], 16) > head:
                return {**answer, "result": None}
            return reply
        return None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: tests read `counts`
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                fault = proxy._draw()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "timeout":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "rate_limit":
                    body = b'{"jsonrpc":"2.0","error":{"code":-32005,"message":"rate limited"}}'
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                try:
                    payload = json.loads(raw)
                    if isinstance(payload, list):
                        reply: Any = [proxy._answer(call) for call in payload]
                    else:
                        reply = proxy._answer(payload)
                except (OSError, urllib.error.URLError, ValueError):
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:8545")
    parser.add_argument("--port", type=int, default=8546)
    for name in FAULTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0, help=f"share of requests answered with {name}")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    proxy = FaultyRpc(
        args.upstream, port=args.port, drop=args.drop, timeout=args.timeout, rate_limit=args.rate_limit,
        hang_seconds=args.hang_seconds, seed=args.seed,
    ).start()
    print(f"faulty JSON-RPC proxy on {proxy.url} -> {args.upstream} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
