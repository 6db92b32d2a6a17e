"""The CLI's tus 1.0 client: each file read once, its chunks streamed on one kept-alive
connection, with the chunk's `Upload-Checksum: sha256` and the file's SHA-256 computed from the
same bytes while the previous chunk is on the wire; several files at once (`upload_files`).

An interrupted run resumes from the offset the server reports (HEAD): the upload URL is kept
in the config folder (`remember`), and the bytes already on the server are read once more,
here, only to be hashed. Nothing is trusted from the earlier run: the digest this returns is
what the caller declares (`hallmark publish` does it at finalize), and the server refuses the
file if its own hash of the stored bytes differs (a file that changed between two runs).

Example::

    result = upload_file(creation_url, token, Path("model.gguf"), "model.gguf",
                         stored_url=None, remember=lambda url: None)
    print(result.sha256, result.size)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import requests.utils
from tqdm import tqdm

from . import __version__
from .api import ApiError
from .manifest import FileDigest
from .segments import SEGMENT_SIZE

# one chunk is one segment (segments.py): the chunk's Upload-Checksum is then the segment digest
# the signed metadata commits to, so publish never reads a file again to compute them
CHUNK_SIZE = SEGMENT_SIZE
TUS_VERSION = "1.0.0"
RETRIES = 3
RETRY_DELAY = 1.0
TIMEOUT = 300.0


@dataclass(frozen=True)
class UploadedFile:
    """A file as it was sent: its SHA-256 and size, and the SHA-256 of each `chunk_size` segment."""

    name: str
    sha256: str
    size: int
    chunk_size: int
    chunk_digests: tuple[str, ...]

    def digest(self) -> FileDigest:
        return FileDigest(self.name, self.sha256, self.size)


@dataclass(frozen=True)
class FileToUpload:
    """One file for `upload_files`: `stored_url` of an earlier run (or None), `remember(url)`
    called when the server creates its upload (None: forget it), `done`: already on the server
    (only hashed here)."""

    path: Path
    name: str
    stored_url: str | None
    remember: Callable[[str | None], None]
    done: bool = False


class FileChanged(ApiError):
    """The file changed (size, modification time or inode) while it was read for the upload."""

    def __init__(self, name: str):
        super().__init__(None, "file_changed", f"{name} changed while it was read for the upload; run again (the changed files go to a new draft)")


def proxy_for(target: str) -> SplitResult | None:
    """The proxy the environment names for the URL `target` (`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`,
    either case), or None when none is set or `NO_PROXY` covers it. `NO_PROXY` is read as requests
    reads it for the rest of the CLI (host names, domain suffixes, `host:port`, IP networks such
    as `10.0.0.0/8`), so uploads and every other call agree. Only `http://` proxies are understood
    (as with curl's default); another scheme is an error."""
    proxies = urllib.request.getproxies()
    url = proxies.get(urlsplit(target).scheme) or proxies.get("all")
    if not url or requests.utils.should_bypass_proxies(target, no_proxy=None):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise ApiError(None, "proxy_unsupported", f"the proxy {url[:200]!r} has an invalid port") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ApiError(None, "proxy_unsupported", f"the proxy {parts.scheme}://{parts.hostname or ''} is not supported for uploads: "
                       "use an http:// proxy (HTTPS goes through it with CONNECT) or unset it")
    return parts


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode()}


