"""The device's flight recorder: an append-only, hash-chained log of what happened to its models.

One JSON object per line in `<config folder>/recorder.jsonl`::

    {"seq": 1, "at": "2026-01-01T00:00:00Z", "kind": "pull", "data": {...}, "prev": "0x00…00", "hash": "0x…"}

- `seq` counts lines from 1; `prev` is the `hash` of the line before (64 zeros for the first);
- `hash` is ``sha256`` of the line's canonical JSON without its `hash` field (keys sorted, no
  spaces, UTF-8), so editing any field of a line breaks its own hash, and re-hashing an edited
  line breaks the `prev` of the line after it;
- kinds: pull, receipt (one per `X-Hallmark-Receipt` the marketplace sent), verify, quarantine,
  update.

Why a chain and not just a file: an auditor who later holds the log can tell that nothing was
edited, removed or reordered *inside* it, and which line was. Cutting lines off the *end* leaves a
valid shorter chain: note the head hash (`hallmark recorder verify` prints it) somewhere else, and
`verify(expect=HEAD)` proves the log still contains that line. The receipts in it are anchored on
chain by the marketplace, so they can be checked without trusting the device or the marketplace.

Writes: the file is opened in append mode (0600), each line is written with one `write` and
fsynced before `append` returns, under an exclusive `flock` so a `watch` loop and a `pull` never
interleave or reuse a `seq`.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import config
from .inventory import now_iso

LOG = "recorder.jsonl"
KINDS = ("pull", "receipt", "verify", "quarantine", "update")
GENESIS = "0x" + "00" * 32
MAX_LINE = 16 * 1024  # bytes of one line: a record bigger than this is refused, a longer line is damage
FIELDS = ("seq", "at", "kind", "data", "prev", "hash")
HASH = re.compile(r"^0x[0-9a-f]{64}$")
MAX_RECEIPTS_PER_PULL = 100_000  # header values one pull records at most (ranged downloads make many)


class RecorderError(Exception):
    """The log cannot be read or appended to (a damaged last line, a record too big, I/O)."""


def log_path() -> Path:
    return config.config_dir() / LOG


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(line: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the line without its own `hash` field, as 0x-hex."""
    body = {k: v for k, v in line.items() if k != "hash"}
    return "0x" + hashlib.sha256(canonical(body)).hexdigest()


# ------------------------------------------------------------------------------------ writing


