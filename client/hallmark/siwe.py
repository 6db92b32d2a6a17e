"""Sign-In with Ethereum (EIP-4361) messages, built the same way by the CLI, tests and seeds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from .onchain import hex0x

STATEMENT = "Sign in to Hallmark, the edge model marketplace."


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def siwe_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: datetime | None = None,
    ttl_seconds: int = 600,
    statement: str = STATEMENT,
) -> str:
    """The EIP-4361 text a wallet signs with `personal_sign`."""
    issued = issued_at or datetime.now(timezone.utc)
    lines = [
        f"{domain} wants you to sign in with your Ethereum account:",
        to_checksum_address(address),
        "",
        statement,
        "",
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {int(chain_id)}",
        f"Nonce: {nonce}",
        f"Issued At: {_iso(issued)}",
        f"Expiration Time: {_iso(issued + timedelta(seconds=ttl_seconds))}",
    ]
    return "\n".join(lines)


def sign_message(text: str, private_key: str | bytes) -> str:
    """`personal_sign` of `text` with a local key; 0x-hex signature."""
    return hex0x(Account.sign_message(encode_defunct(text=text), private_key).signature)
