"""`hallmark audit RECEIPT.json --rpc URL --registry ADDRESS [--proof FILE]`: check a download
receipt against the chain alone (no marketplace, no trust in it).

RECEIPT.json is what `GET /api/v1/receipts/<id>` answers (`{"receipt", "batch", "proof", ...}`),
or a bare receipt (e.g. from `hallmark recorder export`) with `--proof` naming that answer.
Three checks, in this order, each read from the ModelRegistry in one JSON-RPC batch:

1. the proof leads from the receipt's leaf to the root anchored on chain for its batch
   (`receiptBatch(batchId)`): the marketplace recorded exactly this download and cannot drop it;
2. the receipt's root digest is `versionDigest(modelId, version)`: the bytes served were the
   version the vendor signed;
3. the version was not revoked at the time served: the block time of its `VersionRevoked` log
   (if any) is after `served_at` (a revocation in the same second counts as before).

Exit codes: 0 valid, 4 not anchored yet (the input has no batch or proof: ask again later),
5 the proof does not lead to the anchored root (or the batch is unknown on chain), 6 the root
digest is not the chain's (or the version is unknown), 7 chain unreachable, 8 the version was
already revoked when served; 1 the revocation's log was not found from --from-block; 2 usage
error or malformed input.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from ..console import CommandError, say, usage
from ..receipts import Receipt, ReceiptError, leaf_hash, proof_from_hex, verify_proof
from ..watch import LOG_STEP, REVOKED, ChainUnreachable, Rpc
from .verify import chain_options

MAX_INPUT = 256 * 1024  # bytes of RECEIPT.json / --proof: a receipt and a 64-hash proof take ~6 KiB
VALID, NOT_ANCHORED, PROOF, DIGEST, UNREACHABLE, REVOKED_WHEN_SERVED = 0, 4, 5, 6, 7, 8

RECEIPT_BATCH = function_signature_to_4byte_selector("receiptBatch(uint64)")
VERSION_DIGEST = function_signature_to_4byte_selector("versionDigest(bytes32,uint32)")
IS_REVOKED = function_signature_to_4byte_selector("isRevoked(bytes32,uint32)")

MAX_BATCH_ID = (1 << 64) - 1  # the contract's uint64 batch ids


@dataclass
class Audit:
    receipt: Receipt
    leaf: bytes
    batch_id: int | None
    exit_code: int = VALID
    checks: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)

    def fail(self, code: int, check: str, message: str) -> None:
        self.checks[check] = message
        if self.exit_code == VALID:
            self.exit_code = code

    @property
    def outcome(self) -> str:
        return {VALID: "valid", NOT_ANCHORED: "not_anchored", PROOF: "proof_mismatch", DIGEST: "digest_mismatch",
                REVOKED_WHEN_SERVED: "revoked_when_served"}[self.exit_code]


def run(args: argparse.Namespace) -> int:
    rpc_url, registry = chain_options(args)
    if args.from_block < 0:
        raise usage("--from-block: a block number, 0 or more")
    document = _load(Path(args.receipt))
    receipt_json = document.get("receipt", document)
    try:
        receipt = Receipt.from_json(receipt_json)
    except ReceiptError as exc:
        raise usage(f"{args.receipt}: not a receipt: {exc}") from None
    anchor = _load(Path(args.proof)) if args.proof else document
    batch_id, proof = _anchor(anchor, args.proof or args.receipt)
    audit = Audit(receipt, leaf_hash(receipt), batch_id)
    if batch_id is None or proof is None:
        audit.fail(NOT_ANCHORED, "proof", "the input holds no batch and proof: the receipt's batch is not anchored yet "
                   "(GET /api/v1/receipts/<id> again later)")
        return _report(audit, args.json)
    try:
        _check(audit, proof, anchor, Rpc(rpc_url), registry, args.from_block)
    except ChainUnreachable as exc:
        raise CommandError(f"chain unreachable: {exc}; nothing was checked", UNREACHABLE) from None
    return _report(audit, args.json)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_INPUT + 1)
    except OSError as exc:
        raise usage(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_INPUT:
        raise usage(f"{path} is over {MAX_INPUT // 1024} KiB: not a receipt")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise usage(f"{path} is not JSON") from None
    if not isinstance(data, dict):
        raise usage(f"{path} is not a JSON object")
    return data


def _anchor(document: dict[str, Any], source: str) -> tuple[int | None, list[bytes] | None]:
    """The batch id and the proof of the API's answer; (None, None) while not anchored."""
    batch, proof = document.get("batch"), document.get("proof")
    if batch is None or proof is None:
        return None, None
    batch_id = batch.get("batch_id") if isinstance(batch, dict) else None
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or not 1 <= batch_id <= MAX_BATCH_ID:
        raise usage(f"{source}: batch.batch_id must be a batch number (1 or more)")
    try:
        return batch_id, proof_from_hex(proof)
    except ReceiptError as exc:
        raise usage(f"{source}: {exc}") from None


