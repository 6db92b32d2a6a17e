"""File storage helpers: the same code for a local folder and for S3-compatible storage.

Local storage exposes real paths (sendfile, GGUF memory maps, `os.replace` of finished uploads);
remote storage gets a streamed temporary local copy where a path is needed, and downloads are
answered with a short-lived presigned redirect."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.files.storage import default_storage


def is_local() -> bool:
    try:
        default_storage.path("probe")
    except NotImplementedError:
        return False
    return True


def local_path(name: str) -> str | None:
    """The file's path on this machine, or None for remote storage."""
    try:
        return default_storage.path(name)
    except NotImplementedError:
        return None


@contextmanager
def local_copy(name: str) -> Iterator[str]:
    """A path to the file's bytes: the file itself when local, else a streamed temporary copy."""
    path = local_path(name)
    if path is not None:
        yield path
        return
    tmp_dir = os.path.join(settings.MEDIA_ROOT, "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=os.path.splitext(name)[1])
    try:
        with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as source:
            shutil.copyfileobj(source, out, 8 * 1024 * 1024)
        yield tmp
    finally:
        os.unlink(tmp)


def presigned_url(name: str) -> str:
    """A short-lived URL for the stored file (S3: signed, `DOWNLOAD_PRESIGN_SECONDS` long)."""
    return default_storage.url(name)
