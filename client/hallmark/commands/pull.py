"""`hallmark pull vendor/name`: download a version with hallmark's own downloader
(`hallmark.fetch`: ranged, parallel, checked segment by segment, resumable across restarts),
save what the marketplace says about it in DIR/.hallmark/version.json, verify the files against
the chain, and only then put them in DIR (the previous DIR stays untouched until the version
verifies). Exit with the verification's exit code. A verified pull is recorded in the device's
inventory (`hallmark watch` checks it from then on); a device registered with the marketplace
downloads with its own short-lived device token."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .. import config, fetch, inventory
from ..api import Api, ApiError
from ..console import CommandError, say, usage, warn
from ..errors import ProvenanceError
from ..manifest import SIGNATURE_FILE, FileDigest, hash_directory, root_digest
from ..segments import SEGMENT_SIZE, SegmentDocumentError, check_document
from .common import STATE_FOLDERS, endpoint, repo_id

MAX_WORKERS = 32
SAVED = Path(".hallmark") / "version.json"  # = commands.verify.SAVED, imported only for the chain check
CHAIN_UNAVAILABLE = 7  # = verify.Outcome.CHAIN_UNAVAILABLE
DEVICE_FILE = "device.json"  # = device.DEVICE_FILE: no registration, no need to load eth-account (a third of a second)


def _device_token(url: str) -> tuple[str | None, str | None]:
    """The device token and address when this device is registered with `url`."""
    if not (config.config_dir() / DEVICE_FILE).exists():
        return None, None
    from .. import device

    token = device.device_token(url)
    return token, (device.state().get("address") if token else None)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "clean", None):
        return _clean(args)
    if not args.repo:
        raise usage("which model? hallmark pull VENDOR/NAME (or --clean DIR)")
    vendor_slug, slug = repo_id(args.repo)
    repo = f"{vendor_slug}/{slug}"
    workers = fetch._DEFAULT_WORKERS if getattr(args, "workers", None) is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise usage(f"--workers is a whole number from 1 to {MAX_WORKERS}")
    url = endpoint(args)
    device_token, device_address = _device_token(url)  # a registered device downloads as itself
    token = device_token or config.token_for(url)
    if not token:
        raise CommandError(f"no API token for {url}: run `hallmark login --endpoint {url}` first (or set HALLMARK_TOKEN)")
    if not args.no_verify and not (args.rpc or os.environ.get("HALLMARK_RPC_URL")):
        raise usage("pull verifies against the chain: pass --rpc URL or set HALLMARK_RPC_URL (or --no-verify)")
    folder = Path(args.dir or slug)
    _check_target(folder)
    if device_token:
        say(f"downloading as device {device_address}")
    progress = fetch.BarProgress(bar=sys.stderr.isatty() and not args.json, verbose=bool(getattr(args, "verbose", False)) and not args.json, say=say)
    detail, entry, commit = resolve(url, token, repo, args.revision, device=bool(device_token))
    say(f"downloading {repo} v{entry['number']} (commit {commit}) into {folder}")
    staged, receipts = fetch_staged(
        url, token, repo, commit, detail, entry, folder, device=bool(device_token), workers=workers, progress=progress
    )
    _save(staged, url, repo, detail, entry, commit, args.revision)
    if args.no_verify:
        _install(staged, folder)
        warn("not verified against the chain (--no-verify)")
        return 0

    from . import verify

    marketplace_registry = detail.get("registry_address")
    rpc_url, registry = verify.chain_options(args, registry_fallback=marketplace_registry)
    if not (args.registry or os.environ.get("HALLMARK_REGISTRY_ADDRESS")):
        say(f"registry {registry} as the marketplace reports it; pin your own with --registry or HALLMARK_REGISTRY_ADDRESS")
    # every file was hashed as it arrived and matched the signed metadata's list (fetch.py): those
    # digests are the folder's, so the chain check does not read the files a second time
    hashed = [FileDigest(f.path, f.sha256, f.size) for f in fetch.wanted_files(entry.get("metadata") or {})]
    code = verify.check(staged, detail["model_id"], entry["number"], rpc_url, registry, as_json=args.json, hashed=hashed, endpoint=url, repo=repo)
    if code != 0:
        if code != CHAIN_UNAVAILABLE:  # the files will not verify next time either
            shutil.rmtree(fetch.partial_root(folder), ignore_errors=True)
        warn(f"nothing was installed; {folder} is as it was")
        return code
    _install(staged, folder)
    _record(folder, url, repo, detail, entry, {"rpc_url": rpc_url, "registry_address": registry, **_chain_info(url)})
    _flight_record(folder, url, repo, detail, entry, receipts)
    return code


def _flight_record(folder: Path, url: str, repo: str, detail: dict, entry: dict, receipts: list[str]) -> None:
    """The pull and its receipts in the device's flight recorder (hallmark recorder verify|export);
    a recorder that cannot be written is said, and the install stands."""
    from .. import recorder

    try:
        line = recorder.record_pull(
            repo_id=repo, model_id=detail["model_id"], version=entry["number"], root_digest=entry["root_digest"],
            directory=folder.resolve(), receipt_headers=receipts, endpoint=url,
        )
    except (OSError, ValueError) as exc:
        warn(f"the flight recorder could not be written: {exc}")
        return
    say(f"flight recorder: pull recorded with {line['data']['receipts']} receipt(s)")


def _clean(args: argparse.Namespace) -> int:
    folder = Path(args.clean)
    removed = fetch.clean(folder)
    say(f"removed {fetch.partial_root(folder)}" if removed else f"no partial download for {folder}")
    return 0


def _check_target(folder: Path) -> None:
    try:
        fetch.check_target(folder, str(SAVED))
    except fetch.FetchError as exc:
        raise CommandError(str(exc), exc.exit_code) from None


def _install(staged: Path, folder: Path) -> None:
    fetch.install(staged, folder)
    say(f"installed in {folder}; saved {folder / SAVED}")


def resolve(url: str, token: str, repo: str, revision: str, *, device: bool = False) -> tuple[dict, dict, str]:
    """The model's public detail, the version `revision` names and its commit. A device token is
    good for downloads only: the model's public detail is read without it."""
    detail = Api(url, None if device else token).get(f"/api/v1/models/{repo}")
    try:
        info = Api(url, token).get(f"/api/models/{repo}/revision/{quote(revision or 'main', safe='')}")
    except ApiError as exc:
        raise CommandError(f"the download failed: {exc}") from None
    commit = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(commit, str) or len(commit) != 40 or not set(commit) <= set("0123456789abcdef"):
        raise CommandError("the marketplace did not name the revision's commit")
    return detail, _version_entry(detail, commit), commit


