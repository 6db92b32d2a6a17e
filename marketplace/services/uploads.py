"""Every way a file reaches a version: tus 1.0 (resumable: create, append with optional checksum,
terminate, expire) and a whole file in one request (raw `PUT`, the services' callers). Both pass
the same admission (path, kind, draft, size limit, quota) and end in the same completion, which
records the file only while the version is still a draft: under the version's row lock, the
lock `version_finalize` takes, so a finalize and a completing upload cannot interleave, and an
upload that finishes after finalize is refused and its bytes removed.

One writer at a time holds the part file's lock, and the offset is committed only after its
bytes are on disk (each chunk is fsynced before its offset is acknowledged), so a race, a killed
worker or a crash of the machine can never leave a gap or an overlap. Should a part file still
hold fewer bytes than its recorded offset (removed or damaged from outside), `HEAD` and `PATCH`
read the offset back from the file, so the client resends the rest. A disk that is full (or an
I/O error) refuses the chunk (`insufficient_storage`, `storage_error`) and keeps none of its
bytes; a finished file is recorded only under its artifact name's hard link, while the part keeps
its own name until the artifact is committed."""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from hallmark.errors import UnsafePath
from hallmark.manifest import validate_relative_path
from registry.inspection import InspectionError, file_kind

from ..errors import Conflict, InvalidInput, MarketplaceError, NotFound
from ..models import Artifact, Upload, Vendor, Version
from ..storage import is_local

logger = logging.getLogger(__name__)

# bytes read from a request body at a time: gunicorn's SocketUnreader (27.x) receives up to 1 MiB
# at once while it knows the body's length, so a 1 MiB read is one recv and no re-buffering; a
# smaller read makes its Unreader copy the rest of each 1 MiB back into a new buffer every time.
# Measured reading 512 MiB through gunicorn's Body over a socket pair (hashing aside): 256 KiB
# reads 0.33 s, 1 MiB 0.14 s; the CLI's 1 GiB upload went from 2.7-3.0 s to 2.1-2.2 s (bench/upload.py).
# (With gunicorn 23's 8 KiB receives, 256 KiB reads were the better size.)
BLOCK = 1024 * 1024
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
# marks the upload row of a whole-file PUT: it reserves quota while the body streams, but, not
# being resumable, it does not hold finalize back (a PUT still running then is refused at its end)
PUT_MARK = "hallmark_put"


class UploadError(MarketplaceError):
    pass


def _parts_dir() -> str:
    path = os.path.join(settings.MEDIA_ROOT, "uploads")
    os.makedirs(path, exist_ok=True)
    return path


def _part_path(upload: Upload) -> str:
    return os.path.join(_parts_dir(), upload.part_name)


def _bytes_in_use(vendor_user) -> int:
    stored = Artifact.objects.filter(version__model__vendor__user=vendor_user).aggregate(s=Sum("size"))["s"] or 0
    pending = Upload.objects.filter(user=vendor_user, completed_at__isnull=True).aggregate(s=Sum("length"))["s"] or 0
    return stored + pending


def _too_large() -> UploadError:
    return UploadError(f"the file is larger than the limit of {settings.MAX_ARTIFACT_SIZE} bytes", code="file_too_large", status=413)


def _over_quota() -> UploadError:
    return UploadError(
        f"this upload would pass your storage quota of {settings.VENDOR_STORAGE_QUOTA} bytes; "
        "delete drafts or ask for a larger quota",
        code="quota_exceeded",
        status=413,
    )


# the disk has no room (or the file system refuses a file this large): the client may retry later
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _storage_error(exc: OSError) -> UploadError:
    """What a failed write of an upload's bytes answers: 507 when the disk has no room, 500 else."""
    if exc.errno in _NO_ROOM:
        return UploadError(
            "the server has no room to store this upload right now; nothing of this request was kept, retry later",
            code="insufficient_storage",
            status=507,
        )
    return UploadError(
        f"the server could not store this upload ({os.strerror(exc.errno) if exc.errno else type(exc).__name__}); "
        "nothing of this request was kept, retry later",
        code="storage_error",
        status=500,
    )


@contextlib.contextmanager
def _storing():
    """Turn an OSError of the server's own file into a storage error (not a client gone away)."""
    try:
        yield
    except OSError as exc:
        logger.warning("storage error on an upload's file: %s", exc)
        raise _storage_error(exc) from exc


