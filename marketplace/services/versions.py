"""Versions: upload files, hash and inspect them into the OMS manifest, take the vendor's
`PublishVersion` signature, and anchor the version on chain through the relayer outbox."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import ExitStack
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from hallmark import eip712
from hallmark.errors import InvalidSignature, UnsafePath
from hallmark.manifest import (
    FileDigest,
    build_statement,
    metadata_digest,
    root_digest,
    sha256_files,
    validate_relative_path,
)
from registry import chain
from registry.caching import cache_generation_bump
from registry.inspection import InspectionError, file_kind, inspect_file
from registry.services import TransactionFailed, transaction_enqueue, transaction_events, transaction_process

from ..errors import Conflict, InvalidInput
from ..models import Artifact, Model, Version
from ..storage import local_copy
from .catalog import model_catalog_refresh

COPY_BLOCK = 4 * 1024 * 1024


def version_create(*, model: Model, declared_files: dict[str, str] | None = None) -> Version:
    """Open a draft version of a registered model, ready for uploads.

    `declared_files` ({path: sha256}) is what the vendor hashed locally (CLI flow): the version
    is then rejected unless exactly those files arrive with exactly those digests.
    """
    if model.status != Model.Status.LIVE:
        raise Conflict(f"{model.repo_id} is not registered on chain yet ({model.get_status_display()})", code="model_not_live")
    if declared_files is not None:
        if not declared_files:
            raise InvalidInput("declare at least one file, or none at all", code="no_files")
        for path, digest in declared_files.items():
            try:
                validate_relative_path(path)
                file_kind(path)
            except (UnsafePath, InspectionError) as exc:
                raise InvalidInput(str(exc), code=exc.code) from exc
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InvalidInput(f"the declared sha256 of {path!r} is not 64 lowercase hex characters", code="invalid_digest")
    return Version.objects.create(model=model, declared_files=declared_files)


def artifact_upload(*, version: Version, path: str, stream: BinaryIO, length: int | None = None) -> Artifact:
    """Store one file of a draft version, streamed in blocks; refuses unsafe names and kinds.

    The bytes land in storage before the row is written; if the row cannot be written the stored
    file is removed, so nothing is left half-written.
    """
    try:
        validate_relative_path(path)
        file_kind(path)
    except UnsafePath as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    except InspectionError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    if version.status != Version.Status.DRAFT:
        raise Conflict(f"version is {version.get_status_display()}; files can be added to drafts only", code="invalid_state")
    if length is not None and length > settings.MAX_ARTIFACT_SIZE:
        raise InvalidInput(f"the file is larger than the limit of {settings.MAX_ARTIFACT_SIZE} bytes", code="file_too_large")
    if Artifact.objects.filter(version=version, path=path).exists():
        raise Conflict(f"{path} was already uploaded to this version", code="duplicate_file")

    tmp_dir = os.path.join(settings.MEDIA_ROOT, "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as tmp:
        try:
            while True:
                block = stream.read(COPY_BLOCK)
                if not block:
                    break
                size += len(block)
                if size > settings.MAX_ARTIFACT_SIZE:
                    raise InvalidInput("the file is larger than the limit", code="file_too_large")
                digest.update(block)
                tmp.write(block)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    if length is not None and size != length:
        os.unlink(tmp.name)
        raise InvalidInput(f"received {size} bytes, expected {length}: the upload was cut short", code="incomplete_upload")
    stored_name = None
    try:
        with open(tmp.name, "rb") as fh:
            stored_name = default_storage.save(f"artifacts/{version.pk}/{path}", File(fh))
        with transaction.atomic():
            artifact = Artifact.objects.create(
                version=version, path=path, storage_name=stored_name, size=size, sha256=digest.hexdigest()
            )
    except BaseException:
        if stored_name:
            default_storage.delete(stored_name)
        raise
    finally:
        os.unlink(tmp.name)
    return artifact


def version_finalize(*, version: Version) -> Version:
    """Close uploads and queue hashing and inspection (a Celery task)."""
    from ..tasks import version_hash_task

    with transaction.atomic():
        version = Version.objects.select_for_update().get(pk=version.pk)
        if version.status != Version.Status.DRAFT:
            raise Conflict(f"version is {version.get_status_display()}, not a draft", code="invalid_state")
        if version.uploads.filter(completed_at__isnull=True).exists():
            raise Conflict("some uploads are not finished; resume or cancel them first", code="uploads_in_progress")
        if not version.artifacts.exists():
            raise InvalidInput("upload at least one file before finishing the version", code="no_files")
        if version.declared_files is not None:
            uploaded = set(version.artifacts.values_list("path", flat=True))
            declared = set(version.declared_files)
            if uploaded != declared:
                missing, extra = sorted(declared - uploaded), sorted(uploaded - declared)
                raise Conflict(
                    f"the uploaded files differ from the declared ones (missing: {missing}, not declared: {extra})",
                    code="declared_files_mismatch",
                )
        version.status = Version.Status.HASHING
        version.save(update_fields=["status", "updated_at"])
        transaction.on_commit(lambda: version_hash_task.delay(version.pk))
    return version


def version_hash_and_inspect(*, version_id: int) -> Version:
    """Hash every stored file (streaming), inspect it, build manifest, metadata and the message
    to sign. A bad file rejects the version with that file's error; the worker never crashes."""
    version = Version.objects.select_related("model__vendor").get(pk=version_id)
    if version.status != Version.Status.HASHING:
        return version
    files: list[FileDigest] = []
    facts: dict[str, dict] = {}
    artifacts = list(version.artifacts.order_by("path"))
    try:
        with ExitStack() as stack:
            # a local path per file (remote storage: a streamed temporary copy), then several
            # large files hash in parallel, one thread each, in constant memory
            paths = [stack.enter_context(local_copy(a.storage_name)) for a in artifacts]
            digests = sha256_files(paths)
            for artifact, path, (sha, size) in zip(artifacts, paths, digests):
                if artifact.sha256 and artifact.sha256 != sha:
                    raise InspectionError(artifact.path, "stored bytes differ from the bytes received", code="storage_corrupted")
                declared = (version.declared_files or {}).get(artifact.path)
                if declared is not None and declared != sha:
                    raise InspectionError(
                        artifact.path,
                        f"its sha256 is {sha}, but {declared} was declared: the file changed on the way; upload it again",
                        code="declared_digest_mismatch",
                    )
                facts[artifact.path] = inspect_file(path, artifact.path)
                Artifact.objects.filter(pk=artifact.pk).update(
                    sha256=sha, size=size, file_format=facts[artifact.path]["format"], inspection=facts[artifact.path]
                )
                files.append(FileDigest(artifact.path, sha, size))
    except InspectionError as exc:
        Version.objects.filter(pk=version.pk).update(
            status=Version.Status.REJECTED, error_code=exc.code, error_message=str(exc)
        )
        return Version.objects.get(pk=version.pk)

    model = version.model
    metadata = _version_metadata(model, files, facts)
    manifest = build_statement(model.repo_id, files)
    with transaction.atomic():
        locked = Version.objects.select_for_update().get(pk=version.pk)
        if locked.status != Version.Status.HASHING:
            return locked
        locked.root_digest = root_digest(files)
        locked.metadata = metadata
        locked.metadata_digest = metadata_digest(metadata)
        locked.manifest = manifest
        locked.typed_data = _publish_typed_data(locked)
        locked.status = Version.Status.AWAITING_SIGNATURE
        locked.save()
    return locked


