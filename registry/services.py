"""Writes on the chain: deploying the registry, the transaction outbox and its relayer."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone as django_timezone
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from telemetry import metrics

from . import chain
from .chain import ChainMisconfigured, ChainUnavailable, ContractReverted, chain_errors, from_hex, hex0x, to_bytes32
from .models import ChainTransaction, RelayerNonce
from .selectors import relayer_funding_remember

logger = logging.getLogger(__name__)


class TransactionPending(Exception):
    """Sent, but not yet mined or not yet CONFIRMATIONS deep: try again later."""

    code = "transaction_pending"


class RelayerUnfunded(TransactionPending):
    """The relayer's wallet cannot pay for this row: below RELAYER_MIN_BALANCE_WEI, or below the
    transaction's own worst case (gas limit x max fee + value). Nothing was signed; the row stays
    queued and is sent by the same retries once the operator funds the wallet."""

    code = "relayer_unfunded"

    def __init__(self, message: str, *, balance_wei: int, required_wei: int):
        super().__init__(message)
        self.balance_wei = balance_wei
        self.required_wei = required_wei


UNFUNDED_NOTICE = "waiting for the operator to fund the relayer"


class TransactionFailed(Exception):
    """The transaction cannot go through (it reverted or would revert); not retried."""

    code = "transaction_failed"

    def __init__(self, message: str, *, error_code: str = "transaction_failed"):
        super().__init__(message)
        self.error_code = error_code


class RelayerBudgetExceeded(Exception):
    """The sponsor (a vendor) has made the relayer spend RELAYER_DAILY_GAS_LIMIT_WEI in 24 hours."""

    code = "relayer_budget_exceeded"

    def __init__(self, message: str, *, retry_after: int, spent_wei: int, limit_wei: int):
        super().__init__(message)
        self.retry_after = retry_after
        self.spent_wei = spent_wei
        self.limit_wei = limit_wei


BUDGET_WINDOW = timedelta(hours=24)
# a queued row has no gas estimate yet: counted as this much gas (publishVersionBySig and
# createModelBySig each take well under it) at the relayer's latest fee
PENDING_GAS_GUESS = 300_000
MIN_FEE_BUMP_PERMILLE = 1125  # nodes refuse a replacement that raises either fee by less than 12.5 %


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
    """Deploy ModelRegistry with `private_key` and record it in deployments/<chain id>.json.

    When the deployer is the owner, it also makes the relayer (RELAYER_* settings, for the
    configured CHAIN_ID) a receipt operator, so the marketplace can anchor download receipts
    from the start (dev chain, tests). Otherwise the owner calls `setReceiptOperator` itself
    (docs/contract.md): the deployer's key cannot."""
    w3 = chain.web3(rpc_url)
    with chain_errors():
        chain_id = w3.eth.chain_id
    account = chain.guard_key(private_key, chain_id)
    owner = to_checksum_address(owner or account.address)
    fee_recipient = to_checksum_address(fee_recipient or owner)
    operator = _relayer_address(chain_id) if owner == account.address else None
    factory = chain.registry_factory(rpc_url)
    with chain_errors():
        nonce = w3.eth.get_transaction_count(account.address, "pending")
        tx = factory.constructor(owner, int(fee_bps), fee_recipient).build_transaction(
            {"from": account.address, "nonce": nonce, "chainId": chain_id}
        )
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=settings.RECEIPT_TIMEOUT)
    if receipt["status"] != 1:
        raise ContractReverted("DeploymentFailed", (tx_hash.hex(),))
    if operator is not None:
        contract = chain.registry_contract(receipt["contractAddress"], rpc_url)
        with chain_errors():
            tx = contract.functions.setReceiptOperator(operator, True).build_transaction(
                {"from": account.address, "nonce": nonce + 1, "chainId": chain_id}
            )
            op_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
            op_receipt = w3.eth.wait_for_transaction_receipt(op_hash, timeout=settings.RECEIPT_TIMEOUT)
        if op_receipt["status"] != 1:
            raise ContractReverted("SetReceiptOperatorFailed", (hex0x(op_hash),))
    artifact = chain.load_artifact()
    record = {
        "chain_id": chain_id,
        "address": receipt["contractAddress"],
        "deployer": account.address,
        "owner": owner,
        "receipt_operator": operator,
        "platform_fee_bps": int(fee_bps),
        "platform_fee_recipient": fee_recipient,
        "transaction_hash": hex0x(tx_hash),
        "block_number": receipt["blockNumber"],
        "compiler": artifact["compiler"]["version"],
        "deployed_at": datetime.now(UTC).isoformat(),
    }
    if write_record:
        path = chain.deployment_path(chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a record
    return record


def _relayer_address(chain_id: int) -> str | None:
    """The relayer's address when it is configured for this chain, else None (no operator is set)."""
    if chain_id != settings.CHAIN_ID:
        return None
    try:
        return chain.relayer_account().address
    except ChainMisconfigured:
        return None


def registry_has_code(address: str, rpc_url: str | None = None) -> bool:
    """Whether `address` holds contract code on the chain (a reset chain has none)."""
    with chain_errors():
        return len(chain.web3(rpc_url).eth.get_code(to_checksum_address(address))) > 0


# ------------------------------------------------------------------------------- outbox


def transaction_enqueue(
    *, idempotency_key: str, function: str, args: dict[str, Any], value_wei: int = 0, sponsor: str = ""
) -> ChainTransaction:
    """Record an intended registry call; call inside the domain change's database transaction.

    `sponsor` is whom the gas is spent for (a vendor's address): past their daily budget this
    raises RelayerBudgetExceeded and records nothing. Queuing the same key again is free."""
    _abi_inputs(function)  # unknown function names fail here, not in the worker
    existing = ChainTransaction.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    if sponsor:
        sponsor = to_checksum_address(sponsor)
        relayer_budget_check(sponsor=sponsor)
    tx, _ = ChainTransaction.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={"function": function, "args": _jsonable(args), "value_wei": int(value_wei), "sponsor": sponsor},
    )
    return tx


