"""OpenSSF Model Signing (OMS) signatures: the Sigstore bundle `model_signing sign key` writes.

A vendor may hold a NIST P-256 key beside their Ethereum wallet (the OMS key signer takes P-256,
P-384 and P-521 keys, not secp256k1). With it the version's OMS statement (hallmark/manifest.py)
is signed in a DSSE envelope and wrapped in a Sigstore bundle v0.3 without a transparency log
entry, the file the stock verifier checks::

    model_signing verify key --signature model.sig --public_key vendor.pem DIR

The version's signed metadata names the key (`signing_key`: the SHA-256 of its DER
SubjectPublicKeyInfo, `key_binding`), so the vendor's EIP-712 signature, and the chain's
`metadataDigest`, bind this key to the version.

Example (sign, then check, a statement)::

    key = generate_key()
    bundle = sign_statement(key, signing_statement("acme/tiny", files))
    checked = verify_bundle(bundle, public_key_pem(key))
    assert checked.digests == {f.name: f.sha256 for f in files}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import ProvenanceError
from .manifest import PREDICATE_TYPE, SIGNATURE_FILE, STATEMENT_TYPE, TOOL_STATE_FOLDERS, FileDigest, build_statement

# model_signing 1.1.1, _signing/sign_sigstore_pb.py `_BUNDLE_MEDIA_TYPE`
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_ALGORITHM = "ecdsa-p256-sha256"
MAX_PUBLIC_KEY_PEM_BYTES = 1024  # a P-256 SubjectPublicKeyInfo in PEM is 178 bytes
# a bundle is its statement (one resource per file, ~150 bytes each, base64) and one signature;
# bounded before parsing: 4 MiB holds ~20,000 files
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
HEX = frozenset("0123456789abcdef")


class SignatureBundleError(ProvenanceError):
    """An OMS signature bundle that is malformed, not signed by the key, or not about these files."""

    code = "invalid_signature_bundle"


class SigningKeyError(ProvenanceError):
    """A signing key that is not a NIST P-256 key in PEM, or is too large to be one."""

    code = "invalid_signing_key"


@dataclass(frozen=True)
class CheckedBundle:
    """What a bundle signs, once its signature verified: subject name and digest, {path: sha256}."""

    subject_name: str
    subject_digest: str
    digests: dict[str, str]
    key_sha256: str


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new NIST P-256 (secp256r1) private key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the file is kept 0600), as `openssl genpkey` writes it."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_key_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The SubjectPublicKeyInfo PEM of a key (what `model_signing verify key --public_key` reads)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(pem: str | bytes) -> ec.EllipticCurvePublicKey:
    """Parse a public key PEM; SigningKeyError unless it is a P-256 key of bounded size."""
    raw = pem.encode("utf-8") if isinstance(pem, str) else pem
    if len(raw) > MAX_PUBLIC_KEY_PEM_BYTES:
        raise SigningKeyError(f"a P-256 public key in PEM is about 180 bytes; this one has {len(raw)} (at most {MAX_PUBLIC_KEY_PEM_BYTES})")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a public key in PEM (-----BEGIN PUBLIC KEY-----): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError("only NIST P-256 (prime256v1, secp256r1) keys are accepted")
    return key


def load_private_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key in the PEM file at `path` (unencrypted); SigningKeyError otherwise."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted private key in PEM: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{path} is not a NIST P-256 key (the OMS key signer takes P-256 here)")
    return key


def key_sha256(key: str | bytes | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo: the `signing_key.sha256` of metadata."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    public = key if isinstance(key, ec.EllipticCurvePublicKey) else load_public_key(key)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_binding(key: str | bytes | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The `signing_key` entry of a version's metadata for this public key."""
    return {"algorithm": KEY_ALGORITHM, "sha256": key_sha256(key)}


def _pem_hint(public: ec.EllipticCurvePublicKey) -> str:
    # model_signing's `verificationMaterial.publicKey.hint`: SHA-256 of the PEM text (not the DER)
    return hashlib.sha256(public_key_pem(public).encode("ascii")).hexdigest()


def signing_statement(subject_name: str, files: Iterable[FileDigest]) -> dict[str, Any]:
    """The statement a version's bundle signs: its OMS statement (manifest.build_statement), with
    the tool state a download leaves in a folder (`model.sig`, `.cache/huggingface`, `.hallmark`)
    among the paths a verifier ignores, so the stock command passes on a `local_dir` download."""
    statement = build_statement(subject_name, files)
    serialization_ = statement["predicate"]["serialization"]
    serialization_["ignore_paths"] = list(serialization_["ignore_paths"]) + [p for p in TOOL_STATE_FOLDERS]
    return statement


