"""Per-segment digests: each file cut into fixed-size segments, each segment's SHA-256 listed.

They let a download check every segment as it arrives and fetch a corrupted one again alone,
instead of the whole file, and let an interrupted download resume from the last segment known
good. The list of a version's segments is a small JSON document (`segment_document`); the
version's signed metadata commits to it by digest (`"segments": {"size": ..., "sha256": ...}`),
so the document can be served by anyone and still be checked. The final check of each file
against the chain's root digest is unchanged.

The one definition, shared by the server (which computes them while it hashes a version) and
the client (which checks them while it downloads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEGMENT_SIZE = 16 * 1024 * 1024
MIN_SEGMENT_SIZE = 1024 * 1024
MAX_SEGMENT_SIZE = 1024 * 1024 * 1024
MAX_SEGMENTS = 1 << 20  # a document naming more is refused before anything is allocated for it
DOCUMENT_VERSION = 1
_HEX = frozenset("0123456789abcdef")


class SegmentDocumentError(ValueError):
    """A segment document that is malformed, too large or not the one the metadata commits to."""


def segment_count(size: int, segment_size: int) -> int:
    """Segments of a file of `size` bytes (an empty file has none)."""
    return (size + segment_size - 1) // segment_size


def segment_range(index: int, size: int, segment_size: int) -> tuple[int, int]:
    """The byte range [start, end) of segment `index` of a file of `size` bytes."""
    start = index * segment_size
    return start, min(size, start + segment_size)


@dataclass
class SegmentHasher:
    """Feeds bytes in file order; keeps the whole file's SHA-256 and each segment's, in one pass."""

    segment_size: int = SEGMENT_SIZE
    digests: list[str] = field(default_factory=list)
    size: int = 0
    # False when the caller hashes the whole file elsewhere (the server's sandbox does it on a
    # second thread, so one large file costs two cores rather than twice the time)
    whole_file: bool = True

    def __post_init__(self) -> None:
        self._whole = hashlib.sha256()
        self._segment = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self.whole_file:
            self._whole.update(view)
        self.size += len(view)
        while len(view):
            take = min(len(view), self.segment_size - self._filled)
            self._segment.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.segment_size:
                self.digests.append(self._segment.hexdigest())
                self._segment = hashlib.sha256()
                self._filled = 0

    def finish(self) -> tuple[str, list[str]]:
        """The file's SHA-256 ("" without `whole_file`) and its segment digests (the last segment may be short)."""
        if self._filled:
            self.digests.append(self._segment.hexdigest())
            self._segment = hashlib.sha256()
            self._filled = 0
        return (self._whole.hexdigest() if self.whole_file else ""), list(self.digests)


def segment_document(files: Mapping[str, Sequence[str]], segment_size: int = SEGMENT_SIZE) -> dict[str, Any]:
    """The document listing every file's segment digests, by path."""
    return {
        "version": DOCUMENT_VERSION,
        "segment_size": int(segment_size),
        "files": {path: list(digests) for path, digests in sorted(files.items())},
    }


def segment_document_digest(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the document's canonical JSON: what the signed metadata records."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def metadata_entry(document: Mapping[str, Any]) -> dict[str, Any]:
    """The `segments` entry of a version's metadata that commits to `document`."""
    return {"size": int(document["segment_size"]), "sha256": segment_document_digest(document)}


def check_document(document: object, committed: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, list[str]]:
    """The per-file digests of `document`, once it is the one `committed` (the metadata's
    `segments` entry) names and it fits the files' `sizes`; SegmentDocumentError otherwise.
    Bounded before any loop over what a server sent."""
    if not isinstance(document, dict) or not isinstance(document.get("files"), dict):
        raise SegmentDocumentError("the segment document must be an object with `files`")
    segment_size = document.get("segment_size")
    if isinstance(segment_size, bool) or not isinstance(segment_size, int) or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise SegmentDocumentError("the segment document's `segment_size` is out of range")
    if not isinstance(committed, Mapping) or committed.get("size") != segment_size or not isinstance(committed.get("sha256"), str):
        raise SegmentDocumentError("the segment document does not match the signed metadata")
    files = document["files"]
    if len(files) > len(sizes) or sum(segment_count(int(s), segment_size) for s in sizes.values()) > MAX_SEGMENTS:
        raise SegmentDocumentError("the segment document is larger than the files it describes")
    if segment_document_digest(document) != committed["sha256"]:
        raise SegmentDocumentError("the segment document is not the one the signed metadata commits to")
    result: dict[str, list[str]] = {}
    for path, size in sizes.items():
        digests = files.get(path)
        if not isinstance(digests, list) or len(digests) != segment_count(int(size), segment_size):
            raise SegmentDocumentError(f"the segment document lists the wrong number of segments for {path}")
        for digest in digests:
            if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
                raise SegmentDocumentError(f"the segment document holds a malformed digest for {path}")
        result[path] = digests
    return result
