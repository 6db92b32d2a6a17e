"""Accounts: wallets proven by signature, vendor profiles, hashed API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from ..errors import Conflict, Forbidden, InvalidInput, NotAuthenticated
from ..models import ApiToken, Vendor, Wallet

TOKEN_PREFIX = "hm_"


def wallet_link_message(*, user, address: str) -> str:
    """The text a user signs (`personal_sign`) to prove they control `address`."""
    return (
        "Hallmark: link this wallet to my account.\n"
        f"Account: {user.username} (#{user.pk})\n"
        f"Wallet: {to_checksum_address(address)}"
    )


def wallet_link(*, user, address: str, signature: str) -> Wallet:
    """Link `address` to `user` once its `personal_sign` of `wallet_link_message` checks out."""
    if not is_address(address):
        raise InvalidInput(f"{address!r} is not an Ethereum address", code="invalid_address")
    address = to_checksum_address(address)
    try:
        signer = Account.recover_message(encode_defunct(text=wallet_link_message(user=user, address=address)), signature=signature)
    except Exception as exc:
        raise InvalidInput(f"the signature cannot be read: {exc}", code="invalid_signature") from exc
    if signer != address:
        raise Forbidden(f"the signature was made by {signer}, not by {address}", code="invalid_signature")
    existing = Wallet.objects.filter(address=address).first()
    if existing is not None:
        if existing.user_id != user.pk:
            raise Conflict(f"{address} is already linked to another account", code="wallet_taken")
        return existing
    try:
        with transaction.atomic():
            return Wallet.objects.create(user=user, address=address)
    except IntegrityError as exc:
        raise Conflict(f"{address} is already linked to another account", code="wallet_taken") from exc


def vendor_register(*, user, slug: str, address: str, display_name: str = "") -> Vendor:
    """Make `user` a vendor publishing as `slug`, signing with one of their linked wallets."""
    address = to_checksum_address(address)
    if not Wallet.objects.filter(user=user, address=address).exists():
        raise Forbidden(f"link {address} to your account before using it as the vendor wallet", code="wallet_not_linked")
    vendor = Vendor.objects.filter(user=user).first()
    if vendor is not None:
        if vendor.slug != slug or vendor.address != address:
            raise Conflict(f"you are already registered as vendor {vendor.slug!r}", code="already_vendor")
        return vendor
    vendor = Vendor(user=user, slug=slug, address=address, display_name=display_name or slug)
    vendor.full_clean()
    try:
        with transaction.atomic():
            vendor.save()
    except IntegrityError as exc:
        raise Conflict(f"the vendor name {slug!r} or wallet {address} is taken", code="vendor_taken") from exc
    return vendor


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def api_token_create(*, user, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user=user, name=name, prefix=prefix, key_hash=_hash(plaintext), expires_at=expires_at)
    return token, plaintext


def api_token_authenticate(plaintext: str) -> ApiToken:
    """The live token for `plaintext`; NotAuthenticated (code invalid_token) otherwise."""
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash(plaintext)).first()
    now = timezone.now()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        raise NotAuthenticated("the API token is unknown or revoked; create a new one", code="invalid_token")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("the API token has expired; create a new one", code="token_expired")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
    return token


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
