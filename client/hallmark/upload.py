"""Resumable file uploads with the standard tus client (tuspy), a progress bar per file, and the
upload URL kept in the config folder so an interrupted run resumes from the server's offset."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from .api import ApiError

CHUNK_SIZE = 8 * 1024 * 1024


class Sha256Uploader(Uploader):
    """Each chunk carries `Upload-Checksum: sha256 …`: a chunk damaged on the way is refused (460)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def _api_error(exc: TusCommunicationError, name: str) -> ApiError:
    body = exc.response_content
    try:
        data = json.loads(body) if body else None
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict) and "code" in data:
        return ApiError(exc.status_code, str(data["code"]), f"{name}: {data.get('message') or data['code']}")
    if exc.status_code is None:
        return ApiError(None, "unreachable", f"{name}: the upload connection failed ({exc})")
    return ApiError(exc.status_code, f"http_{exc.status_code}", f"{name}: {exc}")


def upload_file(
    creation_url: str,
    token: str,
    path: Path,
    name: str,
    *,
    stored_url: str | None,
    remember: Callable[[str | None], None],
    chunk_size: int = CHUNK_SIZE,
) -> None:
    """Upload `path` as `name` (relative path in the version) to the tus creation URL.

    `stored_url`: the upload URL of an earlier run, resumed from the offset the server reports
    (HEAD); `remember(url)` is called as soon as the server creates an upload (None: forget it).
    """
    client = TusClient(creation_url, headers={"Authorization": f"Bearer {token}"})
    options: dict[str, Any] = dict(file_path=str(path), client=client, chunk_size=chunk_size, metadata={"filename": name},
                   upload_checksum=True, retries=3, retry_delay=1)
    uploader = None
    if stored_url:
        try:
            uploader = Sha256Uploader(url=stored_url, **options)
        except TusCommunicationError as exc:
            if exc.status_code is None:  # the server does not answer: keep the URL for the next run
                raise _api_error(exc, name) from exc
            remember(None)  # expired or removed on the server: start this file again
    if uploader is None:
        uploader = Sha256Uploader(**options)
    size = os.path.getsize(path)
    try:
        if not uploader.url:
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
            remember(uploader.url)
        with tqdm(total=size, initial=uploader.offset, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=name, leave=True, dynamic_ncols=True) as bar:
            while uploader.offset < size:
                before = uploader.offset
                uploader.upload_chunk()
                bar.update(uploader.offset - before)
    except TusCommunicationError as exc:
        raise _api_error(exc, name) from exc
