"""Registering devices (proof of the device key), device tokens, and what a device token may do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.models import Device, DeviceChallenge, DeviceToken

from .conftest import bearer, challenge, device_token, new_device, post, register, sign_text

pytestmark = pytest.mark.django_db

OWNER_KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32


@pytest.fixture
def owner(make_party):
    return make_party("owner", OWNER_KEY)


def test_a_device_registered_with_its_signature_belongs_to_its_owner(client, owner, make_party):
    device = new_device()
    answer = register(client, owner.token, device, "shelf-camera-3")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["address"] == device.address and body["name"] == "shelf-camera-3"
    assert body["revoked"] is False and body["seats"] == []
    assert Device.objects.get(address=device.address).owner == owner.user

    listed = client.get("/api/v1/devices", **bearer(owner.token)).json()["devices"]
    assert [d["address"] for d in listed] == [device.address]
    stranger = make_party("stranger", OTHER_KEY)
    assert client.get("/api/v1/devices", **bearer(stranger.token)).json()["devices"] == []
    assert client.delete(f"/api/v1/devices/{device.address}", **bearer(stranger.token)).json()["code"] == "device_not_found"


def test_the_challenge_names_the_purpose_the_address_and_a_nonce(client):
    device = new_device()
    message = challenge(client, device.address.lower(), "register")
    lines = message.splitlines()
    assert lines[0] == "Hallmark device register"
    assert f"Address: {device.address}" in lines  # checksummed
    assert any(line.startswith("Nonce: ") for line in lines) and any(line.startswith("Expires At: ") for line in lines)
    bad = post(client, "/api/v1/devices/challenge", {"address": "0x1234", "purpose": "register"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_address"
    assert post(client, "/api/v1/devices/challenge", {"address": device.address, "purpose": "buy"}).status_code == 400


def _register_body(device, message, signature=None, name="edge"):
    return {"address": device.address, "name": name, "message": message, "signature": signature or sign_text(device.key, message)}


def test_a_bad_signature_an_expired_a_reused_or_a_wrong_purpose_challenge_is_refused(client, owner):
    device, impostor = new_device(), new_device()

    message = challenge(client, device.address, "register")
    answer = post(client, "/api/v1/devices", _register_body(device, message, sign_text(impostor.key, message)), owner.token)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_signature")

    token_message = challenge(client, device.address, "token")
    answer = post(client, "/api/v1/devices", _register_body(device, token_message), owner.token)
    assert (answer.status_code, answer.json()["code"]) == (400, "challenge_invalid")

    other_message = challenge(client, impostor.address, "register")  # issued for another address
    answer = post(client, "/api/v1/devices", _register_body(device, other_message, sign_text(device.key, other_message)), owner.token)
    assert answer.json()["code"] == "challenge_invalid"

    forged = message.replace("Hallmark device register", "Hallmark device register ")  # not the text issued
    assert post(client, "/api/v1/devices", _register_body(device, forged), owner.token).json()["code"] == "challenge_invalid"

    DeviceChallenge.objects.filter(message=message).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = post(client, "/api/v1/devices", _register_body(device, message), owner.token)
    assert (answer.status_code, answer.json()["code"]) == (400, "challenge_expired")

    fresh = challenge(client, device.address, "register")
    assert post(client, "/api/v1/devices", _register_body(device, fresh), owner.token).status_code == 201
    answer = post(client, "/api/v1/devices", _register_body(device, fresh), owner.token)
    assert answer.status_code in (400, 409) and answer.json()["code"] in ("challenge_used", "device_exists")
    assert Device.objects.count() == 1


def test_a_used_challenge_cannot_buy_a_second_token(client, owner, enrol):
    device = new_device()
    assert register(client, owner.token, device).status_code == 201
    message = challenge(client, device.address, "token")
    body = {"address": device.address, "message": message, "signature": sign_text(device.key, message)}
    first = post(client, "/api/v1/devices/token", body)
    assert first.status_code == 200 and first.json()["token"].startswith("hmd_") and first.json()["device"] == device.address
    again = post(client, "/api/v1/devices/token", body)
    assert (again.status_code, again.json()["code"]) == (400, "challenge_used")
    assert DeviceToken.objects.count() == 1
    assert DeviceToken.objects.get().key_hash not in first.content.decode()  # only the hash is kept


def test_an_address_is_registered_once_and_a_removed_one_never_again(client, owner, make_party):
    device = new_device()
    assert register(client, owner.token, device).status_code == 201
    stranger = make_party("stranger", OTHER_KEY)
    answer = register(client, stranger.token, device)
    assert (answer.status_code, answer.json()["code"]) == (409, "device_exists")
    assert client.delete(f"/api/v1/devices/{device.address}", **bearer(owner.token)).status_code == 204
    answer = register(client, owner.token, device)
    assert (answer.status_code, answer.json()["code"]) == (409, "device_revoked")
    listed = client.get("/api/v1/devices", **bearer(owner.token)).json()["devices"]
    assert listed[0]["revoked"] is True  # kept for the record


def test_tokens_for_unknown_and_removed_devices_are_refused(client, owner):
    unknown = new_device()
    answer = device_token(client, unknown)
    assert (answer.status_code, answer.json()["code"]) == (404, "device_not_found")
    device = new_device()
    assert register(client, owner.token, device).status_code == 201
    assert client.delete(f"/api/v1/devices/{device.address}", **bearer(owner.token)).status_code == 204
    answer = device_token(client, device)
    assert (answer.status_code, answer.json()["code"]) == (403, "device_revoked")


def test_registration_needs_the_owner_and_a_printable_name(client, owner):
    device = new_device()
    message = challenge(client, device.address, "register")
    assert post(client, "/api/v1/devices", _register_body(device, message)).status_code in (401, 403)
    answer = post(client, "/api/v1/devices", _register_body(device, message, name="bad\nname"), owner.token)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_name")


def test_a_device_token_lives_an_hour_by_default_and_then_is_refused(client, owner, enrol, settings):
    device = enrol(owner)
    token = DeviceToken.objects.get()
    lifetime = token.expires_at - token.created_at
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)
    me = client.get("/api/v1/devices/me", **bearer(device.token))
    assert me.status_code == 200 and me.json()["address"] == device.address
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()  # as an admin edit would: a saved token drops the cached one
    answer = client.get("/api/v1/devices/me", **bearer(device.token))
    assert (answer.status_code, answer.json()["code"]) == (401, "token_expired")


def test_a_device_token_is_refused_everywhere_but_downloads_and_its_inventory(chain, client, vendor, live_version, make_party, enrol):
    buyer = make_party("buyer", chain.keys[2])
    device = enrol(buyer)
    refused = [
        client.get("/api/v1/models/acme/tiny/purchase", **bearer(device.token)),  # buying
        post(client, "/api/v1/purchases", {"tx_hash": "0x" + "00" * 32}, device.token),
        post(client, "/api/v1/auth/tokens", {"name": "more"}, device.token),  # new tokens
        client.get("/api/v1/auth/tokens", **bearer(device.token)),
        client.get("/api/v1/vendor/models", **bearer(device.token)),  # vendor calls
        client.get("/api/v1/devices", **bearer(device.token)),  # the owner's device management
        register(client, device.token, new_device()),
        client.get("/api/v1/royalties/licenses", **bearer(device.token)),
    ]
    for answer in refused:
        assert answer.status_code == 403, answer.content
        assert answer.json()["code"] == "device_token_not_allowed"
        assert answer["X-Error-Code"] == "device_token_not_allowed"
    # an owner's API token is not a device: /devices/me answers devices only
    answer = client.get("/api/v1/devices/me", **bearer(buyer.token))
    assert (answer.status_code, answer.json()["code"]) == (403, "device_token_required")
    # the Hugging Face model info is allowed
    assert client.get("/api/models/acme/tiny", **bearer(device.token)).status_code == 200


def test_the_unauthenticated_device_endpoints_are_rate_limited_per_address(client, settings):
    from django.core.cache import cache

    settings.DEVICE_AUTH_RATE_LIMIT = "3/min"
    cache.clear()
    device = new_device()
    answers = [post(client, "/api/v1/devices/challenge", {"address": device.address, "purpose": "token"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    limited = post(client, "/api/v1/devices/challenge", {"address": device.address, "purpose": "token"})
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
    assert int(limited["Retry-After"]) > 0
    other = new_device()  # another address from the same client: the same budget
    assert post(client, "/api/v1/devices/token", {"address": other.address, "message": "x", "signature": "0x"}).status_code == 429