def pae(payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of an in-toto payload (what the key signs)."""
    return b"DSSEv1 %d %s %d " % (len(DSSE_PAYLOAD_TYPE), DSSE_PAYLOAD_TYPE.encode(), len(payload)) + payload


def sign_statement(key: ec.EllipticCurvePrivateKey, statement: dict[str, Any]) -> dict[str, Any]:
    """The Sigstore bundle of `statement` signed with `key`, as `model_signing sign key` builds it
    (DSSE envelope, public key hint, no transparency log entry)."""
    payload = json.dumps(statement, indent=2).encode("utf-8")
    signature = key.sign(pae(payload), ec.ECDSA(hashes.SHA256()))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": _pem_hint(key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": DSSE_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    """The bytes of `model.sig` for a (checked) bundle: its fields in the order model_signing
    writes them, compact JSON. The same bundle always gives the same bytes, whatever order a
    database kept its keys in."""
    material = bundle["verificationMaterial"]
    envelope = bundle["dsseEnvelope"]
    ordered = {
        "mediaType": bundle["mediaType"],
        "verificationMaterial": {"publicKey": {"hint": material["publicKey"]["hint"]}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": envelope["payload"],
            "payloadType": envelope["payloadType"],
            "signatures": [{"sig": s["sig"], "keyid": s.get("keyid", "")} for s in envelope["signatures"]],
        },
    }
    return json.dumps(ordered, separators=(",", ":")).encode("utf-8")


def parse_bundle(raw: bytes) -> dict[str, Any]:
    """A bundle from the bytes of a `model.sig`, size bounded before parsing."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise SignatureBundleError(f"the signature bundle has {len(raw)} bytes; at most {MAX_BUNDLE_BYTES} are accepted")
    try:
        bundle = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureBundleError(f"the signature bundle is not JSON: {exc}") from None
    if not isinstance(bundle, dict):
        raise SignatureBundleError("the signature bundle is not a JSON object")
    return bundle


def verify_bundle(bundle: Any, public_key: str | bytes | ec.EllipticCurvePublicKey) -> CheckedBundle:
    """Check a bundle as `model_signing verify key` does before it hashes the folder: media type,
    key hint, the ECDSA signature over the DSSE envelope, an OMS statement whose subject digest is
    the root digest of its resources. Returns what it signs; SignatureBundleError otherwise."""
    public = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)

    def refuse(why: str) -> SignatureBundleError:
        return SignatureBundleError(f"the signature bundle {why}")

    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise refuse(f"is not a Sigstore bundle of media type {BUNDLE_MEDIA_TYPE}")
    normalized = bundle_bytes_or_none(bundle)
    if normalized is None:
        raise refuse("lacks verificationMaterial.publicKey.hint, or a dsseEnvelope with its payload and signatures")
    if len(normalized) > MAX_BUNDLE_BYTES:
        raise refuse(f"has more than {MAX_BUNDLE_BYTES} bytes")
    hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    if hint != _pem_hint(public):
        raise refuse("names another public key (verificationMaterial.publicKey.hint): it was signed with another key")
    envelope = bundle["dsseEnvelope"]
    if envelope["payloadType"] != DSSE_PAYLOAD_TYPE or len(envelope["signatures"]) != 1:
        raise refuse(f"must hold one signature over a {DSSE_PAYLOAD_TYPE} payload")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise refuse("has a payload or signature that is not base64") from None
    try:
        public.verify(signature, pae(payload), ec.ECDSA(hashes.SHA256()))
    except CryptoInvalidSignature:
        raise refuse("has a signature that does not verify with the key") from None
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise refuse("signs a payload that is not JSON") from None
    return CheckedBundle(*_statement_contents(statement, refuse), key_sha256=key_sha256(public))


