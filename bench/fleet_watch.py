#!/usr/bin/env python
"""`hallmark watch` on a device with many models: RPC requests and time per poll at 1 and 1,000
installed models, beside the naive per-model check measured in the same run, and the time from
a `revokeVersion` transaction mined to the model quarantined on the device.

    .venv/bin/python bench/fleet_watch.py [--models 1000] [--published 20] [--interval 0.25] [--revocations 5]

A throw-away anvil with ModelRegistry deployed from the committed artifact; the vendor (anvil
account #1) creates `--published` models and publishes one version of each with its own
transactions (real files, real root digests). The inventory of N models is synthesized: N
folders holding the files of those versions, the models repeated across the entries (what the
poll reads does not depend on which model an entry names). A counting proxy in front of anvil
(scripts/faulty_rpc.py, no faults) counts HTTP requests: that number, not the client's own
tally, is printed.

- poll (first): `eth_blockNumber` + one JSON-RPC batch with every model's reads and logs;
- poll (steady): a block later: `eth_blockNumber` + one batch with the logs since the last poll;
- naive: what a per-model check does (`hallmark verify`'s reads for each model: `models`,
  `versionDigest`, `isRevoked`, the `VersionPublished` log), one plain request each (web3, as
  `hallmark verify` runs them, adds `eth_chainId` calls: 10 requests a model).
Requests are counted by the proxy for the poll (and checked equal to the client's own count in a
second, direct run), by the client for the naive loop; seconds are measured straight to anvil,
with no proxy in the way (a remote RPC node's round trip would widen the gap further).
- revocation -> quarantine: `hallmark watch --interval S` runs as a child process; the vendor
  revokes a version; the time from the receipt to the child printing the quarantine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "client"))

from eth_utils import keccak  # noqa: E402
from web3 import Web3  # noqa: E402

from bench._stack import ANVIL, free_port, rpc, stop  # noqa: E402
from scripts.faulty_rpc import FaultyRpc  # noqa: E402

HALLMARK = Path(sys.executable).parent / "hallmark"


def start_chain() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            rpc(url, "eth_chainId")
            return proc, url
        except Exception:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError("anvil did not answer")


class Vendor:
    """The registry deployed by account #0; account #1 publishes, from its own (unlocked) key."""

    def __init__(self, w3: Web3):
        artifact = json.loads((ROOT / "registry" / "artifacts" / "ModelRegistry.json").read_text())
        self.w3 = w3
        owner, self.address = w3.eth.accounts[0], w3.eth.accounts[1]
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(owner, 250, w3.eth.accounts[9]).transact({"from": owner}))
        self.deploy_block = receipt["blockNumber"]
        self.registry = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    def send(self, call) -> dict:
        receipt = self.w3.eth.wait_for_transaction_receipt(call.transact({"from": self.address}))
        assert receipt["status"] == 1
        return receipt

    def model(self, slug: str, root_hex: str) -> str:
        f = self.registry.functions
        receipt = self.send(f.createModel(keccak(text=slug), 10**15, 0, b"\0" * 32, 0))
        model_id = bytes(self.registry.events.ModelCreated().process_receipt(receipt)[0]["args"]["modelId"])
        self.send(f.publishVersion(model_id, bytes.fromhex(root_hex), keccak(text=f"meta {slug}")))
        return "0x" + model_id.hex()

    def revoke(self, model_id: str) -> float:
        self.send(self.registry.functions.revokeVersion(bytes.fromhex(model_id[2:]), 1, b"bench".ljust(32, b"\0")))
        return time.monotonic()


def synthesize(config: Path, models_dir: Path, n: int, published: list[tuple[str, str, bytes]], rpc_url: str, vendor: Vendor) -> None:
    """An inventory of `n` installs (folders with the files of real on-chain versions)."""
    from hallmark import inventory

    os.environ["HALLMARK_CONFIG_DIR"] = str(config)
    shutil.rmtree(config, ignore_errors=True)
    shutil.rmtree(models_dir, ignore_errors=True)
    data = inventory.load()
    data["chain"] = {"rpc_url": rpc_url, "registry_address": vendor.registry.address, "deploy_block": vendor.deploy_block}
    for i in range(n):
        model_id, root_hex, content = published[i % len(published)]
        folder = models_dir / f"m{i:04d}"
        folder.mkdir(parents=True)
        (folder / "model.bin").write_bytes(content)
        data["models"][str(folder)] = {
            "repo_id": f"bench/m{i % len(published)}", "model_id": model_id, "version": 1, "root_digest": "0x" + root_hex,
            "vendor": vendor.address, "endpoint": None, "path": str(folder),
            "files": inventory.file_records(folder, [{"path": "model.bin", "sha256": _sha(content)}]),
            "status": "installed", "reason": "", "installed_at": inventory.now_iso(), "baseline": False, "update": None,
        }
    inventory.save(data)


