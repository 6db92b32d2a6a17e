"""The CLI's configuration folder: API tokens per endpoint and the state of unfinished uploads.

`$HALLMARK_CONFIG_DIR`, else `~/.config/hallmark`. The folder is created with mode 0700 and
every file in it is written with mode 0600 (atomically: a crash never leaves half a file).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

CREDENTIALS = "credentials.json"
UPLOADS = "uploads.json"


def config_dir() -> Path:
    configured = os.environ.get("HALLMARK_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".config" / "hallmark"


def ensure_dir() -> Path:
    """The config folder, created 0700 if missing; a warning if others can read an existing one."""
    folder = config_dir()
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    elif stat.S_IMODE(folder.stat().st_mode) & 0o077:
        print(f"warning: {folder} can be read by other users; chmod 700 it", file=sys.stderr)
    return folder


def read_json(name: str) -> dict[str, Any]:
    path = config_dir() / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read {path}: {exc}") from exc


def write_private(name: str, data: dict[str, Any]) -> Path:
    """Write `data` as JSON to the config folder with mode 0600, replacing the file atomically."""
    path = ensure_dir() / name
    write_private_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())
    return path


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600 (from its creation: never readable by others, even
    for a moment), fsynced, replacing the file atomically; nothing is left behind on a failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def normalize_endpoint(url: str) -> str:
    return url.strip().rstrip("/")


def default_endpoint(given: str | None = None) -> str | None:
    """--endpoint, else $HALLMARK_ENDPOINT, else the endpoint of the last `hallmark login`."""
    url = given or os.environ.get("HALLMARK_ENDPOINT") or read_json(CREDENTIALS).get("endpoint")
    return normalize_endpoint(url) if url else None


def save_login(endpoint: str, *, token: str, wallet: str, prefix: str, expires_at: str | None) -> Path:
    data = read_json(CREDENTIALS)
    data["endpoint"] = endpoint
    data.setdefault("tokens", {})[endpoint] = {"token": token, "wallet": wallet, "prefix": prefix, "expires_at": expires_at}
    return write_private(CREDENTIALS, data)


def token_for(endpoint: str) -> str | None:
    """$HALLMARK_TOKEN, else the token `hallmark login` saved for this endpoint."""
    return os.environ.get("HALLMARK_TOKEN") or read_json(CREDENTIALS).get("tokens", {}).get(endpoint, {}).get("token")


class UploadState:
    """Drafts and tus upload URLs of unfinished publications, so a re-run resumes them."""

    def __init__(self) -> None:
        self.data = read_json(UPLOADS)
        self.data.setdefault("drafts", {})
        self.data.setdefault("uploads", {})

    def save(self) -> None:
        write_private(UPLOADS, self.data)

    def draft(self, key: str) -> int | None:
        return self.data["drafts"].get(key)

    def set_draft(self, key: str, version_id: int) -> None:
        self.data["drafts"][key] = version_id
        self.save()

    def upload_url(self, key: str) -> str | None:
        return self.data["uploads"].get(key)

    def set_upload_url(self, key: str, url: str | None) -> None:
        if url is None:
            self.data["uploads"].pop(key, None)
        else:
            self.data["uploads"][key] = url
        self.save()

    def forget(self, draft_key: str, upload_prefix: str) -> None:
        self.data["drafts"].pop(draft_key, None)
        self.data["uploads"] = {k: v for k, v in self.data["uploads"].items() if not k.startswith(upload_prefix)}
        self.save()
