"""The download hot path's process-local caches (registry/caching.py): a warm HEAD asks the
database nothing, and every change that could make a cached answer wrong is seen in time."""

import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from eth_utils import keccak
from rest_framework.test import APIClient

from marketplace import services
from marketplace.models import ApiToken, Wallet
from registry.chain import to_bytes32
from registry.indexer import indexer_run
from registry.models import CacheGeneration
from royalties.models import License
from tests.conftest import publish_version, purchase
from tests.registry.kit import Registry

pytestmark = pytest.mark.django_db
URL = "/acme/tiny/resolve/main/model.gguf"


@pytest.fixture
def buyer(chain, settings, live_version, make_party):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    party = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, party.key)
    indexer_run()  # the licence is mirrored
    return party


def client_for(party) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {party.token}")
    return client


def another_process_bumps() -> None:
    """What cache_generation_bump does in another process once its change is committed."""
    if not CacheGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        CacheGeneration.objects.create(pk=1, value=1)


def test_a_warm_authorized_head_asks_the_database_nothing(buyer, settings, django_assert_num_queries):
    settings.HOT_CACHE_CHECK_SECONDS = 3600
    client = client_for(buyer)
    first = client.head(URL)
    assert first.status_code == 200
    with django_assert_num_queries(0):
        again = client.head(URL)
    assert again.status_code == 200 and again["ETag"] == first["ETag"] and again["X-Repo-Commit"] == first["X-Repo-Commit"]
    settings.HOT_CACHE_SECONDS = 0  # off: the same request reads token, file and licence again
    with django_assert_num_queries(3):
        assert client.head(URL).status_code == 200


def test_a_token_revoked_here_is_refused_at_once(buyer, settings):
    settings.HOT_CACHE_CHECK_SECONDS = 3600  # this process made the change: it needs no check
    client = client_for(buyer)
    assert client.head(URL).status_code == 200
    token = ApiToken.objects.get(user=buyer.user)
    response = client.delete(f"/api/v1/auth/tokens/{token.prefix}")
    assert response.status_code == 204
    refused = client.head(URL)
    assert refused.status_code == 401


def test_a_token_revoked_by_another_process_is_refused_after_its_generation_check(buyer, settings):
    settings.HOT_CACHE_CHECK_SECONDS = 3600
    client = client_for(buyer)
    assert client.head(URL).status_code == 200
    # another process revokes the token (no signal here) and bumps the shared generation
    ApiToken.objects.filter(user=buyer.user).update(revoked_at=timezone.now())
    another_process_bumps()
    assert client.head(URL).status_code == 200  # this process has not looked yet: the cache answers
    settings.HOT_CACHE_CHECK_SECONDS = 0  # it looks now
    assert client.head(URL).status_code == 401


def test_without_a_bump_an_entry_still_ends_at_hot_cache_seconds(buyer, settings):
    settings.HOT_CACHE_SECONDS = 0.5
    client = client_for(buyer)
    assert client.head(URL).status_code == 200
    ApiToken.objects.filter(user=buyer.user).update(revoked_at=timezone.now())  # nothing bumped
    time.sleep(0.6)
    assert client.head(URL).status_code == 401


def test_the_bump_is_committed_after_the_change(buyer, django_capture_on_commit_callbacks):
    before = CacheGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.api_token_revoke(token=ApiToken.objects.get(user=buyer.user))
    assert callbacks and CacheGeneration.objects.get(pk=1).value == before + 1


def test_a_cached_main_moves_to_a_new_version_and_a_revoked_one_is_gone(chain, buyer, vendor, live_version, gguf_file, settings):
    settings.HOT_CACHE_CHECK_SECONDS = 3600  # this process made the change: it needs no check
    client = client_for(buyer)
    first = client.head(URL)
    assert first.status_code == 200 and client.head("/acme/tiny/resolve/v1/model.gguf").status_code == 200
    v2 = publish_version(vendor, live_version.model, {"model.gguf": gguf_file.read_bytes()[:-1] + b"\x01"})  # relayed: live
    moved = client.head(URL)
    assert moved.status_code == 200 and moved["X-Repo-Commit"] == v2.commit_sha != first["X-Repo-Commit"]
    reg = Registry(chain)
    reg.send(reg.f.revokeVersion(to_bytes32(live_version.model.chain_model_id), 1, keccak(text="bad")), vendor.address)
    indexer_run()
    gone = client.head("/acme/tiny/resolve/v1/model.gguf")
    assert gone.status_code == 410


def test_a_cached_grant_never_outlives_the_licence(chain, settings, live_version, make_party):
    """A licence mirrored to expire in a second (and none on chain): granted now, refused after."""
    settings.HOT_CACHE_SECONDS = 60
    settings.HOT_CACHE_CHECK_SECONDS = 3600
    party = make_party("short", chain.keys[4])
    License.objects.create(model_id=live_version.model.chain_model_id.lower(), licensee=party.address,
                           expires_at=timezone.now() + timedelta(seconds=1), perpetual=False, source=License.Source.CHAIN_READ)
    client = client_for(party)
    assert client.head(URL).status_code == 200
    time.sleep(1.2)
    refused = client.head(URL)
    assert refused.status_code == 403 and refused["X-Error-Code"] == "GatedRepo"


def test_a_refusal_is_not_cached_so_a_purchase_works_at_once(chain, live_version, make_party):
    party = make_party("late", chain.keys[5])
    client = client_for(party)
    assert client.head(URL).status_code == 403
    purchase(chain, live_version.model.chain_model_id, party.key)  # not indexed: read from the chain
    assert client.head(URL).status_code == 200


def test_a_wallet_unlinked_takes_its_licence_with_it(buyer, settings):
    settings.HOT_CACHE_CHECK_SECONDS = 3600  # this process made the change: it needs no check
    client = client_for(buyer)
    assert client.head(URL).status_code == 200
    Wallet.objects.filter(user=buyer.user).delete()
    assert client.head(URL).status_code == 403
