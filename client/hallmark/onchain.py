"""Typed values at the chain boundary: hex conversion in one place, PERPETUAL, and `OnChainModel`.

The server (``registry.chain`` re-exports all of this) and the client share one copy, so a
bytes32 is parsed, a hex string built and the ``models()`` view read the same way everywhere.

Example:
    >>> to_bytes32("0x" + "ab" * 32) == bytes([0xAB]) * 32
    True
    >>> hex0x(b"\\x01\\x02")
    '0x0102'
    >>> OnChainModel.from_call(["0x" + "00" * 20, 0, 0, 0, False, 0, 0, b"\\x00" * 32]).exists
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PERPETUAL = 2**64 - 1
"""The contract's licence expiry for ever (`type(uint64).max`); `licenseDuration == 0` sells it."""

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_BYTES32 = "0x" + "00" * 32


def from_hex(value: str) -> bytes:
    """Bytes of a hex string, with or without its 0x (or 0X) prefix; ValueError if not hex.

    Args:
        value: hex text such as ``"0xdeadbeef"`` or ``"deadbeef"``.
    """
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not hex") from exc


def to_bytes32(value: str | bytes) -> bytes:
    """The 32 raw bytes of a bytes32 given as bytes or (0x-)hex; ValueError unless exactly 32 bytes.

    Args:
        value: a model id, digest or reason as ``"0x" + 64 hex digits`` (prefix optional) or bytes.
    """
    raw = bytes(value) if isinstance(value, (bytes, bytearray)) else from_hex(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def hex0x(value: bytes) -> str:
    """Lowercase 0x-hex of raw bytes (``bytes``, ``bytearray`` or web3's ``HexBytes``).

    Args:
        value: the bytes to show, e.g. a transaction hash from a receipt.
    """
    return "0x" + bytes(value).hex()


@dataclass(frozen=True)
class OnChainModel:
    """What the registry's ``models(bytes32)`` view returns, field for field in the getter's order.

    A model id the contract never saw reads as all zeros: ``exists`` is False then.
    """

    vendor: str
    latest_version: int
    upstream_bps: int
    depth: int
    listed: bool
    price_wei: int
    license_duration: int
    """Seconds a purchase adds; 0 sells a perpetual licence (expiry PERPETUAL)."""
    parent_id: str
    """0x-hex model id of the parent, ZERO_BYTES32 for a root model."""

    @classmethod
    def from_call(cls, values: Sequence[Any]) -> OnChainModel:
        """Build from the tuple ``contract.functions.models(id).call()`` returns."""
        vendor, latest_version, upstream_bps, depth, listed, price, license_duration, parent_id = values
        return cls(
            vendor=str(vendor),
            latest_version=int(latest_version),
            upstream_bps=int(upstream_bps),
            depth=int(depth),
            listed=bool(listed),
            price_wei=int(price),
            license_duration=int(license_duration),
            parent_id=hex0x(to_bytes32(parent_id)),
        )

    @property
    def exists(self) -> bool:
        """True once the model was created on chain (its vendor is set)."""
        return int(self.vendor, 16) != 0

    @property
    def has_parent(self) -> bool:
        return self.parent_id != ZERO_BYTES32

    @property
    def perpetual(self) -> bool:
        """A purchase sells a licence for ever."""
        return self.license_duration == 0


def read_model(registry: Any, model_id: str | bytes, block_identifier: Any = None) -> OnChainModel:
    """Read ``models(model_id)`` from a bound ModelRegistry contract as an OnChainModel.

    Args:
        registry: a web3 contract bound to the registry's address and ABI.
        model_id: the model id as 0x-hex or 32 bytes.
        block_identifier: the block to read at (default the node's latest).
    """
    call = registry.functions.models(to_bytes32(model_id))
    values = call.call() if block_identifier is None else call.call(block_identifier=block_identifier)
    return OnChainModel.from_call(values)
