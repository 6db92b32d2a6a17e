"""`hallmark publish DIR --model vendor/name`: upload (tus, resumable), hashing each file in the
same pass (each byte read once), declare the digests at finalize, let the server hash and
inspect, check the message to sign against the local hashes, sign, wait for live.

A re-run with the same files (names, sizes, modification times) continues the same draft: its
id and the tus upload URLs are kept in the config folder until the version is live (or rejected).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from eth_account.signers.local import LocalAccount

from .. import config, oms
from ..api import Api, ApiError
from ..console import CommandError, say, usage, warn
from ..eip712 import bytes32_hex, compute_model_id, sign_typed_data
from ..errors import ProvenanceError
from ..keys import load_account
from ..manifest import HASH_BLOCK_SIZE, FileDigest, canonical_json, list_directory, metadata_digest, root_digest
from ..segments import MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SegmentHasher, metadata_entry, segment_document
from ..upload import FileToUpload, UploadedFile, upload_files
from .common import STATE_FOLDERS, api, repo_id
from .keys import signing_key

POLL_SECONDS = 0.5
WAITING = {"hashing", "pending_chain"}


def run(args: argparse.Namespace) -> int:
    vendor_slug, slug = repo_id(args.model)
    folder = Path(args.directory)
    if not folder.is_dir():
        raise usage(f"{folder} is not a directory")
    client = api(args, token_required=True)
    account = load_account(args.keystore)
    model = _model(client, vendor_slug, slug, account)
    oms_key = signing_key(getattr(args, "signing_key", None))

    try:
        listing = sorted(list_directory(folder, exclude=STATE_FOLDERS))
    except ProvenanceError as exc:
        raise CommandError(f"{exc} [{exc.code}]") from None
    if not listing:
        raise CommandError(f"{folder} has no files to publish")

    base = f"/api/v1/vendor/models/{slug}/versions"
    state = config.UploadState()
    draft_key = _draft_key(client.endpoint, args.model, listing)
    version = _open_draft(client, base, state, draft_key, args.draft)
    upload_prefix = f"{client.endpoint}|{args.model}|{version['id']}|"
    deadline = time.monotonic() + args.timeout

    sent = _upload(client, base, version, listing, state, upload_prefix, getattr(args, "upload_workers", 2))
    files = sorted(s.digest() for s in sent)
    root = root_digest(files)
    for f in files:
        say(f"  {f.sha256}  {f.size:>12}  {f.name}")
    say(f"root digest: 0x{root}")
    if version["status"] == "draft":
        say(f"finalizing draft #{version['id']}: the server hashes and inspects the files …")
        declared = [{"path": f.name, "sha256": f.sha256, "size": f.size} for f in files]
        version = client.post(f"{base}/{version['id']}/finalize", json={"files": declared})
    version = _wait(client, base, version, {"hashing"}, deadline)

    signed = False
    for _attempt in range(3):
        if version["status"] != "awaiting_signature":
            break
        _check_before_signing(version, sent, root, model, account, slug, folder)
        signature = sign_typed_data(version["typed_data"], account.key)
        body: dict = {"signature": signature}
        bundle = _oms_bundle(version, files, oms_key, args.model)
        if bundle is not None:
            body["oms_bundle"] = bundle
        try:
            version = client.post(f"{base}/{version['id']}/signature", json=body)
            signed = True
        except ApiError as exc:
            if exc.code not in ("stale_signature_request", "signature_expired"):
                raise
            say("the message to sign changed on the server (another version, or it expired): checking the new one")
            version = client.get(f"{base}/{version['id']}")
    if signed:
        say(f"signed PublishVersion for {args.model} version {version.get('number')} with {account.address}")

    if version["status"] in ("rejected", "failed"):
        state.forget(draft_key, upload_prefix)
        error = version.get("error") or {}
        raise CommandError(f"draft #{version['id']} was {version['status']}: {error.get('message')} [{error.get('code')}]")
    if args.no_wait and version["status"] == "pending_chain":
        say(f"version {version['number']} is on its way to the chain; `hallmark publish` again (same files) to follow it")
        return 0
    version = _wait(client, base, version, WAITING, deadline)
    if version["status"] != "live":
        state.forget(draft_key, upload_prefix)
        error = version.get("error") or {}
        raise CommandError(f"draft #{version['id']} is {version['status']}: {error.get('message')} [{error.get('code')}]")
    state.forget(draft_key, upload_prefix)
    say(f"live: {args.model} v{version['number']}")
    say(f"  root digest  0x{version['root_digest']}")
    say(f"  transaction  {version['transaction_hash']}")
    say(f"  block        {version['published_block']}")
    return 0


def _oms_bundle(version: dict, files: list[FileDigest], found: tuple[Path, oms.ec.EllipticCurvePrivateKey] | None, repo: str) -> dict | None:
    """The OMS signature bundle (model.sig) of the files hashed here, signed with the P-256 key,
    when the version's signed metadata names that key; None (with a word why) otherwise."""
    bound = (version.get("metadata") or {}).get("signing_key")
    bound_sha = bound.get("sha256") if isinstance(bound, dict) else None
    if found is None:
        if bound_sha:
            warn(f"the version names the OMS key {bound_sha[:16]}… but no signing key is here (--signing-key): published without model.sig")
        return None
    path, key = found
    mine = oms.key_sha256(key)
    if not bound_sha:
        warn(f"your OMS key {mine[:16]}… ({path}) is not registered with your vendor: run `hallmark keys register`; "
             "published without model.sig")
        return None
    if bound_sha != mine:
        raise CommandError(
            f"refusing to sign draft #{version['id']}: its metadata names the OMS key {bound_sha}, but {path} is {mine}; "
            "pass the registered key with --signing-key"
        )
    say(f"signing the OMS statement (model.sig) with the P-256 key {mine[:16]}… ({path})")
    return oms.sign_statement(key, oms.signing_statement(repo, files))