def _call(registry: str, data: bytes) -> tuple[str, list[Any]]:
    return "eth_call", [{"to": registry, "data": "0x" + data.hex()}, "latest"]


def _check(audit: Audit, proof: list[bytes], anchor: dict[str, Any], rpc: Rpc, registry: str, from_block: int) -> None:
    receipt = audit.receipt
    key = abi_encode(["bytes32", "uint32"], [receipt.model_id, receipt.version])
    answers = rpc.batch([
        _call(registry, RECEIPT_BATCH + abi_encode(["uint64"], [audit.batch_id])),
        _call(registry, VERSION_DIGEST + key), _call(registry, IS_REVOKED + key), ("eth_blockNumber", []),
    ])
    try:
        root, count, anchored_at = abi_decode(["bytes32", "uint32", "uint64"], _raw(answers[0]))
        (digest,) = abi_decode(["bytes32"], _raw(answers[1]))
        (revoked,) = abi_decode(["bool"], _raw(answers[2]))
        head = int(str(answers[3]), 16)
    except Exception as exc:  # eth_abi's DecodingError, a revert's empty answer, a non-hex answer
        raise ChainUnreachable(f"the RPC node's answers are not the registry's ({exc.__class__.__name__}); "
                               "is --registry a ModelRegistry with receipt batches?") from None
    root, digest = bytes(root), bytes(digest)
    audit.chain = {"batch_root": "0x" + root.hex(), "batch_count": count, "anchored_at": anchored_at,
                   "version_digest": "0x" + digest.hex(), "revoked": revoked, "head": head}
    _check_proof(audit, proof, root, count, anchored_at, anchor)
    _check_digest(audit, digest)
    if revoked:
        _check_revocation(audit, rpc, registry, from_block, head)
    else:
        audit.checks["revocation"] = "ok: the version is not revoked"


def _raw(answer: Any) -> bytes:
    return bytes.fromhex(str(answer).removeprefix("0x"))


def _check_proof(audit: Audit, proof: list[bytes], root: bytes, count: int, anchored_at: int, anchor: dict[str, Any]) -> None:
    if count == 0 or root == b"\x00" * 32:
        audit.fail(PROOF, "proof", f"batch {audit.batch_id} is not anchored on this registry")
        return
    claimed = (anchor.get("batch") or {}).get("root")
    if isinstance(claimed, str) and claimed.lower() != "0x" + root.hex():
        audit.notes.append(f"the input says batch {audit.batch_id}'s root is {claimed[:66]}, the chain says 0x{root.hex()}")
    if not verify_proof(proof, root, audit.leaf):
        audit.fail(PROOF, "proof", f"the proof does not lead from this receipt (leaf 0x{audit.leaf.hex()}) to the root "
                   f"anchored for batch {audit.batch_id} (0x{root.hex()}): the receipt or the proof was altered")
        return
    audit.checks["proof"] = f"ok: leaf 0x{audit.leaf.hex()} is in batch {audit.batch_id} ({count} receipt(s), " \
                            f"root 0x{root.hex()}, anchored {_time(anchored_at)})"
    if audit.receipt.served_at > anchored_at:
        audit.notes.append(f"the receipt says it was served at {_time(audit.receipt.served_at)}, after its batch was "
                           f"anchored ({_time(anchored_at)}): the marketplace's clock or the chain's is off")


