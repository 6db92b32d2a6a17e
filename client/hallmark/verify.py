"""Verify local model files against the chain, trusting nobody but the chain itself.

Recompute the OMS root digest of a directory, read `versionDigest` and `isRevoked` from the
ModelRegistry, and check that the `VersionPublished` signer is the model's vendor. With a
manifest (from the marketplace or saved beside the files) whose own root digest equals the one
on chain, a mismatch is narrowed down to the files that changed, are missing or are extra.

Each outcome has a stable exit code, so an edge device can refuse to load a model that fails.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ProvenanceError
from .manifest import TOOL_STATE_FOLDERS, FileDigest, hash_directory, metadata_digest, root_digest
from .onchain import hex0x, read_model, to_bytes32

if TYPE_CHECKING:
    from web3 import Web3

ZERO32 = b"\x00" * 32


class Outcome(enum.IntEnum):
    """Exit codes of `hallmark verify` and `manage.py verify_model` (2 is a usage error)."""

    VERIFIED = 0
    TAMPERED = 3
    FILES_DIFFER = 4
    REVOKED = 5
    UNKNOWN_VERSION = 6
    CHAIN_UNAVAILABLE = 7
    SIGNER_MISMATCH = 8
    SIGNATURE_INVALID = 11  # the files match the chain, but the OMS signature beside them (model.sig) does not


@dataclass
class Verification:
    outcome: Outcome
    message: str
    model_id: str
    version: int
    local_root: str | None = None
    chain_root: str | None = None
    vendor: str | None = None
    signer: str | None = None
    tampered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    metadata_digest: str | None = None  # the one signed on chain (VersionPublished), hex

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.VERIFIED

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.name.lower(),
            "exit_code": int(self.outcome),
            "message": self.message,
            "model_id": self.model_id,
            "version": self.version,
            "local_root_digest": self.local_root,
            "chain_root_digest": self.chain_root,
            "vendor": self.vendor,
            "signer": self.signer,
            "tampered": self.tampered,
            "missing": self.missing,
            "extra": self.extra,
        }


def registry_abi() -> list[dict[str, Any]]:
    return json.loads(resources.files("hallmark").joinpath("abi/ModelRegistry.abi.json").read_text())


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    from web3 import Web3

    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))


def _model_id_bytes(model_id: str) -> bytes:
    try:
        return to_bytes32(model_id)
    except ValueError as exc:
        raise ValueError("a model id is 32 bytes of hex") from exc


def verify_directory(
    directory: str | Path,
    *,
    rpc_url: str,
    registry_address: str,
    model_id: str,
    version: int,
    manifest: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    from_block: int = 0,
    timeout: float = 10.0,
    exclude: Iterable[str] = TOOL_STATE_FOLDERS,
    hashed: Sequence[FileDigest] | None = None,
) -> Verification:
    """Check the files in `directory` are exactly version `version` of `model_id` as signed on chain.

    The root digest covers the files' bytes, not their names. Pass the version `metadata`: when
    its digest equals the `metadataDigest` signed on chain, its file list (names, sizes, digests)
    is authenticated too, so a renamed file is caught and a mismatch is explained file by file.
    A `manifest` alone authenticates digests (through the root) but not names.

    Which files are the model (one rule, for the CLI and the server's `manage.py verify_model`
    alike): every regular file under `directory` but the OMS ignore paths and
    `exclude` (by default the tool state folders `.hallmark/` and huggingface_hub's
    `.cache/huggingface/` of a `local_dir` download). When `directory` is a huggingface_hub cache
    snapshot (`.../models--<owner>--<name>/snapshots/<commit>/`), its relative links into that
    repository's `blobs/` are followed; any other symbolic link (absolute, leading elsewhere, to a
    folder, to another link, dangling or looping) ends in FILES_DIFFER with an `unsafe_path`
    message, as an unsafe file name does: nothing is raised for what the folder holds.
    `hashed`: the digests of exactly the files in `directory`, when the caller computed them as it
    wrote them (`hallmark pull` hashes every byte as it arrives): the folder is not read again.
    """
    import requests
    from web3.exceptions import Web3Exception

    if not Path(directory).is_dir():
        raise FileNotFoundError(2, "no such directory", str(directory))
    raw_id = _model_id_bytes(model_id)
    model_hex = hex0x(raw_id)
    result = Verification(Outcome.VERIFIED, "", model_hex, int(version))
    try:
        local = list(hashed) if hashed is not None else hash_directory(directory, exclude=exclude, follow_hf_cache_links=True)
    except ProvenanceError as exc:  # a symbolic link or an unsafe file name in the folder
        result.outcome = Outcome.FILES_DIFFER
        result.message = f"{exc} [{exc.code}]"
        return result
    except OSError as exc:  # a file unreadable, or changed into a link while we looked
        result.outcome = Outcome.FILES_DIFFER
        result.message = f"could not read {exc.filename or directory}: {exc.strerror or exc}; nothing was verified [unreadable_file]"
        return result
    result.local_root = root_digest(local) if local else None

    try:
        w3 = connect(rpc_url, timeout)
        registry = w3.eth.contract(address=w3.to_checksum_address(registry_address), abi=registry_abi())
        model = read_model(registry, raw_id)
        chain_root = bytes(registry.functions.versionDigest(raw_id, int(version)).call())
        revoked = registry.functions.isRevoked(raw_id, int(version)).call()
        signer = signed_metadata = None
        if chain_root != ZERO32:
            logs = registry.events.VersionPublished().get_logs(
                from_block=from_block, argument_filters={"modelId": raw_id, "version": int(version)}
            )
            if logs:
                signer = logs[-1]["args"]["signer"]
                signed_metadata = bytes(logs[-1]["args"]["metadataDigest"]).hex()
    except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
        result.outcome = Outcome.CHAIN_UNAVAILABLE
        result.message = f"the chain at {rpc_url} does not answer ({exc.__class__.__name__}); nothing was verified"
        return result
    except Web3Exception as exc:
        result.outcome = Outcome.CHAIN_UNAVAILABLE
        result.message = f"the chain at {rpc_url} could not be read: {exc}"
        return result

    result.vendor = model.vendor if model.exists else None
    if result.vendor is None or chain_root == ZERO32:
        result.outcome = Outcome.UNKNOWN_VERSION
        what = "model" if result.vendor is None else f"version {version} of the model"
        result.message = f"the registry at {registry_address} has no {what} {model_hex}"
        return result
    result.chain_root = chain_root.hex()
    result.signer = signer
    result.metadata_digest = signed_metadata

    expected, names_signed = _expected_files(result, manifest, metadata, signed_metadata)
    if result.local_root != result.chain_root:
        _explain_mismatch(result, local, expected)
        return result
    if names_signed and expected is not None and {f.name for f in local} != {f.name for f in expected}:
        _explain_mismatch(result, local, expected)
        return result
    if signer is None or signer.lower() != model.vendor.lower():
        result.outcome = Outcome.SIGNER_MISMATCH
        result.message = f"version {version} was published by {signer}, not by the model's vendor {model.vendor}"
        return result
    if revoked:
        result.outcome = Outcome.REVOKED
        result.message = f"the files match version {version}, but its vendor revoked it: do not use it"
        return result
    result.message = f"verified: {len(local)} file(s) match version {version}, signed by the vendor {model.vendor}"
    return result


def _expected_files(
    result: Verification, manifest: dict | None, metadata: dict | None, signed_metadata: str | None
) -> tuple[list[FileDigest] | None, bool]:
    """The signed file list: from metadata matching the on-chain metadataDigest (names and
    digests authenticated), else from a manifest whose root is the chain's (digests only)."""
    if metadata is not None and signed_metadata and metadata_digest(metadata) == signed_metadata:
        try:
            return [FileDigest(f["path"], f["sha256"], int(f.get("size", 0))) for f in metadata["files"]], True
        except (KeyError, TypeError):
            pass
    files = _manifest_files(manifest) if manifest else None
    if files and root_digest(files) == result.chain_root:
        return files, False
    return None, False