def _model(client: Api, vendor_slug: str, slug: str, account: LocalAccount) -> dict:
    try:
        model = client.get(f"/api/v1/vendor/models/{slug}")
    except ApiError as exc:
        if exc.code == "model_not_found":
            raise CommandError(
                f"{vendor_slug}/{slug} is not one of your models: register it first in the web portal "
                "or with POST /api/v1/vendor/models, then publish its versions here"
            ) from None
        raise
    if model["vendor"] != vendor_slug:
        raise CommandError(f"{vendor_slug}/{slug} does not exist for your vendor account ({model['vendor']}/{slug} does)")
    if model["status"] != "live":
        raise CommandError(f"{model['repo_id']} is not registered on chain yet (status {model['status']}): finish that in the portal first")
    if model["vendor_address"].lower() != account.address.lower():
        raise CommandError(f"your key is {account.address}, but {model['repo_id']} is signed by the vendor wallet {model['vendor_address']}")
    return model


def _draft_key(endpoint: str, repo: str, listing: list[tuple[str, Path]]) -> str:
    """The same files (names, sizes, modification times) continue the same draft; a file
    changed since the last run goes to a new one (its digest is only known once it is read)."""
    stats = [(name, os.stat(path)) for name, path in listing]
    described = canonical_json([[name, st.st_size, st.st_mtime_ns] for name, st in stats])
    return f"{endpoint}|{repo}|{hashlib.sha256(described).hexdigest()}"


def _open_draft(client: Api, base: str, state: config.UploadState, key: str, draft_id: int | None) -> dict:
    """The given draft, else the one an earlier run left for the same files, else a new one.
    The local digests are declared at finalize, once the upload has computed them (the server
    rejects the version if any stored file differs)."""
    if draft_id is not None:
        return client.get(f"{base}/{draft_id}")
    earlier = state.draft(key)
    if earlier is not None:
        try:
            version = client.get(f"{base}/{earlier}")
        except ApiError as exc:
            if exc.code != "version_not_found":
                raise
        else:
            if version["status"] not in ("rejected", "failed"):
                say(f"resuming draft #{version['id']} ({version['status']})")
                return version
    version = client.post(base, json={})
    state.set_draft(key, version["id"])
    say(f"draft #{version['id']} opened")
    return version


def _upload(
    client: Api, base: str, version: dict, listing: list[tuple[str, Path]], state: config.UploadState, prefix: str, workers: int
) -> list[UploadedFile]:
    """Upload the files of a draft, `workers` at a time, each read once and hashed as it is sent;
    the files already on the server (or all of them, past the draft) are only hashed here."""
    assert client.token is not None  # api(args, token_required=True) refused to start without one
    draft = version["status"] == "draft"
    done = {f["path"] for f in version["files"]} if draft else {name for name, _ in listing}
    lock = threading.Lock()

    def remembering(key: str) -> Callable[[str | None], None]:
        def remember(url: str | None) -> None:
            with lock:  # several uploads write the one state file
                state.set_upload_url(key, url)
        return remember

    items = []
    for name, path in listing:
        key = f"{prefix}{name}|{os.stat(path).st_size}"
        if name in done and draft:
            say(f"{name}: already uploaded (hashing it here)")
        items.append(FileToUpload(path, name, state.upload_url(key), remembering(key), done=name in done))
    if draft:
        say(f"uploading {len([i for i in items if not i.done])} file(s) to draft #{version['id']} (tus, resumable, "
            f"{max(1, workers)} at a time), hashing each as it is sent …")
    else:
        say(f"hashing {len(items)} file(s) here to check draft #{version['id']} against them …")
    creation = client.url(f"{base}/{version['id']}/uploads")
    return upload_files(creation, client.token, items, workers=workers)


