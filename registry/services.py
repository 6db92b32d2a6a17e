"""Writes on the chain: deploying the registry, the transaction outbox and its relayer."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from . import chain
from .chain import ChainMisconfigured, ChainUnavailable, ContractReverted, chain_errors
from .models import ChainTransaction, RelayerNonce

logger = logging.getLogger(__name__)


class TransactionPending(Exception):
    """Sent, but not yet mined or not yet CONFIRMATIONS deep: try again later."""

    code = "transaction_pending"


class TransactionFailed(Exception):
    """The transaction cannot go through (it reverted or would revert); not retried."""

    code = "transaction_failed"

    def __init__(self, message: str, *, error_code: str = "transaction_failed"):
        super().__init__(message)
        self.error_code = error_code


# ------------------------------------------------------------------------------- deploy


def registry_deploy(
    *,
    rpc_url: str,
    private_key: str,
    fee_bps: int,
    fee_recipient: str | None = None,
    owner: str | None = None,
    write_record: bool = True,
) -> dict[str, Any]:
    """Deploy ModelRegistry with `private_key` and record it in deployments/<chain id>.json."""
    w3 = chain.web3(rpc_url)
    with chain_errors():
        chain_id = w3.eth.chain_id
    account = chain.guard_key(private_key, chain_id)
    owner = to_checksum_address(owner or account.address)
    fee_recipient = to_checksum_address(fee_recipient or owner)
    factory = chain.registry_factory(rpc_url)
    with chain_errors():
        tx = factory.constructor(owner, int(fee_bps), fee_recipient).build_transaction(
            {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"), "chainId": chain_id}
        )
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=settings.RECEIPT_TIMEOUT)
    if receipt["status"] != 1:
        raise ContractReverted("DeploymentFailed", (tx_hash.hex(),))
    artifact = chain.load_artifact()
    record = {
        "chain_id": chain_id,
        "address": receipt["contractAddress"],
        "deployer": account.address,
        "owner": owner,
        "platform_fee_bps": int(fee_bps),
        "platform_fee_recipient": fee_recipient,
        "transaction_hash": "0x" + bytes(tx_hash).hex(),
        "block_number": receipt["blockNumber"],
        "compiler": artifact["compiler"]["version"],
        "deployed_at": datetime.now(timezone.utc).isoformat(),
    }
    if write_record:
        path = chain.deployment_path(chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a record
    return record


def registry_has_code(address: str, rpc_url: str | None = None) -> bool:
    """Whether `address` holds contract code on the chain (a reset chain has none)."""
    with chain_errors():
        return len(chain.web3(rpc_url).eth.get_code(to_checksum_address(address))) > 0


# ------------------------------------------------------------------------------- outbox


def transaction_enqueue(*, idempotency_key: str, function: str, args: dict[str, Any], value_wei: int = 0) -> ChainTransaction:
    """Record an intended registry call; call inside the domain change's database transaction."""
    _abi_inputs(function)  # unknown function names fail here, not in the worker
    tx, _ = ChainTransaction.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"function": function, "args": _jsonable(args), "value_wei": int(value_wei)},
    )
    return tx


def transaction_process(*, transaction_id: int) -> ChainTransaction:
    """Relay one outbox row to the chain and wait until it is CONFIRMATIONS deep.

    Idempotent and safe to call again after any crash: a call already applied on chain is
    recognised, a signed transaction is re-broadcast as the same bytes, never re-signed.
    Raises ChainUnavailable / TransactionPending (retry later) or TransactionFailed (final).
    """
    tx = ChainTransaction.objects.get(pk=transaction_id)
    if tx.status in (ChainTransaction.Status.CONFIRMED, ChainTransaction.Status.FAILED):
        return tx
    chain.check_chain_id()
    if tx.status == ChainTransaction.Status.QUEUED:
        existing = _already_applied(tx)
        if existing is not None:
            return _mark_confirmed(tx.pk, existing)
        tx = _sign(tx)
    _broadcast(tx)
    receipt = _await_receipt(tx)
    if receipt["status"] != 1:
        reason = _replay_revert(tx, receipt)
        _mark_failed(tx.pk, reason.error_name, str(reason))
        raise TransactionFailed(str(reason), error_code=reason.error_name)
    return _mark_confirmed(tx.pk, receipt)


def transaction_events(tx: ChainTransaction) -> list[dict[str, Any]]:
    """The registry events emitted by a confirmed transaction, decoded (`event`, `args`)."""
    if not tx.tx_hash:
        return []
    contract = chain.registry_contract()
    with chain_errors():
        receipt = chain.web3().eth.get_transaction_receipt(tx.tx_hash)
    events = []
    for log in receipt["logs"]:
        if to_checksum_address(log["address"]) != contract.address:
            continue
        for event in contract.events:
            try:
                decoded = event().process_log(log)
            except Exception:
                continue
            events.append({"event": decoded["event"], "args": dict(decoded["args"])})
            break
    return events