def _sha(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def measure_poll(url: str, registry: str, w3: Web3, proxy: FaultyRpc | None) -> list[tuple[int, float]]:
    """(HTTP requests, seconds) of the first poll and of a steady poll one block later; the
    requests as the proxy counted them when there is one, else as the client sent them."""
    from hallmark import inventory
    from hallmark.watch import Rpc, poll

    rows = []
    for _ in range(2):
        data = inventory.load()
        client = Rpc(url)
        before = proxy.counts["forwarded"] if proxy else 0
        started = time.perf_counter()
        result = poll(data, client, registry)
        elapsed = time.perf_counter() - started
        inventory.save(data)
        assert result.exit_code == 0 and not result.quarantined, result.notes
        rows.append(((proxy.counts["forwarded"] - before) if proxy else client.requests, elapsed))
        w3.provider.make_request("evm_mine", [])
    return rows


def measure_naive(url: str, registry: str, deploy_block: int) -> tuple[int, float]:
    """The per-model check: `hallmark verify`'s four reads (`models`, `versionDigest`,
    `isRevoked`, the version's `VersionPublished` log), one plain JSON-RPC request each, model by
    model (web3 adds an `eth_chainId` before most calls: 10 requests a model; not counted here)."""
    from eth_abi import encode

    from hallmark import inventory
    from hallmark.watch import IS_REVOKED, MODELS, PUBLISHED, VERSION_DIGEST, Rpc

    client = Rpc(url)
    started = time.perf_counter()
    for entry in inventory.installed(inventory.load()):
        raw = bytes.fromhex(entry["model_id"][2:])
        for data in (MODELS + encode(["bytes32"], [raw]), VERSION_DIGEST + encode(["bytes32", "uint32"], [raw, 1]),
                     IS_REVOKED + encode(["bytes32", "uint32"], [raw, 1])):
            client.call("eth_call", [{"to": registry, "data": "0x" + data.hex()}, "latest"])
        topics = [PUBLISHED, entry["model_id"], "0x" + (1).to_bytes(32, "big").hex()]
        client.call("eth_getLogs", [{"address": registry, "fromBlock": hex(deploy_block), "toBlock": "latest", "topics": topics}])
    return client.requests, time.perf_counter() - started


def revocation_latency(config: Path, proxy_url: str, vendor: Vendor, published: list, interval: float, times: int) -> list[float]:
    """Seconds from a revokeVersion receipt to `hallmark watch` printing the quarantine."""
    env = {**os.environ, "HALLMARK_CONFIG_DIR": str(config), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [str(HALLMARK), "watch", "--interval", str(interval), "--json", "--rpc", proxy_url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    seen: list[tuple[float, str]] = []
    lock = threading.Condition()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            with lock:
                seen.append((time.monotonic(), line))
                lock.notify_all()

    threading.Thread(target=read, daemon=True).start()
    latencies = []
    try:
        with lock:
            lock.wait_for(lambda: len(seen) >= 1, timeout=120)  # the first (baseline) poll is done
        for model_id, _, _ in published[:times]:
            with lock:
                mark = len(seen)
            mined = vendor.revoke(model_id)
            with lock:
                found = lock.wait_for(lambda m=mark: any(json.loads(line)["quarantined"] for _, line in seen[m:]), timeout=120)
                assert found, "the revocation was not seen"
                at = next(t for t, line in seen[mark:] if json.loads(line)["quarantined"])
            latencies.append(max(0.0, at - mined))
    finally:
        child.terminate()
        child.wait(timeout=15)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--published", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--revocations", type=int, default=5)
    args = parser.parse_args()

    anvil, url = start_chain()
    proxy = FaultyRpc(url).start()
    work = Path(tempfile.mkdtemp(prefix="fleet-watch-"))
    try:
        w3 = Web3(Web3.HTTPProvider(url))
        vendor = Vendor(w3)
        published = []
        for i in range(args.published):
            content = f"bench model {i}\n".encode() * 64
            root = _sha(bytes.fromhex(_sha(content)))  # one file: the root is the SHA-256 of its digest
            published.append((vendor.model(f"m{i}", root), root, content))
        print(f"anvil: {args.published} models published by the vendor's own transactions")
        print("requests: counted by a proxy in front of anvil (poll), sent by the client (naive); seconds: straight to anvil")
        print(f"{'installed':>10} {'poll':>8} {'requests':>9} {'seconds':>8}   {'naive req':>9} {'naive s':>8}   naive / poll (req, time)")
        for n in (1, args.models):
            registry = vendor.registry.address
            synthesize(work / f"config-{n}", work / f"models-{n}", n, published, proxy.url, vendor)
            counted = measure_poll(proxy.url, registry, w3, proxy)
            synthesize(work / f"config-{n}", work / f"models-{n}", n, published, proxy.url, vendor)
            timed = measure_poll(url, registry, w3, None)
            assert [c for c, _ in counted] == [c for c, _ in timed], (counted, timed)
            naive_requests, naive_seconds = measure_naive(url, registry, vendor.deploy_block)
            for label, (requests_, _), (_, seconds) in zip(("first", "steady"), counted, timed, strict=True):
                print(
                    f"{n:>10} {label:>8} {requests_:>9} {seconds:>8.3f}   {naive_requests:>9} {naive_seconds:>8.3f}   "
                    f"{naive_requests / requests_:.0f}x, {naive_seconds / seconds:.0f}x"
                )
        latencies = revocation_latency(work / f"config-{args.models}", proxy.url, vendor, published, args.interval, args.revocations)
        each = len([1 for i in range(args.models) if i % args.published == 0])
        print(
            f"revokeVersion mined -> quarantined ({args.models} installed, {each} quarantined per revocation, "
            f"--interval {args.interval}): median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s over {len(latencies)}"
        )
    finally:
        proxy.stop()
        stop(anvil)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