def _wait(client: Api, base: str, version: dict, waiting: set[str], deadline: float) -> dict:
    shown = None
    while version["status"] in waiting:
        if version["status"] != shown:
            shown = version["status"]
            say(f"draft #{version['id']}: {shown} …")
        if time.monotonic() > deadline:
            raise CommandError(f"gave up waiting (--timeout): draft #{version['id']} is still {version['status']}; run again to resume")
        time.sleep(POLL_SECONDS)
        version = client.get_retrying(f"{base}/{version['id']}")
    return version


def _check_before_signing(
    version: dict, sent: list[UploadedFile], root: str, model: dict, account: LocalAccount, slug: str, folder: Path
) -> None:
    """Refuse to sign anything but exactly the files hashed here, for this model."""
    files = [s.digest() for s in sent]
    typed = version.get("typed_data") or {}
    message = typed.get("message") or {}

    def refuse(why: str) -> CommandError:
        return CommandError(f"refusing to sign draft #{version['id']}: {why}")

    if typed.get("primaryType") != "PublishVersion":
        raise refuse(f"the server asks to sign {typed.get('primaryType')!r}, not PublishVersion")
    try:
        signed_root = bytes32_hex(message["rootDigest"])
        signed_model = bytes32_hex(message["modelId"])
        signed_metadata = bytes32_hex(message["metadataDigest"])
    except (KeyError, ValueError, TypeError) as exc:
        raise refuse(f"the message to sign is malformed ({exc})") from None
    if signed_root != "0x" + root:
        raise refuse(f"its root digest {signed_root} is not the one computed here (0x{root}): the files on the server are not yours")
    expected_model = compute_model_id(account.address, slug)
    if signed_model != expected_model:
        raise refuse(f"its model id {signed_model} is not {expected_model} ({account.address}, {slug!r})")
    metadata = version.get("metadata") or {}
    if "0x" + metadata_digest(metadata) != signed_metadata:
        raise refuse("the metadata digest to sign does not match the metadata the server shows")
    listed = sorted((f.get("path"), f.get("sha256"), f.get("size")) for f in metadata.get("files", []))
    if listed != sorted((f.name, f.sha256, f.size) for f in files):
        raise refuse("the signed file list (names, digests, sizes) differs from the files here")
    committed = metadata.get("segments")
    if committed is not None and metadata_entry(_segment_document(folder, sent, committed, refuse)) != committed:
        raise refuse("the signed segment digests (metadata `segments`) are not those of the files here")


def _segment_document(folder: Path, sent: list[UploadedFile], committed: object, refuse: Callable[[str], CommandError]) -> dict:
    """The segment document of the files here, in the segment size the metadata names: the
    signature commits to it, so it is computed here rather than taken from the server. Its
    segments are the upload's chunks when the sizes agree (the default); otherwise the files are
    read a second time, once, before signing (a file changed since the first is refused)."""
    size = committed.get("size") if isinstance(committed, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise refuse(f"the metadata's `segments` entry is malformed (segment size {str(size)[:40]})")
    if all(s.chunk_size == size for s in sent):
        return segment_document({s.name: list(s.chunk_digests) for s in sent}, size)
    files = [s.digest() for s in sent]
    say(f"hashing {folder} in segments of {size // 1024**2} MiB (the signed metadata commits to them) …")
    digests: dict[str, list[str]] = {}
    buffer = bytearray(HASH_BLOCK_SIZE)
    view = memoryview(buffer)
    for f in files:
        hasher = SegmentHasher(segment_size=size)
        with open(folder / f.name, "rb", buffering=0) as stream:
            while n := stream.readinto(buffer):
                hasher.update(view[:n])
        whole, digests[f.name] = hasher.finish()
        if whole != f.sha256:
            raise refuse(f"{f.name} changed since it was hashed here")
    return segment_document(digests, size)