class _Connection:
    """One kept-alive HTTP(S) connection to the upload server, reopened after a failure; through
    the environment's proxy when one applies (HTTPS tunnelled with CONNECT, HTTP forwarded)."""

    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.scheme, self.netloc = parts.scheme, parts.netloc
        self.headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS_VERSION, "User-Agent": f"hallmark-cli/{__version__}"}
        self.proxy = proxy_for(url)
        self._conn: http.client.HTTPConnection | None = None

    def _open(self, host: str, port: int) -> http.client.HTTPConnection:
        if self.proxy is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            return kind(self.netloc, timeout=TIMEOUT)
        assert self.proxy.hostname is not None
        if self.scheme == "https":  # TLS end to end, through a CONNECT tunnel
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.proxy.hostname, self.proxy.port or 80, timeout=TIMEOUT)
            conn.set_tunnel(host, port, headers=_proxy_authorization(self.proxy))
            return conn
        return http.client.HTTPConnection(self.proxy.hostname, self.proxy.port or 80, timeout=TIMEOUT)

    def request(self, method: str, url: str, headers: dict[str, str], body: memoryview | None = None) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self.scheme, self.netloc):
            raise ApiError(None, "upload_redirected", f"the upload URL {url} is on another server than {self.scheme}://{self.netloc}")
        if self._conn is None:
            self._conn = self._open(parts.hostname or "", parts.port or (443 if self.scheme == "https" else 80))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {**self.headers, **headers}
        if self.proxy is not None and self.scheme == "http":  # a forwarding proxy takes the absolute URL
            path = f"{self.scheme}://{self.netloc}{path}"
            headers.update(_proxy_authorization(self.proxy))
        try:
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        answer = {k.lower(): v for k, v in response.getheaders()}
        if response.will_close:
            self.close()
        return response.status, answer, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error(status: int, body: bytes, name: str) -> ApiError:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "code" in data:
        return ApiError(status, str(data["code"]), f"{name}: {data.get('message') or data['code']}")
    return ApiError(status, f"http_{status}", f"{name}: the upload server answered {status}")


def _unreachable(exc: BaseException, name: str) -> ApiError:
    return ApiError(None, "unreachable", f"{name}: the upload connection failed ({exc.__class__.__name__}: {exc})")


