"""Versions: upload files, hash and inspect them into the OMS manifest, take the vendor's
`PublishVersion` signature, and anchor the version on chain through the relayer outbox."""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import ExitStack
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from hallmark import eip712, oms
from hallmark.errors import InvalidSignature, UnsafePath
from hallmark.manifest import (
    FileDigest,
    build_statement,
    metadata_digest,
    root_digest,
    validate_relative_path,
)
from hallmark.segments import MAX_SEGMENTS, metadata_entry, segment_document
from registry import chain
from registry.inspection import MAX_PARAMETERS, InspectionError, file_kind
from registry.models import ChainTransaction
from registry.sandbox import FileResult, InspectionAborted, Limits, files_hash_and_inspect
from registry.services import TransactionFailed, transaction_events, transaction_process
from telemetry import metrics

from ..errors import Conflict, InvalidInput, Unavailable
from ..models import Artifact, Model, Vendor, VendorSigningKey, Version
from ..storage import local_copy
from .catalog import sponsored_enqueue
from .states import chain_mismatch_message, version_mark_failed, version_mark_live, version_mark_rejected
from .uploads import PUT_MARK, upload_whole


def version_create(*, model: Model, declared_files: dict[str, str] | None = None) -> Version:
    """Open a draft version of a registered model, ready for uploads.

    `declared_files` ({path: sha256}) is what the vendor hashed locally (CLI flow): the version
    is then rejected unless exactly those files arrive with exactly those digests.
    """
    if model.status != Model.Status.LIVE:
        raise Conflict(f"{model.repo_id} is not registered on chain yet ({model.get_status_display()})", code="model_not_live")
    if declared_files is not None:
        _declared_check(declared_files)
    return Version.objects.create(model=model, declared_files=declared_files)


def _declared_check(declared_files: dict[str, str]) -> None:
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


def artifact_upload(*, version: Version, path: str, stream: BinaryIO, length: int | None = None) -> Artifact:
    """Store one whole file of a draft version from `stream` (raw `PUT`, the CLI's and seeding's
    callers): the same path checks, size limit, quota and completion as a tus upload
    (services/uploads.py). A file that finishes after the version was finalized is refused
    (`invalid_state`) and its bytes removed."""
    return upload_whole(user=version.model.vendor.user, version=version, path=path, stream=stream, length=length)


