"""`hallmark watch [--once] [--interval S] [--update] [--verify-files]`: check every installed
model against the chain, quarantine what must not run, optionally install verified updates,
and report the signed inventory when the device is registered (hallmark.watch has the design).

Exit codes (the last poll's): 0 all good, 3 something was quarantined, 4 an update is available
(and nothing was quarantined), 7 the chain is unreachable; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from .. import config, device, inventory
from ..console import CommandError, say, usage, warn
from ..verify import Outcome, verify_directory
from ..watch import ChainUnreachable, PollResult, Rpc, poll
from . import pull
from .common import STATE_FOLDERS
from .verify import ADDRESS

UNREACHABLE = 7


def run(args: argparse.Namespace) -> int:
    data = inventory.load()
    rpc_url, registry = _chain(args, data)
    if args.interval <= 0:
        raise usage("--interval: a positive number of seconds")
    rpc = Rpc(rpc_url)
    if args.once:
        return _one(args, rpc, registry)
    # Ctrl-C (or SIGTERM) lets the poll under way finish, so no model is left half moved and the
    # inventory always says where its files are; the loop then stops with the last poll's code
    stopping = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while not stopping.is_set():
            code = _one(args, rpc, registry)
            stopping.wait(args.interval)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    say("watch stopped")
    return code


def _chain(args: argparse.Namespace, data: dict[str, Any]) -> tuple[str, str]:
    """--rpc/--registry, else the environment, else what `hallmark pull` stored in the inventory."""
    known = data["chain"]
    rpc_url = args.rpc or os.environ.get("HALLMARK_RPC_URL") or known.get("rpc_url")
    registry = args.registry or os.environ.get("HALLMARK_REGISTRY_ADDRESS") or known.get("registry_address")
    if not rpc_url:
        raise usage("watch reads the chain: pass --rpc URL or set HALLMARK_RPC_URL")
    if not registry or not ADDRESS.match(str(registry)):
        raise usage("which ModelRegistry? pass --registry 0x… or set HALLMARK_REGISTRY_ADDRESS")
    registry = to_checksum_address(registry)
    if known.get("registry_address") and str(known["registry_address"]).lower() != registry.lower():
        raise usage(f"the inventory was checked against the registry {known['registry_address']}, not {registry}")
    return str(rpc_url), registry


def _one(args: argparse.Namespace, rpc: Rpc, registry: str) -> int:
    data = inventory.load()  # re-read: a `hallmark pull` may have added a model since the last poll
    updater = _Updater(rpc.url, registry) if args.update else None
    started = {key: entry.get("installed_at") for key, entry in data["models"].items()}
    try:
        result = poll(data, rpc, registry, verify_files=args.verify_files, updater=updater)
    except ChainUnreachable as exc:
        print(f"error: chain unreachable: {exc}; nothing was checked", file=sys.stderr, flush=True)
        return UNREACHABLE
    data["chain"].setdefault("registry_address", registry)
    # a `hallmark pull` that finished during the poll wrote its install meanwhile: keep it
    for key, entry in inventory.load()["models"].items():
        if started.get(key) != entry.get("installed_at"):
            data["models"][key] = entry
    inventory.save(data)
    _print(result, args.json)
    _report(data)
    return result.exit_code


def _print(result: PollResult, as_json: bool) -> None:
    if as_json:
        say(json.dumps({
            "exit_code": result.exit_code, "head": result.head, "checked": result.checked, "rpc_requests": result.rpc_requests,
            "quarantined": [{k: e.get(k) for k in ("repo_id", "version", "reason", "quarantine_path")} for e in result.quarantined],
            "updates": [{"repo_id": e["repo_id"], "version": e["version"], "available": (e.get("update") or {}).get("version")} for e in result.updates],
            "updated": [{"repo_id": e["repo_id"], "version": e["version"]} for e in result.updated],
            "notes": result.notes,
        }))
        return
    for entry in result.quarantined:
        say(f"quarantined {entry['repo_id']} v{entry['version']}: {entry['reason']}")
        say(f"  moved {entry['path']} -> {entry['quarantine_path']}")
    for note in result.notes:
        say(note)
    for entry in result.updates:
        available = (entry.get("update") or {}).get("version")
        say(f"update available: {entry['repo_id']} v{entry['version']} -> v{available} in {entry['path']} (run with --update)")
    say(f"checked {result.checked} model(s) at block {result.head} ({result.rpc_requests} RPC request(s))")


def _report(data: dict[str, Any]) -> None:
    """Post the signed inventory when the device is registered; a failure is printed only."""
    url = device.state().get("endpoint")
    if not url or not device.has_key():
        return
    try:
        device.report(url, inventory.report_body(data, device.load_key().address))
        say(f"inventory reported to {url}")
    except Exception as exc:  # the report is best effort: it never changes the exit code
        warn(f"the inventory was not reported: {exc}")


class _Updater:
    """Pull the newer version into a staging folder beside the installed one, verify it on
    chain, and only then swap it in (two renames) and remove the old files."""

    def __init__(self, rpc_url: str, registry: str) -> None:
        self.rpc_url = rpc_url
        self.registry = registry

    def __call__(self, entry: dict[str, Any], version: int) -> tuple[bool, str]:
        folder = Path(entry["path"])
        staging = folder.parent / f".{folder.name}.hallmark-staging-v{version}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            detail, ventry = self._download(entry, version, staging)
            result = verify_directory(
                staging, rpc_url=self.rpc_url, registry_address=self.registry, model_id=entry["model_id"], version=version,
                manifest=ventry.get("manifest"), metadata=ventry.get("metadata"), exclude=STATE_FOLDERS,
            )
        except (CommandError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            entry["rejected"] = {"version": version, "reason": str(exc)[:300]}
            return False, f"update of {entry['repo_id']} to v{version} failed: {exc}; v{entry['version']} stays in place"
        if result.outcome is not Outcome.VERIFIED or int(ventry["number"]) != version:
            shutil.rmtree(staging, ignore_errors=True)
            entry["rejected"] = {"version": version, "reason": result.message[:300]}
            return False, (
                f"update of {entry['repo_id']} to v{version} failed verification ({result.outcome.name.lower()}: "
                f"{result.message}); v{entry['version']} stays in place"
            )
        files = pull.verified_files(staging, ventry)
        retired = folder.parent / f".{folder.name}.hallmark-retired-v{entry['version']}"
        shutil.rmtree(retired, ignore_errors=True)
        os.rename(folder, retired)
        os.rename(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
        entry.update(
            version=version, root_digest="0x" + str(result.chain_root), files=inventory.file_records(folder, files),
            installed_at=inventory.now_iso(), update=None, rejected=None, vendor=result.vendor or entry.get("vendor"),
        )
        return True, f"verified on chain ({len(files)} file(s), signed by the vendor)"

    @staticmethod
    def _download(entry: dict[str, Any], version: int, staging: Path) -> tuple[dict, dict]:
        url = entry.get("endpoint")
        if not url:
            raise CommandError("no marketplace is recorded for this install")
        device_token = device.device_token(url)
        token = device_token or config.token_for(url)
        if not token:
            raise CommandError(f"no API token for {url}")
        detail, ventry, _ = pull.download(url, token, entry["repo_id"], f"v{version}", staging, device=bool(device_token))
        return detail, ventry
