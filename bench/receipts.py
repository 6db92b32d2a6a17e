#!/usr/bin/env python
"""What a download receipt costs on the download path: licensed resolve `GET`s per second with
receipts on and off, in the same run, then the anchor of the receipts it made (gas per receipt).

    .venv/bin/python bench/receipts.py                      # 8 clients, 10 s per measurement, 3 rounds
    .venv/bin/python bench/receipts.py --duration 3 --repeat 1   # a quick try
    .venv/bin/python bench/receipts.py --postgres           # a throw-away PostgreSQL database

A throw-away stack (bench/_stack.py: temp dir, SQLite by default, anvil, ModelRegistry deployed,
`manage.py seed_demo`: a live model and a buyer whose licence is mirrored) and two gunicorns
(`--workers` sync workers each, DEBUG off) on the same database: one with RECEIPTS_ENABLED=1
(the default: one Receipt INSERT per granted GET and the `X-Hallmark-Receipt` header), one with
RECEIPTS_ENABLED=0 (the baseline; the setting exists for this bench only). Both answer the same
`GET /<vendor>/<model>/resolve/main/<file>` of the demo's small file with the buyer's token:
token, rate limit, file, licence (mirrored), the Download row, the file sent.

The load: `--clients` processes, each a keep-alive `requests.Session` sending GETs one after the
other for `--duration` seconds and reading every body; the two servers are measured in turn
(after a short warm-up), `--repeat` rounds, the best round of each kept. The client is Python,
the same for both, so the ratio is what counts. Target: with receipts >= 0.9x without.

Then `manage.py close_receipt_batches` closes and anchors what the run issued (RECEIPT_BATCH_SIZE
default 10,000): `anchorReceipts(root, count)` costs the same gas whatever the count (a root and a
number are stored), so the gas per receipt at batch sizes 1, 100 and 10,000 is that gas / size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _stack import Stack, cleanup_on_sigterm, commit_note, free_port, load_note, throwaway_postgres, wait_http  # noqa: E402

RATE = "1000000/s"


def _client(url: str, token: str, duration: float, out) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    done = failed = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        response = session.get(url, timeout=30)
        _ = response.content
        if response.status_code == 200:
            done += 1
        else:
            failed += 1
    out.put((done, failed))


def load(url: str, token: str, *, clients: int, duration: float) -> dict:
    """`clients` processes sending GETs back to back for `duration` s: requests/s and failures."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(url, token, duration, queue)) for _ in range(clients)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    done = sum(r[0] for r in results)
    return {"rps": done / elapsed, "done": done, "failed": sum(r[1] for r in results)}


