"""Real-service fixtures: an anvil chain with the contract deployed from the committed artifact,
PostgreSQL (pytest-django, DATABASE_URL), a Celery worker on the real Redis broker, and helpers
that build real things (wallets linked by signature, real GGUF files)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from eth_account import Account

from registry import chain as chain_module

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rpc(url: str, method: str, params: list | None = None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        reply = json.load(response)
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply["result"]


def start_anvil(port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            rpc(url, "eth_chainId")
            return proc
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {proc.returncode}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("anvil did not answer")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset_chain_caches() -> None:
    chain_module._checked_chain_id.cache_clear()
    chain_module._load_relayer.cache_clear()


@dataclass
class Anvil:
    """The session's chain: RPC URL, deployed registry, the development keys."""

    rpc_url: str
    port: int
    address: str
    deploy_block: int
    process: subprocess.Popen
    keys: tuple[str, ...] = field(default_factory=tuple)

    def rpc(self, method: str, params: list | None = None):
        return rpc(self.rpc_url, method, params)

    def account(self, index: int):
        return Account.from_key(self.keys[index])


@pytest.fixture(scope="session")
def anvil(tmp_path_factory):
    """A fresh anvil for the test session with ModelRegistry deployed from the committed artifact."""
    from registry.services import registry_deploy

    port = free_port()
    proc = start_anvil(port)
    url = f"http://127.0.0.1:{port}"
    deployments = tmp_path_factory.mktemp("deployments")
    saved = {k: getattr(settings, k) for k in ("CHAIN_RPC_URL", "CHAIN_ID", "REGISTRY_ADDRESS", "DEPLOYMENTS_DIR", "CONFIRMATIONS", "RECEIPT_TIMEOUT")}
    settings.CHAIN_RPC_URL = url
    settings.CHAIN_ID = 31337
    settings.DEPLOYMENTS_DIR = deployments
    settings.CONFIRMATIONS = 1
    settings.RECEIPT_TIMEOUT = 30
    reset_chain_caches()
    keys = chain_module.development_keys()
    record = registry_deploy(rpc_url=url, private_key=keys[0], fee_bps=250, fee_recipient=Account.from_key(keys[9]).address)
    settings.REGISTRY_ADDRESS = record["address"]
    node = Anvil(url, port, record["address"], record["block_number"], proc, keys)
    yield node
    stop_process(node.process)
    for key, value in saved.items():
        setattr(settings, key, value)
    reset_chain_caches()


@pytest.fixture
def chain(anvil):
    """The session chain, rolled back after the test (evm_snapshot / evm_revert)."""
    snapshot = anvil.rpc("evm_snapshot")
    reset_chain_caches()
    yield anvil
    anvil.rpc("evm_revert", [snapshot])
    settings.CHAIN_RPC_URL = anvil.rpc_url
    reset_chain_caches()


@pytest.fixture(autouse=True)
def _hot_caches(settings):
    """Each test starts with empty process-local caches: its database rows are new (and the
    previous test's were rolled back, which bumps nothing). Tests act faster than people: a
    change made by the Celery worker is looked for on every request, not once a second
    (tests/marketplace/test_hot_cache.py sets the interval it needs)."""
    from registry.caching import clear_local

    settings.HOT_CACHE_CHECK_SECONDS = 0
    clear_local()
    yield
    clear_local()


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    # the suite makes many requests from one address; the rate-limit test lowers these itself
    settings.API_RATE_LIMIT = "1000000/min"
    settings.DOWNLOAD_RATE_LIMIT = "1000000/min"
    yield


@pytest.fixture
def chain_down(chain, settings):
    """Point the marketplace at an RPC port where nothing listens: the chain is unreachable."""
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    yield chain
    settings.CHAIN_RPC_URL = chain.rpc_url
    reset_chain_caches()


@pytest.fixture(scope="session", autouse=True)
def celery_app_configured():
    """Route every task of this session to a queue of its own, before any task is sent: Celery
    fixes a producer's default queue the first time it publishes."""
    from config.celery import app

    queue = f"hallmark-test-{uuid.uuid4().hex[:8]}"
    app.conf.update(
        broker_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        task_always_eager=False,
        task_default_queue=queue,
        task_ignore_result=True,
        result_backend=None,
        worker_hijack_root_logger=False,
    )
    return app