def _require_draft(version: Version) -> None:
    """Refuse (409 invalid_state) unless `version` (read under its row lock) is still a draft."""
    if version.status != Version.Status.DRAFT:
        raise Conflict(
            f"version #{version.pk} is {version.get_status_display()}, no longer a draft: its files cannot change "
            "after finalize. Open a new version for these files",
            code="invalid_state",
        )


def _open(*, user, version: Version, path: str, length: int, metadata: dict | None) -> Upload:
    """Admit an upload of `length` bytes for `path` and reserve its place in the quota."""
    try:
        validate_relative_path(path)
        file_kind(path)
    except (UnsafePath, InspectionError) as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    if length < 0:
        raise InvalidInput("Upload-Length must be a non-negative integer", code="invalid_length")
    if length > settings.MAX_ARTIFACT_SIZE:
        raise _too_large()
    upload = Upload(
        user=user,
        version=version,
        path=path,
        length=length,
        metadata=metadata or {},
        expires_at=timezone.now() + timedelta(seconds=settings.UPLOAD_EXPIRY_SECONDS),
    )
    upload.part_name = f"{upload.id}.part"
    with transaction.atomic():
        # the vendor's row serialises quota checks of parallel uploads; the version's row is the
        # lock finalize takes, so no upload opens on a version that finalize has just closed
        list(Vendor.objects.select_for_update().filter(user=user))
        locked = Version.objects.select_for_update().get(pk=version.pk)
        _require_draft(locked)
        if _bytes_in_use(user) + length > settings.VENDOR_STORAGE_QUOTA:
            raise _over_quota()
        if Artifact.objects.filter(version=version, path=path).exists():
            raise Conflict(f"{path} was already uploaded to this version", code="duplicate_file")
        try:
            with transaction.atomic():
                upload.save()
        except IntegrityError as exc:
            raise Conflict(f"an upload of {path} to this version is already in progress; resume it", code="duplicate_file") from exc
    open(_part_path(upload), "wb").close()
    return upload


def upload_create(*, user, version: Version, path: str, length: int, metadata: dict | None = None) -> Upload:
    """Open an upload of `length` bytes for `path` in a draft version (tus creation)."""
    metadata = {k: v for k, v in (metadata or {}).items() if k != PUT_MARK}
    upload = _open(user=user, version=version, path=path, length=length, metadata=metadata)
    if length == 0:
        return _complete(upload)
    return upload


def upload_whole(*, user, version: Version, path: str, stream: BinaryIO, length: int | None = None) -> Artifact:
    """Store one whole file read from `stream` (raw `PUT`): tus's admission and completion, in
    one request. `length` (the declared Content-Length) is counted against the quota before a
    byte is read; without it, reading stops as soon as the bytes pass the size limit or the
    quota. Not resumable: a body cut short, or refused, leaves nothing behind."""
    if length is None:
        # no length known (chunked): reserve what is left of the quota, up to the size limit
        allowance = settings.VENDOR_STORAGE_QUOTA - _bytes_in_use(user)
        reserve = max(min(settings.MAX_ARTIFACT_SIZE, allowance), 0)
        over = _too_large if reserve == settings.MAX_ARTIFACT_SIZE else _over_quota
    else:
        reserve, over = length, None
    upload = _open(user=user, version=version, path=path, length=reserve, metadata={"filename": path, PUT_MARK: True})
    digest = hashlib.sha256()
    try:
        with open(_part_path(upload), "r+b", buffering=0) as part:
            written = _receive(part, stream, limit=reserve, digests=[digest], over=over or (lambda: _cut_short(length, length + 1)))
            if length is not None and written != length:
                raise _cut_short(length, written)
        if not Upload.objects.filter(pk=upload.pk).update(length=written, offset=written, updated_at=timezone.now()):
            raise NotFound("this upload expired while its body arrived; send the file again", code="upload_not_found")
        upload.refresh_from_db()
    except BaseException:
        _discard(upload)
        raise
    try:
        artifact = _complete(upload, sha256=digest.hexdigest()).artifact
    except BaseException:  # not recorded (storage, finalized meanwhile, ...): a PUT leaves nothing behind
        _discard(upload)
        raise
    upload.delete()  # only a reservation: nothing can address a PUT's upload once it is done
    return artifact