def version_submit_signature(*, version: Version, signature: str) -> Version:
    """Check the vendor's `PublishVersion` signature, allocate the version number and queue the
    relayed `publishVersionBySig`. A wrong or stale signature changes nothing."""
    from ..tasks import version_anchor_task

    with transaction.atomic():
        model = Model.objects.select_for_update().select_related("vendor").get(pk=version.model_id)
        version = Version.objects.select_for_update().get(pk=version.pk)
        if version.status != Version.Status.AWAITING_SIGNATURE:
            raise Conflict(f"version is {version.get_status_display()}, not waiting for a signature", code="invalid_state")
        message = version.typed_data["message"]
        expected = _next_number(model)
        if int(message["version"]) != expected or int(message["deadline"]) < time.time():
            refreshed = _publish_typed_data(version)
            Version.objects.filter(pk=version.pk).update(typed_data=refreshed)
            raise Conflict(
                "the message to sign is out of date (another version was published, or it expired); "
                "sign the new message",
                code="stale_signature_request",
            )
        try:
            signer = eip712.require_signer(version.typed_data, signature, model.vendor.address)
        except InvalidSignature as exc:
            raise InvalidInput(str(exc), code="invalid_signature") from exc
        tx = transaction_enqueue(
            idempotency_key=f"publishVersionBySig:{model.chain_model_id}:{expected}:{hashlib.sha256(signature.encode()).hexdigest()[:16]}",
            function="publishVersionBySig",
            args={
                "modelId": model.chain_model_id,
                "version": expected,
                "rootDigest": message["rootDigest"],
                "metadataDigest": message["metadataDigest"],
                "deadline": int(message["deadline"]),
                "signature": signature,
            },
        )
        version.number = expected
        version.signature = signature
        version.signer = signer
        version.publish_transaction = tx
        version.status = Version.Status.PENDING_CHAIN
        version.error_code = ""
        version.error_message = ""
        version.save()
        transaction.on_commit(lambda: version_anchor_task.delay(version.pk))
    return version


