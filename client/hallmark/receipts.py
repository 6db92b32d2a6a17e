"""Download receipts and the Merkle trees that anchor them on chain (the flight recorder, issue 18).

Every granted download of a file yields a receipt; the marketplace gathers them in batches, builds
one Merkle tree per batch and anchors its root with `anchorReceipts` on the ModelRegistry. Anyone
holding a receipt and its proof can then check, against the chain alone, that the marketplace
recorded exactly that download, and the marketplace cannot later drop or alter it unseen.

The tree is OpenZeppelin's StandardMerkleTree, to the byte: leaf =
`keccak256(bytes.concat(keccak256(abi.encode(fields...))))` (the double hash keeps a leaf from
ever being read as an inner node), leaves sorted by hash, pairs hashed sorted. So the same root
and proofs come out of `@openzeppelin/merkle-tree`'s `StandardMerkleTree.of(values, types)`, and
a contract checks a proof with `MerkleProof.verify` (tests/registry/test_receipts_contract.py holds
this library to both).

The one definition, shared by the server (which makes receipts and trees), the client's audit and
its recorder. Field order and types are part of the format: docs/recorder.md lists them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import is_address, is_checksum_address, keccak, to_checksum_address

# (name in JSON, ABI type), in the order the leaf encodes them
FIELDS: tuple[tuple[str, str], ...] = (
    ("receipt_id", "bytes32"),
    ("model_id", "bytes32"),
    ("version", "uint32"),
    ("root_digest", "bytes32"),
    ("file_sha256", "bytes32"),
    ("licensee", "address"),
    ("device", "address"),
    ("range_start", "uint64"),
    ("range_end", "uint64"),
    ("served_at", "uint64"),
)
FIELD_NAMES: tuple[str, ...] = tuple(name for name, _ in FIELDS)
ABI_TYPES: tuple[str, ...] = tuple(kind for _, kind in FIELDS)

HEADER = "X-Hallmark-Receipt"
MAX_HEADER_LENGTH = 2048  # characters of the header value; a canonical receipt takes about 680
# a uint32 count of leaves gives a tree at most 33 levels deep: a longer proof is forged or garbage
MAX_PROOF_LENGTH = 64
ZERO_ADDRESS = "0x" + "00" * 20

_UINT_BITS = {"uint32": 32, "uint64": 64}
_HEX = frozenset("0123456789abcdefABCDEF")


class ReceiptError(ValueError):
    """A receipt (JSON or header) that is malformed, out of range or too large."""


def _bytes32(name: str, value: object) -> bytes:
    if isinstance(value, bytes) and len(value) == 32:
        return value
    if isinstance(value, str) and len(value) == 66 and value[:2] == "0x" and set(value[2:]) <= _HEX:
        return bytes.fromhex(value[2:])
    raise ReceiptError(f"{name}: expected 32 bytes as 0x followed by 64 hex digits")


def _uint(name: str, value: object, kind: str) -> int:
    # bool is an int in Python: `true` is not a version number
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << _UINT_BITS[kind]:
        raise ReceiptError(f"{name}: expected an integer that fits {kind}")
    return value


def _address(name: str, value: object) -> str:
    if not isinstance(value, str) or len(value) != 42 or not is_address(value):
        raise ReceiptError(f"{name}: expected a 20-byte address (0x..., EIP-55 checksum when mixed case)")
    digits = value[2:]
    # eth_utils accepts any mixed case; a mixed-case address with a wrong checksum is a typo
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise ReceiptError(f"{name}: the EIP-55 checksum of a mixed-case address does not match")
    return str(to_checksum_address(value))


@dataclass(frozen=True)
class Receipt:
    """One granted download of one file (a byte range of it), as the marketplace served it.

    `receipt_id` is 32 random bytes the server makes (the id in `/api/v1/receipts/<id>`);
    `range_end` is exclusive (a full download of n bytes is 0, n); `device` is the zero address
    when no device downloaded; `licensee` is the wallet whose licence granted the download (the
    vendor's own for the vendor's downloads); `served_at` is unix seconds.
    """

    receipt_id: bytes
    model_id: bytes
    version: int
    root_digest: bytes
    file_sha256: bytes
    licensee: str
    device: str
    range_start: int
    range_end: int
    served_at: int

    def __post_init__(self) -> None:
        # validated on construction, so a Receipt in hand always encodes (abi_values, to_json);
        # addresses are kept checksummed, bytes32 given as 0x hex become bytes
        normal = _normalise({name: getattr(self, name) for name in FIELD_NAMES})
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        """The receipt of its JSON form: exactly the ten keys, hex strings, integers (no floats, no bools)."""
        if not isinstance(data, Mapping):
            raise ReceiptError("a receipt is a JSON object")
        keys = set(data)
        if keys != set(FIELD_NAMES):
            missing = sorted(set(FIELD_NAMES) - keys)
            unknown = sorted(str(k)[:40] for k in keys - set(FIELD_NAMES))[:5]
            raise ReceiptError(f"receipt keys: missing {missing}, unknown {unknown}")
        return cls(**_normalise(dict(data)))

    def to_json(self) -> dict[str, Any]:
        """The JSON form: bytes32 as lower-case 0x hex, addresses checksummed, integers as numbers."""
        out: dict[str, Any] = {}
        for name, kind in FIELDS:
            value = getattr(self, name)
            out[name] = "0x" + value.hex() if kind == "bytes32" else value
        return out

    def canonical_json(self) -> bytes:
        """Sorted keys, no spaces, UTF-8: the bytes the header carries."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    def abi_values(self) -> tuple[Any, ...]:
        """The leaf's values in ABI order (`StandardMerkleTree.of` takes them as one row)."""
        return tuple(getattr(self, name) for name in FIELD_NAMES)


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in FIELDS:
        value = values[name]
        if kind == "bytes32":
            out[name] = _bytes32(name, value)
        elif kind == "address":
            out[name] = _address(name, value)
        else:
            out[name] = _uint(name, value, kind)
    if out["range_start"] > out["range_end"]:
        raise ReceiptError("range_start is after range_end")
    return out


