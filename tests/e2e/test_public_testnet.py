"""The marketplace on a chain like a public testnet: blocks every two seconds, every RPC call
through a faulty proxy of our own (drops, time-outs, HTTP 429, a lagging head for a while) and a
reorg of depth 3. A run of publishes, purchases and downloads through the real HTTP API, a real
Celery worker and the indexer ends with every version live exactly once, every licence mirrored,
ledger = `creditOf` for every payee, and no answer but 2xx/4xx, or 503 with Retry-After."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.db import connection
from eth_account import Account
from web3 import Web3

from hallmark import eip712
from marketplace import services
from marketplace.demo import write_demo_gguf
from marketplace.models import Model, Version
from registry import chain as chain_module
from registry.chain import ChainError
from registry.indexer import indexer_run
from registry.models import ChainTransaction
from registry.services import registry_deploy
from royalties.ledger import ledger_balance
from royalties.models import License
from scripts.faulty_rpc import FaultyRpc
from tests.conftest import free_port, reset_chain_caches, start_anvil, stop_process, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BLOCK_TIME = "2"
CONFIRMATIONS = 2


@pytest.fixture
def testnet(settings):
    """anvil mining a block every 2 s, the registry on it, the app talking to it only through the proxy."""
    port = free_port()
    proc = start_anvil(port, "--block-time", BLOCK_TIME)
    node_url = f"http://127.0.0.1:{port}"
    keys = chain_module.development_keys()
    settings.CHAIN_RPC_URL = node_url
    reset_chain_caches()
    record = registry_deploy(rpc_url=node_url, private_key=keys[0], fee_bps=250, fee_recipient=Account.from_key(keys[9]).address, write_record=False)
    proxy = FaultyRpc(node_url, drop=0.03, timeout=0.01, rate_limit=0.04, hang_seconds=2.0, seed=20261201).start()
    settings.CHAIN_RPC_URL = proxy.url
    settings.CHAIN_RPC_TIMEOUT = 1.0
    settings.REGISTRY_ADDRESS = record["address"]
    settings.REGISTRY_DEPLOY_BLOCK = record["block_number"]
    settings.CONFIRMATIONS = CONFIRMATIONS
    settings.RECEIPT_TIMEOUT = 8
    settings.LICENSE_UNCONFIRMED_GRANT_SECONDS = 0  # an unconfirmed grant is not kept at all: asked again each time
    reset_chain_caches()
    node = Web3(Web3.HTTPProvider(node_url, request_kwargs={"timeout": 30}))
    yield {"proxy": proxy, "node": node, "node_url": node_url, "keys": keys, "address": record["address"]}
    proxy.stop()
    stop_process(proc)
    reset_chain_caches()


class Beat:
    """What Celery beat does in production, in threads: the indexer every second, the sweeper of
    lost tasks every few seconds. Chain faults are shrugged off, as the real tasks do."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._loop, args=(fn, every), daemon=True) for fn, every in (
            (indexer_run, 1.0),
            (lambda: services.pending_chain_resume(older_than=timedelta(seconds=15)), 5.0),
        )]

    def _loop(self, fn, every):
        try:
            while not self.stop.is_set():
                try:
                    fn()
                except ChainError:
                    pass
                except BaseException as exc:  # anything else is a finding
                    self.errors.append(exc)
                self.stop.wait(every)
        finally:
            connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Client:
    """A client that does what a well-behaved one does with a 503: waits Retry-After and tries again.
    Every answer is kept, so the test can say none was a 5xx other than a 503 with Retry-After."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.seen: list[tuple[str, int, str | None]] = []

    def call(self, method: str, path: str, *, expect=(200, 201, 202), attempts: int = 40, **kwargs) -> requests.Response:
        for _ in range(attempts):
            if "data" in kwargs and hasattr(kwargs["data"], "seek"):
                kwargs["data"].seek(0)
            response = self.session.request(method, self.base + path, timeout=60, **kwargs)
            self.seen.append((f"{method} {path}", response.status_code, response.headers.get("Retry-After")))
            if response.status_code == 503 and response.headers.get("Retry-After"):
                time.sleep(min(float(response.headers["Retry-After"]), 2.0))
                continue
            assert response.status_code in expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
            return response
        raise AssertionError(f"{method} {path}: still 503 after {attempts} attempts")

    def wait_status(self, path: str, status: str, timeout: float = 180) -> dict:
        return wait_for(lambda: (v := self.call("GET", path).json())["status"] == status and v, timeout=timeout, interval=0.5, message=f"{path} {status}")


def pay(node: Web3, registry: str, model_id: str, key: str) -> dict:
    """The buyer's own wallet, straight to the node (not through the marketplace or the proxy)."""
    contract = node.eth.contract(address=registry, abi=chain_module.load_artifact()["abi"])
    buyer = Account.from_key(key)
    raw_id = chain_module.to_bytes32(model_id)
    price = chain_module.model_on_chain(raw_id, contract=contract).price_wei
    tx = contract.functions.purchaseLicense(raw_id, buyer.address, price).build_transaction(
        {"from": buyer.address, "value": price, "nonce": node.eth.get_transaction_count(buyer.address, "pending")}
    )
    receipt = node.eth.wait_for_transaction_receipt(node.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction), timeout=60)
    assert receipt["status"] == 1
    return receipt