def append(kind: str, data: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Append one line and fsync it; returns the line written (with its seq and hash)."""
    if kind not in KINDS:
        raise ValueError(f"unknown recorder kind {kind!r}")
    path = path or log_path()
    if path == log_path():
        config.ensure_dir()
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seq, prev = _tail(fd)
        line = {"seq": seq + 1, "at": now_iso(), "kind": kind, "data": data, "prev": prev}
        line["hash"] = line_hash(line)
        raw = canonical(line) + b"\n"
        if len(raw) > MAX_LINE:
            raise RecorderError(f"a {kind} record of {len(raw)} bytes is over the {MAX_LINE} byte limit")
        os.write(fd, raw)  # one write in O_APPEND mode: the line lands whole at the end
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    if created:
        _fsync_dir(path.parent)
    return line


def _tail(fd: int) -> tuple[int, str]:
    """(seq, hash) of the last line, (0, GENESIS) for an empty file. Reads only the end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS
    chunk = os.pread(fd, min(size, MAX_LINE + 1), max(0, size - MAX_LINE - 1))
    if not chunk.endswith(b"\n"):
        raise RecorderError("the recorder log ends in an unfinished line (a write cut short?): "
                            "run `hallmark recorder verify`, export it, and move the file aside to start a new log")
    last = chunk[:-1].rsplit(b"\n", 1)[-1]
    try:
        line = json.loads(last)
        seq, digest = int(line["seq"]), str(line["hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RecorderError(f"the recorder log's last line is not a record ({exc.__class__.__name__}): "
                            "run `hallmark recorder verify`") from None
    return seq, digest


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- the hooks


def record_pull(
    *, repo_id: str, model_id: str, version: int, root_digest: str, directory: str | Path,
    receipt_headers: Iterable[str] = (), endpoint: str | None = None,
) -> dict[str, Any]:
    """What `hallmark pull` calls once the files are installed: one `pull` line, then one `receipt`
    line per `X-Hallmark-Receipt` header value the downloads carried (decoded and checked with
    hallmark.receipts; a value that does not decode is counted, not kept). Returns the pull line."""
    from . import receipts  # the shared receipt library, loaded only when a pull records receipts

    decoded, invalid = [], 0
    for header in itertools.islice(receipt_headers, MAX_RECEIPTS_PER_PULL):
        try:
            decoded.append(receipts.decode_header(header).to_json())
        except Exception:  # whatever the server sent that is not a receipt: counted below
            invalid += 1
    pull = append("pull", {
        "repo_id": str(repo_id)[:200], "model_id": str(model_id), "version": int(version), "root_digest": str(root_digest),
        "directory": str(directory)[:1000], "endpoint": _public_url(endpoint),
        "receipts": len(decoded), "invalid_receipts": invalid,
    })
    for receipt in decoded:
        append("receipt", {"pull_seq": pull["seq"], "receipt": receipt})
    return pull


def _public_url(url: str | None) -> str | None:
    """The marketplace's scheme, host and path: never a user:password or a query it may carry."""
    if not url:
        return None
    parts = urlsplit(str(url)[:300])
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def record_verify(*, model_id: str, version: int, outcome: str, directory: str | Path, root_digest: str | None = None) -> dict[str, Any]:
    """A verification of installed files against the chain (hallmark verify / pull)."""
    return append("verify", {
        "model_id": str(model_id), "version": int(version), "outcome": str(outcome)[:40],
        "directory": str(directory)[:1000], "root_digest": root_digest,
    })


def record_quarantine(entry: dict[str, Any]) -> dict[str, Any]:
    """`watch` moved a model out of use: which one, why, and where it went."""
    return append("quarantine", {
        "repo_id": str(entry.get("repo_id"))[:200], "model_id": entry.get("model_id"), "version": int(entry["version"]),
        "root_digest": entry.get("root_digest"), "reason": str(entry.get("reason", ""))[:500],
        "from": str(entry.get("path"))[:1000], "to": str(entry.get("quarantine_path"))[:1000],
    })


def record_update(entry: dict[str, Any], old_version: int) -> dict[str, Any]:
    """`watch --update` swapped in a newer version after it verified on chain."""
    return append("update", {
        "repo_id": str(entry.get("repo_id"))[:200], "model_id": entry.get("model_id"), "from_version": int(old_version),
        "version": int(entry["version"]), "root_digest": entry.get("root_digest"), "directory": str(entry.get("path"))[:1000],
    })


# ---------------------------------------------------------------------------------- verifying


@dataclass
class Check:
    """The outcome of `verify`: `line` and `problem` name the first damaged line (1-based)."""

    ok: bool
    lines: int
    head: str
    line: int | None = None
    problem: str = ""
    found_expected: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "lines": self.lines, "head": self.head, "line": self.line, "problem": self.problem,
                "found_expected_head": self.found_expected}


def verify(path: Path | None = None, expect: str | None = None) -> Check:
    """Walk the log: every line must be a record whose hash is its own, whose `seq` is its line
    number and whose `prev` is the hash of the line before. Stops at the first damaged line.
    `expect`: a head hash noted earlier that must still be in the log (cut-off lines show)."""
    path = path or log_path()
    prev, lines, found = GENESIS, 0, expect is None
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; a missing log is an empty one)
    except FileNotFoundError:
        return _finish(Check(True, 0, GENESIS), expect, found)
    with fh:
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            number = lines + 1
            problem = _line_problem(raw, number, prev)
            if problem:
                return Check(False, lines, prev, number, f"line {number}: {problem}")
            record = json.loads(raw)
            prev, lines = record["hash"], number
            found = found or record["hash"] == (expect or "").lower()
    return _finish(Check(True, lines, prev), expect, found)


def _finish(check: Check, expect: str | None, found: bool) -> Check:
    if expect is None:
        return check
    check.found_expected = found
    if not found:
        check.ok = False
        check.problem = f"no line has the hash {expect}: the log was cut short or rewritten since that head was noted"
    return check


