"""The one module that owns the chain: RPC connection, the ModelRegistry ABI and address, keys.

Nobody else builds a `w3.eth.contract`. Connection faults surface as `ChainUnavailable`, a
revert as `ContractReverted` with the contract's custom error decoded by name. Values cross the
boundary typed: `model_on_chain` returns an `OnChainModel`, never the getter's tuple; hex goes
through `to_bytes32` / `from_hex` / `hex0x`, and the perpetual expiry is `PERPETUAL` (all
defined once in the client core, `hallmark.onchain`, and re-exported here).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    BadFunctionCallOutput,
    BlockNotFound,
    ContractCustomError,
    ContractLogicError,
    Web3Exception,
    Web3RPCError,
)

# re-exported (`x as x`): the server's code reaches every chain value through this module
from hallmark.onchain import PERPETUAL as PERPETUAL
from hallmark.onchain import ZERO_ADDRESS as ZERO_ADDRESS
from hallmark.onchain import ZERO_BYTES32 as ZERO_BYTES32
from hallmark.onchain import OnChainModel as OnChainModel
from hallmark.onchain import from_hex as from_hex
from hallmark.onchain import hex0x as hex0x
from hallmark.onchain import read_model
from hallmark.onchain import to_bytes32 as to_bytes32

logger = logging.getLogger(__name__)

ARTIFACT_PATH = Path(__file__).resolve().parent / "artifacts" / "ModelRegistry.json"
DEV_CHAIN_ID = 31337
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class ChainError(Exception):
    """Base of chain faults; `code` is stable and documented in docs/errors."""

    code = "chain_error"


class ChainUnavailable(ChainError):
    """The RPC endpoint does not answer (down, timed out, refused)."""

    code = "chain_unavailable"


class ChainMisconfigured(ChainError):
    """The settings cannot work: wrong chain id, no contract at the address, a dev key on a public chain."""

    code = "chain_misconfigured"


class ContractReverted(ChainError):
    """A call or transaction reverted; `error_name` and `error_args` decode the custom error."""

    code = "contract_reverted"

    def __init__(self, error_name: str, error_args: tuple[Any, ...] = (), raw: str = ""):
        self.error_name = error_name
        self.error_args = error_args
        self.raw = raw
        args = ", ".join(_show(a) for a in error_args)
        super().__init__(f"the registry contract refused: {error_name}({args})")


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return hex0x(value)
    return str(value)


# ----------------------------------------------------------------------------- artifact


@functools.cache
def load_artifact() -> dict[str, Any]:
    """The committed compiler output of contracts/ModelRegistry.sol."""
    with open(ARTIFACT_PATH, encoding="utf-8") as fh:
        return json.load(fh)


@functools.cache
def _error_selectors() -> dict[bytes, dict[str, Any]]:
    selectors = {}
    for item in load_artifact()["abi"]:
        if item["type"] == "error":
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            selectors[function_signature_to_4byte_selector(signature)] = item
    return selectors


def decode_revert(data: str | bytes | None) -> ContractReverted:
    """Turn revert data into a ContractReverted naming the contract's custom error."""
    from eth_abi import decode as abi_decode

    if isinstance(data, str):
        try:
            raw = from_hex(data)
        except ValueError:
            return ContractReverted("Reverted", (data,), data)
    else:
        raw = bytes(data or b"")
    item = _error_selectors().get(raw[:4])
    if item is None:
        # OpenZeppelin errors from imported code also live in the ABI; anything else is opaque
        return ContractReverted("UnknownError", (hex0x(raw) if raw else "",), hex0x(raw))
    try:
        values = tuple(abi_decode([i["type"] for i in item["inputs"]], raw[4:]))
    except Exception:  # malformed revert data still names the error
        values = ()
    return ContractReverted(item["name"], values, hex0x(raw))


# ----------------------------------------------------------------------------- connection

_local = threading.local()


