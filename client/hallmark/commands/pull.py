"""`hallmark pull vendor/name`: download a version with huggingface_hub (resume and cache are
its own), save what the marketplace says about it in DIR/.hallmark/version.json, then verify the
files against the chain and exit with the verification's exit code."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..console import CommandError, say, usage, warn
from . import verify
from .common import api, repo_id


def run(args: argparse.Namespace) -> int:
    vendor_slug, slug = repo_id(args.repo)
    repo = f"{vendor_slug}/{slug}"
    client = api(args, token_required=True)
    if not args.no_verify and not (args.rpc or os.environ.get("HALLMARK_RPC_URL")):
        raise usage("pull verifies against the chain: pass --rpc URL or set HALLMARK_RPC_URL (or --no-verify)")
    folder = Path(args.dir or slug)

    detail = client.get(f"/api/v1/models/{repo}")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        commit = HfApi(endpoint=client.endpoint, token=client.token).model_info(repo, revision=args.revision).sha
        entry = _version_entry(detail, commit)
        say(f"downloading {repo} v{entry['number']} (commit {commit}) into {folder}")
        snapshot_download(repo, revision=commit, endpoint=client.endpoint, token=client.token, local_dir=folder)
    except CommandError:
        raise
    except HfHubHTTPError as exc:
        raise CommandError(f"the download failed: {_server_error(exc)}") from None
    except Exception as exc:  # connection failures (httpx or requests, by huggingface_hub version), a full disk, …
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CommandError(f"the download failed: {exc.__class__.__name__}: {first_line}; run the same command again to resume") from None
    saved = _save(folder, client.endpoint, repo, detail, entry, commit, args.revision)
    say(f"saved {saved}")
    if args.no_verify:
        warn("not verified against the chain (--no-verify)")
        return 0

    marketplace_registry = detail.get("registry_address")
    rpc_url, registry = verify.chain_options(args, registry_fallback=marketplace_registry)
    if not (args.registry or os.environ.get("HALLMARK_REGISTRY_ADDRESS")):
        say(f"registry {registry} as the marketplace reports it; pin your own with --registry or HALLMARK_REGISTRY_ADDRESS")
    return verify.check(folder, detail["model_id"], entry["number"], rpc_url, registry, as_json=args.json)


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