def _cut_short(expected: int, received: int) -> InvalidInput:
    got = f"more than {expected}" if received > expected else str(received)
    return InvalidInput(
        f"received {got} bytes, but Content-Length said {expected}: the upload was cut short or its length is "
        "wrong; send the whole file again",
        code="incomplete_upload",
    )


def _receive(part, stream: BinaryIO, *, limit: int, digests: list, over: Callable[[], MarketplaceError]) -> int:
    """Copy `stream` into `part` at its position, at most `limit` bytes (one more raises `over()`).

    Every WRITEBACK_EVERY bytes the kernel is asked to start writing what arrived to disk
    (`sync_file_range`, asynchronous), so the fsync that acknowledges a chunk (or ends a whole-file
    PUT) waits for the last few MiB only. A failed write raises a storage error (`_storing`),
    never "client gone"."""
    written = 0
    start = flushed = part.tell()
    with _Digester(digests) as digester:
        while True:
            block = stream.read(min(BLOCK, limit - written + 1))
            if not block:
                return written
            written += len(block)
            if written > limit:
                raise over()
            digester.feed(block)
            with _storing():
                _write_all(part, block)
                if start + written - flushed >= WRITEBACK_EVERY:
                    start_writeback(part.fileno(), flushed, start + written - flushed)
                    flushed = start + written


def _write_all(part, block: bytes) -> None:
    """Write all of `block` to an unbuffered file (a write to a regular file may be short)."""
    view = memoryview(block)
    while view:
        n = part.write(view)
        if not n:  # a regular file that takes nothing has no room (a real ENOSPC raises)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


class _Digester:
    """Feeds the blocks of a body to its digests on a thread of its own, in order, so that the
    hashing runs beside the socket reads and the file writes (all three release the GIL) on
    another core. At most DIGEST_QUEUE blocks wait; leaving the `with` waits for the last one."""

    def __init__(self, digests: list) -> None:
        self.digests = digests
        self.queue: queue.Queue = queue.Queue(maxsize=DIGEST_QUEUE)
        self.thread = threading.Thread(target=self._run, name="upload-digest", daemon=True) if digests else None
        self.error: BaseException | None = None

    def _run(self) -> None:
        while (block := self.queue.get()) is not None:
            if self.error is not None:
                continue  # keep draining, so `feed` never blocks on a queue nobody empties
            try:
                for digest in self.digests:
                    digest.update(block)
            except BaseException as exc:  # noqa: BLE001 (raised again by __exit__, in the request's thread)
                self.error = exc

    def feed(self, block: bytes) -> None:
        if self.thread is not None:
            self.queue.put(block)

    def __enter__(self) -> _Digester:
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            if self.error is not None and exc_info[0] is None:
                raise self.error


DIGEST_QUEUE = 4  # blocks of BLOCK bytes: 4 MiB in flight at most


WRITEBACK_EVERY = 4 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, do not wait


@functools.cache
def _sync_file_range():
    """libc's sync_file_range (Linux), or None where there is none: then writeback is the kernel's affair."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing bytes [offset, offset + length) of `fd` to disk, without
    waiting (a hint: the durable point stays the fsync)."""
    function = _sync_file_range()
    if function is not None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def upload_get(*, user, upload_id) -> Upload:
    upload = Upload.objects.select_related("version").filter(pk=upload_id, user=user).first()
    if upload is None:
        raise NotFound("no such upload (it may have expired and been removed)", code="upload_not_found")
    if upload.completed_at is None and upload.expires_at <= timezone.now():
        raise UploadError("this upload expired; start it again", code="upload_expired", status=410)
    if upload.completed_at is None:
        _reconcile(upload)
    return upload


def _reconcile(upload: Upload) -> None:
    """Lower the recorded offset to what the part file holds, should it hold less (a file damaged
    or removed from outside, a disk that lost acknowledged writes): the client resumes from there. A file that is longer keeps its extra bytes until the next chunk
    (which truncates at the offset); a file that is gone counts as empty (the next chunk creates
    it). Only an incomplete upload's row is changed: a completion moves the file away."""
    try:
        size = os.stat(_part_path(upload)).st_size
    except FileNotFoundError:
        size = 0
    except OSError as exc:
        raise _storage_error(exc) from exc
    if size < upload.offset:
        logger.warning(
            "upload %s: its file holds %d bytes of the %d recorded (damaged or removed?); resuming from %d",
            upload.pk, size, upload.offset, size,
        )
        if Upload.objects.filter(pk=upload.pk, offset=upload.offset, completed_at__isnull=True).update(offset=size):
            upload.offset = size


