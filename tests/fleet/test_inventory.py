"""A device's signed inventory: checked, bounded, stored as rows; the Fleet page flags a revoked
or outdated version in red (class and words); a vendor sees device counts per version only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fleet.models import Device, DeviceModel
from marketplace import services

from .conftest import bearer, sign_text

pytestmark = pytest.mark.django_db


def _inventory(device, version, *, models=None, reported_at=None):
    entry = {
        "repo_id": "acme/tiny", "model_id": version.model.chain_model_id, "version": version.number,
        "root_digest": "0x" + version.root_digest.removeprefix("0x"), "status": "installed", "reason": "",
    }
    return {
        "device": device.address,
        "reported_at": reported_at or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "models": [entry] if models is None else models,
    }


def _canonical(inventory) -> str:
    return json.dumps(inventory, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def report(client, device, inventory, *, key=None, token=None, address=None):
    body = {"inventory": inventory, "signature": sign_text(key or device.key, _canonical(inventory))}
    return client.post(
        f"/api/v1/devices/{address or device.address}/inventory", data=json.dumps(body), content_type="application/json",
        **bearer(token or device.token),
    )


@pytest.fixture
def buyer(chain, make_party):
    return make_party("buyer", chain.keys[2])


def test_a_signed_inventory_is_stored_and_revoked_versions_are_named(chain, client, live_version, buyer, enrol):
    device = enrol(buyer)
    answer = report(client, device, _inventory(device, live_version))
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"received": 1, "outdated": [], "revoked": []}
    row = DeviceModel.objects.get()
    assert (row.repo_id, row.version, row.status) == ("acme/tiny", 1, "installed")

    services.version_mark_revoked(model=live_version.model, number=1, reason="0x" + "00" * 32)  # what VersionRevoked does
    answer = report(client, device, _inventory(device, live_version))
    assert answer.json()["revoked"] == [{"repo_id": "acme/tiny", "model_id": live_version.model.chain_model_id, "version": 1}]
    assert DeviceModel.objects.count() == 1  # replaced, not added


def test_an_inventory_not_signed_by_the_device_or_not_its_own_is_refused(client, live_version, buyer, enrol, make_party):
    device, other = enrol(buyer, "edge-1"), enrol(buyer, "edge-2")
    answer = report(client, device, _inventory(device, live_version), key=other.key)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_signature")
    answer = report(client, device, _inventory(device, live_version), token=other.token)  # another device's token
    assert (answer.status_code, answer.json()["code"]) == (403, "device_token_not_allowed")
    answer = report(client, device, _inventory(device, live_version), token=buyer.token)  # the owner is not a device
    assert (answer.status_code, answer.json()["code"]) == (403, "device_token_required")
    wrong_device = {**_inventory(device, live_version), "device": other.address}
    answer = report(client, device, wrong_device)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_inventory")
    assert DeviceModel.objects.count() == 0


def test_oversized_and_overlong_inventories_are_refused_before_they_are_read(client, live_version, buyer, enrol):
    device = enrol(buyer)
    entry = _inventory(device, live_version)["models"][0]
    too_many = _inventory(device, live_version, models=[entry] * 1001)
    answer = report(client, device, too_many)
    assert (answer.status_code, answer.json()["code"]) == (413, "inventory_too_large")
    huge = _inventory(device, live_version, models=[{**entry, "reason": "x" * 300_000}])
    answer = report(client, device, huge)
    assert (answer.status_code, answer.json()["code"]) == (413, "inventory_too_large")
    nested = client.post(f"/api/v1/devices/{device.address}/inventory", data="[" * 200_000, content_type="application/json", **bearer(device.token))
    assert (nested.status_code, nested.json()["code"]) == (400, "invalid_inventory")
    assert DeviceModel.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("repo_id", "../../etc"), ("model_id", "0x1234"), ("root_digest", "zz" * 32), ("version", 0), ("version", "1"),
     ("status", "deleted"), ("reason", "r" * 501)],
)
def test_every_field_of_an_entry_is_checked(client, live_version, buyer, enrol, field, value):
    device = enrol(buyer)
    inventory = _inventory(device, live_version)
    inventory["models"][0][field] = value
    answer = report(client, device, inventory)
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_inventory")
    assert field in answer.json()["message"]


def test_an_older_inventory_cannot_replace_a_newer_one(client, live_version, buyer, enrol):
    device = enrol(buyer)
    now = datetime.now(UTC)
    assert report(client, device, _inventory(device, live_version, reported_at=now.isoformat())).status_code == 200
    older = _inventory(device, live_version, models=[], reported_at=(now - timedelta(minutes=5)).isoformat())
    answer = report(client, device, older)
    assert (answer.status_code, answer.json()["code"]) == (409, "inventory_stale")
    assert DeviceModel.objects.count() == 1


def test_the_fleet_page_flags_a_revoked_version_in_words_and_colour(chain, client, live_version, buyer, enrol):
    device = enrol(buyer, "shelf-camera-3")
    assert report(client, device, _inventory(device, live_version)).status_code == 200
    client.force_login(buyer.user)
    page = client.get("/portal/fleet").content.decode()
    assert "shelf-camera-3" in page and device.address in page and "acme/tiny" in page
    assert "revoked by its vendor" not in page

    services.version_mark_revoked(model=live_version.model, number=1, reason="0x" + "00" * 32)
    page = client.get("/portal/fleet").content.decode()
    assert 'class="flagged"' in page
    assert '<span class="badge badge-revoked version-revoked">revoked by its vendor</span>' in page


def test_the_fleet_page_shows_only_the_owners_devices_and_removes_one(chain, client, live_version, buyer, enrol, make_party):
    device = enrol(buyer, "mine")
    stranger = make_party("stranger", chain.keys[3])
    enrol(stranger, "theirs")
    client.force_login(buyer.user)
    page = client.get("/portal/fleet").content.decode()
    assert "mine" in page and "theirs" not in page
    assert client.post(f"/portal/fleet/{device.address}/remove").status_code == 302
    assert Device.objects.get(address=device.address).revoked_at is not None
    other = Device.objects.get(name="theirs")
    assert client.post(f"/portal/fleet/{other.address}/remove").status_code == 404


def test_a_vendor_sees_how_many_devices_run_each_version_never_whose(chain, client, vendor, live_version, buyer, enrol):
    devices = [enrol(buyer, f"secret-edge-{n}") for n in range(2)]
    for device in devices:
        assert report(client, device, _inventory(device, live_version)).status_code == 200
    client.force_login(vendor.user)
    page = client.get("/portal/models/tiny").content.decode()
    assert "Devices running it" in page
    assert "<tr><td>v1</td><td>2</td><td>0</td></tr>" in page
    for device in devices:
        assert device.address not in page and device.address.lower() not in page
    assert "secret-edge" not in page
