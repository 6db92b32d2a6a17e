#!/usr/bin/env python
"""The event indexer's throughput from an empty mirror, beside a bare `eth_getLogs` of the same
blocks, read through web3 and as raw JSON-RPC in the same run (the anchors). Target: at least
5,000 events/s (issue 20), on SQLite and on PostgreSQL.

    .venv/bin/python bench/indexer.py                   # 10,000 events, SQLite
    .venv/bin/python bench/indexer.py --events 2000     # a quick try
    .venv/bin/python bench/indexer.py --postgres        # on a throw-away PostgreSQL database
        # (createdb/dropdb hallmark_indexer_bench on --pg-server; dropped at the end)
    .venv/bin/python bench/indexer.py --database-url postgres://postgres@127.0.0.1:5432/hallmark_bench
        # a database of yours instead: it is FLUSHED, so its name must contain "bench"

A throw-away stack (temp dir, SQLite database, anvil child, ModelRegistry deployed with
`manage.py deploy_registry`, migrated) gets `--events` registry events cheaply: one vendor
creates a model, a buyer purchases licences for fresh addresses (3 events each:
LicensePurchased, PlatformFeeCredited and RoyaltyCredited) for about half of them, and the vendor publishes
versions (1 VersionPublished each) for the rest. Transactions go from anvil's unlocked
accounts in JSON-RPC batches with automine off, `--per-block` per mined block.

Then, in this process after `django.setup()`, `registry.indexer.indexer_run()` is timed from an
empty mirror (cursor, events, projections: the database is flushed before each run) and the
events counted in the ChainEvent table; beside it, the same block range read with one
`eth_getLogs` through web3 (what the indexer reads, formatted by web3) and as raw JSON-RPC.
Each figure is the best of `--repeat` runs (default 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _stack import (  # noqa: E402
    Stack,
    cleanup_on_sigterm,
    commit_note,
    load_note,
    postgres_reachable,
    rpc,
    throwaway_postgres,
)

TARGET = 5_000  # events/s (issue 20)
PRICE = 10**12
DURATION = 30 * 24 * 3600


def batch(url: str, calls: list[tuple[str, list]]) -> list:
    """One JSON-RPC batch; raises on any error."""
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        replies = sorted(json.load(response), key=lambda r: r["id"])
    errors = [r["error"] for r in replies if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(calls)} calls failed, first: {errors[0]}")
    return [r["result"] for r in replies]


def generate(url: str, address: str, artifact: dict, events: int, per_block: int) -> dict:
    """Send transactions until the registry has logged exactly `events` events; returns counts."""
    from web3 import Web3

    from registry import chain

    w3 = Web3(Web3.HTTPProvider(url))
    contract = w3.eth.contract(address=address, abi=artifact["abi"])
    keys = chain.development_keys()
    vendor, buyer = (w3.eth.account.from_key(keys[i]).address for i in (1, 2))
    slug = Web3.keccak(text="bench-model")
    receipt = w3.eth.wait_for_transaction_receipt(
        contract.functions.createModel(slug, PRICE, DURATION, b"\x00" * 32, 0).transact({"from": vendor})
    )
    assert receipt["status"] == 1
    model_id = contract.functions.computeModelId(vendor, slug).call()
    existing = len(w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": "latest"}))

    per_purchase = 3  # LicensePurchased, PlatformFeeCredited, RoyaltyCredited (vendor)
    remaining = events - existing
    purchases = (remaining // 2) // per_purchase
    versions = remaining - purchases * per_purchase
    if versions < 0 or remaining < 0:
        raise SystemExit(f"--events must be at least {existing}")

    def purchase_tx(i: int) -> dict:
        licensee = Web3.to_checksum_address(f"0x{0xB0B0000000 + i:040x}")
        return {"from": buyer, "to": address, "value": hex(PRICE), "gas": hex(300_000),
                "data": contract.encode_abi("purchaseLicense", args=[model_id, licensee, PRICE])}

    def version_tx(i: int) -> dict:
        digest = hashlib.sha256(f"root-{i}".encode()).digest()
        meta = hashlib.sha256(f"meta-{i}".encode()).digest()
        return {"from": vendor, "to": address, "gas": hex(200_000),
                "data": contract.encode_abi("publishVersion", args=[model_id, digest, meta])}

    # interleave purchases and publications as a real chain would
    txs = []
    for i in range(max(purchases, versions)):
        if i < purchases:
            txs.append(purchase_tx(i))
        if i < versions:
            txs.append(version_tx(i))
    nonces = {a: w3.eth.get_transaction_count(a) for a in (vendor, buyer)}
    for tx in txs:
        tx["nonce"] = hex(nonces[tx["from"]])
        nonces[tx["from"]] += 1
    rpc(url, "evm_setAutomine", [False])
    try:
        for start in range(0, len(txs), per_block):
            batch(url, [("eth_sendTransaction", [tx]) for tx in txs[start:start + per_block]])
            rpc(url, "evm_mine")
        for _ in range(1000):  # whatever did not fit in a block's gas
            if int(rpc(url, "txpool_status")["pending"], 16) == 0:
                break
            rpc(url, "evm_mine")
    finally:
        rpc(url, "evm_setAutomine", [True])
    logs = w3.eth.get_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
    if len(logs) != events:
        raise RuntimeError(f"the registry logged {len(logs)} events, expected {events} (a transaction reverted?)")
    return {
        "purchases": purchases, "versions": versions, "transactions": len(txs) + 1,
        "blocks_with_logs": len({log["blockNumber"] for log in logs}), "head": w3.eth.block_number,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="registry events to index (default 10000)")
    parser.add_argument("--per-block", type=int, default=100, help="transactions sent per mined block (default 100)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept (default 2)")
    parser.add_argument("--database-url", default=None, help="a database to use (and flush!) instead of a temp SQLite file")
    parser.add_argument("--postgres", action="store_true", help="index into a throw-away PostgreSQL database (createdb on --pg-server)")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-database", default="hallmark_indexer_bench", help="its name (must contain 'bench': it is dropped)")
    parser.add_argument("--profile", action="store_true", help="also print where indexer_run() spends its time (cProfile, one extra run)")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    if args.database_url and "bench" not in urlparse(args.database_url).path:
        parser.error("--database-url: the database is flushed; its name must contain 'bench'")
    if args.postgres and args.database_url:
        parser.error("--postgres and --database-url: one or the other")
    cleanup_on_sigterm()
    if args.postgres:
        if not postgres_reachable(args.pg_server):
            return 0
        with throwaway_postgres(args.pg_database, args.pg_server) as url:
            return run(args, url)
    return run(args, args.database_url)


def run(args, database_url: str | None) -> int:
    note = f"{commit_note()}; {load_note()}"
    with Stack(prefix="hallmark-bench-indexer-", tmp_parent=args.tmp, database_url=database_url) as stack:
        print(f"starting anvil, deploying, migrating in {stack.dir} ...", file=sys.stderr)
        stack.start_chain()
        os.environ.update(stack.env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from web3 import Web3

        from registry import chain
        from registry.indexer import indexer_run
        from registry.models import ChainEvent

        address = stack.deployment["address"]
        deploy_block = stack.deployment["block_number"]
        print(f"sending transactions for {args.events} events ...", file=sys.stderr)
        start = time.perf_counter()
        made = generate(stack.rpc_url, address, chain.load_artifact(), args.events, args.per_block)
        print(f"  {made['transactions']} transactions in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        head = made["head"]

        ours, counted, ranges = [], 0, None
        for _ in range(args.repeat):
            call_command("flush", interactive=False, verbosity=0)
            chain._checked_chain_id.cache_clear()
            start = time.perf_counter()
            run = indexer_run()
            ours.append(time.perf_counter() - start)
            counted = ChainEvent.objects.count()
            ranges = (run.from_block, run.to_block)
            if run.to_block != head:
                raise RuntimeError(f"the indexer stopped at block {run.to_block}, head is {head}")
        vendor_db = connection.vendor
        if args.profile:
            import cProfile
            import pstats

            call_command("flush", interactive=False, verbosity=0)
            profiler = cProfile.Profile()
            profiler.runcall(indexer_run)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)

        w3 = Web3(Web3.HTTPProvider(stack.rpc_url))
        query = {"address": address, "fromBlock": ranges[0], "toBlock": ranges[1]}
        web3_times, raw_times = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            logs = w3.eth.get_logs(query)
            web3_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw = rpc(stack.rpc_url, "eth_getLogs", [{"address": address, "fromBlock": hex(ranges[0]), "toBlock": hex(ranges[1])}])
            raw_times.append(time.perf_counter() - start)
        if len(logs) != len(raw) or len(logs) != args.events:
            raise RuntimeError(f"eth_getLogs returned {len(logs)} / {len(raw)} logs, expected {args.events}")

    best, web3_best, raw_best = min(ours), min(web3_times), min(raw_times)
    blocks = ranges[1] - ranges[0] + 1
    print(f"{note}; {os.cpu_count()} cores; best of {args.repeat} runs each; database: {vendor_db}")
    print(f"{made['purchases']} purchases (3 events each) and {made['versions']} publications in "
          f"{made['transactions']} transactions; blocks {ranges[0]}-{ranges[1]} ({blocks} blocks, "
          f"{made['blocks_with_logs']} with registry events; deployment at block {deploy_block})\n")
    print(f"| reading {counted:,} registry events | seconds | events/s | × eth_getLogs (web3) |")
    print("|---|---:|---:|---:|")
    print(f"| eth_getLogs via web3, same range (context anchor) | {web3_best:.2f} | {len(logs) / web3_best:,.0f} | 1.00 |")
    print(f"| eth_getLogs raw JSON-RPC, same range (context) | {raw_best:.2f} | {len(raw) / raw_best:,.0f} | {web3_best / raw_best:.2f} |")
    print(f"| indexer_run() from an empty mirror (ours) | {best:.2f} | {counted / best:,.0f} | {web3_best / best:.2f} |")
    print()
    rate = counted / best
    print(f"{'PASS' if counted == args.events else 'MISS'}  ChainEvent rows = events on chain ({counted:,} of {args.events:,})")
    print(f"{'PASS' if rate >= TARGET else 'MISS'}  indexer on {vendor_db}: {rate:,.0f} events/s >= {TARGET:,} "
          f"({web3_best / best:.2f}x eth_getLogs via web3, {raw_best / best:.3f}x raw JSON-RPC, same run)")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
