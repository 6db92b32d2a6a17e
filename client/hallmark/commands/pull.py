"""`hallmark pull vendor/name`: download a version with huggingface_hub (resume and cache are
its own), save what the marketplace says about it in DIR/.hallmark/version.json, then verify the
files against the chain and exit with the verification's exit code. A verified pull is recorded in
the device's inventory (`hallmark watch` checks it from then on); a device registered with the
marketplace downloads with its own short-lived device token."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .. import config, device, inventory
from ..api import Api, ApiError
from ..console import CommandError, say, usage, warn
from ..manifest import FileDigest, hash_directory, root_digest
from . import verify
from .common import STATE_FOLDERS, endpoint, repo_id


def run(args: argparse.Namespace) -> int:
    vendor_slug, slug = repo_id(args.repo)
    repo = f"{vendor_slug}/{slug}"
    url = endpoint(args)
    device_token = device.device_token(url)  # a registered device downloads as itself
    token = device_token or config.token_for(url)
    if not token:
        raise CommandError(f"no API token for {url}: run `hallmark login --endpoint {url}` first (or set HALLMARK_TOKEN)")
    if not args.no_verify and not (args.rpc or os.environ.get("HALLMARK_RPC_URL")):
        raise usage("pull verifies against the chain: pass --rpc URL or set HALLMARK_RPC_URL (or --no-verify)")
    folder = Path(args.dir or slug)
    if device_token:
        say(f"downloading as device {device.state().get('address')}")
    detail, entry, _commit = download(url, token, repo, args.revision, folder, device=bool(device_token))
    if args.no_verify:
        warn("not verified against the chain (--no-verify)")
        return 0

    marketplace_registry = detail.get("registry_address")
    rpc_url, registry = verify.chain_options(args, registry_fallback=marketplace_registry)
    if not (args.registry or os.environ.get("HALLMARK_REGISTRY_ADDRESS")):
        say(f"registry {registry} as the marketplace reports it; pin your own with --registry or HALLMARK_REGISTRY_ADDRESS")
    code = verify.check(folder, detail["model_id"], entry["number"], rpc_url, registry, as_json=args.json)
    if code == 0:
        _record(folder, url, repo, detail, entry, {"rpc_url": rpc_url, "registry_address": registry, **_chain_info(url)})
    return code


def download(url: str, token: str, repo: str, revision: str, folder: Path, *, device: bool = False) -> tuple[dict, dict, str | None]:
    """Download `repo` at `revision` into `folder` with huggingface_hub and save what the
    marketplace says about the version in `folder/.hallmark/version.json`. A device token is
    good for downloads only: the model's public detail is read without it."""
    client = Api(url, None if device else token)
    detail = client.get(f"/api/v1/models/{repo}")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        commit = HfApi(endpoint=url, token=token).model_info(repo, revision=revision).sha
        entry = _version_entry(detail, commit)
        say(f"downloading {repo} v{entry['number']} (commit {commit}) into {folder}")
        snapshot_download(repo, revision=commit, endpoint=url, token=token, local_dir=folder)
    except CommandError:
        raise
    except HfHubHTTPError as exc:
        raise CommandError(f"the download failed: {_server_error(exc)}") from None
    except Exception as exc:  # connection failures (httpx or requests, by huggingface_hub version), a full disk, …
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CommandError(f"the download failed: {exc.__class__.__name__}: {first_line}; run the same command again to resume") from None
    saved = _save(folder, url, repo, detail, entry, commit, revision)
    say(f"saved {saved}")
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


def _server_error(exc: Exception) -> str:
    """The marketplace's error behind a huggingface_hub HTTP error: `{"code", "message"}` in the
    body, or in `X-Error-Code` / `X-Error-Message` (HEAD answers have no body)."""
    response: Any = getattr(exc, "response", None)
    try:
        body = response.json()
        return f"{body['message']} [{body['code']}]"
    except Exception:
        pass
    headers = response.headers if response is not None else {}
    message = headers.get("X-Error-Message") or str(exc).splitlines()[0]
    code = headers.get("X-Error-Code")
    return message + (f" [{code}]" if code else "")


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
    path = folder / verify.SAVED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