def web3(rpc_url: str | None = None, *, timeout: float | None = None) -> Web3:
    """A Web3 connected to `rpc_url` (default CHAIN_RPC_URL), one per thread, URL and timeout
    (default CHAIN_RPC_TIMEOUT; probes such as readiness ask for a shorter one)."""
    url = rpc_url or settings.CHAIN_RPC_URL
    seconds = float(settings.CHAIN_RPC_TIMEOUT if timeout is None else timeout)
    cache = getattr(_local, "connections", None)
    if cache is None:
        cache = _local.connections = {}
    w3 = cache.get((url, seconds))
    if w3 is None:
        provider = Web3.HTTPProvider(
            url,
            request_kwargs={"timeout": seconds},
            exception_retry_configuration=None,  # retries belong to the outbox, not to each call
        )
        w3 = cache[(url, seconds)] = Web3(provider)
    return w3


@contextmanager
def chain_errors() -> Iterator[None]:
    """Translate transport faults into ChainUnavailable and reverts into ContractReverted."""
    try:
        yield
    except ContractCustomError as exc:
        raise decode_revert(exc.data if isinstance(exc.data, str) else exc.message) from exc
    except BadFunctionCallOutput as exc:
        # an empty answer from the registry's address: a node still syncing or just restarted
        # (retry later), or a wrong REGISTRY_ADDRESS (the error says so)
        raise ChainUnavailable(
            f"the registry contract does not answer at its address on {settings.CHAIN_RPC_URL} "
            "(node not synced yet, or REGISTRY_ADDRESS / deployments record wrong)"
        ) from exc
    except ContractLogicError as exc:
        raise (decode_revert(exc.data) if exc.data else ContractReverted("Reverted", (str(exc),))) from exc
    except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
        raise ChainUnavailable(f"the chain at {settings.CHAIN_RPC_URL} does not answer: {exc.__class__.__name__}") from exc
    except requests.HTTPError as exc:
        # 429 (rate limited), 502/503 from a load balancer: the node is there but will not answer now
        status = exc.response.status_code if exc.response is not None else "?"
        raise ChainUnavailable(f"the chain at {settings.CHAIN_RPC_URL} answered HTTP {status}; retry later") from exc
    except (requests.RequestException, json.JSONDecodeError) as exc:
        # a cut or garbled answer (ChunkedEncodingError, a half JSON body)
        raise ChainUnavailable(f"the chain at {settings.CHAIN_RPC_URL} sent a broken answer: {exc.__class__.__name__}") from exc
    except BlockNotFound as exc:
        # a lagging node behind a load balancer does not know a block another node told us about
        raise ChainUnavailable(f"the node at {settings.CHAIN_RPC_URL} does not know that block yet (lagging); retry later") from exc
    except Web3RPCError:
        raise
    except Web3Exception as exc:
        if "connect" in str(exc).lower():
            raise ChainUnavailable(f"the chain at {settings.CHAIN_RPC_URL} does not answer: {exc}") from exc
        raise


@functools.lru_cache(maxsize=8)
def _checked_chain_id(url: str, expected: int) -> int:
    w3 = web3(url)
    with chain_errors():
        actual = w3.eth.chain_id
    if actual != expected:
        raise ChainMisconfigured(f"CHAIN_RPC_URL {url} serves chain id {actual}, but CHAIN_ID is {expected}")
    return actual


def check_chain_id() -> int:
    """Confirm the node serves CHAIN_ID (once per process); ChainUnavailable if it does not answer."""
    return _checked_chain_id(settings.CHAIN_RPC_URL, settings.CHAIN_ID)


# ----------------------------------------------------------------------------- deployments


def deployment_path(chain_id: int | None = None) -> Path:
    return Path(settings.DEPLOYMENTS_DIR) / f"{chain_id or settings.CHAIN_ID}.json"


def read_deployment(chain_id: int | None = None) -> dict[str, Any] | None:
    path = deployment_path(chain_id)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def registry_address() -> str:
    """REGISTRY_ADDRESS, else the address recorded in deployments/<CHAIN_ID>.json."""
    if settings.REGISTRY_ADDRESS:
        return to_checksum_address(settings.REGISTRY_ADDRESS)
    record = read_deployment()
    if not record:
        raise ChainMisconfigured(
            f"no registry address: set REGISTRY_ADDRESS or run `manage.py deploy_registry` "
            f"(expected {deployment_path()})"
        )
    return to_checksum_address(record["address"])