def test_a_run_on_a_faulty_chain_ends_consistent(testnet, celery_worker, live_server, make_party, tmp_path):
    assert connection.vendor == "postgresql", "this test needs PostgreSQL (make test sets DATABASE_URL)"
    keys, node, proxy = testnet["keys"], testnet["node"], testnet["proxy"]
    vendor = make_party("vendor", keys[1], vendor_slug="acme")
    buyers = [make_party(f"buyer{i}", keys[2 + i]) for i in range(3)]
    api = Client(live_server.url, vendor.token)
    clients = [api]

    def buyer_client(buyer):
        clients.append(Client(live_server.url, buyer.token))
        return clients[-1]

    with Beat() as beat:
        # the model, signed by the vendor and relayed through the faulty proxy
        created = api.call("POST", "/api/v1/vendor/models", json={"slug": "tiny", "price_wei": str(10**15), "license_duration": 0}).json()
        api.call("POST", "/api/v1/vendor/models/tiny/signature", json={"signature": eip712.sign_typed_data(created["typed_data"], vendor.key)})
        api.wait_status("/api/v1/vendor/models/tiny", "live")
        model = Model.objects.get(slug="tiny")

        # three versions, one after the other; a stale head for a while in the middle
        published = []
        for number in (1, 2, 3):
            if number == 2:
                proxy.stale_for(6)
            version_id = api.call("POST", "/api/v1/vendor/models/tiny/versions", expect=(201,)).json()["id"]
            data = open(write_demo_gguf(tmp_path / f"v{number}.gguf", seed=number), "rb").read()  # distinct weights per version
            api.call("PUT", f"/api/v1/vendor/models/tiny/versions/{version_id}/files/model.gguf", data=io.BytesIO(data), expect=(201,))
            api.call("POST", f"/api/v1/vendor/models/tiny/versions/{version_id}/finalize", expect=(202,))
            pending = api.wait_status(f"/api/v1/vendor/models/tiny/versions/{version_id}", "awaiting_signature")
            for _ in range(10):  # a message built while the head lagged may be stale: sign the fresh one
                signed = api.call(
                    "POST", f"/api/v1/vendor/models/tiny/versions/{version_id}/signature",
                    json={"signature": eip712.sign_typed_data(pending["typed_data"], vendor.key)}, expect=(202, 409),
                )
                if signed.status_code == 202:
                    break
                pending = api.call("GET", f"/api/v1/vendor/models/tiny/versions/{version_id}").json()
            live = api.wait_status(f"/api/v1/vendor/models/tiny/versions/{version_id}", "live")
            published.append((live["number"], live["root_digest"], hashlib.sha256(data).hexdigest()))

        # buyers pay from their own wallets; downloads work (or say 503 + Retry-After) meanwhile
        for buyer in buyers[:2]:
            pay(node, testnet["address"], model.chain_model_id, buyer.key)
            buyer_client(buyer).call("GET", "/acme/tiny/resolve/main/model.gguf", expect=(200,))
        # the last buyer's purchase is reorged out (depth 3): usable at once (an unconfirmed grant),
        # it must grant nothing once it is gone
        settled = node.eth.block_number
        wait_for(lambda: node.eth.block_number >= settled + 3, timeout=30, message="earlier purchases 3 blocks deep")
        reorged = pay(node, testnet["address"], model.chain_model_id, buyers[2].key)
        # blocks stop while the purchase is downloaded and reorged out: a GET slowed by the
        # weather must not let the purchase sink below the reorg (granted unconfirmed, or
        # already mirrored from the safe block, it must grant nothing afterwards either way)
        assert "error" not in node.provider.make_request("evm_setIntervalMining", [0])
        try:
            buyer_client(buyers[2]).call("GET", "/acme/tiny/resolve/main/model.gguf", expect=(200,))
            depth = max(3, node.eth.block_number - reorged["blockNumber"] + 1)
            node.provider.make_request("anvil_reorg", [depth, []])
        finally:
            node.provider.make_request("evm_setIntervalMining", [int(BLOCK_TIME)])

        # the weather clears: everything converges, nothing lost, nothing done twice
        proxy.calm()
        target = node.eth.block_number
        wait_for(lambda: (run := indexer_run()) is not None and run.to_block >= target - CONFIRMATIONS, timeout=120, interval=1, message="indexer caught up")

    assert not beat.errors, beat.errors
    injected = proxy.counts
    assert injected["drop"] + injected["timeout"] + injected["rate_limit"] > 0 and injected["stale"] > 0, injected

    # every version live exactly once, as the chain has it
    contract = node.eth.contract(address=testnet["address"], abi=chain_module.load_artifact()["abi"])
    raw_id = chain_module.to_bytes32(model.chain_model_id)
    assert contract.functions.latestVersion(raw_id).call() == 3
    for number, root, _sha in published:
        assert contract.functions.versionDigest(raw_id, number).call().hex() == root
    assert sorted(n for n, _, _ in published) == [1, 2, 3]
    assert Version.objects.filter(model=model, status=Version.Status.LIVE).count() == 3
    # the indexer may make a version live before the relayer's retry (backing off from the
    # weather) has seen its receipt: the relayer converges too, each row confirmed once
    relayed = ChainTransaction.objects.filter(function="publishVersionBySig")
    wait_for(lambda: relayed.filter(status="confirmed").count() == 3, timeout=90, interval=1, message="relayer confirmed all three")
    assert relayed.count() == 3

    # every licence that survived is mirrored; the reorged-out one grants nothing
    for buyer in buyers[:2]:
        assert License.objects.filter(model_id=model.chain_model_id, licensee=buyer.address).exists()
        buyer_client(buyer).call("GET", "/acme/tiny/resolve/main/model.gguf", expect=(200,))
    assert contract.functions.licenseExpiry(raw_id, buyers[2].address).call() == 0
    assert not License.objects.filter(model_id=model.chain_model_id, licensee=buyers[2].address).exists()
    buyer_client(buyers[2]).call("GET", "/acme/tiny/resolve/main/model.gguf", expect=(403,))

    # the ledger equals creditOf for every payee
    payees = {vendor.address, Account.from_key(keys[9]).address}
    for payee in payees:
        assert ledger_balance(address=payee) == contract.functions.creditOf(payee).call(), payee

    # no answer but 2xx/4xx, or 503 with Retry-After
    bad = [s for c in clients for s in c.seen if s[1] >= 500 and not (s[1] == 503 and s[2])]
    assert not bad, bad
    assert settings.CONFIRMATIONS == CONFIRMATIONS
