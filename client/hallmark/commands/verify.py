"""`hallmark verify DIR MODEL@VERSION --rpc URL --registry ADDRESS`: check local files against
the chain alone. MODEL is the 0x model id, `<0x vendor address>/<slug>`, or (with a marketplace
endpoint) `vendor/name`, resolved to its model id and then checked on chain all the same. With a
marketplace endpoint, the RPC URL and registry not given are the ones it reports.

The exit code is the outcome (hallmark.verify.Outcome): 0 verified, 3 tampered, 4 files differ,
5 revoked, 6 unknown model or version, 7 chain unreachable, 8 signer mismatch, 11 the OMS
signature beside the files (`model.sig`) invalid; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from eth_utils import to_checksum_address

from .. import config, oms
from ..api import Api, ApiError
from ..console import CommandError, say, usage, warn
from ..eip712 import compute_model_id
from ..manifest import SIGNATURE_FILE, FileDigest, metadata_digest
from ..verify import Outcome, Verification, verify_directory
from .common import REPO_ID

MODEL_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
VERSION = re.compile(r"^[vV]?([0-9]{1,9})$")
SAVED = Path(".hallmark") / "version.json"


def run(args: argparse.Namespace) -> int:
    folder = Path(args.directory)
    if not folder.is_dir():
        raise usage(f"{folder} is not a directory")
    model_text, at, version_text = args.spec.rpartition("@")
    match = VERSION.match(version_text)
    if not at or not model_text or not match:
        raise usage(f"{args.spec!r}: write MODEL@VERSION, e.g. 0x<model id>@3, 0x<vendor>/<slug>@v3 or vendor/name@v3")
    try:
        model_id = resolve_model(model_text, args)
    except ApiError as exc:
        if exc.status == 404:
            return report(_unknown(model_text, int(match.group(1)), f"the marketplace has no model {model_text}: {exc.message}"), args.json)
        raise
    rpc_url, registry = chain_sources(args)
    repo = model_text if REPO_ID.match(model_text) and not ADDRESS.match(model_text.partition("/")[0]) else None
    return check(
        folder, model_id, int(match.group(1)), rpc_url, registry, as_json=args.json,
        public_key=args.public_key, endpoint=config.default_endpoint(args.endpoint), repo=repo,
    )


def chain_options(args: argparse.Namespace, registry_fallback: str | None = None) -> tuple[str, str]:
    rpc_url = args.rpc or os.environ.get("HALLMARK_RPC_URL")
    registry = args.registry or os.environ.get("HALLMARK_REGISTRY_ADDRESS") or registry_fallback
    if not rpc_url:
        raise usage("verification reads the chain: pass --rpc URL or set HALLMARK_RPC_URL")
    if not registry:
        raise usage("which ModelRegistry? pass --registry 0x… or set HALLMARK_REGISTRY_ADDRESS")
    if not ADDRESS.match(registry):
        raise usage(f"{registry!r} is not a contract address (0x and 40 hex characters)")
    return rpc_url, to_checksum_address(registry)


def chain_sources(args: argparse.Namespace) -> tuple[str, str]:
    """The RPC URL and registry to verify against: `--rpc`/`--registry`, else $HALLMARK_RPC_URL/
    $HALLMARK_REGISTRY_ADDRESS, else what the marketplace reports (`GET /api/v1/chain`) when there
    is one (--endpoint, $HALLMARK_ENDPOINT or the last login's), as `pull` does. Where each came
    from is said on stderr: a registry the marketplace named is only as good as the marketplace."""
    rpc_url, rpc_from = _given(args.rpc, "--rpc", "HALLMARK_RPC_URL")
    registry, registry_from = _given(args.registry, "--registry", "HALLMARK_REGISTRY_ADDRESS")
    endpoint = config.default_endpoint(args.endpoint) if not (rpc_url and registry) else None
    if endpoint:
        try:
            info = Api(endpoint).get("/api/v1/chain")
        except ApiError as exc:
            raise CommandError(f"the marketplace at {endpoint} did not say which chain it uses ({exc}): pass --rpc and --registry") from None
        info = info if isinstance(info, dict) else {}
        reported = f"the marketplace at {endpoint}"
        if not rpc_url and isinstance(info.get("rpc_url"), str) and info["rpc_url"]:
            rpc_url, rpc_from = info["rpc_url"], reported
        if not registry and isinstance(info.get("registry_address"), str):
            registry, registry_from = info["registry_address"], reported
    rpc_url, registry = chain_options(argparse.Namespace(rpc=rpc_url, registry=registry))
    pin = "; pin your own with --rpc/--registry or HALLMARK_RPC_URL/HALLMARK_REGISTRY_ADDRESS" if endpoint else ""
    print(f"chain: {rpc_url} ({rpc_from}), registry {registry} ({registry_from}){pin}", file=sys.stderr, flush=True)
    return rpc_url, registry


def _given(flag: str | None, option: str, variable: str) -> tuple[str | None, str]:
    if flag:
        return flag, option
    if os.environ.get(variable):
        return os.environ[variable], f"${variable}"
    return None, ""


def resolve_model(text: str, args: argparse.Namespace) -> str:
    if MODEL_ID.match(text):
        return text.lower()
    vendor, _, slug = text.partition("/")
    if ADDRESS.match(vendor) and slug:
        return compute_model_id(vendor, slug)
    if REPO_ID.match(text):
        endpoint = config.default_endpoint(args.endpoint)
        if not endpoint:
            raise usage(f"{text!r} is a marketplace name: pass --endpoint URL to look it up, or give the 0x model id or <0x vendor>/<slug>")
        model_id = Api(endpoint).get(f"/api/v1/models/{text}")["model_id"]
        if not model_id or not MODEL_ID.match(model_id):
            raise CommandError(f"the marketplace gave no model id for {text}")
        return model_id.lower()
    raise usage(f"{text!r} is not a model: give the 0x model id, <0x vendor address>/<slug>, or vendor/name with --endpoint")


def saved_version(folder: Path, model_id: str, version: int) -> dict:
    """What `hallmark pull` saved beside the files, if it is about this model and version. Its
    metadata is trusted only when its digest is the one signed on chain (verify_directory checks)."""
    try:
        saved = json.loads((folder / SAVED).read_text())
    except (OSError, ValueError):
        return {}
    if str(saved.get("model_id", "")).lower() != model_id.lower() or saved.get("version") != version:
        return {}
    return saved


def check(
    folder: Path, model_id: str, version: int, rpc_url: str, registry: str, *, as_json: bool,
    hashed: Sequence[FileDigest] | None = None, public_key: str | None = None, endpoint: str | None = None,
    repo: str | None = None,
) -> int:
    """Verify `folder` against the chain; `hashed`: its files' digests when the caller computed
    them while writing them (see `verify_directory`). Once the files verify, an OMS signature
    beside them (`model.sig`) is checked too, with the key the version's signed metadata names
    (`public_key`: a PEM file; else the vendor's keys the marketplace at `endpoint` lists for
    `repo`): an invalid one is SIGNATURE_INVALID (exit 11)."""
    saved = saved_version(folder, model_id, version)
    # which files count (tool state left out, the HF cache's links) is verify_directory's rule
    result = verify_directory(
        folder, rpc_url=rpc_url, registry_address=registry, model_id=model_id, version=version,
        manifest=saved.get("manifest"), metadata=saved.get("metadata"), hashed=hashed,
    )
    signature = None
    if result.ok and (folder / SIGNATURE_FILE).is_file():
        signature = _folder_signature(folder, result, saved, public_key, endpoint, repo or saved.get("repo_id"))
        if signature.ok is False:
            result.outcome = Outcome.SIGNATURE_INVALID
            result.message = f"the files match version {version} on chain, but {signature.message}"
    return report(result, as_json, signature)


def _folder_signature(
    folder: Path, result: Verification, saved: dict, public_key: str | None, endpoint: str | None, repo: str | None
) -> oms.FolderSignature:
    """Check `model.sig`: the metadata (saved by `pull`, else the marketplace's) counts only when its
    digest is the chain's; the key is the one it names, from --public-key or the vendor's list."""
    metadata = saved.get("metadata")
    vendor_keys: list[str] = []
    if endpoint and repo:
        try:
            if metadata is None:
                detail = Api(endpoint).get(f"/api/v1/models/{repo}")
                entries = [v for v in detail.get("versions", []) if isinstance(v, dict) and v.get("number") == result.version]
                metadata = entries[0].get("metadata") if entries else None
            if public_key is None:
                listed = Api(endpoint).get(f"/api/v1/vendors/{repo.partition('/')[0]}/keys")
                vendor_keys = [k["public_key_pem"] for k in listed if isinstance(k, dict) and isinstance(k.get("public_key_pem"), str)]
        except ApiError as exc:
            warn(f"the marketplace at {endpoint} did not answer for {repo}'s signing keys ({exc})")
    keys = [Path(public_key).read_text()] if public_key else vendor_keys
    signed = isinstance(metadata, dict) and result.metadata_digest is not None and metadata_digest(metadata) == result.metadata_digest
    return oms.check_signature_file(folder / SIGNATURE_FILE, metadata=metadata, metadata_signed=signed, public_keys=keys)


def _unknown(model: str, version: int, message: str) -> Verification:
    return Verification(Outcome.UNKNOWN_VERSION, message, model, version)


def report(result: Verification, as_json: bool, signature: oms.FolderSignature | None = None) -> int:
    if as_json:
        answer = result.as_dict()
        if signature is not None:
            answer["oms_signature"] = signature.as_dict()
        say(json.dumps(answer, indent=2))
        return int(result.outcome)
    name = result.outcome.name.lower()
    say(result.message if result.message.startswith(f"{name}:") else f"{name}: {result.message}")
    rows = [
        ("model", result.model_id), ("version", result.version), ("vendor", result.vendor), ("signer", result.signer),
        ("local root", result.local_root and "0x" + result.local_root),
        ("chain root", result.chain_root and "0x" + result.chain_root),
        ("tampered", ", ".join(result.tampered)), ("missing", ", ".join(result.missing)), ("extra", ", ".join(result.extra)),
        ("model.sig", signature.message if signature is not None else None),
    ]
    for label, value in rows:
        if value not in (None, ""):
            say(f"  {label:<11} {value}")
    return int(result.outcome)