def fetch_staged(
    url: str, token: str, repo: str, commit: str, detail: dict, entry: dict, folder: Path, *,
    device: bool = False, workers: int = fetch._DEFAULT_WORKERS, progress: fetch.Progress | None = None,
) -> tuple[Path, list[str]]:
    """Download the version's files into the staging folder beside `folder`, each checked against
    the signed metadata (per segment when the version has a segment document): its path, and the
    `X-Hallmark-Receipt` values the answers carried."""
    metadata = entry.get("metadata") or {}
    try:
        files = fetch.wanted_files(metadata)
        segments, size = _segments(url, None if device else token, repo, entry, files)
        downloader = fetch.Downloader(
            endpoint=url, token=token, repo=repo, commit=commit, files=files, folder=folder,
            segments=segments, segment_size=size, workers=workers, progress=progress,
        )
        staged = downloader.run()
        _signature(url, None if device else token, repo, entry, staged)
        return staged, list(downloader.receipts)
    except fetch.FetchError as exc:
        if exc.exit_code == fetch.TAMPERED:  # bytes that are not the signed ones are not kept to resume from
            shutil.rmtree(fetch.partial_root(folder), ignore_errors=True)
        raise CommandError(str(exc), exc.exit_code) from None
    except ProvenanceError as exc:  # an unsafe file name in the metadata
        raise CommandError(f"the version's metadata names an unsafe file: {exc} [{exc.code}]", 3) from None


