"""One definition of a version's manifest: per-file SHA-256, the OMS root digest, metadata digest.

The manifest is an in-toto Statement v1 in the OpenSSF Model Signing (OMS) format. The root
digest is SHA-256 over the concatenation of the raw 32-byte file digests, files sorted by their
POSIX relative name as Python sorts strings: the value the OMS tools compute for the same files.
Hashing streams in large blocks, so a multi-GB file is never read whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import UnsafePath

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
IGNORE_PATHS = (".gitignore", ".github", ".git", ".gitattributes")
HASH_BLOCK_SIZE = 8 * 1024 * 1024  # large reads keep hashlib at OpenSSL speed
MAX_PATH_LENGTH = 1024


@dataclass(frozen=True, order=True)
class FileDigest:
    """One file of a version: relative POSIX name, hex SHA-256 and size in bytes."""

    name: str
    sha256: str
    size: int

    def as_resource(self) -> dict[str, str]:
        return {"name": self.name, "algorithm": "sha256", "digest": self.sha256}


def validate_relative_path(name: str) -> str:
    """Return `name` if it is a safe relative POSIX path inside a model directory, else raise.

    Refused: empty names, absolute paths, `..` or `.` segments, empty segments, backslashes,
    NUL and other control characters, and the paths OMS ignores (`.git`, `.github`, ...).
    """
    if not isinstance(name, str) or not name:
        raise UnsafePath("file name is empty")
    if len(name) > MAX_PATH_LENGTH:
        raise UnsafePath(f"file name is longer than {MAX_PATH_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise UnsafePath(f"file name {name!r} contains a control character (NUL, newline, ...)")
    if "\\" in name:
        raise UnsafePath(f"file name {name!r} contains a backslash; use '/' between folders")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(f"file name {name!r} is absolute; give a path relative to the model folder")
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise UnsafePath(f"file name {name!r} has an empty, '.' or '..' segment")
    if segments[0] in IGNORE_PATHS:
        raise UnsafePath(f"file name {name!r} is under {segments[0]!r}, which manifests ignore")
    return name


class ReadableInto(Protocol):
    """A binary stream that fills a buffer: an open file (`open(path, "rb")`), `io.BytesIO`, ..."""

    def readinto(self, buffer: bytearray, /) -> int | None: ...


def sha256_stream(stream: ReadableInto, block_size: int = HASH_BLOCK_SIZE) -> tuple[str, int]:
    """Hex SHA-256 and byte count of a binary stream, read in blocks of `block_size`."""
    digest = hashlib.sha256()
    buffer = bytearray(block_size)
    view = memoryview(buffer)
    size = 0
    while True:
        n = stream.readinto(buffer)
        if not n:
            break
        digest.update(view[:n])
        size += n
    return digest.hexdigest(), size


def sha256_file(path: str | os.PathLike[str], block_size: int = HASH_BLOCK_SIZE) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, streamed with constant memory."""
    with open(path, "rb", buffering=0) as stream:
        return sha256_stream(stream, block_size)


def sha256_files(paths: list[str | os.PathLike[str]], *, workers: int | None = None) -> list[tuple[str, int]]:
    """Hash several files at once, one thread each (hashlib and file reads release the GIL, so
    the threads run on all cores); results in the order given."""
    if len(paths) <= 1 or workers == 1:
        return [sha256_file(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(len(paths), os.cpu_count() or 1)) as pool:
        return list(pool.map(sha256_file, paths))


def root_digest(files: Iterable[FileDigest]) -> str:
    """The OMS root digest: SHA-256 over the raw file digests, in name order."""
    ordered = sorted(files, key=lambda f: f.name)
    names = [f.name for f in ordered]
    if len(set(names)) != len(names):
        raise ValueError("duplicate file names in a manifest")
    if not ordered:
        raise ValueError("a manifest needs at least one file")
    digest = hashlib.sha256()
    for f in ordered:
        digest.update(bytes.fromhex(f.sha256))
    return digest.hexdigest()


def build_statement(subject_name: str, files: Iterable[FileDigest]) -> dict[str, Any]:
    """The in-toto Statement v1 (OMS predicate) for `files`, subject `<vendor>/<model>`."""
    ordered = sorted(files, key=lambda f: f.name)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": root_digest(ordered)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": [f.as_resource() for f in ordered],
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": list(IGNORE_PATHS),
            },
        },
    }


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes whose SHA-256 is a metadata digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def metadata_digest(metadata: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of a version's metadata."""
    return hashlib.sha256(canonical_json(metadata)).hexdigest()


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    return any(rel == e or rel.startswith(e + "/") for e in exclude)


def hash_directory(directory: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> list[FileDigest]:
    """Hash every regular file under `directory` in parallel (symlinks refused, OMS ignore paths skipped).

    `exclude`: relative POSIX paths (files or folders) to leave out as well, e.g. a tool's own
    state folder (`.hallmark`); empty by default, so the OMS rule alone decides.
    """
    base = Path(directory)
    skipped = tuple(e.strip("/") for e in exclude if e.strip("/"))
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(base):
        rel_root = Path(root).relative_to(base)
        dirs[:] = sorted(
            d for d in dirs
            if not (rel_root == Path(".") and d in IGNORE_PATHS) and not _excluded((rel_root / d).as_posix(), skipped)
        )
        for filename in sorted(names):
            rel = (rel_root / filename).as_posix()
            if rel in IGNORE_PATHS or _excluded(rel, skipped):
                continue
            full = Path(root) / filename
            if full.is_symlink():
                raise UnsafePath(f"{rel!r} is a symbolic link; manifests do not follow links")
            validate_relative_path(rel)
            found.append((rel, full))
    digests = sha256_files([full for _, full in found])
    return sorted((FileDigest(rel, d, n) for (rel, _), (d, n) in zip(found, digests, strict=True)), key=lambda f: f.name)