# --------------------------------------------------------------------------- leaves and trees


def leaf_hash(receipt: Receipt) -> bytes:
    """`keccak256(bytes.concat(keccak256(abi.encode(fields...))))`: StandardMerkleTree's leaf."""
    return keccak(keccak(encode(list(ABI_TYPES), list(receipt.abi_values()))))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """An inner node: the two children hashed in sorted order (OpenZeppelin's commutative hash)."""
    return keccak(a + b if a < b else b + a)


class MerkleTree:
    """OpenZeppelin's StandardMerkleTree over leaf hashes, kept as its flat array.

    Leaves are sorted by hash and laid out at the end of an array of 2n - 1 nodes in reverse
    (node i has children 2i + 1 and 2i + 2; node 0 is the root), exactly as `makeMerkleTree` in
    `@openzeppelin/merkle-tree`, so the root and every proof equal the JavaScript library's.
    """

    def __init__(self, leaves: Sequence[bytes]):
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        for leaf in leaves:
            if not isinstance(leaf, bytes) or len(leaf) != 32:
                raise ValueError("a leaf is 32 bytes (leaf_hash)")
        ordered = sorted(leaves)
        size = 2 * len(ordered) - 1
        nodes: list[bytes] = [b""] * size
        self._index: dict[bytes, int] = {}
        for i, leaf in enumerate(ordered):
            nodes[size - 1 - i] = leaf
            self._index.setdefault(leaf, size - 1 - i)  # a repeated leaf proves through its first place
        for i in range(size - 1 - len(ordered), -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        self._nodes = nodes
        self.leaves: tuple[bytes, ...] = tuple(ordered)

    @property
    def root(self) -> bytes:
        return self._nodes[0]

    def __len__(self) -> int:
        return len(self.leaves)

    def __contains__(self, leaf: object) -> bool:
        return leaf in self._index

    def proof(self, leaf: bytes) -> list[bytes]:
        """The sibling hashes from `leaf` up to the root; KeyError for a leaf not in the tree."""
        index = self._index[leaf]
        proof: list[bytes] = []
        while index > 0:
            proof.append(self._nodes[index + 1 if index % 2 else index - 1])
            index = (index - 1) // 2
        return proof


def build_tree(leaves: list[bytes]) -> MerkleTree:
    """The batch's tree of these leaf hashes (order does not matter: they are sorted)."""
    return MerkleTree(leaves)


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """`MerkleProof.verify`: whether `proof` leads from `leaf` to `root`. Malformed input is False."""
    if len(proof) > MAX_PROOF_LENGTH or len(root) != 32 or len(leaf) != 32:
        return False
    node = leaf
    for sibling in proof:
        if not isinstance(sibling, bytes) or len(sibling) != 32:
            return False
        node = hash_pair(node, sibling)
    return node == root


# ---------------------------------------------------------------------------------- header


def encode_header(receipt: Receipt) -> str:
    """`X-Hallmark-Receipt`: base64url, without padding, of the canonical JSON."""
    return _base64url(receipt.canonical_json())


def encode_header_json(data: Mapping[str, Any]) -> str:
    """`encode_header` of a receipt's JSON form that is already normal (what `Receipt.to_json`
    returns: lower-case 0x bytes32, checksummed addresses, integers), without validating it again:
    the server's download path, which made those values itself (tests hold the two equal)."""
    return _base64url(json.dumps(dict(data), sort_keys=True, separators=(",", ":")).encode())


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_header(text: str) -> Receipt:
    """The receipt of an `X-Hallmark-Receipt` value; ReceiptError when too long or malformed."""
    if len(text) > MAX_HEADER_LENGTH:
        raise ReceiptError(f"receipt header longer than {MAX_HEADER_LENGTH} characters")
    text = text.strip()
    if not text or set(text) - _BASE64URL:
        raise ReceiptError("receipt header is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ReceiptError("receipt header is not base64url of a JSON object") from exc
    if not isinstance(data, dict):
        raise ReceiptError("a receipt is a JSON object")
    return Receipt.from_json(data)


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def proof_to_hex(proof: Sequence[bytes]) -> list[str]:
    """A proof as the API returns it: 0x-prefixed lower-case hex strings."""
    return ["0x" + node.hex() for node in proof]


def proof_from_hex(items: object) -> list[bytes]:
    """A proof from the API's JSON; ReceiptError when it is not a short list of 32-byte hex strings."""
    if not isinstance(items, list) or len(items) > MAX_PROOF_LENGTH:
        raise ReceiptError(f"a proof is a list of at most {MAX_PROOF_LENGTH} hashes")
    return [_bytes32("proof", item) for item in items]
