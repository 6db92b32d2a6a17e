"""Typed values at the chain boundary: one hex helper, one PERPETUAL, `models()` read as an OnChainModel."""

import dataclasses
import re
from pathlib import Path

import pytest
from eth_utils import keccak
from hexbytes import HexBytes

from hallmark import onchain
from registry import chain as chain_mod
from registry.chain import PERPETUAL, ChainUnavailable, OnChainModel, from_hex, hex0x, model_on_chain, to_bytes32

from .kit import Registry

ROOT = Path(__file__).resolve().parents[2]


def test_to_bytes32_reads_hex_with_or_without_0x_and_bytes_and_refuses_any_other_length():
    raw = bytes(range(32))
    assert to_bytes32("0x" + raw.hex()) == to_bytes32(raw.hex()) == to_bytes32("0X" + raw.hex().upper()) == raw
    assert to_bytes32(raw) == to_bytes32(bytearray(raw)) == to_bytes32(HexBytes(raw)) == raw
    with pytest.raises(ValueError, match="expected 32 bytes, got 31"):
        to_bytes32("0x" + "ab" * 31)
    with pytest.raises(ValueError, match="expected 32 bytes, got 33"):
        to_bytes32(b"\x00" * 33)
    with pytest.raises(ValueError, match="is not hex"):
        to_bytes32("0x" + "zz" * 32)


def test_hex0x_and_from_hex_round_trip_any_length():
    assert hex0x(b"\xde\xad") == hex0x(bytearray(b"\xde\xad")) == hex0x(HexBytes("0xdead")) == "0xdead"
    assert hex0x(b"") == "0x"
    signature = bytes(range(65))
    assert from_hex(hex0x(signature)) == from_hex(signature.hex()) == signature
    with pytest.raises(ValueError, match="is not hex"):
        from_hex("0xabc")


def test_perpetual_is_the_contracts_uint64_max_and_the_server_reexports_the_clients_one():
    assert PERPETUAL == 2**64 - 1
    assert chain_mod.PERPETUAL is onchain.PERPETUAL and chain_mod.OnChainModel is onchain.OnChainModel


def test_on_chain_model_fields_follow_the_models_getter_of_the_abi_in_order():
    getter = next(i for i in chain_mod.load_artifact()["abi"] if i.get("name") == "models" and i["type"] == "function")
    snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", o["name"]).lower() for o in getter["outputs"]]
    assert [f.name for f in dataclasses.fields(OnChainModel)] == [
        "price_wei" if name == "price" else name for name in snake
    ]


def test_model_on_chain_reads_every_field_of_a_derived_model(chain):
    reg = Registry(chain)
    parent = reg.create(reg.addr(1), "base", price=5, duration=0)
    child = reg.create(reg.addr(2), "tuned", price=777, duration=3600, parent=parent, bps=2500)
    reg.publish(reg.addr(2), child)
    reg.send(reg.f.setTerms(child, 777, 3600, False), reg.addr(2))

    model = model_on_chain(hex0x(child))
    assert model == OnChainModel(
        vendor=reg.addr(2), latest_version=1, upstream_bps=2500, depth=1, listed=False,
        price_wei=777, license_duration=3600, parent_id=hex0x(parent),
    )
    assert model.exists and model.has_parent and not model.perpetual
    root = model_on_chain(parent)  # raw bytes work as well as hex
    assert root.exists and not root.has_parent and root.perpetual and root.listed and root.depth == 0


def test_a_model_id_the_chain_never_saw_reads_as_not_existing(chain):
    model = model_on_chain(hex0x(keccak(text="nobody made this")))
    assert not model.exists and model.vendor == chain_mod.ZERO_ADDRESS and model.parent_id == chain_mod.ZERO_BYTES32


def test_model_on_chain_with_the_node_down_raises_chain_unavailable(chain_down):
    with pytest.raises(ChainUnavailable):
        model_on_chain(keccak(text="any"))


def test_no_app_reads_a_contract_view_by_tuple_position_or_spells_out_perpetual():
    """The rule is kept: a contract view is read through a typed wrapper (`call()[5]` hides which
    field it is), and the perpetual expiry has one definition, hallmark.onchain.PERPETUAL. The
    file format parsers keep their own uint64 bounds (they are not licence expiries)."""
    offenders = []
    for folder in ("registry", "royalties", "marketplace", "client/hallmark", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("inspection.py", "sandbox.py"):
                continue
            text = path.read_text(encoding="utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                if re.search(r"\.call\([^)]*\)\[\d", line) or (re.search(r"2 ?\*\* ?64", line) and path.name != "onchain.py"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