def _explain_mismatch(result: Verification, local: list[FileDigest], expected: list[FileDigest] | None) -> None:
    if expected is None:
        result.outcome = Outcome.TAMPERED
        result.message = (
            f"the files' root digest {result.local_root} is not the one on chain ({result.chain_root}): "
            "they are not what the vendor signed"
        )
        return
    mine = {f.name: f.sha256 for f in local}
    theirs = {f.name: f.sha256 for f in expected}
    result.missing = sorted(set(theirs) - set(mine))
    result.extra = sorted(set(mine) - set(theirs))
    result.tampered = sorted(n for n in set(mine) & set(theirs) if mine[n] != theirs[n])
    if result.tampered:
        result.outcome = Outcome.TAMPERED
        result.message = f"changed since the vendor signed them: {', '.join(result.tampered)}"
    else:
        result.outcome = Outcome.FILES_DIFFER
        parts = []
        if result.missing:
            parts.append("missing: " + ", ".join(result.missing))
        if result.extra:
            parts.append("not in the signed version: " + ", ".join(result.extra))
        result.message = "; ".join(parts)


def _manifest_files(manifest: dict[str, Any]) -> list[FileDigest] | None:
    try:
        resources_ = manifest["predicate"]["resources"]
        return [FileDigest(r["name"], r["digest"], 0) for r in resources_ if r.get("algorithm", "sha256") == "sha256"]
    except (KeyError, TypeError):
        return None
