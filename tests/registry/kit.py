"""Helpers for contract tests: send from anvil's unlocked accounts, expect named reverts,
compile and deploy the test-only contracts with the same solc-js build as the registry."""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from hallmark import eip712
from registry import chain as chain_mod
from registry.chain import ContractReverted, chain_errors, from_hex, model_on_chain, to_bytes32

ROOT = Path(__file__).resolve().parents[2]
ZERO = b"\x00" * 32


@functools.cache
def compile_contract(source: str, name: str) -> dict:
    """Compile `name` from `source` (relative to the repository) with contracts/compile.js (once per session)."""
    out = Path(tempfile.mkdtemp(prefix="hallmark-contracts-"))
    subprocess.run(
        ["node", "contracts/compile.js", "--out", str(out), f"{source}:{name}"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )
    return json.loads((out / f"{name}.json").read_text())


def compile_test_contract(name: str) -> dict:
    """Compile contracts/test/<name>.sol (once per session)."""
    return compile_contract(f"contracts/test/{name}.sol", name)


def deploy(name: str, *args, sender: str):
    w3 = chain_mod.web3()
    artifact = compile_test_contract(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": sender}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


class Registry:
    """The deployed ModelRegistry, driven from unlocked anvil accounts."""

    def __init__(self, anvil):
        self.anvil = anvil
        self.w3 = chain_mod.web3()
        self.c = chain_mod.registry_contract()
        self.f = self.c.functions

    def addr(self, index: int) -> str:
        return self.anvil.account(index).address

    def send(self, call, sender: str, value: int = 0):
        with chain_errors():
            tx_hash = call.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def reverts(self, error_name: str, call, sender: str, value: int = 0) -> ContractReverted:
        with pytest.raises(ContractReverted) as caught:
            self.send(call, sender, value)
        assert caught.value.error_name == error_name, caught.value
        return caught.value

    def events(self, receipt, name: str) -> list[dict]:
        return [dict(e["args"]) for e in getattr(self.c.events, name)().process_receipt(receipt, errors=DISCARD)]

    def create(self, vendor: str, slug: str, price: int = 1000, duration: int = 0, parent: bytes = ZERO, bps: int = 0) -> bytes:
        receipt = self.send(self.f.createModel(slug_hash(slug), price, duration, parent, bps), vendor)
        return self.events(receipt, "ModelCreated")[0]["modelId"]

    def publish(self, vendor: str, model_id: bytes, digest: bytes | None = None) -> int:
        receipt = self.send(self.f.publishVersion(model_id, digest or keccak(text="v"), keccak(text="meta")), vendor)
        return self.events(receipt, "VersionPublished")[0]["version"]

    def buy(self, buyer: str, model_id: bytes, licensee: str | None = None, value: int | None = None,
            max_price: int | None = None, min_expires_at: int | None = None):
        """`purchaseLicense` at the current price; with `min_expires_at`, the four-argument overload."""
        price = model_on_chain(model_id, contract=self.c).price_wei
        args = [model_id, licensee or buyer, price if max_price is None else max_price]
        if min_expires_at is not None:
            args.append(min_expires_at)
        return self.send(self.f.purchaseLicense(*args), buyer, price if value is None else value)

    def send_unsigned(self, tx: dict, sender: str):
        """Send an unsigned transaction as the API hands it to a wallet (`to`, `data`, `value`)."""
        with chain_errors():
            tx_hash = self.w3.eth.send_transaction(
                {"from": sender, "to": tx["to"], "data": tx["data"], "value": int(tx["value"])}
            )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def sign_publish(self, key: str, model_id: bytes, version: int, root: bytes, meta: bytes, deadline: int,
                     chain_id: int = 31337, contract: str | None = None) -> bytes:
        typed = eip712.typed_data_publish_version(
            chain_id=chain_id, contract=contract or self.c.address, model_id=model_id, version=version,
            root_digest=root, metadata_digest=meta, deadline=deadline,
        )
        return from_hex(eip712.sign_typed_data(typed, key))


def slug_hash(slug: str) -> bytes:
    return to_bytes32(eip712.slug_hash(slug))


def fund_and_impersonate(anvil, address: str, wei: int = 10**24) -> str:
    address = to_checksum_address(address)
    anvil.rpc("anvil_setBalance", [address, hex(wei)])
    anvil.rpc("anvil_impersonateAccount", [address])
    return address
