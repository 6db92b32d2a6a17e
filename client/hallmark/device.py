"""This device's identity: a secp256k1 key made here, never sent anywhere, and what it is
registered as (docs/fleet.md).

- `device.key` (0600): the private key, 0x-hex on one line. Made by `hallmark device init`.
- `device.json` (0600): address, the server it is registered with, its name, and the current
  short-lived device token for that server (a bearer secret: never printed).

The device proves possession by signing (EIP-191) a single-use challenge the server wrote; the
same signature scheme signs the inventory reports, so a report cannot be forged by whoever
holds a stolen device token alone.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from . import config
from .api import Api
from .console import CommandError

KEY_FILE = "device.key"
DEVICE_FILE = "device.json"
TOKEN_MARGIN = timedelta(seconds=60)  # refresh a token this long before it expires


def key_path() -> os.PathLike[str]:
    return config.config_dir() / KEY_FILE


def create_key() -> LocalAccount:
    """Make the device key and write it 0600; refuse to replace an existing one (its address may
    be registered: a new key is a new device)."""
    folder = config.ensure_dir()
    path = folder / KEY_FILE
    account: LocalAccount = Account.create()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} exists already: this device has a key (`hallmark device show`)") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(account.key.hex() if account.key.hex().startswith("0x") else "0x" + account.key.hex())
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return account


def load_key() -> LocalAccount:
    path = config.config_dir() / KEY_FILE
    try:
        raw = path.read_text().strip()
    except FileNotFoundError:
        raise CommandError("this device has no key yet: run `hallmark device init`") from None
    try:
        account: LocalAccount = Account.from_key(raw)
    except Exception:  # never echo the file's content
        raise CommandError(f"{path} does not hold a valid device key") from None
    return account


def has_key() -> bool:
    return (config.config_dir() / KEY_FILE).exists()


def state() -> dict[str, Any]:
    return config.read_json(DEVICE_FILE)


def registered_with(endpoint: str | None) -> bool:
    """True when device.json says this device is registered with `endpoint`."""
    data = state()
    return bool(endpoint and data.get("endpoint") and config.normalize_endpoint(data["endpoint"]) == config.normalize_endpoint(endpoint))


def sign_text(account: LocalAccount, text: str) -> str:
    signed = account.sign_message(encode_defunct(text=text))
    sig = signed.signature.hex()
    return sig if sig.startswith("0x") else "0x" + sig


def canonical(value: Any) -> str:
    """The bytes a report's signature covers (docs/api.md)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _challenge(api: Api, address: str, purpose: str) -> str:
    answer = api.post("/api/v1/devices/challenge", json={"address": address, "purpose": purpose})
    message = answer.get("message") if isinstance(answer, dict) else None
    if not isinstance(message, str) or len(message) > 2000:
        raise CommandError("the server's challenge is not a message to sign")
    _check_challenge(message, address, purpose, api.endpoint)
    return message


def _check_challenge(message: str, address: str, purpose: str, endpoint: str) -> None:
    """Sign only a device challenge for this address, purpose and server: a signature over
    anything else (a SIWE login, another device's challenge, a challenge another site wrote and
    this server relays) would be a credential for something else."""
    from .commands.login import _DEFAULT_PORTS, endpoint_authority

    lines = message.splitlines()
    if not lines or lines[0] != f"Hallmark device {purpose}" or f"Address: {address}" not in lines:
        raise CommandError(f"the server asked to sign something that is not a {purpose} challenge for {address}; nothing was signed")
    domain = next((line[len("Domain: "):] for line in lines if line.startswith("Domain: ")), "").lower()
    host = endpoint_authority(endpoint)
    if domain not in (host, f"{host}:{_DEFAULT_PORTS.get(urlsplit(endpoint).scheme.lower())}"):
        raise CommandError(f"refusing to sign: the challenge names the domain {domain[:100]!r}, not {host!r}", 9)


def register(owner: Api, account: LocalAccount, name: str) -> dict[str, Any]:
    """Bind this device to the owner's account (the owner's login token in `owner`)."""
    message = _challenge(owner, account.address, "register")
    body = {"address": account.address, "name": name, "message": message, "signature": sign_text(account, message)}
    device: dict[str, Any] = owner.post("/api/v1/devices", json=body)
    config.write_private(DEVICE_FILE, {
        "address": account.address, "endpoint": owner.endpoint, "name": device.get("name", name),
        "registered_at": device.get("created_at"),
    })
    return device


def fetch_token(endpoint: str, account: LocalAccount) -> dict[str, Any]:
    anonymous = Api(endpoint)
    message = _challenge(anonymous, account.address, "token")
    answer: dict[str, Any] = anonymous.post(
        "/api/v1/devices/token", json={"address": account.address, "message": message, "signature": sign_text(account, message)}
    )
    if not isinstance(answer.get("token"), str):
        raise CommandError("the server gave no device token")
    data = state()
    data["token"] = {"token": answer["token"], "expires_at": answer.get("expires_at")}
    config.write_private(DEVICE_FILE, data)
    return answer


def device_token(endpoint: str) -> str | None:
    """A valid device token for `endpoint` when this device is registered there (cached in
    device.json; a fresh one by challenge when it is missing or about to expire), else None."""
    if not registered_with(endpoint) or not has_key():
        return None
    cached = state().get("token") or {}
    expires = _parse_time(cached.get("expires_at"))
    if cached.get("token") and expires and expires - TOKEN_MARGIN > datetime.now(timezone.utc):
        return str(cached["token"])
    return str(fetch_token(endpoint, load_key())["token"])


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def report(endpoint: str, inventory_body: dict[str, Any]) -> Any:
    """POST the signed inventory with this device's token; the server's answer."""
    account = load_key()
    token = device_token(endpoint)
    if token is None:
        raise CommandError(f"this device is not registered with {endpoint}: run `hallmark device register`")
    signature = sign_text(account, canonical(inventory_body))
    return Api(endpoint, token).post(
        f"/api/v1/devices/{account.address}/inventory", json={"inventory": inventory_body, "signature": signature}
    )
