"""What this device has installed: `inventory.json` in the config folder.

`hallmark pull` records every verified install here; `hallmark watch` reads it, keeps the last
block it has seen, and marks entries quarantined. The file is rewritten whole, atomically
(temporary file, fsync, rename, mode 0600: `config.write_private`), so a crash or a concurrent
reader never sees half of it. The last writer wins: run one `hallmark watch` per config folder.

Shape (version 1):

    {"version": 1,
     "chain": {"rpc_url": ..., "registry_address": ..., "deploy_block": N, "last_block": N},
     "models": {"<absolute folder>": {"repo_id", "model_id", "version", "root_digest", "vendor",
                "endpoint", "path", "files": [{"path", "sha256", "size", "mtime_ns"}],
                "status": "installed" | "quarantined", "reason", "installed_at",
                "baseline": bool, "update": {"version", "signer"} | null, "rejected": {...}}}}
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import config

INVENTORY = "inventory.json"
MAX_REPORTED = 1000  # the server takes at most 1000 models per report (docs/api.md)
HEX32 = re.compile(r"^0x[0-9a-f]{64}$")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def load() -> dict[str, Any]:
    data = config.read_json(INVENTORY)
    data.setdefault("version", 1)
    data.setdefault("chain", {})
    data.setdefault("models", {})
    return data


def save(data: dict[str, Any]) -> Path:
    return config.write_private(INVENTORY, data)


def file_records(folder: Path, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each file's verified digest with the size and mtime it has now (the cheap tamper check)."""
    records = []
    for f in files:
        st = (folder / f["path"]).stat()
        records.append({"path": f["path"], "sha256": f["sha256"], "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return sorted(records, key=lambda r: str(r["path"]))


def record_install(
    folder: Path, *, repo_id: str, model_id: str, version: int, root_digest: str, vendor: str | None,
    endpoint: str | None, files: list[dict[str, Any]], chain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add (or replace) the install in `folder`; `files` are the verified `{path, sha256}`."""
    data = load()
    key = str(folder.resolve())
    entry = {
        "repo_id": repo_id, "model_id": model_id.lower(), "version": int(version),
        "root_digest": _hex0x(root_digest), "vendor": vendor, "endpoint": endpoint, "path": key,
        "files": file_records(folder, files), "status": "installed", "reason": "",
        "installed_at": now_iso(), "baseline": False, "update": None, "rejected": None,
    }
    data["models"][key] = entry
    if chain:
        known = data["chain"]
        for name in ("rpc_url", "registry_address", "deploy_block"):
            if chain.get(name) and not known.get(name):
                known[name] = chain[name]
    save(data)
    return entry


def installed(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in data["models"].values() if e.get("status") == "installed"]


def report_body(data: dict[str, Any], device: str) -> dict[str, Any]:
    """The inventory as the server's schema has it (docs/api.md), at most MAX_REPORTED models."""
    models = []
    for entry in list(data["models"].values())[:MAX_REPORTED]:
        models.append({
            "repo_id": str(entry["repo_id"])[:200], "model_id": entry["model_id"], "version": int(entry["version"]),
            "root_digest": entry["root_digest"], "status": entry["status"], "reason": str(entry.get("reason") or "")[:500],
        })
    return {"device": device, "reported_at": now_iso(), "models": models}


def _hex0x(value: str) -> str:
    text = value.lower()
    return text if text.startswith("0x") else "0x" + text


def quarantine_folder(repo_id: str, version: int) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    vendor, _, name = repo_id.partition("/")
    base = config.ensure_dir() / "quarantine" / _safe(vendor)
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(config.config_dir() / "quarantine", 0o700)
    return base / f"{_safe(name)}@v{int(version)}-{stamp}"


def _safe(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100].lstrip(".")
    return cleaned or "_"
