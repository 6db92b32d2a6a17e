"""License checks: the mirror first, the chain on a miss (seconds after purchase), fail closed."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from hallmark import eip712
from marketplace import services
from registry import chain as chain_module
from royalties.models import License
from royalties.services import LicenseCheckUnavailable, license_check
from tests.conftest import free_port, purchase, reset_chain_caches

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(chain, make_party):
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    model = services.model_create(vendor=vendor.vendor, slug="timed", price_wei=5 * 10**14, license_duration=3600)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    return services.model_anchor(model_id=model.pk)


def test_a_purchase_is_seen_on_the_next_check_and_mirrored_with_its_expiry(chain, model):
    buyer = chain.account(4).address
    assert not license_check(model_id=model.chain_model_id, wallets=[buyer]).granted
    receipt = purchase(chain, model.chain_model_id, chain.keys[4])
    decision = license_check(model_id=model.chain_model_id, wallets=[buyer])
    assert decision.granted and decision.source == "chain" and not decision.perpetual
    mirrored = License.objects.get(licensee=buyer)
    # an hour from the purchase's block (the chain's clock, which may lag this machine's)
    mined_at = chain_module.web3().eth.get_block(receipt["blockNumber"])["timestamp"]
    assert mirrored.expires_at == datetime.fromtimestamp(mined_at + 3600, tz=UTC)
    assert license_check(model_id=model.chain_model_id, wallets=[buyer]).source == "mirror"


def test_an_expired_mirror_entry_is_not_trusted(chain, settings, model):
    buyer = chain.account(4).address
    License.objects.create(model_id=model.chain_model_id, licensee=buyer, expires_at=timezone.now() - timedelta(seconds=1))
    assert not license_check(model_id=model.chain_model_id, wallets=[buyer]).granted  # chain says none
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    with pytest.raises(LicenseCheckUnavailable):
        license_check(model_id=model.chain_model_id, wallets=[buyer])


def test_no_wallets_means_no_licence_without_asking_the_chain(chain, model):
    assert not license_check(model_id=model.chain_model_id, wallets=[]).granted


def test_the_apis_purchase_transaction_states_the_shortest_licence_the_buyer_accepts(chain, settings, model):
    from rest_framework.test import APIClient

    buyer = chain.account(4).address
    offer = APIClient().get(f"/api/v1/models/acme/timed/purchase?licensee={buyer}").json()
    assert offer["min_expires_at"] == offer["expires_at"] - settings.LICENSE_EXPIRY_SLACK_SECONDS
    function, args = chain_module.registry_contract().decode_function_input(offer["transaction"]["data"])
    assert function.abi_element_identifier == "purchaseLicense(bytes32,address,uint256,uint64)"
    assert args["minExpiresAt"] == offer["min_expires_at"] and args["maxPrice"] == 5 * 10**14