def version_finalize(*, version: Version, declared_files: dict[str, str] | None = None) -> Version:
    """Close uploads and queue hashing and inspection (a Celery task).

    `declared_files` ({path: sha256}): the digests of the bytes the vendor sent, computed while
    sending (the CLI reads each file once, so it knows them only now); checked against the
    stored files as those declared at `version_create`, which stand when both were given."""
    from ..tasks import version_hash_task

    if declared_files is not None:
        _declared_check(declared_files)
    with transaction.atomic():
        # the lock an upload's completion takes (services/uploads.py): every file recorded before
        # this point is in the version, every one finishing after it is refused
        version = Version.objects.select_for_update().get(pk=version.pk)
        if version.status != Version.Status.DRAFT:
            raise Conflict(f"version is {version.get_status_display()}, not a draft", code="invalid_state")
        # a resumable (tus) upload holds finalize back; a whole-file PUT still streaming does not
        # (nothing can resume it): it is refused when it ends
        if version.uploads.filter(completed_at__isnull=True).exclude(metadata__has_key=PUT_MARK).exists():
            raise Conflict("some uploads are not finished; resume or cancel them first", code="uploads_in_progress")
        if not version.artifacts.exists():
            raise InvalidInput("upload at least one file before finishing the version", code="no_files")
        if version.declared_files is None and declared_files is not None:
            version.declared_files = declared_files
            version.save(update_fields=["declared_files", "updated_at"])
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
    to sign. A bad file rejects the version with that file's error; the worker never crashes.

    The files are untrusted: hashing and inspection run in a child process under hard limits
    (registry/sandbox.py), so a file that makes the parser blow up costs its own version
    (`malformed_file`), never the worker. Each run is counted before it starts
    (`hash_attempts`); a run that never ends (its worker killed) leaves its count behind, and
    past `INSPECTION_MAX_ATTEMPTS` the version is rejected (`inspection_failed`), not retried.
    Timed in `hallmark_version_processing_seconds` (runs that did something).
    """
    began = time.perf_counter()
    try:
        version = _version_hash_and_inspect(version_id)
    except Exception:
        metrics.VERSION_PROCESSING_SECONDS.labels(outcome="error").observe(time.perf_counter() - began)
        raise
    outcome = {Version.Status.AWAITING_SIGNATURE: "ok", Version.Status.REJECTED: "rejected"}.get(version.status)
    if outcome is not None and version.hash_attempts:
        metrics.VERSION_PROCESSING_SECONDS.labels(outcome=outcome).observe(time.perf_counter() - began)
    return version


def _version_hash_and_inspect(version_id: int) -> Version:
    started = Version.objects.filter(pk=version_id, status=Version.Status.HASHING).update(
        hash_attempts=F("hash_attempts") + 1, updated_at=timezone.now()
    )
    version = Version.objects.select_related("model__vendor").get(pk=version_id)
    if not started:
        return version
    if version.hash_attempts > settings.INSPECTION_MAX_ATTEMPTS:
        return version_inspection_abandon(version_id=version.pk)
    files: list[FileDigest] = []
    facts: dict[str, dict] = {}
    segments: dict[str, list[str]] = {}
    segment_size = settings.VERSION_SEGMENT_SIZE
    artifacts = list(version.artifacts.order_by("path"))
    try:
        with ExitStack() as stack:
            # a local path per file (remote storage: a streamed temporary copy); the child hashes
            # several large files in parallel, one thread each, in constant memory
            paths = [stack.enter_context(local_copy(a.storage_name)) for a in artifacts]
            limits = inspection_limits(total_bytes=sum(os.path.getsize(p) for p in paths))
            try:
                named = list(zip(paths, [a.path for a in artifacts], strict=True))
                results = {r.name: r for r in files_hash_and_inspect(named, limits=limits, segment_size=segment_size)}
                died = None
            except InspectionAborted as exc:  # the child died: what it hashed before still counts
                results = {name: FileResult(name, sha, size) for name, (sha, size) in exc.hashed.items()}
                died = exc
            for artifact in artifacts:
                result = results.get(artifact.path)
                if result is None:
                    raise died or InspectionError(artifact.path, "the inspector returned nothing for it")
                sha, size = result.sha256, result.size
                if artifact.sha256 and artifact.sha256 != sha:
                    raise InspectionError(artifact.path, "stored bytes differ from the bytes received", code="storage_corrupted")
                declared = (version.declared_files or {}).get(artifact.path)
                if declared is not None and declared != sha:
                    raise InspectionError(
                        artifact.path,
                        f"its sha256 is {sha}, but {declared} was declared: the file changed on the way; upload it again",
                        code="declared_digest_mismatch",
                    )
                if result.error is not None:
                    raise result.error
                if result.facts is None:
                    raise died or InspectionError(artifact.path, "the inspector returned nothing for it")
                facts[artifact.path] = result.facts
                segments[artifact.path] = list(result.segments)
                Artifact.objects.filter(pk=artifact.pk).update(
                    sha256=sha, size=size, file_format=facts[artifact.path]["format"], inspection=facts[artifact.path],
                    segment_digests=segments[artifact.path],
                )
                files.append(FileDigest(artifact.path, sha, size))
        model = version.model
        metadata = _version_metadata(model, files, facts)
        if sum(len(d) for d in segments.values()) <= MAX_SEGMENTS:  # more than a client accepts: whole-file checks only
            # committed before the digest is taken: the vendor's signature covers the document
            metadata["segments"] = metadata_entry(segment_document(segments, segment_size))
    except InspectionError as exc:
        return version_mark_rejected(version_id=version.pk, code=exc.code, message=str(exc))

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


def inspection_limits(*, total_bytes: int) -> Limits:
    """The child's limits for a version of `total_bytes`: the settings, CPU and wall time scaled
    with the bytes (hashing a large file legitimately takes time)."""
    return Limits.for_bytes(
        total_bytes,
        memory_bytes=settings.INSPECTION_MEMORY_LIMIT,
        cpu_seconds=settings.INSPECTION_CPU_SECONDS,
        wall_seconds=settings.INSPECTION_WALL_SECONDS,
    )


def version_inspection_abandon(*, version_id: int) -> Version:
    """Reject a version whose hashing runs all died (`inspection_failed`): no further attempt."""
    version = Version.objects.get(pk=version_id)
    return version_mark_rejected(
        version_id=version_id,
        code="inspection_failed",
        message=(
            f"hashing and inspecting this version's files was started {version.hash_attempts} times and never "
            f"finished (at most {settings.INSPECTION_MAX_ATTEMPTS} are tried): each time the process running it "
            "was lost. Check the files (a damaged or hostile model file can do this) and upload them in a new version"
        ),
    )


def vendor_signing_key_register(*, vendor: Vendor, public_key_pem: str) -> VendorSigningKey:
    """Register the vendor's P-256 public key for OMS signature bundles (hallmark/oms.py): it
    becomes the current key, the one the next hashed version's metadata names (`signing_key`);
    the previous one is retired but stays listed (older versions name it). The same key again
    changes nothing. InvalidInput (`invalid_signing_key`) unless it is a P-256 key in PEM."""
    try:
        public = oms.load_public_key(public_key_pem)
    except oms.SigningKeyError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    digest = oms.key_sha256(public)
    with transaction.atomic():
        Vendor.objects.select_for_update().get(pk=vendor.pk)  # one registration at a time per vendor
        current = VendorSigningKey.objects.filter(vendor=vendor, retired_at__isnull=True).first()
        if current is not None and current.sha256 == digest:
            return current
        VendorSigningKey.objects.filter(vendor=vendor, retired_at__isnull=True).update(retired_at=timezone.now())
        # a retired key registered again becomes current again
        key, _ = VendorSigningKey.objects.update_or_create(
            vendor=vendor, sha256=digest,
            defaults={"public_key_pem": oms.public_key_pem(public), "algorithm": oms.KEY_ALGORITHM, "retired_at": None},
        )
    return key


def version_oms_bundle_check(*, version: Version, bundle: object) -> dict:
    """The vendor's OMS signature bundle for `version`, checked: signed by the key the version's
    metadata names (`signing_key`), over exactly the files of its manifest. Returns the bundle to
    store (its fields only, in model_signing's order). InvalidInput `invalid_signature_bundle`
    for a bundle that fails; Conflict `signing_key_not_bound` when the metadata names no key (the
    vendor registered it after this version was hashed: publish a new version) or an unknown one."""
    binding = (version.metadata or {}).get("signing_key")
    if not isinstance(binding, dict) or not binding.get("sha256"):
        raise Conflict(
            "this version's signed metadata names no OMS signing key (none was registered when it was hashed): "
            "publish without the bundle, or register your key (hallmark keys register) and publish a new version",
            code="signing_key_not_bound",
        )
    key = VendorSigningKey.objects.filter(vendor_id=version.model.vendor_id, sha256=binding["sha256"]).first()
    if key is None:
        raise Conflict(f"the key {binding['sha256']} this version names is not registered for its vendor", code="signing_key_not_bound")
    try:
        checked = oms.verify_bundle(bundle, key.public_key_pem)
    except oms.SignatureBundleError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    manifest = {r["name"]: r["digest"] for r in version.manifest["predicate"]["resources"]}
    if checked.digests != manifest:
        differ = sorted(set(checked.digests.items()) ^ set(manifest.items()))
        names = sorted({name for name, _ in differ})[:5]
        raise InvalidInput(
            f"the signature bundle signs other files than this version's manifest (they differ in: {', '.join(names)}); "
            "sign the statement of exactly the files uploaded",
            code="invalid_signature_bundle",
        )
    return json.loads(oms.bundle_bytes(bundle))  # verify_bundle checked its shape


def version_submit_signature(*, version: Version, signature: str, oms_bundle: object = None) -> Version:
    """Check the vendor's `PublishVersion` signature, allocate the version number and queue the
    relayed `publishVersionBySig`. A wrong signature changes nothing; a stale one (the contract
    expects another number now, or the deadline passed) gets a fresh message to sign.

    The number is the contract's `latestVersion + 1` at the latest block (past our own versions
    still on their way), so a version published elsewhere (the vendor's own wallet) moves it on.
    With the chain unreachable a signature for the database's next number is still queued (the
    outbox relays it when the chain is back; a number taken meanwhile ends it `chain_mismatch`),
    but a fresh message cannot be built: Unavailable (503 `chain_unavailable`), nothing saved.
    Past the vendor's daily relayer budget: TooManyRequests (429 `relayer_budget_exceeded`).

    `oms_bundle`: the vendor's OpenSSF Model Signing bundle (`model.sig`), checked before the
    signature is (`version_oms_bundle_check`); a bad one refuses the whole submission, nothing
    stored."""
    from ..tasks import version_anchor_task

    stale = False
    with transaction.atomic():
        model = Model.objects.select_for_update().select_related("vendor").get(pk=version.model_id)
        version = Version.objects.select_for_update().get(pk=version.pk)
        if version.status != Version.Status.AWAITING_SIGNATURE:
            raise Conflict(f"version is {version.get_status_display()}, not waiting for a signature", code="invalid_state")
        checked_bundle = version_oms_bundle_check(version=version, bundle=oms_bundle) if oms_bundle is not None else None
        message = version.typed_data["message"]
        try:
            expected, unreachable = _next_number(model), None
        except Unavailable as exc:
            expected, unreachable = _next_number(model, chain_required=False), exc
        if int(message["version"]) != expected or int(message["deadline"]) < time.time():
            if unreachable is not None:
                raise unreachable
            # kept (this block commits, the error is raised after it): the vendor fetches the
            # fresh message and signs that
            Version.objects.filter(pk=version.pk).update(typed_data=_publish_typed_data(version, number=expected))
            stale = True
        else:
            try:
                signer = eip712.require_signer(version.typed_data, signature, model.vendor.address)
            except InvalidSignature as exc:
                raise InvalidInput(str(exc), code="invalid_signature") from exc
            tx = sponsored_enqueue(
                sponsor=model.vendor.address,
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
            version.oms_bundle = checked_bundle
            version.publish_transaction = tx
            version.status = Version.Status.PENDING_CHAIN
            version.error_code = ""
            version.error_message = ""
            version.save()
            transaction.on_commit(lambda: version_anchor_task.delay(version.pk))
    if stale:
        raise Conflict(
            f"the message to sign is out of date (the registry now expects version {expected}, or it expired); "
            "fetch the new message (typed_data) and sign it",
            code="stale_signature_request",
        )
    return version


def version_anchor(*, version_id: int) -> Version:
    """Relay the version's publication and mark it live once confirmed.

    ChainUnavailable / TransactionPending propagate so the task retries later; the version
    stays `pending_chain` meanwhile. A final failure frees the number and records the error.
    """
    version = Version.objects.select_related("publish_transaction").get(pk=version_id)
    if version.status == Version.Status.LIVE and _unsettled(version.publish_transaction):
        # the indexer saw the publication first: settle the outbox row too (receipt, gas), so the
        # relayer's queue never keeps a row of a version that is live
        transaction_process(transaction_id=version.publish_transaction_id)
        return version
    if version.status != Version.Status.PENDING_CHAIN:
        return version
    try:
        tx = transaction_process(transaction_id=version.publish_transaction_id)
    except TransactionFailed as exc:
        code, message = exc.error_code, str(exc)
        if exc.error_code == "UnexpectedVersion":  # the number may have been taken elsewhere
            elsewhere = _published_elsewhere(version)
            if elsewhere:
                code, message = "chain_mismatch", elsewhere
        return version_mark_failed(version_id=version.pk, code=code, message=message)
    published = [e for e in transaction_events(tx) if e["event"] == "VersionPublished"]
    if published:
        args = published[0]["args"]
        if int(args["version"]) != version.number or bytes(args["rootDigest"]).hex() != version.root_digest:
            # whatever its state now: the chain holds something else under this number
            return version_mark_failed(
                version_id=version.pk,
                code="chain_mismatch",
                message=chain_mismatch_message(),
                expected_status=None,
            )
    return version_mark_live(version_id=version.pk, block=tx.block_number)


REVOKE_REASON_MAX_BYTES = 32  # the contract's `bytes32 reason`


def version_revoke(*, version: Version, reason: str) -> dict[str, str]:
    """The vendor revokes a live version: `{to, data, from}` of `revokeVersion(modelId, version,
    reason)` for their own wallet to send (only the model's vendor may revoke on chain, and the
    marketplace holds no vendor key). Nothing changes here until the indexer sees `VersionRevoked`
    (`version_mark_revoked`). Conflict (`invalid_state`) unless the version is live; InvalidInput
    (`invalid_input`) without a reason or past 32 bytes of UTF-8."""
    reason = (reason or "").strip()
    if not version.number or version.status != Version.Status.LIVE:
        raise Conflict("only a live version can be revoked", code="invalid_state")
    if not reason or len(reason.encode()) > REVOKE_REASON_MAX_BYTES:
        raise InvalidInput(f"give a short reason (at most {REVOKE_REASON_MAX_BYTES} bytes)", code="invalid_input")
    call = chain.call_data(
        "revokeVersion",
        chain.to_bytes32(version.model.chain_model_id),
        version.number,
        reason.encode().ljust(REVOKE_REASON_MAX_BYTES, b"\0"),
    )
    return {**call, "from": version.model.vendor.address}


def _unsettled(tx: ChainTransaction | None) -> bool:
    return tx is not None and tx.status not in (ChainTransaction.Status.CONFIRMED, ChainTransaction.Status.FAILED)


def _published_elsewhere(version: Version) -> str:
    """The chain_mismatch message when the chain holds another digest under this version's
    number; empty when it does not (or the chain cannot be read now)."""
    if not version.number:
        return ""
    model = version.model
    try:
        with chain.chain_errors():
            digest = bytes(
                chain.registry_contract().functions.versionDigest(chain.to_bytes32(model.chain_model_id), version.number).call()
            )
    except chain.ChainError:
        return ""
    if digest == bytes(32) or digest.hex() == version.root_digest:
        return ""
    return chain_mismatch_message(repo_id=model.repo_id, number=version.number, chain_digest=chain.hex0x(digest))


def _next_number(model: Model, *, chain_required: bool = True) -> int:
    """The version number the registry accepts next: `latestVersion(modelId) + 1` read at the
    latest block, or past our own versions still on their way to the chain.

    The chain decides, not the database: a version published elsewhere (the vendor's own
    wallet) moves it on. The chain unreachable: Unavailable (503 `chain_unavailable`), or with
    `chain_required=False` the database's best guess (signing re-checks it on chain)."""
    taken = model.versions.filter(
        status__in=[Version.Status.PENDING_CHAIN, Version.Status.LIVE], number__isnull=False
    ).aggregate(m=Max("number"))["m"] or 0
    try:
        with chain.chain_errors():
            latest = chain.registry_contract().functions.latestVersion(chain.to_bytes32(model.chain_model_id)).call(
                block_identifier="latest"
            )
    except chain.ChainUnavailable as exc:
        if not chain_required:
            return taken + 1
        raise Unavailable(
            f"the chain cannot be reached to read the next version number ({exc}); nothing was saved, try again shortly"
        ) from exc
    return max(int(latest), taken) + 1


