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

from registry.caching import LocalCache, cache_generation_bump

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
            user = _user_create_for_wallet(User, address)
        try:
            with transaction.atomic():
                wallet = Wallet.objects.create(user=user, address=address)
        except IntegrityError as exc:
            raise Conflict(f"{address} is already linked to another account", code="wallet_taken") from exc
    return user, wallet


def _user_create_for_wallet(User, address: str):
    """A new account for a wallet's first sign-in, named after the address; when that name is
    taken (someone registered the lower-case address as a username), a numbered variant."""
    base = address.lower()
    for attempt in range(100):
        username = base if attempt == 0 else f"{base}-{attempt + 1}" if attempt < 10 else f"{base}-{secrets.token_hex(4)}"
        try:
            with transaction.atomic():  # a savepoint: the caller's transaction survives a clash
                user = User(username=username)
                user.set_unusable_password()
                user.save()
                return user
        except IntegrityError:
            continue
    raise Conflict("could not choose a user name for this wallet; try again", code="wallet_taken")


# top-level paths of the site (config/urls.py): a vendor named like one would never be reachable at /<vendor>
RESERVED_VENDOR_SLUGS = frozenset({
    "admin", "api", "models", "portal", "static", "media", "v2", "healthz", "readyz", "metrics", "docs", "login", "logout",
})


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
    if slug.lower() in RESERVED_VENDOR_SLUGS:
        raise InvalidInput(f"{slug!r} names a page of the marketplace itself; choose another vendor name", code="vendor_name_reserved")
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


def api_token_create(
    *,
    user,
    name: str = "",
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    created_by: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored.

    Its lifetime: `expires_at`, else `expires_in_days` from now (0: never expires), else the
    default (API_TOKEN_TTL_DAYS, never past `created_by`'s expiry). Refused with
    `token_ttl_too_long` when it would live longer than API_TOKEN_MAX_TTL_DAYS (0: no maximum), or
    longer than `created_by`, the token that authenticated the request: a stolen token cannot
    mint itself a longer life, and revoking it revokes what it created (`api_token_revoke`).
    """
    expires_at = api_token_expiry(expires_in_days=expires_in_days, expires_at=expires_at, created_by=created_by)
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, key_hash=_hash(plaintext), expires_at=expires_at, created_by=created_by
    )
    return token, plaintext


def api_token_expiry(
    *, expires_in_days: int | None = None, expires_at: datetime | None = None, created_by: ApiToken | None = None
) -> datetime | None:
    """The expiry `api_token_create` would give such a token (None: never), or InvalidInput
    `token_ttl_too_long`: callers check it before spending anything else (a SIWE nonce)."""
    now = timezone.now()
    max_days = settings.API_TOKEN_MAX_TTL_DAYS
    creator_expiry = created_by.expires_at if created_by is not None else None
    if expires_at is None and expires_in_days is None:  # the default: clamped, never refused
        days = settings.API_TOKEN_TTL_DAYS or max_days
        if max_days:
            days = min(days, max_days)
        expires_at = now + timedelta(days=days) if days else None
        if creator_expiry is not None and (expires_at is None or expires_at > creator_expiry):
            expires_at = creator_expiry
        return expires_at
    if expires_at is None and expires_in_days:
        if max_days and expires_in_days > max_days:  # before the date arithmetic: any int may arrive
            raise _ttl_too_long(f"a token may live at most {max_days} days (API_TOKEN_MAX_TTL_DAYS); ask for {max_days} or fewer")
        expires_at = now + timedelta(days=expires_in_days)
    if expires_at is None:  # asked never to expire
        if max_days:
            raise _ttl_too_long(f"tokens that never expire are not issued; ask for at most {max_days} days (API_TOKEN_MAX_TTL_DAYS)")
    elif max_days and expires_at > now + timedelta(days=max_days):
        raise _ttl_too_long(f"a token may live at most {max_days} days (API_TOKEN_MAX_TTL_DAYS); ask for {max_days} or fewer")
    if creator_expiry is not None and (expires_at is None or expires_at > creator_expiry):
        raise _ttl_too_long(
            f"the token you are using expires at {creator_expiry.isoformat()}, and a token it creates cannot outlive it: "
            "ask for an earlier expiry, or sign in again without that token (POST /api/v1/auth/siwe) for a longer-lived one"
        )
    return expires_at


def _ttl_too_long(message: str) -> InvalidInput:
    return InvalidInput(message, code="token_ttl_too_long")


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


def api_token_revoke(*, token: ApiToken) -> int:
    """Revoke `token` and every token created with it, however indirectly; the number revoked.

    What a leaked token minted goes with it: otherwise revoking the leak would not end it."""
    now = timezone.now()
    ids, frontier = {token.pk}, [token.pk]
    while frontier:
        frontier = [pk for pk in ApiToken.objects.filter(created_by__in=frontier).values_list("pk", flat=True) if pk not in ids]
        ids.update(frontier)
    revoked = ApiToken.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
    token.refresh_from_db(fields=["revoked_at", "updated_at"])
    if revoked:
        cache_generation_bump()  # a queryset update sends no post_save: drop cached live tokens here
    return revoked