def upload_append(
    *, upload: Upload, offset: int, stream: BinaryIO, content_length: int | None, checksum: str | None = None
) -> Upload:
    """Append the request body at `offset` (tus PATCH). Returns the upload with its new offset.

    `content_length` None (a chunked body) reads to the end of the stream, never past Upload-Length."""
    if upload.completed_at is not None:
        raise Conflict("this upload is complete", code="upload_complete")
    algorithm, expected = _checksum(checksum) if checksum else (None, None)
    if content_length is not None and offset + content_length > upload.length:
        raise UploadError("the chunk runs past Upload-Length", code="chunk_too_large", status=413)

    path = _part_path(upload)
    with _storing():
        # created again if it is gone (its directory entry is never fsynced): `_reconcile` then reads 0
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with open(fd, "r+b", buffering=0) as part:  # unbuffered: a failed write leaves nothing pending
        try:
            fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict("another request is writing to this upload; retry", code="upload_locked") from exc
        current = Upload.objects.select_related("version").filter(pk=upload.pk).first()
        if current is None or current.completed_at is not None:
            # cancelled, or completed (its file moved away), since `upload` was read: drop the
            # empty file just created
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if current is None:
                raise NotFound("this upload was cancelled or expired; start it again", code="upload_not_found")
            raise Conflict("this upload is complete", code="upload_complete")
        _reconcile(current)
        if current.version.status != Version.Status.DRAFT:
            # refused before a byte is taken; the completion re-checks under the version's lock
            _discard(current)
            _require_draft(current.version)
        if offset != current.offset:
            raise Conflict(f"Upload-Offset {offset} does not match the server's {current.offset}", code="offset_mismatch")
        digest = algorithm() if algorithm else None
        written = _write_chunk(part, stream, offset=offset, limit=upload.length - offset, digest=digest, expected=expected)
        new_offset = offset + written
        now = timezone.now()
        expires_at = now + timedelta(seconds=settings.UPLOAD_EXPIRY_SECONDS)
        stored = Upload.objects.filter(pk=upload.pk, offset=offset).update(offset=new_offset, expires_at=expires_at, updated_at=now)
        if stored:  # the row is what was just written: no query to read it back (one a chunk)
            current.offset, current.expires_at, current.updated_at = new_offset, expires_at, now
            upload = current
        elif Upload.objects.filter(pk=upload.pk).exists():
            upload.refresh_from_db()
        else:  # cancelled or expired while the chunk arrived: its row went first, its file goes now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise NotFound("this upload was cancelled or expired while the chunk arrived; start it again", code="upload_not_found")
        if upload.offset == upload.length:  # completed under the part's lock: no PATCH runs beside it
            return _complete_chunk(upload, part, offset=offset)
    return upload


def _complete_chunk(upload: Upload, part, *, offset: int) -> Upload:
    """`_complete` for the PATCH whose chunk from `offset` finished the file. If the file cannot be
    recorded (a storage error), none of that chunk is kept: the offset goes back to `offset`, so
    the client sends the chunk again and the completion runs again (after an fsync failure it is
    0 already, and stays so)."""
    try:
        return _complete(upload)
    except UploadError:
        if Upload.objects.filter(pk=upload.pk, offset=upload.length, completed_at__isnull=True).update(offset=offset):
            _truncate_quietly(part, offset)
        raise


