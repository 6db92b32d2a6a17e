#!/usr/bin/env python
"""`make run`: the marketplace on its embedded defaults, reusing everything on a second run.

SQLite and files under .data/, anvil with its state in .data/chain/ (started here unless a
chain already answers at CHAIN_RPC_URL), the contract deployed if this chain has none, a Celery
worker when Redis answers (else tasks run eagerly), and Django on http://127.0.0.1:8000.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HALLMARK_DATA_DIR", ROOT / ".data"))
PY = sys.executable
RPC_URL = os.environ.get("CHAIN_RPC_URL", "http://127.0.0.1:8545")
ADDRESS = os.environ.get("RUN_ADDRESS", "127.0.0.1:8000")


def rpc_chain_id(url: str) -> int | None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(json.load(response)["result"], 16)
    except Exception:
        return None


def redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def manage(*args: str, env: dict) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    (DATA / "chain").mkdir(parents=True, exist_ok=True)
    (DATA / "media").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CHAIN_RPC_URL", RPC_URL)
    env.setdefault("PUBLIC_BASE_URL", f"http://{ADDRESS}")
    # one metrics directory for the web process, the worker and the indexer, so /metrics adds up
    # all of them (prometheus_client multiprocess mode); emptied here, before any of them starts
    metrics_dir = Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(DATA / "metrics")))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    children: list[tuple[str, subprocess.Popen]] = []

    def stop(*_):
        for _name, proc in reversed(children):
            if proc.poll() is None:
                # anvil writes its state on SIGINT; the others stop cleanly on it too
                proc.send_signal(signal.SIGINT)
        for _name, proc in reversed(children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    manage("migrate", "--noinput", "-v", "0", env=env)

    if rpc_chain_id(env["CHAIN_RPC_URL"]) is None:
        port = str(urlparse(env["CHAIN_RPC_URL"]).port or 8545)
        state = DATA / "chain" / "state.json"
        anvil = subprocess.Popen(
            [str(ROOT / "node_modules" / ".bin" / "anvil"), "--host", "127.0.0.1", "--port", port,
             "--state", str(state), "--state-interval", "5", "--silent"],
            cwd=ROOT,
        )
        children.append(("anvil", anvil))
        for _ in range(100):
            if rpc_chain_id(env["CHAIN_RPC_URL"]) is not None:
                break
            time.sleep(0.1)
        else:
            print("anvil did not start; is the port taken?", file=sys.stderr)
            stop()
        print(f"anvil on {env['CHAIN_RPC_URL']} (state kept in {state})")
    else:
        print(f"using the chain already answering at {env['CHAIN_RPC_URL']}")

    manage("deploy_registry", "--if-missing", env=env)

    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if redis_answers(redis_url):
        env["REDIS_URL"] = redis_url
        worker = subprocess.Popen(
            [PY, "-m", "celery", "-A", "config", "worker", "-l", "warning", "--concurrency", "2", "-B",
             "-s", str(DATA / "celerybeat-schedule")],
            cwd=ROOT, env=env,
        )
        children.append(("worker", worker))
        print(f"celery worker on {redis_url}")
    else:
        env.pop("REDIS_URL", None)
        env["CELERY_TASK_ALWAYS_EAGER"] = "1"
        # no beat without a worker: keep the chain mirror (licences, ledger) fresh from here
        indexer = subprocess.Popen([PY, "manage.py", "index_chain", "--loop"], cwd=ROOT, env=env)
        children.append(("indexer", indexer))
        # and close and anchor the download receipts' batches (docs/recorder.md)
        receipts = subprocess.Popen([PY, "manage.py", "close_receipt_batches", "--loop"], cwd=ROOT, env=env)
        children.append(("receipts", receipts))
        print("Redis does not answer: tasks run eagerly inside the web process; the indexer runs on its own")

    server = subprocess.Popen([PY, "manage.py", "runserver", ADDRESS, "--noreload"], cwd=ROOT, env=env)
    children.append(("web", server))
    print(f"\nHallmark is running at http://{ADDRESS}/  (Ctrl-C stops it; `make seed` adds a demo model)\n")
    while True:
        for name, proc in children:
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping", file=sys.stderr)
                stop()
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