def _check_digest(audit: Audit, digest: bytes) -> None:
    receipt = audit.receipt
    if digest == b"\x00" * 32:
        audit.fail(DIGEST, "root_digest", f"the registry has no version {receipt.version} of model 0x{receipt.model_id.hex()}")
    elif digest != receipt.root_digest:
        audit.fail(DIGEST, "root_digest", f"the receipt's root digest 0x{receipt.root_digest.hex()} is not the one "
                   f"the vendor signed on chain (0x{digest.hex()})")
    else:
        audit.checks["root_digest"] = f"ok: versionDigest of version {receipt.version} is 0x{digest.hex()}"


def _check_revocation(audit: Audit, rpc: Rpc, registry: str, from_block: int, head: int) -> None:
    """Find the version's VersionRevoked log (in LOG_STEP ranges, one batch) and its block time."""
    receipt = audit.receipt
    topics = [REVOKED, "0x" + receipt.model_id.hex(), "0x" + receipt.version.to_bytes(32, "big").hex()]
    calls = []
    start = from_block
    while start <= head:
        stop = min(start + LOG_STEP - 1, head)
        calls.append(("eth_getLogs", [{"address": registry, "fromBlock": hex(start), "toBlock": hex(stop), "topics": topics}]))
        start = stop + 1
    logs = [log for chunk in rpc.batch(calls) if isinstance(chunk, list) for log in chunk if isinstance(log, dict)]
    blocks = sorted(int(str(log.get("blockNumber") or "0x0"), 16) for log in logs)
    if not blocks:
        raise CommandError(f"the version is revoked, but no VersionRevoked log was found from block {from_block}: "
                           "pass a lower --from-block (or a node that keeps the logs)")
    block = rpc.call("eth_getBlockByNumber", [hex(blocks[0]), False])
    try:
        revoked_at = int(str(block["timestamp"]), 16)
    except (TypeError, KeyError, ValueError):
        raise ChainUnreachable("the RPC node's block has no timestamp") from None
    audit.chain.update(revoked_block=blocks[0], revoked_at=revoked_at)
    when = f"revoked in block {blocks[0]} at {_time(revoked_at)}"
    if revoked_at <= receipt.served_at:
        audit.fail(REVOKED_WHEN_SERVED, "revocation", f"the version was {when}, before the file was served "
                   f"({_time(receipt.served_at)})")
    else:
        audit.checks["revocation"] = f"ok: served at {_time(receipt.served_at)}; the version was {when}, after that"


def _time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (unix seconds)"


def _report(audit: Audit, as_json: bool) -> int:
    receipt = audit.receipt.to_json()
    if as_json:
        say(json.dumps({
            "outcome": audit.outcome, "exit_code": audit.exit_code, "receipt_id": receipt["receipt_id"],
            "leaf": "0x" + audit.leaf.hex(), "batch_id": audit.batch_id, "checks": audit.checks, "notes": audit.notes,
            "chain": audit.chain, "receipt": receipt,
        }, indent=2))
        return audit.exit_code
    first = next((m for m in audit.checks.values() if not m.startswith("ok")), "")
    say(f"{audit.outcome}: " + (first or f"receipt {receipt['receipt_id']} is anchored on chain and matches it"))
    rows = [("receipt", receipt["receipt_id"]), ("model", receipt["model_id"]), ("version", receipt["version"]),
            ("file", f"sha256 {receipt['file_sha256']} bytes [{receipt['range_start']}, {receipt['range_end']})"),
            ("licensee", receipt["licensee"]), ("device", receipt["device"]), ("served at", _time(receipt["served_at"]))]
    for label, value in rows + [(name.replace("_", " "), message) for name, message in audit.checks.items()]:
        say(f"  {label:<12} {value}")
    for note in audit.notes:
        say(f"  note: {note}")
    return audit.exit_code