def _write_chunk(part, stream: BinaryIO, *, offset: int, limit: int, digest, expected: bytes | None) -> int:
    """Write a PATCH body into `part` at `offset` (the caller holds its lock); returns the bytes
    kept. A refused chunk (checksum, size, storage) keeps none of its bytes; a chunk whose client
    went away keeps what arrived, unless it had a checksum to verify."""
    part.seek(offset)
    with _storing():
        part.truncate(offset)  # drop bytes of a chunk that was cut short before
    try:
        written = _receive(
            part, stream, limit=limit, digests=[digest] if digest else [],
            over=lambda: UploadError("the chunk runs past Upload-Length", code="chunk_too_large", status=413),
        )
    except MarketplaceError:
        _truncate_quietly(part, offset)
        raise
    except Exception:
        # the client went away mid-chunk (a failed write is a storage error, above)
        if digest:
            _truncate_quietly(part, offset)
            raise
        written = part.tell() - offset
    if digest and digest.digest() != expected:
        _truncate_quietly(part, offset)
        raise UploadError("the chunk does not match its Upload-Checksum; send it again", code="checksum_mismatch", status=460)
    try:
        # durable before the offset is acknowledged: with the writeback started every
        # WRITEBACK_EVERY bytes, this waits for the chunk's tail only. (Acknowledging first and
        # reading the offset back from the file after a crash was tried: no faster end to end
        # on our bench, and only as safe as the file system's ordering of sizes and data.)
        os.fsync(part.fileno())
    except OSError as exc:
        _truncate_quietly(part, offset)
        raise _storage_error(exc) from exc
    return written


def _truncate_quietly(part, offset: int) -> None:
    """Drop a refused chunk's bytes; if even that fails, the next chunk truncates at the offset
    (the offset was not moved), so the error the client gets stays the one that refused it."""
    try:
        part.truncate(offset)
    except OSError as exc:
        logger.warning("could not truncate an upload's file to %d: %s", offset, exc)


def _checksum(header: str) -> tuple[Callable, bytes]:
    """The digest constructor and the expected digest an `Upload-Checksum` header names."""
    name, _, encoded = header.strip().partition(" ")
    algorithm = CHECKSUM_ALGORITHMS.get(name.lower())
    if algorithm is None:
        raise InvalidInput(f"unsupported checksum algorithm {name!r}; use sha256 or sha1", code="checksum_algorithm")
    try:
        return algorithm, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("Upload-Checksum must be '<algorithm> <base64 digest>'", code="checksum_malformed") from exc