def version_anchor(*, version_id: int) -> Version:
    """Relay the version's publication and mark it live once confirmed.

    ChainUnavailable / TransactionPending propagate so the task retries later; the version
    stays `pending_chain` meanwhile. A final failure frees the number and records the error.
    """
    version = Version.objects.get(pk=version_id)
    if version.status != Version.Status.PENDING_CHAIN:
        return version
    try:
        tx = transaction_process(transaction_id=version.publish_transaction_id)
    except TransactionFailed as exc:
        Version.objects.filter(pk=version.pk, status=Version.Status.PENDING_CHAIN).update(
            status=Version.Status.FAILED, number=None, error_code=exc.error_code, error_message=str(exc)
        )
        return Version.objects.get(pk=version.pk)
    published = [e for e in transaction_events(tx) if e["event"] == "VersionPublished"]
    if published:
        args = published[0]["args"]
        if int(args["version"]) != version.number or bytes(args["rootDigest"]).hex() != version.root_digest:
            Version.objects.filter(pk=version.pk).update(
                status=Version.Status.FAILED,
                error_code="chain_mismatch",
                error_message="the chain recorded a different version or digest than this one",
            )
            return Version.objects.get(pk=version.pk)
    Version.objects.filter(pk=version.pk, number__isnull=False).exclude(status=Version.Status.LIVE).update(
        status=Version.Status.LIVE, published_block=tx.block_number, error_code="", error_message=""
    )
    cache_generation_bump()  # `main` of this model now names the new version
    model_catalog_refresh(model_id=version.model_id)
    return Version.objects.get(pk=version.pk)


def _next_number(model: Model) -> int:
    taken = model.versions.filter(
        status__in=[Version.Status.PENDING_CHAIN, Version.Status.LIVE], number__isnull=False
    ).aggregate(m=Max("number"))["m"]
    return (taken or 0) + 1


def _publish_typed_data(version: Version) -> dict:
    model = version.model
    contract_address = chain.registry_address()
    return eip712.typed_data_publish_version(
        chain_id=settings.CHAIN_ID,
        contract=contract_address,
        model_id=model.chain_model_id,
        version=_next_number(model),
        root_digest="0x" + version.root_digest,
        metadata_digest="0x" + version.metadata_digest,
        deadline=int(time.time()) + settings.SIGNATURE_TTL_SECONDS,
    )


def _version_metadata(model: Model, files: list[FileDigest], facts: dict[str, dict]) -> dict:
    weights = [facts[f.name] for f in files if facts[f.name]["format"] in ("gguf", "safetensors", "onnx")]
    card = next((f for f in files if f.name.lower() == "readme.md"), None)

    def first(key: str):
        return next((w.get(key) for w in weights if w.get(key) is not None), None)

    return {
        "files": [{"path": f.name, "size": f.size, "sha256": f.sha256} for f in files],
        "formats": sorted({w["format"] for w in weights}),
        "architecture": first("architecture"),
        "quantization": first("quantization"),
        "parameter_count": sum(int(w.get("parameter_count") or 0) for w in weights) or None,
        "context_length": first("context_length"),
        "license": {
            "price_wei": str(model.price_wei),
            "duration_seconds": int(model.license_duration),
            "perpetual": model.license_duration == 0,
        },
        "model_card_sha256": card.sha256 if card else None,
    }