def transaction_mark_failed(*, transaction_id: int, error_code: str, message: str) -> None:
    """Give up on a queued transaction (e.g. its signature expired before the chain came back)."""
    _mark_failed(transaction_id, error_code, message)


# ------------------------------------------------------------------------------- internals


def _abi_inputs(function: str) -> list[dict[str, Any]]:
    for item in chain.load_artifact()["abi"]:
        if item["type"] == "function" and item["name"] == function:
            return item["inputs"]
    raise ValueError(f"ModelRegistry has no function {function!r}")


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in args.items():
        if isinstance(value, (bytes, bytearray, HexBytes)):
            out[key] = "0x" + bytes(value).hex()
        elif isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int):
            out[key] = str(value)  # digits, never a float in JSON
        else:
            out[key] = value
    return out


def _call_args(tx: ChainTransaction) -> list[Any]:
    values = []
    for item in _abi_inputs(tx.function):
        raw = tx.args[item["name"]]
        kind = item["type"]
        if kind.startswith("bytes"):
            values.append(bytes.fromhex(raw[2:] if raw.startswith("0x") else raw))
        elif kind.startswith(("uint", "int")):
            values.append(int(raw))
        elif kind == "address":
            values.append(to_checksum_address(raw))
        else:
            values.append(raw)
    return values


def _bound_call(tx: ChainTransaction):
    contract = chain.registry_contract()
    return getattr(contract.functions, tx.function)(*_call_args(tx))


@dataclass
class _Applied:
    tx_hash: str
    block_number: int
    block_hash: str


def _already_applied(tx: ChainTransaction) -> _Applied | dict | None:
    """The on-chain trace of this call if an earlier attempt (or anyone) already made it."""
    contract = chain.registry_contract()
    args = tx.args
    with chain_errors():
        if tx.function == "publishVersionBySig":
            model_id = bytes.fromhex(args["modelId"][2:])
            version = int(args["version"])
            digest = contract.functions.versionDigest(model_id, version).call()
            if bytes(digest) == bytes.fromhex(args["rootDigest"][2:]):
                return _find_log(contract.events.VersionPublished, {"modelId": model_id, "version": version})
        elif tx.function == "createModelBySig":
            model_id = contract.functions.computeModelId(
                to_checksum_address(args["vendor"]), bytes.fromhex(args["slugHash"][2:])
            ).call()
            if contract.functions.models(model_id).call()[0] != "0x" + "00" * 20:
                return _find_log(contract.events.ModelCreated, {"modelId": model_id})
    return None


def _find_log(event, filters: dict[str, Any]) -> _Applied:
    record = chain.read_deployment() or {}
    logs = event.get_logs(from_block=int(record.get("block_number", 0)), argument_filters=filters)
    if not logs:
        w3 = chain.web3()
        head = w3.eth.get_block("latest")
        return _Applied("", head["number"], "0x" + bytes(head["hash"]).hex())
    log = logs[-1]
    return _Applied("0x" + bytes(log["transactionHash"]).hex(), log["blockNumber"], "0x" + bytes(log["blockHash"]).hex())


def _fees(w3) -> dict[str, int]:
    block = w3.eth.get_block("latest")
    base_fee = int(block.get("baseFeePerGas") or 0)
    try:
        priority = int(w3.eth.max_priority_fee)
    except Exception:  # nodes without eth_maxPriorityFeePerGas
        priority = 1_000_000_000
    return {"maxPriorityFeePerGas": priority, "maxFeePerGas": 2 * base_fee + priority}


def _sign(tx: ChainTransaction) -> ChainTransaction:
    """Estimate (a call that would revert fails here, before any nonce is taken), then sign."""
    account: LocalAccount = chain.relayer_account()
    w3 = chain.web3()
    call = _bound_call(tx)
    params = {"from": account.address, "value": int(tx.value_wei), "chainId": settings.CHAIN_ID}
    try:
        with chain_errors():
            gas = call.estimate_gas(params)
    except ContractReverted as exc:
        current = ChainTransaction.objects.get(pk=tx.pk)
        if current.status != ChainTransaction.Status.QUEUED:
            return current  # another worker sent it meanwhile: that is why this call would revert now
        _mark_failed(tx.pk, exc.error_name, str(exc), only_if_queued=True)
        raise TransactionFailed(str(exc), error_code=exc.error_name) from exc
    with chain_errors():
        fees = _fees(w3)
    with transaction.atomic():
        # Claim the row with a write first: PostgreSQL locks the row, SQLite the database, so a
        # second worker waits here and then sees it signed (SELECT ... FOR UPDATE alone is a
        # no-op on SQLite, where two workers could otherwise both sign).
        claimed = ChainTransaction.objects.filter(
            pk=tx.pk, status=ChainTransaction.Status.QUEUED, raw_transaction=""
        ).update(attempts=F("attempts") + 1)
        locked = ChainTransaction.objects.select_for_update().get(pk=tx.pk)
        if not claimed:
            return locked  # another worker signed it meanwhile
        counter, _ = RelayerNonce.objects.get_or_create(address=account.address)
        counter = RelayerNonce.objects.select_for_update().get(pk=counter.pk)
        # the node's count is read under the lock: read before it, another worker could sign,
        # send and confirm a transaction in between, and this one would take its nonce again
        with chain_errors():
            chain_nonce = w3.eth.get_transaction_count(account.address, "pending")
        outstanding = ChainTransaction.objects.filter(
            from_address=account.address, status=ChainTransaction.Status.SIGNED
        ).exists()
        # a node that forgot our pending transactions (a reset dev chain) must not leave a gap
        nonce = max(counter.next_nonce, chain_nonce) if outstanding else chain_nonce
        built = call.build_transaction({**params, **fees, "gas": int(gas * 1.2) + 10_000, "nonce": nonce})
        signed = account.sign_transaction(built)
        locked.from_address = account.address
        locked.nonce = nonce
        locked.raw_transaction = "0x" + bytes(signed.raw_transaction).hex()
        locked.tx_hash = "0x" + bytes(signed.hash).hex()
        locked.status = ChainTransaction.Status.SIGNED
        locked.save()
        counter.next_nonce = nonce + 1
        counter.save(update_fields=["next_nonce", "updated_at"])
    return locked


