#!/usr/bin/env python
"""Gas of ModelRegistry's hot paths beside an OpenZeppelin 5 ERC-721 mint, measured in one anvil run.

    .venv/bin/python bench/gas.py            # print the table
    .venv/bin/python bench/gas.py --write    # also rewrite the table in docs/contract.md

Figures are whole-transaction gas (21,000 base included), as a wallet pays. Purchases are
measured on a later sale (the payees already hold a credit: the usual case) and on the
model's first sale; the four-argument purchase (with `minExpiresAt`, what the marketplace
sends) on a later sale. Since issue 20 a vendor's credit slot is opened when it registers its
first model (the createModel rows pay it: each is its vendor's first model), so a model's first
sale creates no credit slot and costs what a later sale does.
Targets (issue 20): publishVersionBySig <= 0.80 mint; purchaseLicense at depth 1 <= 1.10 mints
on a later sale and <= 1.30 on the first sale.

Download receipts (issue 18): gas per receipt of `anchorReceipts` (one root per batch, whatever
its size) at batch sizes 1, 100 and 10,000, beside logging one event per receipt
(contracts/test/BenchReceiptEvents.sol) in the same run, each as a share of a one-seat purchase.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "client"))

from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from hallmark import eip712  # noqa: E402
from hallmark.onchain import from_hex, hex0x, read_model, to_bytes32  # noqa: E402

MNEMONIC = "test test test test test test test test test test test junk"
DOC = ROOT / "docs" / "contract.md"
BEGIN, END = "<!-- gas-table:begin -->", "<!-- gas-table:end -->"
RECEIPTS_BEGIN, RECEIPTS_END = "<!-- receipt-gas:begin -->", "<!-- receipt-gas:end -->"
RECEIPT_BATCH_SIZES = (1, 100, 10_000)
ONE_SEAT = "purchaseLicense, depth 0, later sale"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compile_artifacts(out: Path) -> dict[str, dict]:
    names = ("BenchERC721", "BenchReceiptEvents")
    subprocess.run(
        ["node", "contracts/compile.js", "--out", str(out), *(f"contracts/test/{n}.sol:{n}" for n in names)],
        cwd=ROOT, check=True, capture_output=True,
    )
    registry = json.loads((ROOT / "registry" / "artifacts" / "ModelRegistry.json").read_text())
    return {"ModelRegistry": registry, **{n: json.loads((out / f"{n}.json").read_text()) for n in names}}


class Bench:
    def __init__(self, w3: Web3, artifacts: dict[str, dict]):
        self.w3 = w3
        Account.enable_unaudited_hdwallet_features()
        self.keys = [hex0x(Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key) for i in range(10)]
        self.addr = [Account.from_key(k).address for k in self.keys]
        self.registry = self.deploy(artifacts["ModelRegistry"], self.addr[0], 250, self.addr[9])
        self.erc721 = self.deploy(artifacts["BenchERC721"])
        self.receipt_events = self.deploy(artifacts["BenchReceiptEvents"])

    def deploy(self, artifact, *args):
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self.w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": self.addr[0]}))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    def gas(self, call, sender: str, value: int = 0) -> int:
        receipt = self.w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
        assert receipt["status"] == 1
        return receipt["gasUsed"]

    def model(self, vendor: int, slug: str, price: int = 10**16, parent: bytes = b"\x00" * 32, bps: int = 0) -> tuple[bytes, int]:
        f = self.registry.functions
        slug_hash = to_bytes32(eip712.slug_hash(slug))
        used = self.gas(f.createModel(slug_hash, price, 0, parent, bps), self.addr[vendor])
        return f.computeModelId(self.addr[vendor], slug_hash).call(), used

    def run(self) -> list[tuple[str, int]]:
        f = self.registry.functions
        rows: list[tuple[str, int]] = []
        mint = self.gas(self.erc721.functions.mint(self.addr[5], 1), self.addr[0])
        rows.append(("ERC-721 mint to a new owner (anchor)", mint))

        root, used = self.model(1, "root")
        rows.append(("createModel (root)", used))
        child, used = self.model(2, "child", parent=root, bps=2000)
        rows.append(("createModel (with parent)", used))
        _, used = self.model(1, "root-2")  # the vendor's credit slot is open already
        rows.append(("createModel (root, the vendor's second model)", used))
        rows.append(("publishVersion", self.gas(f.publishVersion(root, b"\x01" * 32, b"\x02" * 32), self.addr[1])))

        deadline = self.w3.eth.get_block("latest")["timestamp"] + 3600
        typed = eip712.typed_data_publish_version(
            chain_id=31337, contract=self.registry.address, model_id=child, version=1,
            root_digest=b"\x03" * 32, metadata_digest=b"\x04" * 32, deadline=deadline,
        )
        signature = from_hex(eip712.sign_typed_data(typed, self.keys[2]))
        rows.append(("publishVersionBySig", self.gas(f.publishVersionBySig(child, 1, b"\x03" * 32, b"\x04" * 32, deadline, signature), self.addr[0])))

        # lineages of depth 0, 1, 3 (depth = ancestors paid), distinct vendors per level
        lineage = {0: root}
        parent = root
        for depth in (1, 2, 3):
            parent, _ = self.model(depth + 1, f"d{depth}", parent=parent, bps=3000)
            lineage[depth] = parent
        buyers = iter(range(100, 200))
        for depth in (0, 1, 3):
            model_id = lineage[depth]
            price = read_model(self.registry, model_id).price_wei
            cold = self.gas(f.purchaseLicense(model_id, self.fresh(next(buyers)), price), self.addr[8], price)
            warm = self.gas(f.purchaseLicense(model_id, self.fresh(next(buyers)), price), self.addr[8], price)
            rows.append((f"purchaseLicense, depth {depth}, later sale", warm))
            rows.append((f"purchaseLicense, depth {depth}, first sale", cold))
            if depth < 3:  # the four-argument overload the marketplace's purchase transaction sends
                min_expires_at = self.w3.eth.get_block("latest")["timestamp"] + 86_400  # a real expiry's calldata
                call = f.purchaseLicense(model_id, self.fresh(next(buyers)), price, min_expires_at)
                rows.append((f"purchaseLicense with minExpiresAt, depth {depth}, later sale", self.gas(call, self.addr[8], price)))
        rows.append(("withdraw", self.gas(f.withdraw(), self.addr[1])))
        return rows

    def receipt_rows(self) -> list[tuple[int, int, int]]:
        """(batch size, anchorReceipts gas, one-event-per-receipt gas), later batches (the usual case)."""
        f = self.registry.functions
        operator = self.addr[0]
        self.gas(f.setReceiptOperator(operator, True), operator)
        self.gas(f.anchorReceipts(b"\x01" * 32, 1), operator)  # the first batch is not the usual case
        rows = []
        for size in RECEIPT_BATCH_SIZES:
            root = Web3.keccak(text=f"batch {size}")
            anchor = self.gas(f.anchorReceipts(root, size), operator)
            leaves = [Web3.keccak(text=f"receipt {size} {i}") for i in range(size)]
            events = self.gas(self.receipt_events.functions.logReceipts(leaves), operator)
            rows.append((size, anchor, events))
        return rows

    @staticmethod
    def fresh(n: int) -> str:
        return Web3.to_checksum_address(f"0x{0xB0B000 + n:040x}")


def table(rows: list[tuple[str, int]]) -> str:
    mint = rows[0][1]
    lines = ["| operation | gas | × ERC-721 mint |", "|---|---:|---:|"]
    for name, used in rows:
        lines.append(f"| {name} | {used:,} | {used / mint:.2f} |")
    return "\n".join(lines)


def receipt_table(rows: list[tuple[int, int, int]], one_seat: int) -> str:
    lines = [
        "| receipts in the batch | anchorReceipts gas | per receipt | × one-seat purchase | one event per receipt: gas | per receipt | × one-seat purchase |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, anchor, events in rows:
        lines.append(
            f"| {size:,} | {anchor:,} | {anchor / size:,.1f} | {anchor / size / one_seat:.5f} "
            f"| {events:,} | {events / size:,.0f} | {events / size / one_seat:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    port = free_port()
    anvil = subprocess.Popen([str(ROOT / "node_modules/.bin/anvil"), "--port", str(port), "--silent"], stdout=subprocess.DEVNULL)
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        for _ in range(100):
            if w3.is_connected():
                break
            time.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(w3, compile_artifacts(Path(tmp)))
            rows = bench.run()
            receipt_rows = bench.receipt_rows()
    finally:
        anvil.terminate()
        anvil.wait()
    text = table(rows)
    print(text)
    gas = dict(rows)
    receipts_text = receipt_table(receipt_rows, gas[ONE_SEAT])
    print()
    print(receipts_text)
    mint = rows[0][1]
    anchors = {anchor for _, anchor, _ in receipt_rows}
    checks = [
        ("publishVersionBySig <= 0.80 mint", gas["publishVersionBySig"] <= 0.80 * mint),
        ("purchaseLicense depth 1 (later sale) <= 1.10 mints", gas["purchaseLicense, depth 1, later sale"] <= 1.10 * mint),
        ("purchaseLicense depth 1 (first sale) <= 1.30 mints", gas["purchaseLicense, depth 1, first sale"] <= 1.30 * mint),
        # the count's calldata bytes (16 gas per non-zero byte) are the only difference
        ("anchorReceipts gas does not depend on the batch size", max(anchors) - min(anchors) <= 64),
    ]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    if args.write:
        doc = DOC.read_text()
        block = f"{BEGIN}\n{text}\n{END}"
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), block, doc, flags=re.S)
        block = f"{RECEIPTS_BEGIN}\n{receipts_text}\n{RECEIPTS_END}"
        DOC.write_text(re.sub(re.escape(RECEIPTS_BEGIN) + ".*?" + re.escape(RECEIPTS_END), block, doc, flags=re.S))
        print(f"wrote the table into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