def gas_of_anchors(stack: Stack) -> list[tuple[int, int]]:
    """(count, gas used) of each anchored batch, read from the stack's database (SQLite only)."""
    url = stack.env["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        out = stack.manage("shell", "-c", (
            "import json;from marketplace.models import ReceiptBatch as B;"
            "print(json.dumps([[b.count, b.transaction.gas_used] for b in B.objects.filter(state='anchored')]))"))
        return [tuple(x) for x in json.loads(out.strip().splitlines()[-1])]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return list(db.execute(
            "SELECT b.count, t.gas_used FROM marketplace_receiptbatch b JOIN registry_chaintransaction t ON t.id = b.transaction_id "
            "WHERE b.state = 'anchored'"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of each measurement (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="client processes (default 8)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers per server (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept (default 3)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each measurement (default 2)")
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL database (hallmark_receipts_bench)")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server for --postgres")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    cleanup_on_sigterm()
    note = f"{commit_note()}; {load_note()}"
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    with ExitStack() as cleanup:
        database_url = cleanup.enter_context(throwaway_postgres("hallmark_receipts_bench", args.pg_server)) if args.postgres else None
        stack = cleanup.enter_context(Stack(prefix="hallmark-bench-receipts-", tmp_parent=args.tmp, database_url=database_url))
        try:
            stack.env.update(ALLOWED_HOSTS="127.0.0.1,localhost,testserver", DOWNLOAD_RATE_LIMIT=RATE, SECURE_SSL_REDIRECT="0")
            print(f"starting anvil, seeding, starting two gunicorns in {stack.dir} ...", file=sys.stderr)
            stack.start_chain()
            seed = json.loads(stack.manage("seed_demo", "--json").strip().splitlines()[-1])
            token, file = seed["licensed_token"], seed["files"][0]
            path = f"/{seed['repo_id']}/resolve/main/{file['path']}"
            urls = {}
            for key, enabled in (("on", "1"), ("off", "0")):
                port = free_port()
                proc = stack.spawn(f"gunicorn-{key}", [
                    sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
                    "--timeout", "120", "--graceful-timeout", "5",
                ], extra_env={"RECEIPTS_ENABLED": enabled, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
                wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
                urls[key] = f"http://127.0.0.1:{port}{path}"
            auth = {"Authorization": f"Bearer {token}"}
            on, off = requests.get(urls["on"], headers=auth, timeout=30), requests.get(urls["off"], headers=auth, timeout=30)
            if on.status_code != 200 or "X-Hallmark-Receipt" not in on.headers or off.status_code != 200 or "X-Hallmark-Receipt" in off.headers:
                raise RuntimeError(f"sanity check: on {on.status_code} {sorted(on.headers)}, off {off.status_code} {sorted(off.headers)}")
            print(f"{args.repeat} x ({args.warmup:g}s warm-up + {args.duration:g}s) per server, {args.clients} clients ...", file=sys.stderr)
            for _ in range(args.repeat):
                for key in ("on", "off"):
                    if args.warmup > 0:
                        load(urls[key], token, clients=args.clients, duration=args.warmup)
                    runs[key].append(load(urls[key], token, clients=args.clients, duration=args.duration))
            stack.env["RECEIPT_BATCH_SECONDS"] = "0"  # everything the run issued is due now
            anchor = stack.manage("close_receipt_batches")
            anchors = gas_of_anchors(stack)
        except Exception:
            for name in ("gunicorn-on", "gunicorn-off", "anvil"):
                tail = stack.log_tail(name)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise

    best = {key: max(values, key=lambda r: r["rps"]) for key, values in runs.items()}
    database = "PostgreSQL (local, throw-away)" if args.postgres else "SQLite"
    print(f"{note}; {os.cpu_count()} cores; {args.clients} Python clients x {args.duration:g} s; gunicorn -w {args.workers} (sync) "
          f"each, DEBUG off, {database}; file {file['size']:,} bytes; best of {args.repeat} rounds\n")
    print("| licensed resolve GET | requests/s | × without | failed |")
    print("|---|---:|---:|---:|")
    for key, label in (("off", "without receipts (RECEIPTS_ENABLED=0)"), ("on", "with receipts (one INSERT + the header)")):
        r = best[key]
        print(f"| {label} | {r['rps']:,.0f} | {r['rps'] / best['off']['rps']:.2f} | {r['failed']} |")
    print("\nall rounds (requests/s): " + "; ".join(f"{k}: " + ", ".join(f"{r['rps']:,.0f}" for r in v) for k, v in runs.items()))
    print(f"\nanchor: {anchor.strip()}")
    if anchors:
        gas = max(g for _, g in anchors)
        print("| anchorReceipts | gas | gas per receipt |\n|---|---:|---:|")
        for count, used in anchors:
            print(f"| this run's batch of {count:,} receipts | {used:,} | {used / count:,.1f} |")
        for size in (1, 100, 10_000):
            print(f"| a batch of {size:,} (same call, same gas) | {gas:,} | {gas / size:,.1f} |")
    ratio = best["on"]["rps"] / best["off"]["rps"]
    clean = all(r["failed"] == 0 for v in runs.values() for r in v)
    print(f"\n{'PASS' if clean else 'MISS'}  no failed response under load")
    print(f"{'PASS' if ratio >= 0.9 else 'MISS'}  with receipts >= 0.9x the requests/s without ({ratio:.2f}x)")
    print(f"{'PASS' if anchors else 'MISS'}  the run's receipts anchored on chain ({sum(c for c, _ in anchors):,} in {len(anchors)} batch(es))")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
