"""Licence seats on the server (issue 16): the mirror follows the event's seats (and its rollback),
`license_seats_held` sums the valid licences of a fleet owner's wallets, the chain-read path reads
`licenseOf`, and the purchase API builds `purchaseLicenseSeats` for the total."""

from datetime import timedelta

import pytest
from django.utils import timezone
from eth_account import Account
from rest_framework.test import APIClient

from marketplace.models import Wallet
from registry import chain as chain_mod
from registry.chain import PERPETUAL, hex0x, to_bytes32
from registry.indexer import indexer_run
from royalties.models import LedgerEntry, License
from royalties.selectors import license_seats_held
from royalties.services import license_check, purchase_confirm
from tests.conftest import publish
from tests.marketplace.test_buyer_api import send_from_wallet

pytestmark = pytest.mark.django_db


def buy_seats(chain, model_id: str, key: str, seats: int, *, licensee: str | None = None) -> dict:
    """The buyer's own wallet pays `purchaseLicenseSeats` at the current price."""
    contract = chain_mod.registry_contract()
    w3 = chain_mod.web3()
    buyer = Account.from_key(key)
    raw_id = to_bytes32(model_id)
    total = chain_mod.model_on_chain(raw_id, contract=contract).price_wei * seats
    tx = contract.functions.purchaseLicenseSeats(raw_id, licensee or buyer.address, seats, total, 0).build_transaction(
        {"from": buyer.address, "value": total, "nonce": w3.eth.get_transaction_count(buyer.address)}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    return receipt


@pytest.fixture
def indexed(chain, settings):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    return chain


@pytest.fixture
def timed(chain, vendor, gguf_file):
    """acme/timed: one hour licences at 0.0005 ETH a seat."""
    return publish(vendor, "timed", {"model.gguf": gguf_file.read_bytes()}, price=5 * 10**14, duration=3600).model


def test_the_indexer_mirrors_the_seats_held_and_a_reorg_puts_them_back(indexed, live_version, make_party):
    buyer = make_party("buyer", indexed.keys[2])
    model_id = live_version.model.chain_model_id  # perpetual
    buy_seats(indexed, model_id, buyer.key, 3)
    indexer_run()
    row = License.objects.get(licensee=buyer.address)
    assert (row.seats, row.perpetual, row.source) == (3, True, "event")

    buy_seats(indexed, model_id, buyer.key, 2)  # a perpetual licence adds them
    indexer_run()
    assert License.objects.get(licensee=buyer.address).seats == 5
    sales = LedgerEntry.objects.filter(kind="purchase", licensee=buyer.address).order_by("block_number")
    assert [(int(e.price_wei), e.memo["seats"]) for e in sales] == [(3 * 10**15, 3), (2 * 10**15, 5)]

    indexed.rpc("anvil_reorg", [1, []])  # the second purchase is gone
    indexer_run()
    assert License.objects.get(licensee=buyer.address).seats == 3


def test_seats_held_sum_the_valid_licences_of_the_wallets_given(chain, make_party):
    model_id, other_model = "0x" + "ab" * 32, "0x" + "cd" * 32
    a, b, c, d = (chain.account(i).address for i in (2, 3, 4, 5))
    now = timezone.now()
    License.objects.create(model_id=model_id, licensee=a, perpetual=True, seats=3)
    License.objects.create(model_id=model_id, licensee=b, expires_at=now + timedelta(hours=1), seats=2)
    License.objects.create(model_id=model_id, licensee=c, expires_at=now - timedelta(seconds=1), seats=7)  # expired
    License.objects.create(model_id=other_model, licensee=a, perpetual=True, seats=4)  # another model
    License.objects.create(model_id=model_id, licensee=d, perpetual=True, seats=11)  # someone else's wallet
    assert license_seats_held(model_id=model_id, licensees=[a, b, c]) == 5
    assert license_seats_held(model_id=model_id.upper().replace("0X", "0x"), licensees=[a.lower()]) == 3
    assert license_seats_held(model_id=model_id, licensees=[c]) == 0
    assert license_seats_held(model_id=model_id, licensees=[]) == 0

    owner = make_party("owner", chain.keys[2])  # wallet a, linked: a queryset of addresses works as a subquery
    Wallet.objects.create(user=owner.user, address=b)
    wallets = Wallet.objects.filter(user=owner.user).values("address")
    assert license_seats_held(model_id=model_id, licensees=wallets) == 5


def test_the_chain_read_path_mirrors_the_seats_and_says_them(chain, timed, make_party):
    buyer = make_party("buyer", chain.keys[4])
    buy_seats(chain, timed.chain_model_id, buyer.key, 4)
    decision = license_check(model_id=timed.chain_model_id, wallets=[buyer.address])
    assert decision.granted and decision.source == "chain" and decision.seats == 4
    assert License.objects.get(licensee=buyer.address).seats == 4
    mirrored = license_check(model_id=timed.chain_model_id, wallets=[buyer.address])
    assert mirrored.source == "mirror" and mirrored.seats == 4


def test_the_purchase_api_builds_the_seats_purchase_for_the_total_and_its_licence_shows_them(chain, timed, make_party):
    buyer = make_party("buyer", chain.keys[2])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    offer = client.get("/api/v1/models/acme/timed/purchase?seats=3").json()
    assert (offer["seats"], offer["seats_held"], offer["seats_after"]) == (3, 0, 3)
    assert offer["price_wei"] == str(15 * 10**14) and offer["unit_price_wei"] == str(5 * 10**14)
    assert int(offer["transaction"]["value"], 16) == 15 * 10**14
    assert sum(int(c["amount_wei"]) for c in offer["royalties"]) == 15 * 10**14
    function, args = chain_mod.registry_contract().decode_function_input(offer["transaction"]["data"])
    assert function.abi_element_identifier == "purchaseLicenseSeats(bytes32,address,uint32,uint256,uint64)"
    assert (args["seats"], args["maxPrice"], args["minExpiresAt"]) == (3, 15 * 10**14, offer["min_expires_at"])

    tx_hash = send_from_wallet(offer["transaction"], buyer.key)
    chain.rpc("evm_mine")
    confirmed = client.post("/api/v1/purchases", {"tx_hash": tx_hash}, format="json").json()
    assert confirmed["status"] == "confirmed" and confirmed["licenses"][0]["seats"] == 3
    assert License.objects.get(licensee=buyer.address).seats == 3

    indexer_run()  # the purchase history comes from the ledger
    licences = client.get("/api/v1/royalties/licenses").json()
    assert [(entry["repo_id"], entry["seats"]) for entry in licences["licenses"]] == [("acme/timed", 3)]
    assert [entry["seats"] for entry in licences["history"]] == [3]
    client.force_login(buyer.user)
    page = client.get("/portal/licences").content.decode()
    assert '<td class="seats">3</td>' in page

    # a renewal must cover the three seats held; more is fine
    below = client.get("/api/v1/models/acme/timed/purchase?seats=2")
    assert below.status_code == 409 and below.json()["code"] == "seats_below_held"
    more = client.get("/api/v1/models/acme/timed/purchase?seats=5").json()
    assert (more["seats_held"], more["seats_after"]) == (3, 5)
    assert more["expires_at"] == int(License.objects.get(licensee=buyer.address).expires_at.timestamp()) + 3600


def test_the_seats_parameter_is_bounded(chain, timed):
    licensee = chain.account(2).address
    for raw in ("0", "10001", "-1", "3.5", "abc", "1" * 40, "٣"):
        answer = APIClient().get(f"/api/v1/models/acme/timed/purchase?licensee={licensee}&seats={raw}")
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_seats", raw
    top = APIClient().get(f"/api/v1/models/acme/timed/purchase?licensee={licensee}&seats=10000").json()
    assert top["price_wei"] == str(10_000 * 5 * 10**14)


def test_a_perpetual_licence_held_gains_seats_only_when_seats_are_asked_for(chain, live_version, make_party):
    buyer = make_party("buyer", chain.keys[2])
    buy_seats(chain, live_version.model.chain_model_id, buyer.key, 1)
    client = APIClient()
    plain = client.get(f"/api/v1/models/acme/tiny/purchase?licensee={buyer.address}")
    assert plain.status_code == 409 and plain.json()["code"] == "already_licensed"  # never charged twice by default
    offer = client.get(f"/api/v1/models/acme/tiny/purchase?licensee={buyer.address}&seats=1").json()
    assert (offer["seats_held"], offer["seats_after"], offer["perpetual"]) == (1, 2, True)
    function, _ = chain_mod.registry_contract().decode_function_input(offer["transaction"]["data"])
    assert function.fn_name == "purchaseLicenseSeats"  # the one-seat overloads refuse a perpetual holder
    receipt = chain_mod.web3().eth.wait_for_transaction_receipt(send_from_wallet(offer["transaction"], buyer.key))
    chain.rpc("evm_mine")
    confirmation = purchase_confirm(tx_hash=hex0x(receipt["transactionHash"]))
    assert confirmation.confirmed and [(lic.seats, lic.perpetual) for lic in confirmation.licenses] == [(2, True)]
    assert chain_mod.registry_contract().functions.licenseOf(to_bytes32(live_version.model.chain_model_id), buyer.address).call() == [PERPETUAL, 2]
