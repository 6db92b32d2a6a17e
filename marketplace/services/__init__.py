"""Marketplace writes and business rules, split by sub-domain; import from here."""

from .accounts import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    vendor_register,
    wallet_link,
    wallet_link_message,
)
from .catalog import model_anchor, model_create, model_submit_signature
from .downloads import download_authorize, download_record
from .versions import (
    artifact_upload,
    version_anchor,
    version_create,
    version_finalize,
    version_hash_and_inspect,
    version_submit_signature,
)

__all__ = [
    "api_token_authenticate",
    "api_token_create",
    "api_token_revoke",
    "artifact_upload",
    "download_authorize",
    "download_record",
    "model_anchor",
    "model_create",
    "model_submit_signature",
    "vendor_register",
    "version_anchor",
    "version_create",
    "version_finalize",
    "version_hash_and_inspect",
    "version_submit_signature",
    "wallet_link",
    "wallet_link_message",
]