def relayer_spending(*, sponsor: str) -> tuple[int, datetime | None]:
    """Wei the relayer spent (or may still spend) for `sponsor` on rows queued in the last 24 h,
    and when the oldest of the rows counted was queued.

    A mined transaction counts its fee (gas used x effective gas price, reverted ones too); one
    still on its way counts its upper bound (gas limit x max fee), or a guess while unsigned."""
    since = django_timezone.now() - BUDGET_WINDOW
    rows = ChainTransaction.objects.filter(sponsor=sponsor, created_at__gte=since).only(
        "status", "fee_wei", "raw_transaction", "created_at"
    )
    spent, oldest = 0, None
    guess = None
    for row in rows:
        if row.fee_wei is not None:
            cost = int(row.fee_wei)
        elif row.status == ChainTransaction.Status.SIGNED and row.raw_transaction:
            fields = _decode_raw(row.raw_transaction)
            cost = int(fields["gas"]) * int(fields.get("maxFeePerGas") or fields.get("gasPrice") or 0)
        elif row.status == ChainTransaction.Status.QUEUED:
            guess = _latest_max_fee() if guess is None else guess
            cost = PENDING_GAS_GUESS * guess
        else:
            cost = 0
        if cost:
            spent += cost
            oldest = row.created_at if oldest is None else min(oldest, row.created_at)
    return spent, oldest


def relayer_budget_check(*, sponsor: str) -> None:
    """RelayerBudgetExceeded when `sponsor` has used up RELAYER_DAILY_GAS_LIMIT_WEI (0: no cap)."""
    limit = int(settings.RELAYER_DAILY_GAS_LIMIT_WEI)
    if limit <= 0:
        return
    spent, oldest = relayer_spending(sponsor=sponsor)
    if spent < limit:
        return
    free_at = (oldest or django_timezone.now()) + BUDGET_WINDOW
    retry_after = max(1, int((free_at - django_timezone.now()).total_seconds()) + 1)
    raise RelayerBudgetExceeded(
        f"the relayer has spent {spent} wei of gas for {sponsor} in the last 24 hours, and the daily limit "
        f"(RELAYER_DAILY_GAS_LIMIT_WEI) is {limit} wei; nothing was queued: try again in {retry_after} s, "
        "or send the transaction from your own wallet",
        retry_after=retry_after,
        spent_wei=spent,
        limit_wei=limit,
    )


