"""Accounts: wallets proven by Sign-In with Ethereum, vendor profiles, hashed API tokens."""

from __future__ import annotations

import hashlib
import secrets
import warnings
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_utils import to_checksum_address

from registry.caching import LocalCache

from ..errors import Conflict, Forbidden, InvalidInput, NotAuthenticated
from ..models import ApiToken, SiweNonce, Vendor, Wallet

TOKEN_PREFIX = "hm_"


def siwe_nonce_create() -> SiweNonce:
    """A fresh single-use nonce for a Sign-In with Ethereum message."""
    return SiweNonce.objects.create(
        nonce=secrets.token_urlsafe(16).replace("-", "a").replace("_", "b"),
        expires_at=timezone.now() + timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS),
    )


def siwe_sign_in(*, message: str, signature: str, domain: str, user=None) -> tuple:
    """Check a signed EIP-4361 message and return (user, wallet).

    Checked: the message parses, its domain is ours, its chain id is CHAIN_ID, its nonce was
    issued here, is unexpired and is used now for the first and last time, it has not expired,
    and the signature recovers to its address. With `user` (already signed in) the wallet is
    linked to that user; otherwise the wallet's user, or a new user for a new wallet.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="rule .* redefines")  # abnf 2.8 about siwe's grammar
        from siwe import SiweMessage
        from siwe import siwe as siwe_errors

    try:
        parsed = SiweMessage.from_message(message=message)
    except Exception as exc:  # the parser raises several kinds
        raise InvalidInput(f"not a Sign-In with Ethereum (EIP-4361) message: {exc}", code="siwe_malformed") from exc
    if parsed.domain != domain:
        raise Forbidden(f"the message is for {parsed.domain!r}, not {domain!r}", code="siwe_domain")
    if int(parsed.chain_id) != settings.CHAIN_ID:
        raise Forbidden(f"the message is for chain {parsed.chain_id}, this marketplace is on {settings.CHAIN_ID}", code="siwe_chain")
    used = SiweNonce.objects.filter(nonce=parsed.nonce, used_at__isnull=True, expires_at__gt=timezone.now()).update(
        used_at=timezone.now()
    )
    if used != 1:
        raise Forbidden("the nonce is unknown, expired or already used: ask for a new one", code="siwe_nonce")
    try:
        parsed.verify(signature, domain=domain, nonce=parsed.nonce)
    except siwe_errors.ExpiredMessage as exc:
        raise Forbidden("the message has expired: sign a new one", code="siwe_expired") from exc
    except siwe_errors.NotYetValidMessage as exc:
        raise Forbidden("the message is not valid yet", code="siwe_not_yet_valid") from exc
    except siwe_errors.VerificationError as exc:
        raise Forbidden("the signature does not match the message's address", code="invalid_signature") from exc
    except Exception as exc:
        raise InvalidInput(f"the signature cannot be read: {exc}", code="invalid_signature") from exc
    return _wallet_for(to_checksum_address(parsed.address), user)


def _wallet_for(address: str, user) -> tuple:
    User = get_user_model()
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().filter(address=address).first()
        if wallet is not None:
            if user is not None and wallet.user_id != user.pk:
                raise Conflict(f"{address} is already linked to another account", code="wallet_taken")
            return wallet.user, wallet
        if user is None:
            user = User.objects.create(username=address.lower())
            user.set_unusable_password()
            user.save(update_fields=["password"])
        try:
            with transaction.atomic():
                wallet = Wallet.objects.create(user=user, address=address)
        except IntegrityError as exc:
            raise Conflict(f"{address} is already linked to another account", code="wallet_taken") from exc
    return user, wallet


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


_live_tokens = LocalCache("api-tokens")


def api_token_authenticate(plaintext: str) -> ApiToken:
    """The live token for `plaintext`; NotAuthenticated (code invalid_token) otherwise.

    Live tokens are kept in the process (registry/caching.py) until their expiry, at most
    HOT_CACHE_SECONDS; a revocation reaches every process within HOT_CACHE_CHECK_SECONDS.
    Unknown, revoked and expired tokens are looked up each time."""
    now = timezone.now()
    key_hash = _hash(plaintext)
    token = _live_tokens.get_or_load(key_hash, lambda: _token_load(key_hash, now))
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("the API token has expired; create a new one", code="token_expired")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
        token.last_used_at = now
    return token


def _token_load(key_hash: str, now: datetime) -> tuple[ApiToken, float | None]:
    token = ApiToken.objects.select_related("user").filter(key_hash=key_hash).first()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        raise NotAuthenticated("the API token is unknown or revoked; create a new one", code="invalid_token")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("the API token has expired; create a new one", code="token_expired")
    return token, (None if token.expires_at is None else (token.expires_at - now).total_seconds())


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
