"""Resumable uploads (tus 1.0): create, append with optional checksum, complete into an artifact,
terminate, expire. The offset is committed only after its bytes are on disk, and one writer at a
time holds the part file's lock, so a crash or a race can never leave a gap or an overlap."""

from __future__ import annotations

import fcntl
import hashlib
import os
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
from ..models import Artifact, Upload, Version
from ..storage import is_local

BLOCK = 4 * 1024 * 1024
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}


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


def upload_create(*, user, version: Version, path: str, length: int, metadata: dict | None = None) -> Upload:
    """Open an upload of `length` bytes for `path` in a draft version (tus creation)."""
    try:
        validate_relative_path(path)
        file_kind(path)
    except (UnsafePath, InspectionError) as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    if version.status != Version.Status.DRAFT:
        raise Conflict(f"version is {version.get_status_display()}; files can be added to drafts only", code="invalid_state")
    if length < 0:
        raise InvalidInput("Upload-Length must be a non-negative integer", code="invalid_length")
    if length > settings.MAX_ARTIFACT_SIZE:
        raise UploadError(f"the file is larger than the limit of {settings.MAX_ARTIFACT_SIZE} bytes", code="file_too_large", status=413)
    if _bytes_in_use(user) + length > settings.VENDOR_STORAGE_QUOTA:
        raise UploadError(
            f"this upload would pass your storage quota of {settings.VENDOR_STORAGE_QUOTA} bytes; "
            "delete drafts or ask for a larger quota",
            code="quota_exceeded",
            status=413,
        )
    if Artifact.objects.filter(version=version, path=path).exists():
        raise Conflict(f"{path} was already uploaded to this version", code="duplicate_file")
    upload = Upload(
        user=user,
        version=version,
        path=path,
        length=length,
        metadata=metadata or {},
        expires_at=timezone.now() + timedelta(seconds=settings.UPLOAD_EXPIRY_SECONDS),
    )
    upload.part_name = f"{upload.id}.part"
    try:
        with transaction.atomic():
            upload.save()
    except IntegrityError as exc:
        raise Conflict(f"an upload of {path} to this version is already in progress; resume it", code="duplicate_file") from exc
    open(_part_path(upload), "wb").close()
    if length == 0:
        return _complete(upload)
    return upload


def upload_get(*, user, upload_id) -> Upload:
    upload = Upload.objects.select_related("version").filter(pk=upload_id, user=user).first()
    if upload is None:
        raise NotFound("no such upload (it may have expired and been removed)", code="upload_not_found")
    if upload.completed_at is None and upload.expires_at <= timezone.now():
        raise UploadError("this upload expired; start it again", code="upload_expired", status=410)
    return upload


def upload_append(
    *, upload: Upload, offset: int, stream: BinaryIO, content_length: int | None, checksum: str | None = None
) -> Upload:
    """Append the request body at `offset` (tus PATCH). Returns the upload with its new offset."""
    if upload.completed_at is not None:
        raise Conflict("this upload is complete", code="upload_complete")
    algorithm = expected = None
    if checksum:
        name, _, encoded = checksum.strip().partition(" ")
        algorithm = CHECKSUM_ALGORITHMS.get(name.lower())
        if algorithm is None:
            raise InvalidInput(f"unsupported checksum algorithm {name!r}; use sha256 or sha1", code="checksum_algorithm")
        import base64
        import binascii

        try:
            expected = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("Upload-Checksum must be '<algorithm> <base64 digest>'", code="checksum_malformed") from exc
    if content_length is not None and offset + content_length > upload.length:
        raise UploadError("the chunk runs past Upload-Length", code="chunk_too_large", status=413)

    path = _part_path(upload)
    with open(path, "r+b") as part:
        try:
            fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict("another request is writing to this upload; retry", code="upload_locked") from exc
        current = Upload.objects.get(pk=upload.pk)
        if offset != current.offset:
            raise Conflict(f"Upload-Offset {offset} does not match the server's {current.offset}", code="offset_mismatch")
        part.seek(offset)
        part.truncate(offset)  # drop bytes of a chunk that was cut short before
        digest = algorithm() if algorithm else None
        written = 0
        remaining = upload.length - offset
        try:
            while True:
                block = stream.read(min(BLOCK, remaining - written + 1))
                if not block:
                    break
                written += len(block)
                if written > remaining:
                    raise UploadError("the chunk runs past Upload-Length", code="chunk_too_large", status=413)
                if digest:
                    digest.update(block)
                part.write(block)
        except MarketplaceError:
            part.truncate(offset)
            raise
        except Exception:
            # the client went away mid-chunk: keep what arrived intact, unless it must be verified
            if digest:
                part.truncate(offset)
                raise
        if digest and digest.digest() != expected:
            part.truncate(offset)
            raise UploadError("the chunk does not match its Upload-Checksum; send it again", code="checksum_mismatch", status=460)
        part.flush()
        os.fsync(part.fileno())
        new_offset = offset + written
        Upload.objects.filter(pk=upload.pk, offset=offset).update(
            offset=new_offset,
            expires_at=timezone.now() + timedelta(seconds=settings.UPLOAD_EXPIRY_SECONDS),
            updated_at=timezone.now(),
        )
    upload.refresh_from_db()
    if upload.offset == upload.length:
        return _complete(upload)
    return upload


def _complete(upload: Upload) -> Upload:
    """Move the finished part into artifact storage and record the artifact."""
    source = _part_path(upload)
    name = f"artifacts/{upload.version_id}/{upload.path}"
    stored = None
    try:
        if is_local():
            target_name = default_storage.get_available_name(name)
            target = default_storage.path(target_name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)  # same filesystem: no second copy of a multi-GB file
            stored = target_name
        else:  # remote storage (S3): a streamed (multipart) upload of the finished file
            with open(source, "rb") as fh:
                stored = default_storage.save(name, File(fh))
            os.unlink(source)
        with transaction.atomic():
            artifact = Artifact.objects.create(version=upload.version, path=upload.path, storage_name=stored, size=upload.length)
            Upload.objects.filter(pk=upload.pk).update(completed_at=timezone.now(), artifact=artifact)
    except IntegrityError as exc:
        if stored:
            default_storage.delete(stored)
        raise Conflict(f"{upload.path} was already uploaded to this version", code="duplicate_file") from exc
    upload.refresh_from_db()
    return upload


def upload_terminate(*, upload: Upload) -> None:
    """Cancel an upload (tus termination): its bytes and its row go."""
    if upload.completed_at is not None:
        raise Conflict("this upload is complete; the file belongs to the version now", code="upload_complete")
    try:
        os.unlink(_part_path(upload))
    except FileNotFoundError:
        pass
    upload.delete()


def uploads_expire(*, now=None) -> int:
    """Remove incomplete uploads past their expiry, with their bytes. Returns how many."""
    now = now or timezone.now()
    expired = list(Upload.objects.filter(completed_at__isnull=True, expires_at__lte=now))
    for upload in expired:
        try:
            os.unlink(_part_path(upload))
        except FileNotFoundError:
            pass
        upload.delete()
    return len(expired)
