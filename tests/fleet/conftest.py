"""Edge devices on the real stack: keys made like `hallmark device init` makes them, challenges
signed with EIP-191, the API through the Django test client."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct


def sign_text(key: str, text: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), private_key=key).signature).hex()


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post(client, url: str, body: dict, token: str | None = None):
    return client.post(url, data=json.dumps(body), content_type="application/json", **(bearer(token) if token else {}))


def challenge(client, address: str, purpose: str) -> str:
    answer = post(client, "/api/v1/devices/challenge", {"address": address, "purpose": purpose})
    assert answer.status_code == 200, answer.content
    return answer.json()["message"]


@dataclass
class EdgeDevice:
    key: str
    address: str
    token: str = ""


def new_device() -> EdgeDevice:
    account = Account.create()
    return EdgeDevice(account.key.hex(), account.address)


def register(client, owner_token: str, device: EdgeDevice, name: str = "edge-1"):
    message = challenge(client, device.address, "register")
    return post(client, "/api/v1/devices", {
        "address": device.address, "name": name, "message": message, "signature": sign_text(device.key, message),
    }, owner_token)


def device_token(client, device: EdgeDevice):
    message = challenge(client, device.address, "token")
    return post(client, "/api/v1/devices/token", {"address": device.address, "message": message, "signature": sign_text(device.key, message)})


@pytest.fixture(autouse=True)
def _device_auth_rate(settings):
    """The suite asks for many challenges from one address (the limit's own test lowers it)."""
    settings.DEVICE_AUTH_RATE_LIMIT = "1000000/min"


@pytest.fixture
def enrol(client):
    """Register a new device for `owner` and give it a token: what `hallmark device register` and
    the first `hallmark pull` do."""

    def build(owner, name: str = "edge-1") -> EdgeDevice:
        device = new_device()
        assert register(client, owner.token, device, name).status_code == 201
        answer = device_token(client, device)
        assert answer.status_code == 200, answer.content
        device.token = answer.json()["token"]
        return device

    return build