def transaction_process(*, transaction_id: int) -> ChainTransaction:
    """Relay one outbox row to the chain and wait until it is CONFIRMATIONS deep.

    Idempotent and safe to call again after any crash: a call already applied on chain (by an
    earlier attempt, or by anyone who copied it and sent it first) is recognised, a signed
    transaction is re-broadcast as the same bytes; it is re-signed only for the same nonce with
    higher fees, once stuck RELAYER_REPLACE_AFTER_BLOCKS below the fee market.
    A queued row is signed only while the relayer's wallet holds RELAYER_MIN_BALANCE_WEI and the
    transaction's worst-case cost; else RelayerUnfunded (a TransactionPending) and the row stays
    queued, untouched.
    Raises ChainUnavailable / TransactionPending (retry later) or TransactionFailed (final).
    """
    tx = ChainTransaction.objects.get(pk=transaction_id)
    if tx.status in (ChainTransaction.Status.CONFIRMED, ChainTransaction.Status.FAILED):
        return tx
    chain.check_chain_id()
    if tx.status == ChainTransaction.Status.QUEUED:
        existing = _already_applied(tx)
        if existing is not None:
            return _mark_confirmed(tx.pk, existing, fee_wei=0)
        # a row already signed is paid for and goes on below; a new one waits for the money
        balance = _require_funds(tx, required_wei=int(settings.RELAYER_MIN_BALANCE_WEI))
        tx = _sign(tx, balance_wei=balance)
        if tx.status == ChainTransaction.Status.CONFIRMED:
            return tx
        if tx.status == ChainTransaction.Status.FAILED:
            raise TransactionFailed(tx.error_message, error_code=tx.error_code or "transaction_failed")
    _broadcast(tx)
    receipt = _await_receipt(tx)
    if receipt["status"] != 1:
        fee = _fee_of(receipt)
        # the same call may have landed first: copied from the mempool by anyone and sent with a
        # higher fee, or sent by the vendor's own wallet. Then ours reverted but the call is
        # applied, and that is what counts.
        existing = _already_applied(tx)
        if existing is not None:
            return _mark_confirmed(tx.pk, existing, fee_wei=fee, own_hash=hex0x(receipt["transactionHash"]))
        reason = _replay_revert(tx, receipt)
        _mark_failed(tx.pk, reason.error_name, str(reason), fee_wei=fee)
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
            out[key] = hex0x(value)
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
            values.append(from_hex(raw))
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
            model_id = to_bytes32(args["modelId"])
            version = int(args["version"])
            digest = contract.functions.versionDigest(model_id, version).call()
            if bytes(digest) == to_bytes32(args["rootDigest"]):
                return _find_log(contract.events.VersionPublished, {"modelId": model_id, "version": version})
        elif tx.function == "createModelBySig":
            model_id = contract.functions.computeModelId(
                to_checksum_address(args["vendor"]), to_bytes32(args["slugHash"])
            ).call()
            if chain.model_on_chain(model_id, contract=contract).exists:
                return _find_log(contract.events.ModelCreated, {"modelId": model_id})
    return None


def _find_log(event, filters: dict[str, Any]) -> _Applied:
    record = chain.read_deployment() or {}
    logs = event.get_logs(from_block=int(record.get("block_number", 0)), argument_filters=filters)
    if not logs:
        w3 = chain.web3()
        head = w3.eth.get_block("latest")
        return _Applied("", head["number"], hex0x(head["hash"]))
    log = logs[-1]
    return _Applied(hex0x(log["transactionHash"]), log["blockNumber"], hex0x(log["blockHash"]))


def _fees(w3) -> dict[str, int]:
    """The market's fees now (twice the base fee plus the node's tip), within RELAYER_MAX_FEE_PER_GAS."""
    block = w3.eth.get_block("latest")
    base_fee = int(block.get("baseFeePerGas") or 0)
    try:
        priority = int(w3.eth.max_priority_fee)
    except Exception:  # nodes without eth_maxPriorityFeePerGas
        priority = 1_000_000_000
    fees = {"maxPriorityFeePerGas": priority, "maxFeePerGas": 2 * base_fee + priority}
    cap = int(settings.RELAYER_MAX_FEE_PER_GAS or 0)
    if cap > 0:
        fees["maxFeePerGas"] = min(fees["maxFeePerGas"], cap)
        fees["maxPriorityFeePerGas"] = min(priority, fees["maxFeePerGas"])
    return fees


