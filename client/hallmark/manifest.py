"""One definition of a version's manifest: per-file SHA-256, the OMS root digest, metadata digest.

The manifest is an in-toto Statement v1 in the OpenSSF Model Signing (OMS) format. The root
digest is SHA-256 over the concatenation of the raw 32-byte file digests, files sorted by their
POSIX relative name as Python sorts strings: the value the OMS tools compute for the same files.
Hashing streams in large blocks, so a multi-GB file is never read whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
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
# the OpenSSF Model Signing signature served beside a version's files (hallmark/oms.py): never a
# file of the model (the OMS verifier leaves it out too), so refused as an upload name
SIGNATURE_FILE = "model.sig"
# what tools keep inside a model folder, never part of the model: what `hallmark pull` saves
# (`.hallmark`), huggingface_hub's download state in a `local_dir` (`.cache/huggingface`) and the
# OMS signature beside the files (`model.sig`)
TOOL_STATE_FOLDERS = (".hallmark", ".cache/huggingface", SIGNATURE_FILE)
# huggingface_hub names each cached repository `<type>s--<owner>--<name>` (file_download.py)
HF_CACHE_REPO = re.compile(r"^(models|datasets|spaces)--.")


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
    NUL and other control characters, the paths OMS ignores (`.git`, `.github`, ...) and
    `model.sig` at the top (the OMS signature served beside the files).
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
    if name == SIGNATURE_FILE:
        raise UnsafePath(f"{SIGNATURE_FILE!r} is the name of the OMS signature served beside a version's files; rename the file")
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


def sha256_file(
    path: str | os.PathLike[str], block_size: int = HASH_BLOCK_SIZE, *, follow_symlinks: bool = True
) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, streamed with constant memory.

    `follow_symlinks=False` opens with `O_NOFOLLOW` (and without waiting on a pipe) and reads
    only a regular file: a file swapped for a link or a pipe after it was checked fails with
    OSError instead of being read through the link, or hanging.
    """
    strict = 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | strict), "rb", buffering=0) as stream:
        if not follow_symlinks and not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        return sha256_stream(stream, block_size)


