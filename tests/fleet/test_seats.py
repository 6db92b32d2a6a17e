"""Devices download with their own tokens, on their owner's licence seats: one seat per device
and model, taken on the first download, refused past the seats held, freed by removing a device."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection
from eth_account import Account
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from fleet.errors import SeatLimit
from fleet.models import Device, Seat
from fleet.services import seat_ensure
from marketplace.models import Download
from marketplace.selectors import wallet_addresses
from registry import chain as chain_module
from royalties.services import license_check
from tests.conftest import purchase

from .conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)

RESOLVE = "/acme/tiny/resolve/main/model.gguf"


def purchase_seats(model_id: str, buyer_key: str, seats: int):
    """The buyer's wallet pays `purchaseLicenseSeats` for `seats` devices (price x seats)."""
    contract, w3 = chain_module.registry_contract(), chain_module.web3()
    buyer = Account.from_key(buyer_key)
    raw_id = chain_module.to_bytes32(model_id)
    price = chain_module.model_on_chain(raw_id, contract=contract).price_wei * seats
    tx = contract.functions.purchaseLicenseSeats(raw_id, buyer.address, seats, price, 0).build_transaction(
        {"from": buyer.address, "value": price, "nonce": w3.eth.get_transaction_count(buyer.address)}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def test_a_device_pulls_with_huggingface_hub_and_the_download_names_it(chain, live_server, live_version, make_party, enrol, gguf_file, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    device = enrol(buyer)

    path = hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=device.token, cache_dir=tmp_path)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == hashlib.sha256(gguf_file.read_bytes()).hexdigest()

    download = Download.objects.get(method="GET", status_code=200)
    assert download.device.address == device.address
    assert download.user == buyer.user and download.token is None  # the device's token, not an API token
    assert list(Seat.objects.values_list("device__address", "model_id")) == [(device.address, live_version.model.chain_model_id)]


def test_past_the_seats_held_a_device_is_refused_until_another_is_removed(chain, client, live_version, make_party, enrol):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)  # one seat
    first, second = enrol(buyer, "edge-1"), enrol(buyer, "edge-2")

    assert client.head(RESOLVE, **bearer(first.token)).status_code == 200  # a HEAD takes no seat
    assert Seat.objects.count() == 0
    assert client.get(RESOLVE, **bearer(first.token)).status_code == 200
    assert client.get(RESOLVE, **bearer(first.token)).status_code == 200  # its seat, again

    for method in (client.get, client.head):
        refused = method(RESOLVE, **bearer(second.token))
        assert refused.status_code == 403
        assert refused["X-Error-Code"] == "seat_limit"
    message = client.get(RESOLVE, **bearer(second.token)).json()["message"]
    assert message == "1 seats held for acme/tiny, 1 in use by other devices: remove a device or buy more seats"
    refused_row = Download.objects.filter(device__address=second.address, error_code="seat_limit").first()
    assert refused_row is not None and refused_row.status_code == 403
    # the buyer's own API token (not a device) is not counted against the seats
    assert client.get(RESOLVE, **bearer(buyer.token)).status_code == 200

    assert client.delete(f"/api/v1/devices/{first.address}", **bearer(buyer.token)).status_code == 204
    gone = client.get(RESOLVE, **bearer(first.token))
    assert (gone.status_code, gone["X-Error-Code"]) == (403, "device_revoked")  # at once, no cache keeps it
    assert client.get(RESOLVE, **bearer(second.token)).status_code == 200
    assert list(Seat.objects.values_list("device__address", flat=True)) == [second.address]


def test_seats_bought_together_cover_as_many_devices(chain, client, live_version, make_party, enrol):
    buyer = make_party("buyer", chain.keys[2])
    purchase_seats(live_version.model.chain_model_id, buyer.key, 2)
    devices = [enrol(buyer, f"edge-{n}") for n in range(3)]
    assert [client.get(RESOLVE, **bearer(d.token)).status_code for d in devices] == [200, 200, 403]
    assert "2 seats held for acme/tiny, 2 in use" in client.get(RESOLVE, **bearer(devices[2].token)).json()["message"]


def test_the_vendors_own_devices_need_no_seat(chain, client, vendor, live_version, enrol):
    device = enrol(vendor)
    assert client.get(RESOLVE, **bearer(device.token)).status_code == 200
    assert Seat.objects.count() == 0


def test_a_device_without_a_licence_is_refused_as_gated(chain, client, live_version, make_party, enrol):
    stranger = make_party("stranger", chain.keys[3])
    answer = client.get(RESOLVE, **bearer(enrol(stranger).token))
    assert (answer.status_code, answer["X-Error-Code"]) == (403, "GatedRepo")


def test_two_devices_racing_for_the_last_seat_take_one_between_them(chain, live_version, make_party, enrol):
    """The owner's row is locked while the seats are counted: whatever the interleaving, exactly
    one of two concurrent first downloads gets the one seat."""
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    assert license_check(model_id=live_version.model.chain_model_id, wallets=list(wallet_addresses(user=buyer.user))).granted  # mirrored now
    enrol(buyer, "edge-1"), enrol(buyer, "edge-2")
    devices = list(Device.objects.order_by("pk"))
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def take(device):
        from django.db import connection as thread_connection

        try:
            start.wait(timeout=30)
            seat_ensure(
                device=device, model_id=live_version.model.chain_model_id, repo_id="acme/tiny",
                licensees=[buyer.address], take=True,
            )
            outcomes.append("seat")
        except SeatLimit:
            outcomes.append("refused")
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=take, args=(device,)) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "seat"]
    assert Seat.objects.count() == 1
    connection.close()


def test_hf_hub_download_past_the_seats_raises_with_the_seat_message(chain, live_server, live_version, make_party, enrol, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    first, second = enrol(buyer, "edge-1"), enrol(buyer, "edge-2")
    hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=first.token, cache_dir=tmp_path / "a")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - huggingface_hub wraps the HEAD's error in its own
        hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=second.token, cache_dir=tmp_path / "b")
    error = caught.value
    while not isinstance(error, HfHubHTTPError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, HfHubHTTPError), repr(caught.value)
    assert error.response.status_code == 403 and error.response.headers["X-Error-Code"] == "seat_limit"
    assert "1 seats held for acme/tiny, 1 in use by other devices" in str(error)