def _stat_key(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Upload:
    """One file's upload: create or resume, then read, hash and send each chunk once."""

    def __init__(self, conn: _Connection, creation_url: str, item: FileToUpload, chunk_size: int, bar: tqdm | None):
        self.conn, self.creation_url, self.item, self.chunk_size, self.bar = conn, creation_url, item, chunk_size, bar
        self.name = item.name
        self.url: str | None = None
        self.checksum = True

    def _call(self, method: str, headers: dict[str, str], body: memoryview | None = None, url: str | None = None) -> _Answer:
        """A request with a few retries of a failed connection; an HTTP error answer is returned."""
        for attempt in range(RETRIES + 1):
            try:
                status, answer, data = self.conn.request(method, url or self.url or self.creation_url, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                if attempt == RETRIES:
                    raise _unreachable(exc, self.name) from exc
                time.sleep(RETRY_DELAY)
                continue
            if status >= 500 and method in ("HEAD", "DELETE") and attempt < RETRIES:
                time.sleep(RETRY_DELAY)
                continue
            return _Answer(status, answer, data)
        raise AssertionError("unreachable")

    def _raise(self, answer: _Answer) -> ApiError:
        return _error(answer.status, answer.body, self.name)

    def _advertised(self, answer: _Answer) -> None:
        algorithms = answer.headers.get("tus-checksum-algorithm")
        if algorithms is not None:
            self.checksum = "sha256" in [a.strip().lower() for a in algorithms.split(",")]

    def offset(self) -> int:
        answer = self._call("HEAD", {})
        if answer.status != 200:
            raise self._raise(answer)
        return int(answer.headers["upload-offset"])

    def open(self, size: int) -> int:
        """The offset to continue from: the stored upload's, else 0 of a new upload."""
        if self.item.stored_url:
            answer = self._call("HEAD", {}, url=self.item.stored_url)
            if answer.status == 200 and int(answer.headers.get("upload-length", -1)) == size:
                self.url = self.item.stored_url
                self._advertised(answer)
                return int(answer.headers["upload-offset"])
            if answer.status < 400 or answer.status in (404, 410):
                if answer.status == 200:  # another file's size: that upload is of no use any more
                    self._call("DELETE", {}, url=self.item.stored_url)
                self.item.remember(None)  # expired or removed on the server: start this file again
            else:
                raise self._raise(answer)
        metadata = "filename " + base64.b64encode(self.name.encode()).decode()
        answer = self._call("POST", {"Upload-Length": str(size), "Upload-Metadata": metadata, "Content-Length": "0"}, url=self.creation_url)
        if answer.status != 201 or "location" not in answer.headers:
            raise self._raise(answer)
        self.url = urljoin(self.creation_url, answer.headers["location"])
        self.item.remember(self.url)
        self._advertised(answer)
        return int(answer.headers.get("upload-offset") or 0)

    def send(self, offset: int, view: memoryview, digest: bytes) -> None:
        """PATCH the chunk at `offset`; a chunk refused by its checksum (460), or cut off, is sent
        again from the offset the server has (its bytes are still in `view`)."""
        start, sent_digest = offset, digest
        for attempt in range(RETRIES + 1):
            part = view[start - offset:]
            headers = {"Upload-Offset": str(start), "Content-Type": "application/offset+octet-stream", "Content-Length": str(len(part))}
            if self.checksum:
                if start != offset:
                    sent_digest = hashlib.sha256(part).digest()
                headers["Upload-Checksum"] = "sha256 " + base64.b64encode(sent_digest).decode()
            try:
                answer: _Answer | None = self._call("PATCH", headers, part)
            except ApiError:  # no answer even after reconnecting
                if attempt == RETRIES:
                    raise
                answer = None
            if answer is not None and answer.status == 204:
                stored = answer.headers.get("upload-offset")
                if stored != str(offset + len(view)):
                    raise ApiError(204, "offset_mismatch", f"{self.name}: the server stored up to {stored}, not {offset + len(view)}")
                return
            if answer is not None and answer.status < 500 and answer.status != 460:
                error = self._raise(answer)
                if answer.status != 409 or error.code not in ("offset_mismatch", "upload_locked"):
                    raise error
            if attempt == RETRIES:
                assert answer is not None
                raise self._raise(answer)
            start = self.offset()  # what the server kept of this chunk (a refused chunk: nothing)
            if not offset <= start <= offset + len(view):
                raise ApiError(409, "offset_mismatch", f"{self.name}: the server's offset {start} is outside the chunk being sent "
                                   "(it lost bytes in a crash?); run the command again to resume from the server's offset")
            if start == offset + len(view):
                return

    def cancel(self) -> None:
        if self.url:
            with contextlib.suppress(ApiError):
                self._call("DELETE", {})
            self.item.remember(None)


def upload_file(
    creation_url: str,
    token: str,
    path: Path,
    name: str,
    *,
    stored_url: str | None,
    remember: Callable[[str | None], None],
    chunk_size: int = CHUNK_SIZE,
    done: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    progress: bool = True,
) -> UploadedFile:
    """Upload `path` as `name` (relative path in the version) to the tus creation URL; returns
    the SHA-256 of the bytes sent (and of each chunk), each byte of the file read once.

    Args:
        creation_url: the draft's tus creation URL (`.../versions/<id>/uploads`).
        token: the vendor's API token.
        stored_url: the upload URL of an earlier run, resumed from the server's offset (HEAD).
        remember: called with the upload URL as soon as the server creates it (None: forget it).
        chunk_size: bytes per PATCH (and per listed chunk digest).
        done: the file is on the server already: only hash it.
        on_chunk: called with each chunk's end offset once the server has stored it.
        progress: show a progress bar.
    """
    item = FileToUpload(path, name, stored_url, remember, done)
    return _upload_one(creation_url, _Connection(creation_url, token), item, chunk_size, on_chunk, progress, None)


def upload_files(
    creation_url: str, token: str, files: Sequence[FileToUpload], *, workers: int = 2, chunk_size: int = CHUNK_SIZE, progress: bool = True
) -> list[UploadedFile]:
    """Upload (or, `done`, only hash) `files`, `workers` at a time, each on its own connection;
    the results in the order of `files`. The first error is raised once the running uploads end
    (the others are not started; a re-run resumes them)."""
    local = threading.local()
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(max(1, workers)):
        slots.put(slot)
    failed = threading.Event()

    def one(item: FileToUpload) -> UploadedFile | None:
        if failed.is_set():
            return None
        if not hasattr(local, "conn"):
            local.conn = _Connection(creation_url, token)
        slot = slots.get()
        try:
            return _upload_one(creation_url, local.conn, item, chunk_size, None, progress, slot)
        except BaseException:
            failed.set()
            raise
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hallmark-upload") as pool:
        futures = [pool.submit(one, item) for item in files]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    results = [f.result() for f in futures]
    return [r for r in results if r is not None]


def _upload_one(
    creation_url: str, conn: _Connection, item: FileToUpload, chunk_size: int,
    on_chunk: Callable[[int], None] | None, progress: bool, position: int | None,
) -> UploadedFile:
    with open(item.path, "rb", buffering=0) as stream:
        before = _stat_key(stream.fileno())
        size = before[2]
        with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=item.name, leave=True, dynamic_ncols=True,
                  disable=not progress, position=position) as bar:
            upload = _Upload(conn, creation_url, item, chunk_size, bar)
            server_offset = size if item.done else upload.open(size)
            bar.update(server_offset)
            try:
                result = _stream(stream, upload, size, server_offset, chunk_size, before, on_chunk)
            except FileChanged:
                upload.cancel()
                raise
        if (os.stat(item.path).st_ino, _stat_key(stream.fileno())) != (before[0], before):
            if not item.done:
                upload.cancel()
            raise FileChanged(item.name)
    return result


def _stream(
    stream: io.FileIO, upload: _Upload, size: int, server_offset: int, chunk_size: int,
    before: tuple[int, int, int, int], on_chunk: Callable[[int], None] | None,
) -> UploadedFile:
    """Read each chunk into one of two buffers; the chunk's SHA-256 here, the file's SHA-256 on a
    second thread, and the PATCH on a third while the next chunk is read (hashlib and sockets
    release the GIL, so a chunk on the wire overlaps the hashing of the next)."""
    fd = stream.fileno()
    whole = hashlib.sha256()
    digests: list[str] = []
    buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(2 if size > chunk_size else 1):
        buffers.put(bytearray(min(chunk_size, size) or 1))
    outbox: queue.Queue[tuple[int, memoryview, bytes, Future[None], bytearray] | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []

    def sender() -> None:
        while (job := outbox.get()) is not None:
            offset, view, digest, hashed, buffer = job
            try:
                if not failure:
                    upload.send(offset, view, digest)
                    if upload.bar is not None:
                        upload.bar.update(len(view))
                    if on_chunk is not None:
                        on_chunk(offset + len(view))
            except BaseException as exc:
                failure.append(exc)
            finally:
                hashed.result()
                buffers.put(buffer)

    thread = threading.Thread(target=sender, name="hallmark-upload-send", daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hallmark-upload-hash") as hasher:
            offset = 0
            while offset < size and not failure:
                buffer = buffers.get()
                # chunks end on multiples of chunk_size, so each is one segment, even after a resume
                want = min(chunk_size - offset % chunk_size, size - offset)
                view = memoryview(buffer)[:want]
                got = 0
                while got < want and (n := stream.readinto(view[got:])):
                    got += n
                if got != want or _stat_key(fd) != before:
                    raise FileChanged(upload.name)
                hashed = hasher.submit(whole.update, view)  # one thread, so in file order
                digest = hashlib.sha256(view).digest()
                digests.append(digest.hex())
                end = offset + want
                if end <= server_offset:  # on the server already: hashed only
                    hashed.result()
                    buffers.put(buffer)
                elif offset < server_offset:  # a chunk the server holds part of: send the rest
                    hashed.result()
                    tail = bytes(view[server_offset - offset:])
                    buffers.put(buffer)
                    upload.send(server_offset, memoryview(tail), hashlib.sha256(tail).digest())
                    if upload.bar is not None:
                        upload.bar.update(len(tail))
                else:
                    outbox.put((offset, view, digest, hashed, buffer))
                offset = end
    finally:
        outbox.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return UploadedFile(upload.name, whole.hexdigest(), size, chunk_size, tuple(digests))