def _broadcast(tx: ChainTransaction) -> None:
    w3 = chain.web3()
    try:
        with chain_errors():
            w3.eth.send_raw_transaction(tx.raw_transaction)
    except ChainUnavailable:
        raise
    except Exception as exc:  # "already known" / "nonce too low" after a crash: the receipt decides
        logger.info("re-broadcast of %s answered %s", tx.tx_hash, exc)


def _await_receipt(tx: ChainTransaction) -> dict[str, Any]:
    w3 = chain.web3()
    deadline = time.monotonic() + settings.RECEIPT_TIMEOUT
    while True:
        with chain_errors():
            try:
                receipt = w3.eth.get_transaction_receipt(tx.tx_hash)
            except TransactionNotFound:
                receipt = None
            if receipt is not None:
                head = w3.eth.block_number
                depth = head - receipt["blockNumber"] + 1
                if depth >= settings.CONFIRMATIONS:
                    canonical = w3.eth.get_block(receipt["blockNumber"])["hash"]
                    if bytes(canonical) == bytes(receipt["blockHash"]):
                        return dict(receipt)
        if time.monotonic() > deadline:
            raise TransactionPending(f"{tx.tx_hash} is not yet {settings.CONFIRMATIONS} blocks deep")
        time.sleep(0.2)


def _replay_revert(tx: ChainTransaction, receipt: dict[str, Any]) -> ContractReverted:
    try:
        with chain_errors():
            _bound_call(tx).call({"from": tx.from_address, "value": int(tx.value_wei)}, block_identifier=receipt["blockNumber"] - 1)
    except ContractReverted as exc:
        return exc
    except ChainUnavailable:
        pass
    return ContractReverted("Reverted", (tx.tx_hash,))


def _mark_confirmed(pk: int, receipt: Any) -> ChainTransaction:
    with transaction.atomic():
        tx = ChainTransaction.objects.select_for_update().get(pk=pk)
        if isinstance(receipt, _Applied):
            tx.tx_hash = receipt.tx_hash or tx.tx_hash
            tx.block_number = receipt.block_number
            tx.block_hash = receipt.block_hash
        else:
            tx.block_number = receipt["blockNumber"]
            tx.block_hash = "0x" + bytes(receipt["blockHash"]).hex()
            tx.gas_used = receipt["gasUsed"]
        tx.status = ChainTransaction.Status.CONFIRMED
        tx.error_code = ""
        tx.error_message = ""
        tx.save()
    return tx


def _mark_failed(pk: int, error_code: str, message: str, only_if_queued: bool = False) -> None:
    rows = ChainTransaction.objects.filter(pk=pk).exclude(status=ChainTransaction.Status.CONFIRMED)
    if only_if_queued:
        rows = rows.filter(status=ChainTransaction.Status.QUEUED, raw_transaction="")
    rows.update(status=ChainTransaction.Status.FAILED, error_code=error_code[:64], error_message=message)


__all__ = [
    "ChainMisconfigured",
    "ChainUnavailable",
    "TransactionFailed",
    "TransactionPending",
    "registry_deploy",
    "registry_has_code",
    "transaction_enqueue",
    "transaction_events",
    "transaction_mark_failed",
    "transaction_process",
]


def transaction_requeue(*, transaction_id: int) -> None:
    """A confirmed transaction's block left the canonical chain: wait for it again.

    It goes back to `signed` (its same bytes are re-broadcast; a node that still has it in its
    pool or re-includes it simply confirms it again), or to `queued` when it was never ours."""
    tx = ChainTransaction.objects.filter(pk=transaction_id).first()
    if tx is None:
        return
    status = ChainTransaction.Status.SIGNED if tx.raw_transaction else ChainTransaction.Status.QUEUED
    ChainTransaction.objects.filter(pk=transaction_id).update(status=status, block_number=None, block_hash="")
