"""One definition of the ModelRegistry EIP-712 types, for the server, the CLI and the browser.

`typed_data_*` return the exact JSON a wallet receives in `eth_signTypedData_v4`; the server
renders `TYPES` to JSON for the portal, so all three sign the same structure.
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from .errors import InvalidSignature
from .onchain import ZERO_BYTES32, from_hex, hex0x, to_bytes32

DOMAIN_NAME = "ModelRegistry"
DOMAIN_VERSION = "1"

EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

TYPES: dict[str, list[dict[str, str]]] = {
    "PublishVersion": [
        {"name": "modelId", "type": "bytes32"},
        {"name": "version", "type": "uint32"},
        {"name": "rootDigest", "type": "bytes32"},
        {"name": "metadataDigest", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    "CreateModel": [
        {"name": "vendor", "type": "address"},
        {"name": "slugHash", "type": "bytes32"},
        {"name": "price", "type": "uint96"},
        {"name": "licenseDuration", "type": "uint64"},
        {"name": "parentId", "type": "bytes32"},
        {"name": "upstreamBps", "type": "uint16"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


def bytes32_hex(value: str | bytes) -> str:
    """Normalise a bytes32 given as bytes or (0x-)hex to lowercase 0x-hex, checking its length."""
    return hex0x(to_bytes32(value))


def slug_hash(slug: str) -> str:
    """keccak256 of the model slug's UTF-8 bytes, as the contract expects."""
    return hex0x(keccak(slug.encode("utf-8")))


def compute_model_id(vendor: str, slug: str) -> str:
    """modelId = keccak256(abi.encode(vendor, slugHash)), as `ModelRegistry.computeModelId`."""
    encoded = abi_encode(["address", "bytes32"], [to_checksum_address(vendor), to_bytes32(slug_hash(slug))])
    return hex0x(keccak(encoded))


def domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": int(chain_id),
        "verifyingContract": to_checksum_address(verifying_contract),
    }


def _typed_data(primary_type: str, chain_id: int, contract: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN, primary_type: TYPES[primary_type]},
        "primaryType": primary_type,
        "domain": domain(chain_id, contract),
        "message": message,
    }


def typed_data_publish_version(
    *,
    chain_id: int,
    contract: str,
    model_id: str,
    version: int,
    root_digest: str,
    metadata_digest: str,
    deadline: int,
) -> dict[str, Any]:
    """The `PublishVersion` typed data a vendor signs to publish `version` of `model_id`."""
    return _typed_data(
        "PublishVersion",
        chain_id,
        contract,
        {
            "modelId": bytes32_hex(model_id),
            "version": int(version),
            "rootDigest": bytes32_hex(root_digest),
            "metadataDigest": bytes32_hex(metadata_digest),
            "deadline": int(deadline),
        },
    )


def typed_data_create_model(
    *,
    chain_id: int,
    contract: str,
    vendor: str,
    slug: str,
    price_wei: int,
    license_duration: int,
    parent_id: str | None,
    upstream_bps: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The `CreateModel` typed data a vendor signs so a relayer can register the model."""
    return _typed_data(
        "CreateModel",
        chain_id,
        contract,
        {
            "vendor": to_checksum_address(vendor),
            "slugHash": slug_hash(slug),
            "price": int(price_wei),
            "licenseDuration": int(license_duration),
            "parentId": bytes32_hex(parent_id) if parent_id else ZERO_BYTES32,
            "upstreamBps": int(upstream_bps),
            "nonce": int(nonce),
            "deadline": int(deadline),
        },
    )


def sign_typed_data(typed_data: dict[str, Any], private_key: str | bytes) -> str:
    """Sign typed data with a local key (CLI, tests); returns the 65-byte signature as 0x-hex."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return hex0x(signed.signature)


def recover_typed_data_signer(typed_data: dict[str, Any], signature: str | bytes) -> str:
    """The checksummed address that signed `typed_data`; InvalidSignature if unreadable."""
    try:
        raw = from_hex(signature) if isinstance(signature, str) else bytes(signature)
        if len(raw) != 65:
            raise ValueError(f"a signature has 65 bytes, this one {len(raw)}")
        return Account.recover_message(encode_typed_data(full_message=typed_data), signature=raw)
    except Exception as exc:  # eth-account raises several types for bad input
        raise InvalidSignature(f"the signature cannot be read: {exc}") from exc


def require_signer(typed_data: dict[str, Any], signature: str | bytes, expected: str) -> str:
    """Recover the signer and raise InvalidSignature unless it is `expected`."""
    signer = recover_typed_data_signer(typed_data, signature)
    if signer.lower() != expected.lower():
        raise InvalidSignature(
            f"the signature recovers to {signer}, not to the vendor {to_checksum_address(expected)}; "
            "sign with the vendor's wallet"
        )
    return signer
