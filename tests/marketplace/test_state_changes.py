"""State changes the chain takes back: a reorg that removes a publication, a registration or an
adopted version undoes it through its one writer (marketplace/services/states.py), with its side
effects: the outbox row and the anchor task queued again, the catalog and the cache generation
follow, and the relayer then makes it live again."""

import json

import pytest
import redis
from hexbytes import HexBytes

from hallmark import eip712
from marketplace import services
from marketplace.models import Model, Version
from registry import chain as chain_mod
from registry.indexer import indexer_run
from registry.models import CacheGeneration, ChainTransaction
from tests.conftest import publish_version
from tests.registry.kit import Registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(chain, settings, celery_app_configured):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    celery_app_configured.control.purge()  # only the tasks this test queues are on the queue
    return chain


def generation() -> int:
    return CacheGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


def queued_tasks(app) -> list[tuple[str, str]]:
    """(task name, args) of what waits on this session's queue in the real Redis broker."""
    messages = redis.Redis.from_url(app.conf.broker_url).lrange(app.conf.task_default_queue, 0, -1)
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in map(json.loads, messages)]


def reorg_from(anvil, block: int) -> None:
    """Replace every block from `block` to the head with empty ones."""
    anvil.rpc("anvil_reorg", [chain_mod.web3().eth.block_number - block + 1, []])


def test_a_reorg_that_removes_a_relayed_publication_queues_it_again_and_the_relayer_makes_it_live_again(
    indexed, vendor, live_version, gguf_file, celery_app_configured, django_capture_on_commit_callbacks
):
    model = live_version.model
    v2 = publish_version(vendor, model, {"model.gguf": gguf_file.read_bytes()[:-1] + b"\x01"})
    indexer_run()
    assert Model.objects.get(pk=model.pk).latest_version_number == 2

    reorg_from(indexed, v2.published_block)
    before = generation()
    with django_capture_on_commit_callbacks(execute=True):
        assert indexer_run().rolled_back_to is not None
    back = Version.objects.get(pk=v2.pk)
    assert back.status == Version.Status.PENDING_CHAIN and back.number == 2 and back.published_block is None
    assert ChainTransaction.objects.get(pk=back.publish_transaction_id).status == ChainTransaction.Status.SIGNED
    assert ("marketplace.version_anchor", f"({v2.pk},)") in queued_tasks(celery_app_configured)
    assert Model.objects.get(pk=model.pk).latest_version_number == 1  # the catalog no longer names v2
    assert generation() > before

    before = generation()
    with django_capture_on_commit_callbacks(execute=True):
        again = services.version_anchor(version_id=v2.pk)  # what the queued task runs
    assert again.status == Version.Status.LIVE and again.number == 2 and again.published_block
    assert Model.objects.get(pk=model.pk).latest_version_number == 2
    assert generation() > before


def test_a_reorg_that_removes_a_relayed_registration_queues_it_again_and_the_relayer_registers_it_again(
    indexed, vendor, celery_app_configured, django_capture_on_commit_callbacks
):
    model = services.model_create(vendor=vendor.vendor, slug="fresh", price_wei=10**15)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    model = services.model_anchor(model_id=model.pk)
    assert model.status == Model.Status.LIVE
    indexer_run()

    reorg_from(indexed, ChainTransaction.objects.get(pk=model.create_transaction_id).block_number)
    with django_capture_on_commit_callbacks(execute=True):
        assert indexer_run().rolled_back_to is not None
    assert Model.objects.get(pk=model.pk).status == Model.Status.PENDING_CHAIN
    assert ("marketplace.model_anchor", f"({model.pk},)") in queued_tasks(celery_app_configured)

    assert services.model_anchor(model_id=model.pk).status == Model.Status.LIVE
    tx = ChainTransaction.objects.get(pk=model.create_transaction_id)  # registered on chain again
    assert tx.status == ChainTransaction.Status.CONFIRMED and chain_mod.web3().eth.get_transaction_receipt(tx.tx_hash)["status"] == 1


def test_a_reorg_that_removes_a_publication_made_elsewhere_forgets_the_adopted_version(
    indexed, vendor, live_version, django_capture_on_commit_callbacks
):
    model = live_version.model
    receipt = Registry(indexed).send(
        chain_mod.registry_contract().functions.publishVersion(HexBytes(model.chain_model_id), b"\x11" * 32, b"\x22" * 32),
        vendor.address,
    )
    indexer_run()
    adopted = model.versions.get(number=2)
    assert adopted.adopted and adopted.status == Version.Status.LIVE

    reorg_from(indexed, receipt["blockNumber"])
    before = generation()
    with django_capture_on_commit_callbacks(execute=True):
        assert indexer_run().rolled_back_to is not None
    assert not Version.objects.filter(pk=adopted.pk).exists()
    assert Version.objects.get(pk=live_version.pk).status == Version.Status.LIVE  # ours is untouched
    assert generation() > before