@pytest.fixture
def celery_worker(celery_app_configured, transactional_db):
    """A real Celery worker (thread in this process) consuming the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    celery_app_configured.control.purge()  # tasks earlier tests queued for rows that are gone now
    with start_worker(
        celery_app_configured, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=15
    ) as worker:
        yield worker


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# ---------------------------------------------------------------------------------- builders


SIWE_DOMAIN = "hallmark.test"


def siwe_login(private_key: str, user=None, domain: str = SIWE_DOMAIN):
    """Sign in with Ethereum through the real service: a fresh nonce, a signed EIP-4361 message."""
    from hallmark.siwe import sign_message, siwe_message
    from marketplace import services

    nonce = services.siwe_nonce_create().nonce
    text = siwe_message(domain=domain, address=Account.from_key(private_key).address, uri=f"https://{domain}", chain_id=31337, nonce=nonce)
    return services.siwe_sign_in(message=text, signature=sign_message(text, private_key), domain=domain, user=user)


def link_wallet(user, private_key: str):
    return siwe_login(private_key, user=user)[1]


@dataclass
class Party:
    user: object
    key: str
    address: str
    token: str
    vendor: object | None = None


@pytest.fixture
def make_party(django_user_model):
    """Build a user with a linked wallet (dev key `index`), an API token and optionally a vendor profile."""
    from marketplace import services

    def build(name: str, key: str, *, vendor_slug: str | None = None) -> Party:
        user = django_user_model.objects.create_user(username=name, password=None)
        link_wallet(user, key)
        address = Account.from_key(key).address
        vendor = services.vendor_register(user=user, slug=vendor_slug, address=address) if vendor_slug else None
        _, token = services.api_token_create(user=user, name="test")
        return Party(user, key, address, token, vendor)

    return build


@pytest.fixture
def gguf_file(tmp_path):
    from marketplace.demo import write_demo_gguf

    return Path(write_demo_gguf(tmp_path / "model.gguf"))


def purchase(anvil: Anvil, model_id: str, buyer_key: str, *, value: int | None = None):
    """The buyer's own wallet pays `purchaseLicense` (as a wallet would, outside the marketplace)."""
    contract = chain_module.registry_contract()
    w3 = chain_module.web3()
    buyer = Account.from_key(buyer_key)
    raw_id = chain_module.to_bytes32(model_id)
    price = chain_module.model_on_chain(raw_id, contract=contract).price_wei
    tx = contract.functions.purchaseLicense(raw_id, buyer.address, price).build_transaction(
        {"from": buyer.address, "value": price if value is None else value, "nonce": w3.eth.get_transaction_count(buyer.address)}
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    return receipt




# ------------------------------------------------------------------------ published models


@pytest.fixture
def vendor(chain, make_party):
    return make_party("vendor", chain.keys[1], vendor_slug="acme")


@pytest.fixture
def live_version(chain, vendor, gguf_file):
    """acme/tiny v1: one real GGUF file, published through the services, relayed synchronously."""
    from marketplace.models import Version

    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    assert version.status == Version.Status.LIVE
    return version


def _services():
    from marketplace import services

    return services


def publish(party, slug, files, *, price=10**15, duration=0, parent=None, bps=0, description=""):
    """Create, sign, relay, upload, hash, sign and relay a model version through the services."""

    from hallmark import eip712

    services = _services()
    model = services.model_create(
        vendor=party.vendor, slug=slug, price_wei=price, license_duration=duration, parent=parent, upstream_bps=bps, description=description
    )
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, party.key))
    model = services.model_anchor(model_id=model.pk)
    return publish_version(party, model, files)


def publish_version(party, model, files):
    """A new version of an anchored model: upload, hash, sign and relay it through the services."""
    import io

    from hallmark import eip712

    services = _services()
    version = services.version_create(model=model)
    for name, data in files.items():
        services.artifact_upload(version=version, path=name, stream=io.BytesIO(data))
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, party.key))
    return services.version_anchor(version_id=version.pk)