def _complete(upload: Upload, *, sha256: str = "") -> Upload:
    """Record the finished part as the version's artifact, if the version is still a draft;
    otherwise (finalized meanwhile) the bytes go and the upload is refused.

    The part keeps its name until the artifact is committed (local storage: a hard link gives
    the file its artifact name first; S3: a streamed copy), so a `HEAD` that comes meanwhile
    still finds every byte and `_reconcile` has nothing to lower. A failure leaves the part as it
    was, with no artifact file behind; tus callers roll their chunk back so it is sent again."""
    if not Version.objects.filter(pk=upload.version_id, status=Version.Status.DRAFT).exists():
        _discard(upload)  # finalized meanwhile: no fsync of bytes that are going anyway
        _require_draft(Version.objects.get(pk=upload.version_id))
    source = _part_path(upload)
    name = f"artifacts/{upload.version_id}/{upload.path}"
    stored = None
    _make_durable(upload, source)
    try:
        with _storing():
            if is_local():
                target_name = default_storage.get_available_name(name)
                target = default_storage.path(target_name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.link(source, target)  # same filesystem: no second copy of a multi-GB file
                stored = target_name
                _fsync_directory(os.path.dirname(target))  # the new name survives a crash
            else:  # remote storage (S3): a streamed (multipart) upload of the finished file
                stored = _save_remote(name, source)
        with transaction.atomic():
            # the lock version_finalize takes: the file is recorded before finalize reads the
            # version's files, or refused after it; never attached to a finalized version
            _require_draft(Version.objects.select_for_update().get(pk=upload.version_id))
            artifact = Artifact.objects.create(
                version_id=upload.version_id, path=upload.path, storage_name=stored, size=upload.length, sha256=sha256
            )
            Upload.objects.filter(pk=upload.pk).update(completed_at=timezone.now(), artifact=artifact)
    except BaseException as exc:
        if stored:
            with contextlib.suppress(Exception):
                default_storage.delete(stored)
        if isinstance(exc, Conflict | IntegrityError):
            _discard(upload)
        if isinstance(exc, IntegrityError):
            raise Conflict(f"{upload.path} was already uploaded to this version", code="duplicate_file") from exc
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(source)  # the artifact is recorded: the part's name goes (uploads_expire sweeps one a crash left)
    upload.refresh_from_db()
    return upload


def _save_remote(name: str, source: str) -> str:
    """Copy a finished part to remote storage (S3); its name there. Whatever the storage client
    raises (unreachable endpoint, refused credentials, a bucket gone) is `storage_unavailable`
    (503): nothing is recorded, and the caller keeps the part for the retry."""
    try:
        with open(source, "rb") as fh:
            return default_storage.save(name, File(fh))
    except OSError:
        raise  # the part itself: a storage error of this server's disk (`_storing`)
    except Exception as exc:  # noqa: BLE001 (any failure of the remote store means "not stored")
        logger.warning("remote storage refused %s: %s", name, exc)
        raise UploadError(
            f"the server's file storage did not take this upload ({type(exc).__name__}); nothing of this request "
            "was kept, retry later",
            code="storage_unavailable",
            status=503,
        ) from exc


def _make_durable(upload: Upload, path: str) -> None:
    """fsync a finished part before it is recorded. A failure here may have lost any of its bytes
    (a write-back error of an earlier chunk is reported now), so the upload starts again from
    zero (its row and an empty file stay, so the client's HEAD says 0) and the error says so."""
    try:
        _fsync_path(path)
    except OSError as exc:
        logger.error("upload %s: fsync of its file failed (%s); it starts again from 0", upload.pk, exc)
        # only an upload still open at its full length: never one another request completed
        if Upload.objects.filter(pk=upload.pk, offset=upload.length, completed_at__isnull=True).update(offset=0):
            with contextlib.suppress(OSError):
                os.truncate(path, 0)
        raise _storage_error(exc) from exc


def _fsync_path(path: str) -> None:
    """fsync a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: str) -> None:
    """fsync a directory so a name just made in it survives a crash; a failure is logged (the file
    is in place and recorded; only its new name's durability is in doubt), never raised."""
    try:
        _fsync_path(path)
    except OSError as exc:
        logger.warning("fsync of directory %s failed: %s", path, exc)


def _discard(upload: Upload) -> None:
    """Remove an unfinished upload: its row, then its part file (in that order: a PATCH that
    recreates the file meanwhile then finds no row and removes it; a crash between the two leaves
    a file without a row, which `uploads_expire` sweeps)."""
    Upload.objects.filter(pk=upload.pk, completed_at__isnull=True).delete()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_part_path(upload))


def upload_terminate(*, upload: Upload) -> None:
    """Cancel an upload (tus termination): its bytes and its row go."""
    if upload.completed_at is not None:
        raise Conflict("this upload is complete; the file belongs to the version now", code="upload_complete")
    _discard(upload)


def uploads_expire(*, now=None) -> int:
    """Remove incomplete uploads past their expiry, with their bytes, and part files no open
    upload owns (what a crash between two steps can leave). Returns how many uploads expired."""
    now = now or timezone.now()
    expired = list(Upload.objects.filter(completed_at__isnull=True, expires_at__lte=now))
    for upload in expired:
        _discard(upload)
    swept = _sweep_orphan_parts(now)
    if swept:
        logger.warning("removed %d part files that no open upload owned", swept)
    return len(expired)


ORPHAN_GRACE_SECONDS = 3600  # a part file untouched this long, and no open upload's, is an orphan
SWEEP_MAX_FILES = 10_000  # looked at per run: a directory of millions costs one bounded pass a run


def _sweep_orphan_parts(now) -> int:
    """Delete `*.part` files untouched for ORPHAN_GRACE_SECONDS whose upload is gone or complete."""
    cutoff = now.timestamp() - ORPHAN_GRACE_SECONDS
    candidates: dict[str, str] = {}
    with os.scandir(_parts_dir()) as entries:
        for entry in entries:
            if len(candidates) >= SWEEP_MAX_FILES:
                break
            with contextlib.suppress(OSError):
                if entry.name.endswith(".part") and entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    candidates[entry.name] = entry.path
    names = list(candidates)
    owned: set[str] = set()
    for i in range(0, len(names), 500):
        owned.update(
            Upload.objects.filter(part_name__in=names[i : i + 500], completed_at__isnull=True).values_list("part_name", flat=True)
        )
    removed = 0
    for name, path in candidates.items():
        if name not in owned:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
    return removed
