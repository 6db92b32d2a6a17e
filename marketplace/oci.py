"""OCI artifacts of a version, as the CNCF ModelPack model-spec lays them out, and the registry's
bearer tokens: what the `/v2/` endpoints (marketplace/api/oci.py) serve, built from facts that never
change once a version is signed, so every digest here is stable for a version.

- the **config blob** (`application/vnd.cncf.model.config.v1+json`): canonical JSON of the signed
  metadata's facts (name, version, root digest, format, architecture, quantization) and
  `modelfs.diffIds`, the files' SHA-256 in manifest order;
- the **manifest** (an OCI image manifest, `artifactType` `application/vnd.cncf.model.manifest.v1+json`):
  one layer per signed file, uncompressed (`...v1.raw`), whose digest is the file's SHA-256 and
  whose annotations name its path (`org.cncf.model.filepath`, and `org.opencontainers.image.title`
  which oras uses to name the file it writes);
- the **OMS bundle referrer**: an OCI 1.1 manifest whose `subject` is the model manifest and whose
  one layer is the Sigstore bundle (`model.sig`), listed by the referrers endpoint;
- **registry tokens**: short-lived, signed with SECRET_KEY (django.core.signing, no table), naming
  the API or device token they were exchanged for and the repositories they may pull.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from django.core import signing

from hallmark.manifest import canonical_json

from .models import Artifact, Version

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MODEL_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"
WEIGHT_MEDIA_TYPE = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.weight.config.v1.raw"
DOC_MEDIA_TYPE = "application/vnd.cncf.model.doc.v1.raw"
CODE_MEDIA_TYPE = "application/vnd.cncf.model.code.v1.raw"
# OCI 1.1's empty descriptor: the config of an artifact that has none (the OMS referrer)
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"

ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_TITLE = "org.opencontainers.image.title"  # oras names the pulled file after it
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_VERSION = "org.opencontainers.image.version"

# inputs are checked against these before any query (the Distribution Spec's own grammars, bounded)
DIGEST_RE = re.compile(r"^sha256:([a-f0-9]{64})$")
ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,256}$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
NAME_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # vendor and model slugs
SCOPE_RE = re.compile(r"^repository:([A-Za-z0-9][A-Za-z0-9._-]{0,63})/([A-Za-z0-9][A-Za-z0-9._-]{0,95}):([a-z,*]{1,64})$")

MAIN_TAG = "main"  # the latest live version, as on the Hugging Face endpoints
REGISTRY_TOKEN_SECONDS = 300
_TOKEN_SALT = "hallmark.oci.registry-token"

_DOC_NAMES = ("readme", "license", "licence", "notice", "copying", "authors", "changelog", "model_card", "modelcard")
_DOC_SUFFIXES = (".md", ".txt", ".rst", ".pdf", ".html")
_CODE_SUFFIXES = (".py", ".sh", ".ipynb", ".js", ".ts", ".c", ".cc", ".cpp", ".h", ".go", ".rs")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Bytes the registry generates (a config, a manifest, the empty blob, an OMS bundle)."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


EMPTY = Blob(EMPTY_MEDIA_TYPE, EMPTY_BLOB)


def layer_media_type(artifact: Artifact) -> str:
    """The ModelPack media type of a file: weights (GGUF, safetensors, ONNX), documentation,
    code, and everything else a runtime reads beside the weights (config.json, tokenizers)."""
    if artifact.file_format in ("gguf", "safetensors", "onnx"):
        return WEIGHT_MEDIA_TYPE
    name = artifact.path.rsplit("/", 1)[-1].lower()
    if name.endswith(_CODE_SUFFIXES):
        return CODE_MEDIA_TYPE
    if name.startswith(_DOC_NAMES) or (name.endswith(_DOC_SUFFIXES) and not name.startswith(("merges", "vocab"))):
        return DOC_MEDIA_TYPE
    return WEIGHT_CONFIG_MEDIA_TYPE


def _param_size(count) -> str | None:
    """`paramSize` as the spec writes it ("8b", "350m"), from the signed parameter count."""
    if not isinstance(count, int) or count <= 0:
        return None
    for unit, scale in (("t", 10**12), ("b", 10**9), ("m", 10**6), ("k", 10**3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)


def config_blob(version: Version, artifacts: list[Artifact]) -> Blob:
    """The ModelPack config of `version`: only facts the vendor signed (the metadata whose digest
    is on chain) and the files' digests, in canonical JSON, so its bytes never change."""
    metadata = version.metadata or {}
    formats = metadata.get("formats") or []
    config = {
        "format": ",".join(formats) if formats else None,
        "architecture": metadata.get("architecture"),
        "quantization": metadata.get("quantization"),
        "paramSize": _param_size(metadata.get("parameter_count")),
    }
    document = {
        "descriptor": {
            "name": version.model.repo_id,
            "vendor": version.model.vendor.slug,
            "version": f"v{version.number}",
            "revision": version.root_digest,
        },
        "config": {key: value for key, value in config.items() if isinstance(value, str) and value},
        "modelfs": {"type": "layers", "diffIds": ["sha256:" + a.sha256 for a in artifacts]},
    }
    return Blob(MODEL_CONFIG_MEDIA_TYPE, canonical_json(document))


