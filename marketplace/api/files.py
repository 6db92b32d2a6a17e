"""Streaming a stored file with constant memory: ETag = sha256, Range requests (206)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from ..models import Artifact
from ..storage import is_local, presigned_url

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1024 * 1024


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `bytes=` range, None for no/ignored range."""
    if not header:
        return None
    m = RANGE_RE.match(header.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None  # multi-range or malformed: RFC 9110 lets us answer 200 with everything
    first, last = m.group(1), m.group(2)
    if first == "":
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable()
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable()
    return start, end


def file_headers(artifact: Artifact, commit: str) -> dict[str, str]:
    quoted = f'"{artifact.sha256}"'
    return {
        "ETag": quoted,
        "X-Linked-Etag": quoted,
        "X-Linked-Size": str(artifact.size),
        "X-Repo-Commit": commit,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition_header(True, artifact.path.rsplit("/", 1)[-1]),
        "Cache-Control": "private, max-age=0",
    }


def file_response(
    artifact: Artifact,
    *,
    commit: str,
    method: str,
    range_header: str | None,
    on_done: Callable[[int, int | None], None],
    receipt: Callable[[int, int], str] | None = None,
) -> HttpResponse:
    """HEAD or GET of `artifact`; `on_done(bytes_sent, range_start)` runs when the body is sent.

    `receipt(range_start, range_end_exclusive)` makes the receipt of a GET answered with bytes
    (200, 206, or the redirect to storage or nginx that serves them; `on_done` saves it) and
    returns the `X-Hallmark-Receipt` header (docs/recorder.md); a HEAD and a 416 get none."""
    headers = file_headers(artifact, commit)
    try:
        byte_range = parse_range(range_header, artifact.size)
    except RangeNotSatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{artifact.size}"
        on_done(0, None)
        return response
    start, end = byte_range if byte_range else (0, artifact.size - 1)
    length = max(end - start + 1, 0)
    if receipt is not None and method == "GET":
        value = receipt(start, start + length)
        if value:
            headers["X-Hallmark-Receipt"] = value
    if method == "HEAD":
        response = HttpResponse(status=206 if byte_range else 200, content_type="application/octet-stream")
        on_done(0, start if byte_range else None)
    elif settings.DOWNLOAD_X_ACCEL_REDIRECT_PREFIX:
        # behind nginx: it serves the bytes (sendfile, Range) from its internal location
        response = HttpResponse(status=200, content_type="application/octet-stream")
        # a URI, which nginx decodes: a name with a space, `%`, `#`, `?` or non-ASCII must be quoted
        response["X-Accel-Redirect"] = settings.DOWNLOAD_X_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + quote(artifact.storage_name, safe="/")
        on_done(0, start if byte_range else None)
        for key, value in headers.items():
            response[key] = value
        return response
    elif not is_local():
        # S3-compatible storage: the bytes come from there, through a short-lived signed URL;
        # the Hugging Face client reads the file's metadata from this redirect itself
        response = HttpResponse(status=302)
        response["Location"] = presigned_url(artifact.storage_name)
        on_done(0, start if byte_range else None)
        for key, value in headers.items():
            response[key] = value
        response["X-Linked-Size"] = str(artifact.size)
        return response
    elif not byte_range:
        # a whole file: FileResponse lets the WSGI server use sendfile (no copy through Python)
        handle = open(default_storage.path(artifact.storage_name), "rb")  # noqa: SIM115 (the response closes it)
        response = _SentFileResponse(handle, on_close=lambda: on_done(length, None))
        response.status_code = 200
        response["Content-Type"] = "application/octet-stream"
    else:
        response = StreamingHttpResponse(
            _stream(artifact.storage_name, start, length, lambda sent: on_done(sent, start)),
            status=206,
            content_type="application/octet-stream",
        )
    for key, value in headers.items():
        response[key] = value
    response["Content-Length"] = str(length)
    if byte_range:
        response["Content-Range"] = f"bytes {start}-{end}/{artifact.size}"
    return response


def _stream(storage_name: str, start: int, length: int, done: Callable[[int], None]) -> Iterator[bytes]:
    sent = 0
    try:
        with default_storage.open(storage_name, "rb") as fh:
            if start:
                fh.seek(start)
            while sent < length:
                block = fh.read(min(CHUNK, length - sent))
                if not block:
                    break
                sent += len(block)
                yield block
    finally:
        done(sent)


class _SentFileResponse(FileResponse):
    """A FileResponse that reports when the server is done with it (bytes handed to sendfile)."""

    def __init__(self, *args, on_close: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    def close(self):
        # report first: Django's close() ends the request and closes its database connections
        callback, self._on_close = self._on_close, None
        try:
            if callback:
                callback()
        finally:
            super().close()
