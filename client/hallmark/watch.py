"""The device's immune system: one poll checks every installed model against the chain and
quarantines what must not run (docs/fleet.md, docs/cli.md `hallmark watch`).

A poll costs a constant number of HTTP requests to the RPC node, whatever the number of models:

1. `eth_blockNumber` (the head);
2. one JSON-RPC *batch* (a single POST) holding
   - `eth_getLogs` over the registry for `VersionRevoked` and `VersionPublished` from the last
     block seen to the head, in ranges of LOG_STEP blocks (O(range / LOG_STEP) entries of the one
     batch, never O(models));
   - for models not checked yet (the first poll, a fresh `hallmark pull`): `isRevoked`,
     `versionDigest` and `models` per model, and one `eth_getLogs` of those models' publications
     and revocations (the signer of each version, the reason of a revocation).

Nothing is read when nothing changed: with the head already seen, a poll is one request.

Files: every poll compares each installed file's size and mtime with what was recorded when it
was verified and re-hashes only the files that changed (a changed byte changes the mtime unless
someone sets it back on purpose); `--verify-files` re-hashes everything. A digest that is not
the verified one quarantines the model.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address

from . import __version__, inventory, recorder
from .manifest import sha256_file
from .verify import registry_abi

LOG_STEP = 10_000  # blocks per eth_getLogs range: what public RPC providers commonly accept
ZERO32 = "0x" + "00" * 32

IS_REVOKED = function_signature_to_4byte_selector("isRevoked(bytes32,uint32)")
VERSION_DIGEST = function_signature_to_4byte_selector("versionDigest(bytes32,uint32)")
MODELS = function_signature_to_4byte_selector("models(bytes32)")
MODELS_TYPES = ["address", "uint32", "uint16", "uint8", "bool", "uint96", "uint64", "bytes32"]


def _topic(name: str) -> str:
    event = next(e for e in registry_abi() if e.get("type") == "event" and e.get("name") == name)
    signature = f"{name}({','.join(str(i['type']) for i in event['inputs'])})"
    return "0x" + keccak(text=signature).hex()


PUBLISHED = _topic("VersionPublished")
REVOKED = _topic("VersionRevoked")


class ChainUnreachable(Exception):
    """The RPC node did not answer, or answered something that is not JSON-RPC."""


class Rpc:
    """Plain JSON-RPC over one requests.Session: `call` and `batch`, each one HTTP POST,
    counted in `requests` (what the bench and the tests compare)."""

    def __init__(self, url: str, timeout: float = 20.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"hallmark-cli/{__version__}"
        self.requests = 0
        self._ids = itertools.count(1)

    def _post(self, body: Any) -> Any:
        self.requests += 1
        try:
            response = self.session.post(self.url, json=body, timeout=self.timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnreachable(f"the RPC node does not answer ({exc.__class__.__name__})") from None

    def call(self, method: str, params: list[Any]) -> Any:
        return self._unwrap(self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}))

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """All `calls` in one POST; results in the order given."""
        if not calls:
            return []
        first = next(self._ids)
        body = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        self._ids = itertools.count(first + len(calls))
        replies = self._post(body)
        if not isinstance(replies, list):
            raise ChainUnreachable("the RPC node does not take batch requests")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [self._unwrap(by_id.get(first + i)) for i in range(len(calls))]

    @staticmethod
    def _unwrap(reply: Any) -> Any:
        if not isinstance(reply, dict) or "result" not in reply:
            error = reply.get("error") if isinstance(reply, dict) else None
            message = str(error.get("message", ""))[:200] if isinstance(error, dict) else "no answer"
            raise ChainUnreachable(f"the RPC node refused a read: {message}")
        return reply["result"]


def _eth_call(registry: str, data: bytes) -> tuple[str, list[Any]]:
    return "eth_call", [{"to": registry, "data": "0x" + data.hex()}, "latest"]


def _ranges(start: int, end: int) -> Iterator[tuple[int, int]]:
    while start <= end:
        stop = min(start + LOG_STEP - 1, end)
        yield start, stop
        start = stop + 1


def _logs_call(registry: str, start: int, stop: int, topics: list[Any]) -> tuple[str, list[Any]]:
    return "eth_getLogs", [{"address": registry, "fromBlock": hex(start), "toBlock": hex(stop), "topics": topics}]


@dataclass
class Event:
    kind: str  # "published" | "revoked"
    model_id: str
    version: int
    block: int
    signer: str | None = None
    root: str | None = None
    reason: str = ""


def _parse_log(log: Any) -> Event | None:
    """A registry event from a raw log, or None for anything else (or anything malformed)."""
    try:
        return _event(log)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _event(log: dict[str, Any]) -> Event | None:
    topics = log.get("topics") or []
    if len(topics) < 3:
        return None
    model_id, version, block = topics[1].lower(), int(topics[2], 16), int(log.get("blockNumber") or "0x0", 16)
    data = bytes.fromhex(str(log.get("data", "0x"))[2:])
    if topics[0] == PUBLISHED and len(topics) == 4 and len(data) >= 64:
        signer = to_checksum_address("0x" + topics[3][-40:])
        return Event("published", model_id, version, block, signer=signer, root="0x" + data[:32].hex())
    if topics[0] == REVOKED:
        return Event("revoked", model_id, version, block, reason=_reason_text(data[:32]))
    return None


def _reason_text(raw: bytes) -> str:
    """A revocation reason is a bytes32: short ASCII text (right-padded), else its hex."""
    text = raw.rstrip(b"\x00")
    if text and all(32 <= b < 127 for b in text):
        return text.decode("ascii")
    return "0x" + raw.hex() if raw else ""


@dataclass
class PollResult:
    head: int = 0
    checked: int = 0
    rpc_requests: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.quarantined:
            return 3
        return 4 if self.updates else 0


Updater = Callable[[dict[str, Any], int], "tuple[bool, str]"]


def poll(
    data: dict[str, Any], rpc: Rpc, registry: str, *, verify_files: bool = False, updater: Updater | None = None,
) -> PollResult:
    """One poll over the inventory `data` (changed in place; the caller saves it)."""
    result = PollResult()
    start_requests = rpc.requests
    head = _quantity(rpc.call("eth_blockNumber", []))
    chain = data["chain"]
    last = chain.get("last_block")
    entries = inventory.installed(data)
    fresh = entries if last is None else [e for e in entries if not e.get("baseline")]
    calls: list[tuple[str, list[Any]]] = []
    if last is not None and head > int(last):
        calls += [_logs_call(registry, a, b, [[REVOKED, PUBLISHED]]) for a, b in _ranges(int(last) + 1, head)]
    n_incremental = len(calls)
    keys = sorted({(e["model_id"], int(e["version"])) for e in fresh})
    ids = sorted({k[0] for k in keys})
    for model_id, version in keys:
        raw = bytes.fromhex(model_id[2:])
        calls.append(_eth_call(registry, IS_REVOKED + abi_encode(["bytes32", "uint32"], [raw, version])))
        calls.append(_eth_call(registry, VERSION_DIGEST + abi_encode(["bytes32", "uint32"], [raw, version])))
    for model_id in ids:
        calls.append(_eth_call(registry, MODELS + abi_encode(["bytes32"], [bytes.fromhex(model_id[2:])])))
    n_reads = len(calls)
    if ids:
        origin = int(chain.get("deploy_block") or 0)
        calls += [_logs_call(registry, a, b, [[REVOKED, PUBLISHED], ids]) for a, b in _ranges(origin, head)]
    answers = rpc.batch(calls)
    if not all(isinstance(a, list) for a in answers[:n_incremental] + answers[n_reads:]):
        raise ChainUnreachable("the RPC node answered eth_getLogs with something that is not a list of logs")

    if fresh:
        baseline_logs = [log for chunk in answers[n_reads:] for log in chunk]
        _baseline(fresh, keys, ids, answers[n_incremental:n_reads], baseline_logs, result)
    events = [ev for chunk in answers[:n_incremental] for log in chunk if (ev := _parse_log(log))]
    _apply_events(inventory.installed(data), events, result)
    for entry in inventory.installed(data):
        _check_files(entry, verify_files, result)
    for entry in inventory.installed(data):
        pending = entry.get("update")
        if not pending or int(pending["version"]) <= int(entry["version"]):
            entry["update"] = None
            continue
        if updater is None:
            result.updates.append(entry)
            continue
        old = int(entry["version"])
        ok, message = updater(entry, int(pending["version"]))
        (result.updated if ok else result.updates).append(entry)
        result.notes.append(message)
        if ok:
            result.notes[-1] = f"updated {entry['repo_id']} v{old} -> v{entry['version']} in {entry['path']}: {message}"
            _record(result, recorder.record_update, entry, old)
    chain["last_block"] = head
    result.head = head
    result.checked = len(entries)
    result.rpc_requests = rpc.requests - start_requests
    return result


def _baseline(
    fresh: list[dict[str, Any]], keys: list[tuple[str, int]], ids: list[str], reads: list[Any],
    logs: list[dict[str, Any]], result: PollResult,
) -> None:
    """First look at models not checked yet: revoked, digest, vendor, signer, latest version.
    Every answer is decoded before anything is moved: a malformed one stops the poll first."""
    try:
        revoked = {k: abi_decode(["bool"], _raw(reads[2 * i]))[0] for i, k in enumerate(keys)}
        digests = {k: "0x" + bytes(abi_decode(["bytes32"], _raw(reads[2 * i + 1]))[0]).hex() for i, k in enumerate(keys)}
        offset = 2 * len(keys)
        models = {m: abi_decode(MODELS_TYPES, _raw(reads[offset + j])) for j, m in enumerate(ids)}
    except Exception as exc:  # eth_abi's DecodingError, a non-hex answer, …
        raise ChainUnreachable(f"the RPC node's answers are not the registry's ({exc.__class__.__name__})") from None
    events = [ev for log in logs if (ev := _parse_log(log))]
    signers = {(ev.model_id, ev.version): ev.signer for ev in events if ev.kind == "published"}
    reasons = {(ev.model_id, ev.version): ev.reason for ev in events if ev.kind == "revoked"}
    for entry in fresh:
        key = (entry["model_id"], int(entry["version"]))
        vendor_raw, latest = models[entry["model_id"]][0], int(models[entry["model_id"]][1])
        vendor = to_checksum_address(vendor_raw)
        if int(vendor, 16) == 0 or digests[key] == ZERO32:
            _quarantine(entry, f"the registry has no version {key[1]} of model {key[0]}", result)
            continue
        entry["vendor"] = vendor
        signer = signers.get(key)
        if digests[key] != entry["root_digest"]:
            _quarantine(entry, f"the root digest on chain {digests[key]} is not the installed files' {entry['root_digest']}", result)
        elif signer is None or signer.lower() != vendor.lower():
            _quarantine(entry, f"version {key[1]} was published by {signer}, not by the model's vendor {vendor}", result)
        elif revoked[key]:
            _quarantine(entry, _revoked_reason(key[1], reasons.get(key, "")), result)
        else:
            entry["baseline"] = True
            newer = [v for (m, v), s in signers.items() if m == key[0] and v > key[1] and s and s.lower() == vendor.lower()]
            if latest > key[1] and newer:
                entry["update"] = {"version": max(newer)}


def _raw(answer: Any) -> bytes:
    return bytes.fromhex(str(answer).removeprefix("0x"))


def _quantity(answer: Any) -> int:
    try:
        return int(str(answer), 16)
    except ValueError:
        raise ChainUnreachable("the RPC node's block number is not a number") from None


def _revoked_reason(version: int, reason: str) -> str:
    return f"version {version} was revoked by its vendor on chain" + (f" (reason: {reason})" if reason else "")


def _apply_events(entries: list[dict[str, Any]], events: list[Event], result: PollResult) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_model.setdefault(entry["model_id"], []).append(entry)
    for ev in sorted(events, key=lambda e: e.block):
        for entry in by_model.get(ev.model_id, []):
            if entry.get("status") != "installed":
                continue
            if ev.kind == "revoked" and ev.version == int(entry["version"]):
                _quarantine(entry, _revoked_reason(ev.version, ev.reason) + f" in block {ev.block}", result)
            elif ev.kind == "published" and ev.version > int(entry["version"]):
                vendor = str(entry.get("vendor") or "")
                if ev.signer is None or ev.signer.lower() != vendor.lower():
                    result.notes.append(
                        f"ignored {entry['repo_id']} v{ev.version}: published by {ev.signer}, not by the vendor {vendor}"
                    )
                elif not entry.get("update") or ev.version > int(entry["update"]["version"]):
                    entry["update"] = {"version": ev.version}
            elif ev.kind == "revoked" and entry.get("update") and ev.version == int(entry["update"]["version"]):
                entry["update"] = None  # the newer version was revoked before we installed it


def _check_files(entry: dict[str, Any], verify_files: bool, result: PollResult) -> None:
    folder = Path(entry["path"])
    for record in entry.get("files") or []:
        path = folder / record["path"]
        try:
            st = path.stat()
        except OSError:
            _quarantine(entry, f"file missing: {record['path']}", result)
            return
        if not verify_files and st.st_size == record["size"] and st.st_mtime_ns == record["mtime_ns"]:
            continue
        digest, _ = sha256_file(path)
        if digest != record["sha256"]:
            _quarantine(entry, f"tampered: {record['path']} is not the file the vendor signed (sha256 {digest})", result)
            return
        record["size"], record["mtime_ns"] = st.st_size, st.st_mtime_ns  # same bytes: remember the new stat


def _quarantine(entry: dict[str, Any], reason: str, result: PollResult) -> None:
    """Move the model's folder out of use, with REASON.txt, and mark the entry quarantined."""
    source = Path(entry["path"])
    target = inventory.quarantine_folder(entry["repo_id"], int(entry["version"]))
    if source.exists():
        shutil.move(str(source), str(target))  # a rename on the same file system
    else:
        target.mkdir(mode=0o700)
    (target / "REASON.txt").write_text(
        f"{entry['repo_id']} v{entry['version']} (model {entry['model_id']})\n"
        f"was installed in: {source}\nquarantined at: {inventory.now_iso()}\nreason: {reason}\n"
    )
    entry.update(status="quarantined", reason=reason[:500], quarantined_at=inventory.now_iso(), quarantine_path=str(target), update=None)
    result.quarantined.append(entry)
    _record(result, recorder.record_quarantine, entry)


def _record(result: PollResult, hook: Callable[..., Any], *args: Any) -> None:
    """Append to the flight recorder. The model is already moved and the inventory says so: a
    recorder that cannot be written is reported in the poll's notes, it never undoes that."""
    try:
        hook(*args)
    except (recorder.RecorderError, OSError) as exc:
        result.notes.append(f"warning: the flight recorder was not written: {exc}")