def sha256_files(
    paths: list[str | os.PathLike[str]], *, workers: int | None = None, follow_symlinks: bool = True
) -> list[tuple[str, int]]:
    """Hash several files at once, one thread each (hashlib and file reads release the GIL, so
    the threads run on all cores); results in the order given."""

    def one(path: str | os.PathLike[str]) -> tuple[str, int]:
        return sha256_file(path, follow_symlinks=follow_symlinks)

    if len(paths) <= 1 or workers == 1:
        return [one(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(len(paths), os.cpu_count() or 1)) as pool:
        return list(pool.map(one, paths))


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


def hf_snapshot_blobs(folder: str | os.PathLike[str]) -> Path | None:
    """The `blobs/` folder beside `folder` when `folder` is a huggingface_hub cache snapshot
    (`<cache>/models--<owner>--<name>/snapshots/<commit>/`), else None.

    Both are taken as real paths (symbolic links in the folder's own path resolved), and `blobs/`
    must be a real directory, not a link.
    """
    real = Path(os.path.realpath(folder))
    snapshots, repo = real.parent, real.parent.parent
    if snapshots.name != "snapshots" or not HF_CACHE_REPO.match(repo.name):
        return None
    blobs = repo / "blobs"
    if blobs.is_symlink() or not blobs.is_dir():
        return None
    return blobs


def _hf_blob(link: Path, rel: str, blobs: Path) -> Path:
    """The file in `blobs` that the snapshot entry `link` stands for, if the link is the kind
    huggingface_hub makes: relative, straight into this repository's `blobs/`, onto a regular
    file. Any other link raises UnsafePath, so a hostile cache cannot make us read elsewhere."""
    target = os.readlink(link)
    rule = "only relative links from a snapshot into its own repository's blobs/ are followed"
    if os.path.isabs(target):
        raise UnsafePath(f"{rel!r} is a symbolic link to the absolute path {target!r}; {rule}")
    lexical = Path(os.path.normpath(os.path.join(link.parent, target)))
    if lexical.parent != blobs:
        raise UnsafePath(f"{rel!r} is a symbolic link to {target!r}, outside {blobs}; {rule}")
    try:
        resolved = Path(os.path.realpath(link, strict=True))
    except OSError as exc:  # a missing blob, or a loop
        raise UnsafePath(f"{rel!r} is a symbolic link to {target!r}, which does not resolve to a file ({exc.strerror})") from None
    mode = os.lstat(lexical).st_mode
    if resolved != lexical or not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "another link" if stat.S_ISLNK(mode) else "not a regular file"
        raise UnsafePath(f"{rel!r} is a symbolic link to {target!r}, which is {what}; {rule}")
    return lexical


def hash_directory(
    directory: str | os.PathLike[str], *, exclude: Iterable[str] = (), follow_hf_cache_links: bool = False
) -> list[FileDigest]:
    """Hash every regular file under `directory` in parallel (symlinks refused, OMS ignore paths skipped).

    `exclude`: relative POSIX paths (files or folders) to leave out as well, e.g. a tool's own
    state folder (`.hallmark`); empty by default, so the OMS rule alone decides.
    `follow_hf_cache_links`: when `directory` is a huggingface_hub cache snapshot
    (`snapshots/<commit>/`, see `hf_snapshot_blobs`), hash the blob each of its links stands for;
    any other link, and every link elsewhere, is still refused (UnsafePath).

    Example (what `verify_directory` hashes)::

        files = hash_directory(folder, exclude=TOOL_STATE_FOLDERS, follow_hf_cache_links=True)
        print(root_digest(files))
    """
    found = list_directory(directory, exclude=exclude, follow_hf_cache_links=follow_hf_cache_links)
    digests = sha256_files([full for _, full in found], follow_symlinks=False)
    return sorted((FileDigest(rel, d, n) for (rel, _), (d, n) in zip(found, digests, strict=True)), key=lambda f: f.name)


def list_directory(
    directory: str | os.PathLike[str], *, exclude: Iterable[str] = (), follow_hf_cache_links: bool = False
) -> list[tuple[str, Path]]:
    """The files `hash_directory` hashes, as (relative POSIX name, path to read), without reading
    them (`hallmark publish` hashes each file while it uploads it); the same refusals."""
    base = Path(directory)
    blobs = hf_snapshot_blobs(base) if follow_hf_cache_links else None
    if blobs is not None:
        base = Path(os.path.realpath(base))  # the links' relative targets are resolved from here
    elif follow_hf_cache_links and (base / "snapshots").is_dir() and (base / "blobs").is_dir():
        raise UnsafePath(f"{base} is huggingface_hub's cache of a whole repository: give its snapshots/<commit> folder")
    skipped = tuple(e.strip("/") for e in exclude if e.strip("/"))
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(base):
        rel_root = Path(root).relative_to(base)
        dirs[:] = sorted(
            d for d in dirs
            if not (rel_root == Path(".") and d in IGNORE_PATHS) and not _excluded((rel_root / d).as_posix(), skipped)
        )
        for d in dirs:  # os.walk lists a link to a folder here and would silently not enter it
            if (Path(root) / d).is_symlink():
                raise UnsafePath(f"{(rel_root / d).as_posix()!r} is a symbolic link to a directory; manifests do not follow links")
        for filename in sorted(names):
            rel = (rel_root / filename).as_posix()
            if rel in IGNORE_PATHS or _excluded(rel, skipped):
                continue
            full = Path(root) / filename
            validate_relative_path(rel)
            if full.is_symlink():
                if blobs is None:
                    hint = "; to check a huggingface_hub cache, give its snapshots/<commit> folder" if follow_hf_cache_links else ""
                    raise UnsafePath(f"{rel!r} is a symbolic link; manifests do not follow links{hint}")
                full = _hf_blob(full, rel, blobs)
            elif not stat.S_ISREG(full.lstat().st_mode):
                raise UnsafePath(f"{rel!r} is not a regular file (a pipe, socket or device); a model folder holds files")
            found.append((rel, full))
    return found
