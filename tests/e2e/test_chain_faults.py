"""Faults on the way to the chain, through real workers: the chain down while a version is
published, and a worker killed (SIGKILL) while it waits for the receipt. Nothing is lost and
nothing is sent twice."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from hallmark import eip712
from marketplace import services
from marketplace.models import Version
from registry.models import ChainTransaction
from registry.services import registry_deploy
from tests.conftest import free_port, reset_chain_caches, rpc, start_anvil, stop_process, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_chain(settings):
    """An anvil of this test's own, which the test may stop and start again."""
    from registry import chain as chain_mod

    port = free_port()
    proc = start_anvil(port)
    url = f"http://127.0.0.1:{port}"
    settings.CHAIN_RPC_URL = url
    reset_chain_caches()
    keys = chain_mod.development_keys()
    record = registry_deploy(rpc_url=url, private_key=keys[0], fee_bps=250, write_record=False)
    settings.REGISTRY_ADDRESS = record["address"]
    state = {"proc": proc, "port": port, "url": url, "keys": keys, "record": record}
    yield state
    stop_process(state["proc"])
    reset_chain_caches()


def awaiting_signature_version(make_party, keys, gguf_file):
    vendor = make_party("vendor", keys[1], vendor_slug="acme")
    model = services.model_create(vendor=vendor.vendor, slug="tiny", price_wei=10**15)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    model = services.model_anchor(model_id=model.pk)
    version = services.version_create(model=model)
    with open(gguf_file, "rb") as fh:
        services.artifact_upload(version=version, path="model.gguf", stream=fh)
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    assert version.status == Version.Status.AWAITING_SIGNATURE
    return vendor, version


def test_a_version_published_while_the_chain_is_down_goes_live_when_it_returns(own_chain, celery_worker, make_party, gguf_file):
    vendor, version = awaiting_signature_version(make_party, own_chain["keys"], gguf_file)
    dump = rpc(own_chain["url"], "anvil_dumpState")
    stop_process(own_chain["proc"])  # the chain goes away

    services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key))
    wait_for(lambda: ChainTransaction.objects.filter(function="publishVersionBySig").exists(), message="outbox row")
    version.refresh_from_db()
    assert version.status == Version.Status.PENDING_CHAIN and version.number == 1

    own_chain["proc"] = start_anvil(own_chain["port"])  # the chain comes back, same state
    rpc(own_chain["url"], "anvil_loadState", [dump])
    reset_chain_caches()
    wait_for(lambda: Version.objects.get(pk=version.pk).status == Version.Status.LIVE, timeout=90, message="version live")
    tx = ChainTransaction.objects.get(function="publishVersionBySig")
    assert tx.status == "confirmed" and tx.block_number


def start_worker_process(queue: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CELERY_TASK_ALWAYS_EAGER="0",
        CHAIN_RPC_URL=settings.CHAIN_RPC_URL,
        REGISTRY_ADDRESS=settings.REGISTRY_ADDRESS,
        CONFIRMATIONS="1",
        RECEIPT_TIMEOUT="120",
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q", queue, "-l", "warning",
         "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_while_waiting_for_the_receipt_loses_nothing_and_sends_once(own_chain, celery_app_configured, make_party, gguf_file):
    assert connection.vendor == "postgresql", "this test needs PostgreSQL (make test sets DATABASE_URL)"
    vendor, version = awaiting_signature_version(make_party, own_chain["keys"], gguf_file)
    rpc(own_chain["url"], "evm_setAutomine", [False])  # transactions now wait in the pool
    queue = celery_app_configured.conf.task_default_queue
    worker = start_worker_process(queue)
    try:
        services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key))
        signed = wait_for(
            lambda: ChainTransaction.objects.filter(function="publishVersionBySig", status="signed").first(),
            timeout=60, message="the worker signed and sent the transaction",
        )
        wait_for(lambda: int(rpc(own_chain["url"], "txpool_status")["pending"], 16) == 1, message="the transaction in the pool")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # killed mid-task: no receipt seen, task never acked
        worker.wait()
    assert Version.objects.get(pk=version.pk).status == Version.Status.PENDING_CHAIN

    rpc(own_chain["url"], "evm_setAutomine", [True])
    rpc(own_chain["url"], "evm_mine")
    worker = start_worker_process(queue)
    try:
        from datetime import timedelta

        assert services.pending_chain_resume(older_than=timedelta(0)) >= 1  # the sweeper re-queues it
        wait_for(lambda: Version.objects.get(pk=version.pk).status == Version.Status.LIVE, timeout=60, message="version live")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    tx = ChainTransaction.objects.get(function="publishVersionBySig")
    assert tx.status == "confirmed" and tx.tx_hash == signed.tx_hash and tx.nonce == signed.nonce
    relayer = own_chain["keys"][0]
    from eth_account import Account

    sent = int(rpc(own_chain["url"], "eth_getTransactionCount", [Account.from_key(relayer).address, "latest"]), 16)
    # + the deployment and the deployer making the relayer (the same key here) a receipt operator
    setup = 2 if own_chain["record"].get("receipt_operator") else 1
    assert sent == ChainTransaction.objects.filter(status="confirmed").exclude(nonce=None).count() + setup