def _line_problem(raw: bytes, number: int, prev: str) -> str:
    if len(raw) > MAX_LINE:
        return f"longer than {MAX_LINE} bytes: not a record"
    if not raw.endswith(b"\n"):
        return "unfinished (no end of line): a write was cut short or the file was truncated inside the line"
    try:
        record = json.loads(raw)
    except ValueError:
        return "not JSON: the line was edited or damaged"
    if not isinstance(record, dict) or sorted(record) != sorted(FIELDS):
        return f"not a record: its fields must be {', '.join(FIELDS)}"
    if record["kind"] not in KINDS or not isinstance(record["seq"], int) or not HASH.match(str(record["hash"])):
        return "not a record: unknown kind, or a seq or hash of the wrong form"
    if line_hash(record) != record["hash"]:
        return "edited: its content does not match its hash"
    if record["seq"] != number:
        return (f"has seq {record['seq']} where {number} was expected: a line was removed before it, "
                "or lines were reordered or copied")
    if record["prev"] != prev:
        what = "the start of the log" if number == 1 else f"line {number - 1}'s hash"
        return f"its prev is not {what}: the line before it was edited and re-hashed, replaced or moved"
    return ""


def records(path: Path | None = None) -> list[dict[str, Any]]:
    """Every line that parses as JSON (for export; call `verify` to know whether to trust them)."""
    path = path or log_path()
    out = []
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw[:MAX_LINE])
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
    except FileNotFoundError:
        pass
    return out


# ---------------------------------------------------------------------------------- exporting

README = """\
# Flight recorder export

Written by `hallmark recorder export` on {at} from the device log {source}.

- `recorder.jsonl`: the log itself, byte for byte: one JSON object per line,
  `{{"seq", "at", "kind", "data", "prev", "hash"}}`, kinds pull, receipt, verify, quarantine, update.
- `verification.json`: what `hallmark recorder verify` said when this was exported.
  At export: {summary}
- `receipts/<receipt id>.json`: each download receipt the marketplace sent in its
  `X-Hallmark-Receipt` header, as `{{"receipt": {{...}}}}` ({count} receipt(s)).

## Check the log

    hallmark recorder verify --log recorder.jsonl [--expect-head 0x<a head noted earlier>]

or by hand: for line N (from 1), `seq` must be N, `prev` must be the `hash` of line N-1
(64 zeros for line 1), and `hash` must be `0x` + sha256 of the line's JSON without its `hash`
field, with keys sorted and no spaces (`json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`, UTF-8). The chain shows an edited, removed or reordered line; lines cut
off the end leave a shorter valid chain, so compare the head below with one noted earlier
(the device's reports, a ticket, a previous export).

Head (the last line's hash): {head}, {lines} line(s).

## Check a receipt against the chain (no marketplace needed)

The marketplace anchors batches of receipts on chain (`anchorReceipts`); once a receipt's batch
is anchored, `GET /api/v1/receipts/<receipt id>` returns it with its Merkle proof. Save that
answer and run:

    hallmark audit answer.json --rpc <RPC URL> --registry <ModelRegistry address>

It checks the proof against the root anchored on chain, the receipt's root digest against
`versionDigest`, and whether the version was already revoked when the file was served
(exit codes in docs/cli.md). The receipt in the answer must be the one in `receipts/`.
"""

RECEIPT_ID = re.compile(r"^0x[0-9a-f]{64}$")


def export(dest: Path, path: Path | None = None) -> tuple[Check, int]:
    """Write what an auditor needs into the new (or empty) folder `dest`: the log, its
    verification, the receipts one file each, and a README. Returns the check and the number of
    receipts. A damaged log is exported all the same: the damage is the evidence."""
    path = path or log_path()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RecorderError(f"{dest} exists and is not an empty folder")
    check = verify(path)
    dest.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.copyfile(path, dest / LOG)
    else:
        (dest / LOG).write_bytes(b"")
    (dest / "verification.json").write_text(json.dumps(check.as_dict(), indent=2) + "\n")
    folder = dest / "receipts"
    folder.mkdir()
    count = 0
    for record in records(path):
        receipt = record.get("data", {}).get("receipt") if record.get("kind") == "receipt" and isinstance(record.get("data"), dict) else None
        receipt_id = str(receipt.get("receipt_id", "")).lower() if isinstance(receipt, dict) else ""
        if not RECEIPT_ID.match(receipt_id):  # the id becomes a file name: only a 0x + 64 hex id
            continue
        (folder / f"{receipt_id}.json").write_text(json.dumps({"receipt": receipt}, indent=2, sort_keys=True) + "\n")
        count += 1
    summary = "intact" if check.ok else f"DAMAGED: {check.problem}"
    (dest / "README.md").write_text(README.format(
        at=now_iso(), source=path, summary=summary, count=count, head=check.head, lines=check.lines,
    ))
    return check, count
