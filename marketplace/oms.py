"""OpenSSF Model Signing on the server: the bytes of a version's `model.sig` and its media type.

The bundle is the vendor's (signed with their registered P-256 key, checked against the version's
manifest in `version_submit_signature`); it is not a file of the version (not in the manifest,
the metadata or the root digest) and is served beside the files: the Hugging Face compatible
resolve and tree (`model.sig`), the REST API and the OCI referrers of the version's manifest.
"""

from __future__ import annotations

from hallmark.manifest import SIGNATURE_FILE
from hallmark.oms import BUNDLE_MEDIA_TYPE, bundle_bytes

from .models import Version

# model_signing 1.1.1 writes Sigstore bundles of this media type (_signing/sign_sigstore_pb.py)
OMS_BUNDLE_MEDIA_TYPE = BUNDLE_MEDIA_TYPE
OMS_SIGNATURE_FILE = SIGNATURE_FILE


def oms_bundle_bytes(version: Version) -> bytes | None:
    """The exact bytes served as the version's `model.sig` (stable: its fields in model_signing's
    order, compact JSON, whatever order the database kept), or None without a bundle."""
    if not version.oms_bundle:
        return None
    return bundle_bytes(version.oms_bundle)
