"""Fleet writes: challenges, device registration and removal, device tokens, seats, inventories.

`fleet` sits between `marketplace` and `royalties`: it reads licences through
`royalties.selectors`, and knows nothing of the marketplace (the owner's wallets are handed in by
the caller). Every refusal is a FleetError with a stable code (fleet/errors.py)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from registry.caching import LocalCache, cache_generation_bump
from royalties.selectors import license_seats_held

from .errors import (
    DeviceConflict,
    DeviceNotFound,
    DeviceRevoked,
    DeviceTokenInvalid,
    FleetError,
    InvalidChallenge,
    InventoryRefused,
    SeatLimit,
)
from .models import Device, DeviceChallenge, DeviceModel, DeviceToken, Seat

TOKEN_PREFIX = "hmd_"
MAX_MESSAGE_LENGTH = 1000  # a challenge message is ~250 characters
MAX_INVENTORY_BYTES = 256 * 1024
MAX_INVENTORY_MODELS = 1000
MAX_NAME_LENGTH = 64
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_STATUSES = {choice.value for choice in DeviceModel.Status}
_CLOCK_SKEW = timedelta(minutes=5)


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def address_parse(address: object) -> str:
    """The checksummed form of `address`, or InvalidChallenge `invalid_address` (a mixed-case
    address must carry a valid EIP-55 checksum)."""
    if not isinstance(address, str) or len(address) != 42 or not is_address(address):
        raise FleetError("`address` must be a 0x-prefixed 20-byte Ethereum address", code="invalid_address")
    return to_checksum_address(address)


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------- challenges


def challenge_create(*, address: str, purpose: str, domain: str) -> DeviceChallenge:
    """A single-use message for the device key `address` to sign (EIP-191), for `purpose`
    ("register" or "token"), valid DEVICE_CHALLENGE_TTL_SECONDS. Expired challenges are swept here:
    the endpoint is rate-limited, so the table stays small without a periodic task."""
    address = address_parse(address)
    if purpose not in DeviceChallenge.Purpose.values:
        raise FleetError("`purpose` must be `register` or `token`", code="invalid_purpose")
    domain = "".join(c for c in domain if " " < c <= "~")[:253]
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.DEVICE_CHALLENGE_TTL_SECONDS)
    nonce = secrets.token_hex(16)
    message = (
        f"Hallmark device {purpose}\nDomain: {domain}\nAddress: {address}\nNonce: {nonce}\n"
        f"Issued At: {_moment(now)}\nExpires At: {_moment(expires_at)}"
    )
    DeviceChallenge.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    return DeviceChallenge.objects.create(address=address, purpose=purpose, nonce=nonce, message=message, expires_at=expires_at)


def _challenge_nonce(message: str) -> str | None:
    for line in message.splitlines()[:8]:
        if line.startswith("Nonce: "):
            return line.removeprefix("Nonce: ").strip()
    return None


def _challenge_verify(*, address: str, purpose: str, message: object, signature: object) -> DeviceChallenge:
    """The challenge `message` is, if this server issued it for `address` and `purpose`, it is
    signed by that address, unused and unexpired. Not consumed yet (`_challenge_consume`)."""
    if not isinstance(message, str) or not message or len(message) > MAX_MESSAGE_LENGTH:
        raise InvalidChallenge("`message` must be the challenge text, as issued", code="challenge_invalid")
    nonce = _challenge_nonce(message)
    challenge = DeviceChallenge.objects.filter(nonce=nonce).first() if nonce else None
    if challenge is None or challenge.message != message or challenge.address != address or challenge.purpose != purpose:
        raise InvalidChallenge(
            f"this is not a `{purpose}` challenge issued for {address}: ask for one (POST /api/v1/devices/challenge)",
            code="challenge_invalid",
        )
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise InvalidChallenge("`signature` must be a 65-byte 0x-prefixed hex signature", code="invalid_signature")
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # noqa: BLE001 - any malformed signature (bad v, s out of range) is simply invalid
        raise InvalidChallenge("the signature is malformed", code="invalid_signature") from exc
    if signer != address:
        raise InvalidChallenge(f"the challenge was not signed by {address}'s key", code="invalid_signature")
    if challenge.used_at is not None:
        raise InvalidChallenge("this challenge was used already: ask for a new one", code="challenge_used")
    if challenge.expires_at <= timezone.now():
        raise InvalidChallenge("this challenge has expired: ask for a new one", code="challenge_expired")
    return challenge


def _challenge_consume(challenge: DeviceChallenge) -> None:
    """Use the challenge now, once: of two requests racing with it, one wins."""
    if not DeviceChallenge.objects.filter(pk=challenge.pk, used_at__isnull=True).update(used_at=timezone.now()):
        raise InvalidChallenge("this challenge was used already: ask for a new one", code="challenge_used")


# ------------------------------------------------------------------------------------ devices


def device_name_clean(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME_LENGTH or not name.isprintable():
        raise FleetError(f"`name` must be 1 to {MAX_NAME_LENGTH} printable characters", code="invalid_name")
    return name.strip()


def device_register(*, owner, address: str, name: str, message: str, signature: str) -> Device:
    """Bind the device key `address` to `owner`, once the device proved it holds the key (it
    signed a `register` challenge). An address is registered once, ever: 409 `device_exists`,
    or `device_revoked` for a removed device (a removed device stays removed)."""
    address = address_parse(address)
    name = device_name_clean(name)
    challenge = _challenge_verify(address=address, purpose=DeviceChallenge.Purpose.REGISTER, message=message, signature=signature)
    _refuse_taken(address)
    try:
        with transaction.atomic():
            _challenge_consume(challenge)
            return Device.objects.create(owner=owner, address=address, name=name)
    except IntegrityError:  # registered by a concurrent request
        _refuse_taken(address)
        raise


def _refuse_taken(address: str) -> None:
    existing = Device.objects.filter(address=address).only("revoked_at").first()
    if existing is None:
        return
    if existing.revoked_at is not None:
        raise DeviceConflict(f"{address} belonged to a removed device and cannot be registered again: make a new key", code="device_revoked")
    raise DeviceConflict(f"{address} is registered already", code="device_exists")


def device_revoke(*, device: Device) -> bool:
    """Remove `device`: kept for the record, its seats freed, its tokens refused at once (the hot
    caches of every process are dropped: `cache_generation_bump`). False if it was removed already."""
    with transaction.atomic():
        now = timezone.now()
        changed = Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=now)
        Seat.objects.filter(device_id=device.pk).delete()
        DeviceToken.objects.filter(device_id=device.pk, expires_at__gt=now).update(expires_at=now)
        cache_generation_bump()
    device.refresh_from_db(fields=["revoked_at"])
    return bool(changed)


# ------------------------------------------------------------------------------------- tokens


def device_token_issue(*, address: str, message: str, signature: str) -> tuple[DeviceToken, str]:
    """A new bearer token for the device that signed a `token` challenge; the plaintext is returned
    once and never stored. It lives DEVICE_TOKEN_TTL_SECONDS."""
    address = address_parse(address)
    challenge = _challenge_verify(address=address, purpose=DeviceChallenge.Purpose.TOKEN, message=message, signature=signature)
    device = Device.objects.filter(address=address).first()
    if device is None:
        raise DeviceNotFound(f"no device {address} is registered: its owner registers it first (POST /api/v1/devices)")
    if device.revoked_at is not None:
        raise DeviceRevoked(f"device {address} was removed by its owner")
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        _challenge_consume(challenge)
        token = DeviceToken.objects.create(
            device=device, prefix=prefix, key_hash=_hash(plaintext),
            expires_at=timezone.now() + timedelta(seconds=settings.DEVICE_TOKEN_TTL_SECONDS),
        )
    return token, plaintext


_live_tokens = LocalCache("device-tokens")


def device_token_authenticate(plaintext: str) -> DeviceToken:
    """The live token for `plaintext`, its device and owner loaded; DeviceTokenInvalid
    (`invalid_token`, `token_expired`) or DeviceRevoked otherwise.

    Kept in the process like API tokens (registry/caching.py) until it expires; `device_revoke`
    bumps the cache generation, so a removed device is refused by every process within
    HOT_CACHE_CHECK_SECONDS (at once by the one that removed it)."""
    if len(plaintext) > 100:
        raise DeviceTokenInvalid("the device token is unknown: ask for a new one (POST /api/v1/devices/token)")
    now = timezone.now()
    key_hash = _hash(plaintext)
    token = _live_tokens.get_or_load(key_hash, lambda: _token_load(key_hash, now))
    if token.expires_at <= now:
        raise DeviceTokenInvalid("the device token has expired: ask for a new one (POST /api/v1/devices/token)", code="token_expired")
    device = token.device
    if device.last_seen_at is None or (now - device.last_seen_at).total_seconds() > 60:
        Device.objects.filter(pk=device.pk).update(last_seen_at=now)  # at most once a minute
        device.last_seen_at = now
    return token


def _token_load(key_hash: str, now: datetime) -> tuple[DeviceToken, float | None]:
    token = DeviceToken.objects.select_related("device__owner").filter(key_hash=key_hash).first()
    if token is None or not token.device.owner.is_active:
        raise DeviceTokenInvalid("the device token is unknown: ask for a new one (POST /api/v1/devices/token)")
    if token.device.revoked_at is not None:
        raise DeviceRevoked(f"device {token.device.address} was removed by its owner")
    if token.expires_at <= now:
        raise DeviceTokenInvalid("the device token has expired: ask for a new one (POST /api/v1/devices/token)", code="token_expired")
    return token, (token.expires_at - now).total_seconds()


# -------------------------------------------------------------------------------------- seats


_seated = LocalCache("device-seats")


def seat_ensure(*, device: Device, model_id: str, repo_id: str, licensees, take: bool, minimum_held: int = 0) -> bool:
    """Let `device` use its owner's licence for `model_id`: True if it holds a seat (taken now
    when `take`, on a GET), False for a HEAD that could take one; SeatLimit when all the seats
    held are in use by the owner's other devices.

    Seats held: `license_seats_held` over `licensees` (the owner's wallets), at least
    `minimum_held` (1 when the licence was just read from the chain and is not mirrored yet).
    Taking one is race-free: the owner's row is locked while the seats are counted and the new
    one written, so two devices cannot both take the last seat. Seats are used in the order they
    were taken: should fewer be held later, the devices that took the latest seats are refused.
    A held seat is kept in the process (registry/caching.py); removing a device bumps the generation."""
    model_id = model_id.lower()

    def load() -> tuple[bool, float | None]:
        seated = _seat_decide(device, model_id, repo_id, licensees, take, minimum_held)
        return seated, (None if seated else 0)

    return _seated.get_or_load((device.pk, model_id), load)


def _seats_held(model_id: str, licensees, minimum_held: int) -> int:
    return max(license_seats_held(model_id=model_id, licensees=licensees), minimum_held)


def _seat_decide(device: Device, model_id: str, repo_id: str, licensees, take: bool, minimum_held: int) -> bool:
    held = _seats_held(model_id, licensees, minimum_held)
    in_use = Seat.objects.filter(device__owner_id=device.owner_id, device__revoked_at__isnull=True, model_id=model_id)
    own = Seat.objects.filter(device=device, model_id=model_id).values_list("pk", flat=True).first()
    if own is not None:
        if in_use.filter(pk__lt=own).count() < held:
            return True
        raise _seat_limit(held, in_use.exclude(device=device).count(), repo_id)
    if in_use.count() >= held:
        raise _seat_limit(held, in_use.count(), repo_id)
    if not take:
        return False
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=device.owner_id).values_list("pk", flat=True).first()
        if Seat.objects.filter(device=device, model_id=model_id).exists():  # a concurrent request of this device
            return True
        others = in_use.count()
        if others >= held:
            raise _seat_limit(held, others, repo_id)
        Seat.objects.create(device=device, model_id=model_id)
    return True


def _seat_limit(held: int, others: int, repo_id: str) -> SeatLimit:
    return SeatLimit(f"{held} seats held for {repo_id}, {others} in use by other devices: remove a device or buy more seats")


# --------------------------------------------------------------------------------- inventory


@dataclass(frozen=True)
class InventoryEntry:
    repo_id: str
    model_id: str
    version: int
    root_digest: str
    status: str
    reason: str


def inventory_record(*, device: Device, body: bytes) -> list[InventoryEntry]:
    """Store the inventory `device` reports: `{"inventory": {...}, "signature": "0x.."}`, the
    signature EIP-191 by the device key over the inventory's canonical JSON (sorted keys, no
    spaces, ASCII). The device's rows are replaced in one transaction; an inventory older than the
    last one stored is refused (409 `inventory_stale`), so a replayed report cannot roll it back.

    Bounded before any loop: at most MAX_INVENTORY_BYTES of body (413 `inventory_too_large`), at
    most MAX_INVENTORY_MODELS entries; every field is checked (400 `invalid_inventory`,
    `invalid_signature`)."""
    if len(body) > MAX_INVENTORY_BYTES:
        raise InventoryRefused(f"an inventory is at most {MAX_INVENTORY_BYTES} bytes", code="inventory_too_large", status=413)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InventoryRefused("the body is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("inventory"), dict):
        raise InventoryRefused('the body must be {"inventory": {...}, "signature": "0x.."}')
    inventory, signature = payload["inventory"], payload.get("signature")
    models = inventory.get("models")
    if not isinstance(models, list):
        raise InventoryRefused("`inventory.models` must be a list")
    if len(models) > MAX_INVENTORY_MODELS:
        raise InventoryRefused(f"an inventory lists at most {MAX_INVENTORY_MODELS} models", code="inventory_too_large", status=413)
    _inventory_signed_by(inventory, signature, device.address)
    if not isinstance(inventory.get("device"), str) or inventory["device"].lower() != device.address.lower():
        raise InventoryRefused(f"`inventory.device` must be {device.address}")
    reported_at = _reported_at(inventory.get("reported_at"))
    entries = [_entry(index, item) for index, item in enumerate(models)]
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        if locked.inventory_reported_at is not None and reported_at < locked.inventory_reported_at:
            raise DeviceConflict("an inventory reported later is stored already", code="inventory_stale")
        DeviceModel.objects.filter(device=locked).delete()
        DeviceModel.objects.bulk_create(DeviceModel(device=locked, **vars(entry)) for entry in entries)
        now = timezone.now()
        Device.objects.filter(pk=device.pk).update(
            last_inventory=inventory, inventory_reported_at=reported_at, last_seen_at=now
        )
    return entries


def _inventory_signed_by(inventory: dict, signature: object, address: str) -> None:
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise InventoryRefused("`signature` must be a 65-byte 0x-prefixed hex signature", code="invalid_signature")
    canonical = json.dumps(inventory, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    try:
        signer = Account.recover_message(encode_defunct(text=canonical), signature=signature)
    except Exception as exc:  # noqa: BLE001 - a malformed signature is simply invalid
        raise InventoryRefused("the signature is malformed", code="invalid_signature") from exc
    if signer != address:
        raise InventoryRefused(f"the inventory was not signed by {address}'s key", code="invalid_signature")


def _reported_at(value: object) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InventoryRefused("`inventory.reported_at` must be an ISO 8601 time with its offset (…Z)")
    if moment > timezone.now() + _CLOCK_SKEW:
        raise InventoryRefused("`inventory.reported_at` is in the future: check the device's clock")
    return moment


def _entry(index: int, item: object) -> InventoryEntry:
    where = f"`inventory.models[{index}]`"
    if not isinstance(item, dict):
        raise InventoryRefused(f"{where} must be an object")
    repo_id, model_id, version = item.get("repo_id"), item.get("model_id"), item.get("version")
    root_digest, status, reason = item.get("root_digest"), item.get("status"), item.get("reason", "")
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise InventoryRefused(f"{where}.repo_id must be `<vendor>/<model>`")
    if not isinstance(model_id, str) or not _HEX32.match(model_id):
        raise InventoryRefused(f"{where}.model_id must be 0x and 64 hex digits")
    if not isinstance(root_digest, str) or not _HEX32.match(root_digest):
        raise InventoryRefused(f"{where}.root_digest must be 0x and 64 hex digits")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**32:
        raise InventoryRefused(f"{where}.version must be a version number (1 or more)")
    if status not in _STATUSES:
        raise InventoryRefused(f"{where}.status must be `installed` or `quarantined`")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InventoryRefused(f"{where}.reason must be text of at most 500 characters")
    return InventoryEntry(repo_id, model_id.lower(), version, root_digest.lower(), status, reason)