def _bumped_fees(old: dict[str, Any], market: dict[str, int]) -> dict[str, int] | None:
    """Fees for a replacement of `old`: each raised by RELAYER_FEE_BUMP_PERCENT (at least 12.5 %)
    and at least the market's; None when RELAYER_MAX_FEE_PER_GAS leaves no room for a bump."""
    permille = max(1000 + 10 * int(settings.RELAYER_FEE_BUMP_PERCENT), MIN_FEE_BUMP_PERMILLE)

    def bump(value: int) -> int:
        return -(-int(value) * permille // 1000)  # rounded up: integers end to end

    def floor(value: int) -> int:
        return -(-int(value) * MIN_FEE_BUMP_PERMILLE // 1000)

    max_fee = max(bump(old["maxFeePerGas"]), market["maxFeePerGas"])
    priority = max(bump(old["maxPriorityFeePerGas"]), market["maxPriorityFeePerGas"])
    cap = int(settings.RELAYER_MAX_FEE_PER_GAS or 0)
    if cap > 0:
        max_fee = min(max_fee, cap)
    priority = min(priority, max_fee)
    if max_fee < floor(old["maxFeePerGas"]) or priority < floor(old["maxPriorityFeePerGas"]):
        return None
    return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority}


def _decode_raw(raw_transaction: str) -> dict[str, Any]:
    return TypedTransaction.from_bytes(HexBytes(raw_transaction)).as_dict()


def _latest_max_fee() -> int:
    """The max fee of the relayer's latest signed transaction (no chain read), else 1 gwei."""
    raw = (
        ChainTransaction.objects.exclude(raw_transaction="").order_by("-pk").values_list("raw_transaction", flat=True).first()
    )
    if raw:
        try:
            return int(_decode_raw(raw)["maxFeePerGas"])
        except Exception:  # a legacy (type 0) transaction: no max fee to read
            pass
    return 1_000_000_000


def _fee_of(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice") or 0)


def _require_funds(tx: ChainTransaction, *, required_wei: int, balance_wei: int | None = None) -> int:
    """The relayer's balance (read now unless given), or RelayerUnfunded below `required_wei`.

    The balance read is recorded for `registry.selectors.relayer_funding` (portal, readiness)."""
    address = chain.relayer_account().address
    if balance_wei is None:
        with chain_errors():
            balance_wei = int(chain.web3().eth.get_balance(address))
        relayer_funding_remember(address=address, balance_wei=balance_wei)
    required_wei = max(0, int(required_wei))
    if balance_wei >= required_wei:
        return balance_wei
    metrics.RELAYER_FUNDING_REFUSALS.inc()
    logger.warning(
        "relayer %s holds %s wei, below the %s wei needed (RELAYER_MIN_BALANCE_WEI=%s): outbox row %s "
        "(%s) stays queued, %s",
        address, balance_wei, required_wei, settings.RELAYER_MIN_BALANCE_WEI, tx.pk, tx.function, UNFUNDED_NOTICE,
    )
    raise RelayerUnfunded(
        f"the relayer's wallet {address} holds {balance_wei} wei and needs at least {required_wei} wei: "
        f"{UNFUNDED_NOTICE}; the transaction stays queued and is sent once it is funded",
        balance_wei=balance_wei,
        required_wei=required_wei,
    )


def _sign(tx: ChainTransaction, *, balance_wei: int | None = None) -> ChainTransaction:
    """Estimate (a call that would revert fails here, before any nonce is taken), then sign;
    with `balance_wei`, refuse (RelayerUnfunded) a transaction whose gas limit x max fee + value
    the relayer cannot pay, before a nonce is taken."""
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
        existing = _already_applied(tx)  # someone else's copy of the call landed since we looked
        if existing is not None:
            return _mark_confirmed(tx.pk, existing, fee_wei=0)
        _mark_failed(tx.pk, exc.error_name, str(exc), only_if_queued=True)
        raise TransactionFailed(str(exc), error_code=exc.error_name) from exc
    with chain_errors():
        fees = _fees(w3)
    gas_limit = int(gas * 1.2) + 10_000
    if balance_wei is not None:
        worst_case = gas_limit * int(fees["maxFeePerGas"]) + int(tx.value_wei)
        _require_funds(tx, required_wei=worst_case, balance_wei=balance_wei)
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
            head = w3.eth.block_number
        outstanding = ChainTransaction.objects.filter(
            from_address=account.address, status=ChainTransaction.Status.SIGNED
        ).exists()
        # a node that forgot our pending transactions (a reset dev chain) must not leave a gap
        nonce = max(counter.next_nonce, chain_nonce) if outstanding else chain_nonce
        built = call.build_transaction({**params, **fees, "gas": gas_limit, "nonce": nonce})
        signed = account.sign_transaction(built)
        locked.from_address = account.address
        locked.nonce = nonce
        locked.raw_transaction = hex0x(signed.raw_transaction)
        locked.tx_hash = hex0x(signed.hash)
        locked.status = ChainTransaction.Status.SIGNED
        locked.sent_block = head
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
    """The receipt of this nonce's transaction, CONFIRMATIONS deep: of its latest signing or of
    any earlier one it replaced (whichever was mined). Replaces it while it is stuck."""
    w3 = chain.web3()
    deadline = time.monotonic() + settings.RECEIPT_TIMEOUT
    while True:
        with chain_errors():
            receipt = _first_receipt(w3, [tx.tx_hash, *reversed(tx.replaced_hashes or [])])
            head = w3.eth.block_number
            if receipt is not None:
                depth = head - receipt["blockNumber"] + 1
                if depth >= settings.CONFIRMATIONS:
                    canonical = w3.eth.get_block(receipt["blockNumber"])["hash"]
                    if bytes(canonical) == bytes(receipt["blockHash"]):
                        return dict(receipt)
            else:
                tx = _replace_if_stuck(tx, head)
        if time.monotonic() > deadline:
            raise TransactionPending(f"{tx.tx_hash} is not yet {settings.CONFIRMATIONS} blocks deep")
        time.sleep(0.2)


def _first_receipt(w3, hashes: list[str]) -> Any:
    for tx_hash in hashes:
        if not tx_hash:
            continue
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            continue
    return None


def _replace_if_stuck(tx: ChainTransaction, head: int) -> ChainTransaction:
    """Re-sign the same nonce with higher fees once the transaction has waited
    RELAYER_REPLACE_AFTER_BLOCKS unmined (priced below the fee market, or dropped by the pool).

    The old hash is kept in `replaced_hashes`: the old transaction may still be mined instead,
    and its receipt is as good. The new bytes are stored before they are broadcast."""
    after = int(settings.RELAYER_REPLACE_AFTER_BLOCKS)
    if after <= 0 or tx.status != ChainTransaction.Status.SIGNED or not tx.raw_transaction:
        return tx
    if tx.sent_block is None:  # signed before sent_block was recorded: count from now
        ChainTransaction.objects.filter(pk=tx.pk, sent_block__isnull=True).update(sent_block=head)
        tx.sent_block = head
        return tx
    if head - tx.sent_block < after:
        return tx
    account: LocalAccount = chain.relayer_account()
    with transaction.atomic():
        locked = ChainTransaction.objects.select_for_update().get(pk=tx.pk)
        if locked.status != ChainTransaction.Status.SIGNED or locked.tx_hash != tx.tx_hash:
            return locked  # another worker replaced or confirmed it meanwhile
        if account.address != locked.from_address:
            logger.warning("cannot replace %s: it was signed by %s, the relayer is now %s", locked.tx_hash, locked.from_address, account.address)
            return locked
        old = _decode_raw(locked.raw_transaction)
        with chain_errors():
            fees = _bumped_fees(old, _fees(chain.web3()))
        if fees is None:
            logger.warning(
                "%s is stuck below the fee market, but RELAYER_MAX_FEE_PER_GAS=%s leaves no room to raise its fees",
                locked.tx_hash, settings.RELAYER_MAX_FEE_PER_GAS,
            )
            locked.sent_block = head  # look again after another RELAYER_REPLACE_AFTER_BLOCKS
            locked.save(update_fields=["sent_block", "updated_at"])
            return locked
        replacement = {key: value for key, value in old.items() if key not in ("v", "r", "s")}
        replacement.update(fees)
        signed = account.sign_transaction(replacement)
        logger.info(
            "replacing %s (nonce %s, stuck %s blocks) with max fee %s wei, tip %s wei",
            locked.tx_hash, locked.nonce, head - (locked.sent_block or head), fees["maxFeePerGas"], fees["maxPriorityFeePerGas"],
        )
        locked.replaced_hashes = [*(locked.replaced_hashes or []), locked.tx_hash]
        locked.raw_transaction = hex0x(signed.raw_transaction)
        locked.tx_hash = hex0x(signed.hash)
        locked.sent_block = head
        locked.attempts = locked.attempts + 1
        locked.save()
    _broadcast(locked)
    return locked


def _replay_revert(tx: ChainTransaction, receipt: dict[str, Any]) -> ContractReverted:
    try:
        with chain_errors():
            _bound_call(tx).call({"from": tx.from_address, "value": int(tx.value_wei)}, block_identifier=receipt["blockNumber"] - 1)
    except ContractReverted as exc:
        return exc
    except ChainUnavailable:
        pass
    return ContractReverted("Reverted", (tx.tx_hash,))


def _mark_confirmed(pk: int, receipt: Any, *, fee_wei: int | None = None, own_hash: str = "") -> ChainTransaction:
    """Record where the call is applied: our receipt, or (an `_Applied`) someone else's
    transaction, with what our own attempt cost (`fee_wei`) and its hash kept for the record."""
    with transaction.atomic():
        tx = ChainTransaction.objects.select_for_update().get(pk=pk)
        if isinstance(receipt, _Applied):
            if own_hash and receipt.tx_hash and own_hash != receipt.tx_hash and own_hash not in (tx.replaced_hashes or []):
                tx.replaced_hashes = [*(tx.replaced_hashes or []), own_hash]
            tx.tx_hash = receipt.tx_hash or tx.tx_hash
            tx.block_number = receipt.block_number
            tx.block_hash = receipt.block_hash
            if fee_wei is not None:
                tx.fee_wei = fee_wei
        else:
            tx.tx_hash = hex0x(receipt["transactionHash"])  # the latest signing, or one it replaced
            tx.block_number = receipt["blockNumber"]
            tx.block_hash = hex0x(receipt["blockHash"])
            tx.gas_used = receipt["gasUsed"]
            tx.fee_wei = _fee_of(receipt)
        newly = tx.status != ChainTransaction.Status.CONFIRMED
        tx.status = ChainTransaction.Status.CONFIRMED
        tx.error_code = ""
        tx.error_message = ""
        tx.save()
    if newly:
        metrics.RELAYER_TRANSACTIONS.labels(outcome="confirmed").inc()
    return tx


def _mark_failed(pk: int, error_code: str, message: str, only_if_queued: bool = False, fee_wei: int | None = None) -> None:
    rows = ChainTransaction.objects.filter(pk=pk).exclude(status=ChainTransaction.Status.CONFIRMED)
    if only_if_queued:
        rows = rows.filter(status=ChainTransaction.Status.QUEUED, raw_transaction="")
    extra = {"fee_wei": fee_wei} if fee_wei is not None else {}  # a reverted transaction still cost gas
    if rows.update(status=ChainTransaction.Status.FAILED, error_code=error_code[:64], error_message=message, **extra):
        metrics.RELAYER_TRANSACTIONS.labels(outcome="failed").inc()


__all__ = [
    "ChainMisconfigured",
    "ChainUnavailable",
    "RelayerBudgetExceeded",
    "RelayerUnfunded",
    "TransactionFailed",
    "TransactionPending",
    "registry_deploy",
    "registry_has_code",
    "relayer_budget_check",
    "relayer_spending",
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
    # sent_block cleared: the wait before a fee bump starts again from the head the relayer sees next
    ChainTransaction.objects.filter(pk=transaction_id).update(status=status, block_number=None, block_hash="", sent_block=None)