def bundle_bytes_or_none(bundle: dict[str, Any]) -> bytes | None:
    """`bundle_bytes`, or None when the bundle lacks one of the fields it is made of."""
    try:
        envelope = bundle["dsseEnvelope"]
        if not isinstance(envelope["signatures"], list) or not all(isinstance(s, dict) for s in envelope["signatures"]):
            return None
        if not all(isinstance(v, str) for v in (bundle["verificationMaterial"]["publicKey"]["hint"], envelope["payload"], envelope["payloadType"])):
            return None
        if not all(isinstance(s.get("sig"), str) and isinstance(s.get("keyid", ""), str) for s in envelope["signatures"]):
            return None
        return bundle_bytes(bundle)
    except (KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class FolderSignature:
    """What `check_signature_file` found: `ok` None when it could not be checked (says why)."""

    ok: bool | None
    message: str
    key_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        status = "verified" if self.ok else "unchecked" if self.ok is None else "invalid"
        return {"status": status, "message": self.message, "key_sha256": self.key_sha256}


def check_signature_file(
    path: str | os.PathLike[str], *, metadata: dict[str, Any] | None, metadata_signed: bool, public_keys: Iterable[str]
) -> FolderSignature:
    """Check the `model.sig` at `path` for a version whose files were verified on chain.

    `metadata`: the version's metadata, `metadata_signed` when its digest is the one on chain;
    its `signing_key` names the key (by the SHA-256 of its DER public key) and its file list is
    what the bundle must sign. `public_keys`: candidate PEMs (given by the user, or the vendor's
    listed keys); only one whose SHA-256 the signed metadata names is used, so a key from an
    untrusted source cannot pass."""
    binding = (metadata or {}).get("signing_key") if metadata_signed else None
    bound = binding.get("sha256") if isinstance(binding, dict) else None
    if not metadata_signed:
        return FolderSignature(None, f"{SIGNATURE_FILE} not checked: the version's signed metadata is not at hand to name its key")
    if not isinstance(bound, str):
        return FolderSignature(None, f"{SIGNATURE_FILE} not checked: the version's signed metadata names no signing key")
    candidates = []
    for pem in public_keys:
        try:
            if key_sha256(pem) == bound:
                candidates.append(pem)
        except SigningKeyError:
            continue
    if not candidates:
        return FolderSignature(None, f"{SIGNATURE_FILE} not checked: no public key with the sha256 {bound} the version names (--public-key PEM)", bound)
    try:
        with open(path, "rb") as stream:
            bundle = parse_bundle(stream.read(MAX_BUNDLE_BYTES + 1))
        checked = verify_bundle(bundle, candidates[0])
    except (SignatureBundleError, OSError) as exc:
        return FolderSignature(False, f"{SIGNATURE_FILE} is invalid: {exc}", bound)
    files = {f.get("path"): f.get("sha256") for f in (metadata or {}).get("files", []) if isinstance(f, dict)}
    if checked.digests != files:
        return FolderSignature(False, f"{SIGNATURE_FILE} signs other files than the version's", bound)
    return FolderSignature(True, f"{SIGNATURE_FILE} verified: signed by the key {bound} the version names", bound)


def _statement_contents(statement: Any, refuse: Any) -> tuple[str, str, dict[str, str]]:
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise refuse(f"signs no in-toto statement ({STATEMENT_TYPE})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise refuse(f"signs a statement of predicate type {str(statement.get('predicateType'))[:80]!r}, not {PREDICATE_TYPE}")
    subjects = statement.get("subject")
    predicate = statement.get("predicate")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict) or not isinstance(predicate, dict):
        raise refuse("signs a statement without exactly one subject and a predicate")
    serialization_ = predicate.get("serialization")
    if not isinstance(serialization_, dict) or serialization_.get("method") != "files" or serialization_.get("hash_type") != "sha256":
        raise refuse("signs a statement not serialized file by file with SHA-256 (method files, hash_type sha256)")
    resources = predicate.get("resources")
    if not isinstance(resources, list) or not resources:
        raise refuse("signs a statement that lists no files")
    digests: dict[str, str] = {}
    root = hashlib.sha256()
    for resource in resources:
        name = resource.get("name") if isinstance(resource, dict) else None
        digest = resource.get("digest") if isinstance(resource, dict) else None
        if (
            not isinstance(name, str) or resource.get("algorithm") != "sha256"
            or not isinstance(digest, str) or len(digest) != 64 or not HEX.issuperset(digest) or name in digests
        ):
            raise refuse("lists a file without a unique name and a lowercase hex SHA-256")
        digests[name] = digest
        root.update(bytes.fromhex(digest))  # in the order listed, as the OMS verifier recomputes it
    subject = subjects[0]
    digest_map = subject.get("digest")
    subject_digest = digest_map.get("sha256") if isinstance(digest_map, dict) else None
    if subject_digest != root.hexdigest():
        raise refuse("has a subject digest that is not the root digest of the files it lists")
    return str(subject.get("name", "")), subject_digest, digests


__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "KEY_ALGORITHM",
    "MAX_BUNDLE_BYTES",
    "SIGNATURE_FILE",
    "CheckedBundle",
    "FolderSignature",
    "SignatureBundleError",
    "SigningKeyError",
    "bundle_bytes",
    "check_signature_file",
    "generate_key",
    "key_binding",
    "key_sha256",
    "load_private_key",
    "load_public_key",
    "parse_bundle",
    "private_key_pem",
    "public_key_pem",
    "sign_statement",
    "signing_statement",
    "verify_bundle",
]