def manifest_blob(version: Version, artifacts: list[Artifact]) -> Blob:
    """The OCI image manifest of `version` (ModelPack): its config and one raw layer per signed
    file, by path. Canonical JSON: the same version always gives the same digest."""
    config = config_blob(version, artifacts)
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": MODEL_ARTIFACT_TYPE,
        "config": config.descriptor(),
        "layers": [
            {
                "mediaType": layer_media_type(a),
                "digest": "sha256:" + a.sha256,
                "size": a.size,
                "annotations": {ANNOTATION_FILEPATH: a.path, ANNOTATION_TITLE: a.path},
            }
            for a in artifacts
        ],
        "annotations": {ANNOTATION_REVISION: version.root_digest, ANNOTATION_VERSION: f"v{version.number}"},
    }
    return Blob(MANIFEST_MEDIA_TYPE, canonical_json(document))


def bundle_referrer_blob(subject: Blob, bundle: Blob) -> Blob:
    """The OCI 1.1 manifest that attaches the OMS bundle (`model.sig`) to the model manifest."""
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": bundle.media_type,
        "config": EMPTY.descriptor(),
        "layers": [bundle.descriptor(annotations={ANNOTATION_TITLE: "model.sig"})],
        "subject": subject.descriptor(),
    }
    return Blob(MANIFEST_MEDIA_TYPE, canonical_json(document))


def referrers_index(referrers: list[Blob], artifact_type: str | None = None) -> Blob:
    """The image index the referrers endpoint answers: each referrer's descriptor with its
    `artifactType`, filtered by `artifact_type` when the client asks for one kind."""
    manifests = []
    for referrer in referrers:
        kind = _artifact_type(referrer)
        if artifact_type is None or kind == artifact_type:
            manifests.append(referrer.descriptor(artifactType=kind))
    return Blob(INDEX_MEDIA_TYPE, canonical_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}))


def _artifact_type(manifest: Blob) -> str:
    return json.loads(manifest.data).get("artifactType", "")


def tags_page(tags: list[str], *, last: str | None, n: int) -> tuple[list[str], bool]:
    """The tags after `last` in lexical order, at most `n`; and whether more follow."""
    ordered = sorted(tags)
    if last is not None:
        ordered = [tag for tag in ordered if tag > last]
    return ordered[:n], len(ordered) > n


# ------------------------------------------------------------------------------- registry tokens


@dataclass(frozen=True)
class TokenClaims:
    """What a registry token names: `subject` ("api", "device" or "anonymous"), the id of the
    API or device token it was exchanged for, and the repositories (`vendor/model`) it may pull."""

    subject: str
    token_id: int | None
    repositories: frozenset[str]


def scope_repositories(scopes: list[str]) -> list[str]:
    """The repositories `repository:<vendor>/<model>:pull` scopes ask to pull (others are not granted)."""
    repositories = []
    for scope in scopes:
        m = SCOPE_RE.match(scope)
        if m and ("pull" in m.group(3).split(",") or m.group(3) == "*"):
            repositories.append(f"{m.group(1)}/{m.group(2)}")
    return sorted(set(repositories))


def registry_token_issue(*, subject: str, token_id: int | None, repositories: list[str]) -> str:
    """A registry token for `subject`, valid REGISTRY_TOKEN_SECONDS (signed, not stored)."""
    return signing.dumps({"s": subject, "t": token_id, "r": repositories}, salt=_TOKEN_SALT, compress=True)


def registry_token_read(value: str) -> TokenClaims | None:
    """The claims of a registry token this server signed and that has not expired; None otherwise."""
    if len(value) > 4096:
        return None
    try:
        claims = signing.loads(value, salt=_TOKEN_SALT, max_age=REGISTRY_TOKEN_SECONDS)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(claims, dict) or claims.get("s") not in ("api", "device", "anonymous"):
        return None
    return TokenClaims(claims["s"], claims.get("t"), frozenset(claims.get("r") or ()))
