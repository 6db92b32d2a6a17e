"""Verification on the server: the client's chain check, bound to this deployment's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from hallmark.verify import Verification, verify_directory

from . import chain
from .chain import chain_errors


def verify_local_files(
    *, directory: str | Path, model_id: str, version: int, manifest: dict | None = None, metadata: dict | None = None
) -> Verification:
    """Check local files against the chain configured here (CHAIN_RPC_URL, the registry).

    Which files count is `verify_directory`'s rule, the CLI's too: a `local_dir` download's
    `.cache/huggingface/` is left out, a huggingface_hub cache's `snapshots/<commit>/` folder is
    read through its links into `blobs/`, and any other link ends in FILES_DIFFER.
    """
    record = chain.read_deployment() or {}
    return verify_directory(
        directory,
        rpc_url=settings.CHAIN_RPC_URL,
        registry_address=chain.registry_address(),
        model_id=model_id,
        version=version,
        manifest=manifest,
        metadata=metadata,
        from_block=int(settings.REGISTRY_DEPLOY_BLOCK or record.get("block_number", 0)),
        timeout=settings.CHAIN_RPC_TIMEOUT,
    )


def versions_on_chain(candidates: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """For each (model id, version, root digest hex): does the chain hold that digest, revoked?"""
    contract = chain.registry_contract()
    answers = []
    with chain_errors():
        for model_id, version, digest in candidates:
            raw = chain.to_bytes32(model_id)
            on_chain = bytes(contract.functions.versionDigest(raw, int(version)).call()).hex()
            answers.append(
                {
                    "chain_root_digest": on_chain if int(on_chain, 16) else None,
                    "matches_chain": on_chain == digest,
                    "revoked": contract.functions.isRevoked(raw, int(version)).call(),
                }
            )
    return answers