def _signature(url: str, token: str | None, repo: str, entry: dict, staged: Path) -> None:
    """The version's OMS signature bundle as `model.sig` beside its files, when its signed metadata
    names a signing key: the stock `model_signing verify key` then works on the folder, and the
    chain check (`verify.check`) checks it. Size bounded before it is kept; a marketplace that has
    none to give is said, and the files stand on their own (their digests are the chain's)."""
    if not isinstance((entry.get("metadata") or {}).get("signing_key"), dict):
        return
    from ..oms import MAX_BUNDLE_BYTES

    api = Api(url, token)
    path = f"/api/v1/models/{repo}/versions/{int(entry['number'])}/{SIGNATURE_FILE}"
    try:
        with api.session.get(api.url(path), timeout=api.timeout, stream=True) as response:
            if response.status_code != 200:
                warn(f"no {SIGNATURE_FILE} for this version (HTTP {response.status_code}): the files are checked without it")
                return
            raw = response.raw.read(MAX_BUNDLE_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        warn(f"{SIGNATURE_FILE} could not be fetched ({exc.__class__.__name__}): the files are checked without it")
        return
    if len(raw) > MAX_BUNDLE_BYTES:
        warn(f"{SIGNATURE_FILE} is larger than {MAX_BUNDLE_BYTES} bytes: not kept")
        return
    (staged / SIGNATURE_FILE).write_bytes(raw)


def _segments(url: str, token: str | None, repo: str, entry: dict, files: list[fetch.Wanted]) -> tuple[dict[str, list[str]] | None, int]:
    """The per-segment digests the signed metadata commits to (`segments`), checked; without
    them (an older version, or the document unavailable) every file is checked as a whole."""
    committed = (entry.get("metadata") or {}).get("segments")
    if not isinstance(committed, dict):
        return None, SEGMENT_SIZE
    try:
        document = Api(url, token).get(f"/api/v1/models/{repo}/versions/{int(entry['number'])}/segments")
    except ApiError as exc:
        warn(f"no segment document ({exc}): each file is checked as a whole once it has arrived")
        return None, SEGMENT_SIZE
    try:
        digests = check_document(document, committed, {f.path: f.size for f in files})
    except SegmentDocumentError as exc:
        raise fetch.FetchError(f"the segment document is not the signed one: {exc}", fetch.TAMPERED) from None
    return digests, int(document["segment_size"])


def download(url: str, token: str, repo: str, revision: str, folder: Path, *, device: bool = False) -> tuple[dict, dict, str | None]:
    """Download `repo` at `revision` into `folder` (a staging folder of `hallmark watch --update`,
    which verifies it on chain itself), each file checked against the signed metadata, and save
    what the marketplace says about the version in `folder/.hallmark/version.json`."""
    detail, entry, commit = resolve(url, token, repo, revision, device=device)
    say(f"downloading {repo} v{entry['number']} (commit {commit}) into {folder}")
    staged, _receipts = fetch_staged(url, token, repo, commit, detail, entry, folder, device=device)
    _save(staged, url, repo, detail, entry, commit, revision)
    fetch.install(staged, folder)
    return detail, entry, commit


def _chain_info(url: str) -> dict[str, Any]:
    """The registry's deploy block (where `hallmark watch` starts reading logs), if the server says."""
    try:
        info = Api(url).get("/api/v1/chain")
    except ApiError:
        return {}
    block = info.get("deploy_block") if isinstance(info, dict) else None
    return {"deploy_block": block} if isinstance(block, int) else {}


def _record(folder: Path, url: str, repo: str, detail: dict, entry: dict, chain: dict[str, Any]) -> None:
    """Add the verified install to the device's inventory (`hallmark watch` checks it from now on)."""
    files = verified_files(folder, entry)
    inventory.record_install(
        folder, repo_id=repo, model_id=detail["model_id"], version=entry["number"], root_digest=entry["root_digest"],
        vendor=detail.get("vendor_address"), endpoint=url, files=files, chain=chain,
    )
    say(f"recorded in the inventory: {repo} v{entry['number']} in {folder.resolve()}")


def verified_files(folder: Path, entry: dict) -> list[dict[str, Any]]:
    """The files just verified, `{path, sha256}`: from the signed metadata when it lists them
    (verification authenticated it), else hashed again."""
    listed = (entry.get("metadata") or {}).get("files")
    if isinstance(listed, list) and listed and all(isinstance(f, dict) and "path" in f and "sha256" in f for f in listed):
        digests = [FileDigest(str(f["path"]), str(f["sha256"]), 0) for f in listed]
        if root_digest(digests) == str(entry.get("root_digest") or "").lower().removeprefix("0x"):
            return [{"path": f.name, "sha256": f.sha256} for f in digests]
    return [{"path": f.name, "sha256": f.sha256} for f in hash_directory(folder, exclude=STATE_FOLDERS)]


def _version_entry(detail: dict, commit: str | None) -> dict:
    matching = [v for v in detail.get("versions", []) if v.get("commit") == commit]
    if not matching:
        raise CommandError(f"the marketplace lists no live version with commit {commit}")
    return max(matching, key=lambda v: v["number"])


def _save(folder: Path, endpoint: str, repo: str, detail: dict, entry: dict, commit: str | None, revision: str | None) -> Path:
    record = {
        "repo_id": repo,
        "endpoint": endpoint,
        "revision": revision,
        "commit": commit,
        "model_id": detail["model_id"],
        "vendor_address": detail.get("vendor_address"),
        "registry_address": detail.get("registry_address"),
        "version": entry["number"],
        "root_digest": entry.get("root_digest"),
        "metadata_digest": entry.get("metadata_digest"),
        "files": entry.get("files"),
        "manifest": entry.get("manifest"),
        "metadata": entry.get("metadata"),
    }
    path = folder / SAVED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