def _publish_typed_data(version: Version, *, number: int | None = None) -> dict:
    """The `PublishVersion` message for the vendor to sign, for version `number` (default: the
    next one; built in the hashing worker, a chain down then leaves the database's guess, which
    version_submit_signature corrects)."""
    model = version.model
    contract_address = chain.registry_address()
    return eip712.typed_data_publish_version(
        chain_id=settings.CHAIN_ID,
        contract=contract_address,
        model_id=model.chain_model_id,
        version=number if number is not None else _next_number(model, chain_required=False),
        root_digest="0x" + version.root_digest,
        metadata_digest="0x" + version.metadata_digest,
        deadline=int(time.time()) + settings.SIGNATURE_TTL_SECONDS,
    )


def _version_metadata(model: Model, files: list[FileDigest], facts: dict[str, dict]) -> dict:
    weights = [facts[f.name] for f in files if facts[f.name]["format"] in ("gguf", "safetensors", "onnx")]
    card = next((f for f in files if f.name.lower() == "readme.md"), None)

    def first(key: str):
        return next((w.get(key) for w in weights if w.get(key) is not None), None)

    parameters = sum(int(w.get("parameter_count") or 0) for w in weights)
    if parameters > MAX_PARAMETERS:  # each file is checked; together they may not pass the bound either
        raise InspectionError(
            ", ".join(f.name for f in files if facts[f.name]["format"] != "sidecar"),
            f"together these files claim {parameters} parameters; at most {MAX_PARAMETERS:.0e} are accepted",
        )
    return {
        "files": [{"path": f.name, "size": f.size, "sha256": f.sha256} for f in files],
        "formats": sorted({w["format"] for w in weights}),
        "architecture": first("architecture"),
        "quantization": first("quantization"),
        "parameter_count": parameters or None,
        "context_length": first("context_length"),
        "license": {
            "price_wei": str(model.price_wei),
            "duration_seconds": int(model.license_duration),
            "perpetual": model.license_duration == 0,
        },
        "model_card_sha256": card.sha256 if card else None,
        **_signing_key_entry(model),
    }


def _signing_key_entry(model: Model) -> dict:
    """`{"signing_key": {algorithm, sha256}}` when the vendor holds a current OMS key, else
    nothing (a version without one keeps the metadata it always had)."""
    key = VendorSigningKey.objects.filter(vendor_id=model.vendor_id, retired_at__isnull=True).first()
    return {"signing_key": {"algorithm": key.algorithm, "sha256": key.sha256}} if key is not None else {}