def registry_contract(address: str | None = None, rpc_url: str | None = None) -> Contract:
    """The ModelRegistry contract bound to its address on the configured chain."""
    return web3(rpc_url).eth.contract(address=to_checksum_address(address or registry_address()), abi=load_artifact()["abi"])


def model_on_chain(model_id: str | bytes, *, block_identifier: Any = None, contract: Contract | None = None) -> OnChainModel:
    """The registry's `models(model_id)` as an OnChainModel (`exists` False for an unknown id).

    ChainUnavailable / ContractReverted as every read here; ValueError for a malformed id."""
    with chain_errors():
        return read_model(contract or registry_contract(), model_id, block_identifier)


def registry_factory(rpc_url: str | None = None) -> Contract:
    artifact = load_artifact()
    return web3(rpc_url).eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])


# ----------------------------------------------------------------------------- keys


@functools.cache
def development_keys() -> tuple[str, ...]:
    """The ten well-known anvil keys (from the public test mnemonic): usable on chain 31337 only."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        hex0x(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(10)
    )


def guard_key(private_key: str, chain_id: int) -> LocalAccount:
    """Load a key, refusing the well-known development keys on any chain but 31337."""
    account = Account.from_key(private_key)
    if chain_id != DEV_CHAIN_ID and hex0x(account.key) in development_keys():
        raise ChainMisconfigured(
            f"the key for {account.address} is a public anvil development key; "
            f"it is refused on chain id {chain_id} (allowed only on {DEV_CHAIN_ID})"
        )
    return account


@dataclass(frozen=True)
class _KeySource:
    private_key: str
    keystore: str
    password: str
    chain_id: int


@functools.lru_cache(maxsize=4)
def _load_relayer(source: _KeySource) -> LocalAccount:
    if source.private_key:
        return guard_key(source.private_key, source.chain_id)
    if source.keystore:
        with open(source.keystore, encoding="utf-8") as fh:
            key = Account.decrypt(json.load(fh), source.password)
        return guard_key(hex0x(key), source.chain_id)
    if source.chain_id == DEV_CHAIN_ID:
        # the local chain's first funded account relays when nothing is configured
        return guard_key(development_keys()[0], source.chain_id)
    raise ChainMisconfigured("set RELAYER_PRIVATE_KEY or RELAYER_KEYSTORE (+ RELAYER_KEYSTORE_PASSWORD)")


def relayer_account() -> LocalAccount:
    """The account that pays gas for relayed transactions."""
    return _load_relayer(
        _KeySource(
            settings.RELAYER_PRIVATE_KEY,
            settings.RELAYER_KEYSTORE,
            settings.RELAYER_KEYSTORE_PASSWORD,
            settings.CHAIN_ID,
        )
    )


def call_data(function: str, *args: Any) -> dict[str, str]:
    """`{to, data}` of a registry call, for a wallet to send (`eth_sendTransaction`)."""
    contract = registry_contract()
    return {"to": contract.address, "data": contract.encode_abi(function, args=list(args))}


# ----------------------------------------------------------------------------- raw reads and logs
# The indexer reads logs as raw JSON-RPC and decodes them here with eth_abi: web3's per-log
# formatting (result formatters, AttributeDicts, process_log's normalizers) was most of its cost.


class RPCReplyError(ChainError):
    """The node answered a raw JSON-RPC call with an error object (a range too large, a bad
    parameter); like web3's Web3RPCError, it is not a connection fault."""

    code = "chain_rpc_error"


class MalformedLog(ValueError):
    """A log with a known event signature (topic0) that cannot be that event: the wrong number
    of topics, data too short or badly padded. Only a broken or hostile node sends one."""


