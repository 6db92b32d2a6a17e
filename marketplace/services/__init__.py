"""Marketplace writes and business rules, split by sub-domain; import from here."""

from .accounts import (
    api_token_authenticate,
    api_token_create,
    api_token_expiry,
    api_token_revoke,
    siwe_nonce_create,
    siwe_sign_in,
    vendor_register,
)
from .catalog import (
    model_anchor,
    model_catalog_refresh,
    model_create,
    model_register_from_tx,
    model_submit_signature,
    model_update,
)
from .downloads import download_authorize, download_record
from .recovery import pending_chain_resume
from .retention import expired_records_purge
from .uploads import upload_append, upload_create, upload_get, upload_terminate, uploads_expire
from .versions import (
    artifact_upload,
    version_anchor,
    version_create,
    version_finalize,
    version_hash_and_inspect,
    version_submit_signature,
)

__all__ = [
    "expired_records_purge",
    "model_register_from_tx",
    "model_update",
    "model_catalog_refresh",
    "pending_chain_resume",
    "upload_append",
    "upload_create",
    "upload_get",
    "upload_terminate",
    "uploads_expire",
    "api_token_authenticate",
    "api_token_create",
    "api_token_expiry",
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
    "siwe_nonce_create",
    "siwe_sign_in",
]