def rpc_call(method: str, params: list[Any]) -> Any:
    """One raw JSON-RPC call through the configured provider: the `result` as the node sent it
    (hex strings, plain dicts), without web3's formatting. Wrap in `chain_errors()`."""
    reply = web3().provider.make_request(method, params)
    if not isinstance(reply, dict) or "result" not in reply:
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise RPCReplyError(f"{method} failed: {str(error)[:500]}")
    return reply["result"]


def rpc_batch(calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """Several raw JSON-RPC calls in one HTTP request; their results in the order given."""
    if not calls:
        return []
    replies = web3().provider.make_batch_request(calls)
    if not isinstance(replies, list) or len(replies) != len(calls):
        raise RPCReplyError(f"batch of {len(calls)} calls failed: {str(replies)[:500]}")
    results = []
    for (method, _params), reply in zip(calls, replies, strict=True):
        if not isinstance(reply, dict) or "result" not in reply:
            error = reply.get("error") if isinstance(reply, dict) else reply
            raise RPCReplyError(f"{method} failed: {str(error)[:500]}")
        results.append(reply["result"])
    return results


@dataclass(frozen=True)
class EventShape:
    """How one event of the ABI sits in a log: its indexed arguments in the topics (a dynamic
    type only as its keccak hash, as web3 gives it: bytes32), the others ABI-encoded in the data."""

    name: str
    indexed_names: tuple[str, ...]
    indexed_types: tuple[str, ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    # every argument one 32-byte word of a value type (uintN, intN, address, bool, bytesN): the
    # registry's events all are, and `_decode_words` reads them without eth_abi's per-call cost
    words: bool = False


def _abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + kind[len("tuple"):]
    return kind


def _is_dynamic(kind: str) -> bool:
    return kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("(")


@functools.cache
def event_shapes() -> dict[bytes, EventShape]:
    """Every non-anonymous event of the registry's ABI by its topic0."""
    from eth_utils import event_abi_to_log_topic

    shapes = {}
    for item in load_artifact()["abi"]:
        if item["type"] != "event" or item.get("anonymous"):
            continue
        indexed = [i for i in item["inputs"] if i["indexed"]]
        data = [i for i in item["inputs"] if not i["indexed"]]
        shapes[bytes(event_abi_to_log_topic(item))] = EventShape(
            name=item["name"],
            indexed_names=tuple(i["name"] for i in indexed),
            indexed_types=tuple("bytes32" if _is_dynamic(_abi_type(i)) else _abi_type(i) for i in indexed),
            data_names=tuple(i["name"] for i in data),
            data_types=tuple(_abi_type(i) for i in data),
            words=all(_WORD_TYPE.fullmatch(_abi_type(i)) for i in item["inputs"]),
        )
    return shapes


_WORD_TYPE = re.compile(r"u?int(8|16|24|32|40|48|56|64|72|80|88|96|104|112|120|128|136|144|152|160|168|176|184|192|200|208|216|224|232|240|248|256)?|address|bool|bytes([1-9]|[12][0-9]|3[0-2])")


def _decode_words(types: tuple[str, ...], raw: bytes) -> list[Any]:
    """What `eth_abi.decode(types, raw)` (strict, as web3 decodes logs) returns for value types of
    one word each, checked the same way: padding must be zero (sign bits for intN), a bool 0 or 1;
    data beyond the last word is ignored, as eth_abi does. ValueError otherwise."""
    if len(raw) < 32 * len(types):
        raise ValueError(f"{len(raw)} bytes of data for {len(types)} words")
    values: list[Any] = []
    for i, kind in enumerate(types):
        word = raw[32 * i : 32 * i + 32]
        if kind == "address":
            if any(word[:12]):
                raise ValueError(f"word {i}: an address with non-zero padding")
            values.append("0x" + word[12:].hex())
        elif kind == "bool":
            if any(word[:31]) or word[31] > 1:
                raise ValueError(f"word {i}: a bool that is neither 0 nor 1")
            values.append(word[31] == 1)
        elif kind.startswith("uint"):
            value = int.from_bytes(word, "big")
            if value >> int(kind[4:] or 256):
                raise ValueError(f"word {i}: {kind} out of range")
            values.append(value)
        elif kind.startswith("int"):
            bits = int(kind[3:] or 256)
            value = int.from_bytes(word, "big", signed=True)
            if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
                raise ValueError(f"word {i}: {kind} out of range")
            values.append(value)
        else:  # bytesN
            size = int(kind[5:])
            if any(word[size:]):
                raise ValueError(f"word {i}: {kind} with non-zero padding")
            values.append(word[:size])
    return values


@functools.lru_cache(maxsize=65536)
def checksum_address(address: str) -> str:
    """`to_checksum_address`, remembered: the same few payees and payers come back in every batch
    of events, and each checksum is a keccak."""
    return to_checksum_address(address)


def _arg_value(kind: str, value: Any) -> Any:
    """A decoded value in the JSON-able form the mirror stores (ChainEvent.args): checksummed
    addresses, 0x-hex bytes, integers as digit strings, booleans and strings as they are."""
    if kind == "address":
        return checksum_address(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return hex0x(value)
    if isinstance(value, (list, tuple)):
        inner = kind[: kind.rindex("[")] if kind.endswith("]") else ""
        if kind.startswith("(") and not kind.endswith("]"):
            kinds = _split_tuple(kind)
            return [_arg_value(k, v) for k, v in zip(kinds, value, strict=True)]
        return [_arg_value(inner, v) for v in value]
    return value


def _split_tuple(kind: str) -> list[str]:
    """The component types of a tuple type such as `(uint256,(address,bool),bytes32[])`."""
    parts, depth, start = [], 0, 1
    for i, char in enumerate(kind):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                parts.append(kind[start:i])
        elif char == "," and depth == 1:
            parts.append(kind[start:i])
            start = i + 1
    return [p for p in parts if p]


def decode_log(topics: list[str], data: str) -> tuple[str, dict[str, Any]] | None:
    """A registry log as (event name, args), from the raw JSON-RPC form (0x-hex topics and data).

    The args are what web3's `contract.events.<Name>().process_log(log).args` give, in the
    mirror's JSON-able form (see `_arg_value`), key for key in the same order (indexed arguments
    first; tests/registry/test_indexer_decoding.py compares the two). None when topic0 is no event of the ABI
    (or there is no topic: an anonymous event); MalformedLog when the log cannot be that event."""
    from eth_abi import decode as abi_decode
    from eth_abi.exceptions import DecodingError

    if not topics:
        return None
    try:
        raw_topics = [from_hex(t) for t in topics]
        raw_data = from_hex(data) if data else b""
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedLog(f"topics or data are not hex: {str(exc)[:200]}") from exc
    shape = event_shapes().get(raw_topics[0])
    if shape is None:
        return None
    if len(raw_topics) != len(shape.indexed_types) + 1 or any(len(t) != 32 for t in raw_topics):
        raise MalformedLog(f"{shape.name} has {len(shape.indexed_types) + 1} topics of 32 bytes; the log has "
                           f"{len(raw_topics)} ({', '.join(str(len(t)) for t in raw_topics)} bytes)")
    try:
        if shape.words:
            indexed = _decode_words(shape.indexed_types, b"".join(raw_topics[1:]))
            values = _decode_words(shape.data_types, raw_data)
        else:
            indexed = abi_decode(shape.indexed_types, b"".join(raw_topics[1:])) if shape.indexed_types else ()
            values = abi_decode(shape.data_types, raw_data) if shape.data_types else ()
    except (DecodingError, OverflowError, ValueError) as exc:
        raise MalformedLog(f"{shape.name}: {exc}") from exc
    args = {name: _arg_value(kind, value) for name, kind, value in zip(shape.indexed_names, shape.indexed_types, indexed, strict=True)}
    for name, kind, value in zip(shape.data_names, shape.data_types, values, strict=True):
        args[name] = _arg_value(kind, value)
    return shape.name, args
