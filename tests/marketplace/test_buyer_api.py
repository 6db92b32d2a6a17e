"""The buyer's REST API: catalog search, model detail, the purchase helper and its confirmation,
rate limits, and nginx offload."""


import pytest
from eth_account import Account
from rest_framework.test import APIClient

from marketplace.models import Download
from registry import chain as chain_mod
from registry.chain import hex0x, to_bytes32
from tests.conftest import publish, purchase
from tests.registry.test_inspection import onnx_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(chain, vendor, live_version, gguf_file, tmp_path):
    onnx = open(onnx_model(tmp_path / "q.onnx", quantized=True), "rb").read()
    vision = publish(vendor, "vision-int8", {"model.onnx": onnx}, price=5 * 10**16, duration=3600, description="int8 vision model")
    derived = publish(vendor, "tiny-chat", {"chat.gguf": gguf_file.read_bytes()}, price=2 * 10**15, parent=live_version.model, bps=2500)
    return live_version, vision, derived


def test_catalog_filters_order_and_paginate(catalog):
    client = APIClient()
    everything = client.get("/api/v1/models").json()
    assert everything["count"] == 3 and {m["repo_id"] for m in everything["results"]} == {"acme/tiny", "acme/vision-int8", "acme/tiny-chat"}
    assert [m["repo_id"] for m in client.get("/api/v1/models?format=onnx").json()["results"]] == ["acme/vision-int8"]
    assert {m["repo_id"] for m in client.get("/api/v1/models?format=gguf&architecture=llama").json()["results"]} == {"acme/tiny", "acme/tiny-chat"}
    assert [m["repo_id"] for m in client.get("/api/v1/models?quantization=int8").json()["results"]] == ["acme/vision-int8"]
    assert [m["repo_id"] for m in client.get("/api/v1/models?license=timed").json()["results"]] == ["acme/vision-int8"]
    cheap = client.get(f"/api/v1/models?max_price_wei={2 * 10**15}&ordering=-price").json()["results"]
    assert [m["repo_id"] for m in cheap] == ["acme/tiny-chat", "acme/tiny"]
    assert [m["repo_id"] for m in client.get("/api/v1/models?q=vision").json()["results"]] == ["acme/vision-int8"]
    assert client.get("/api/v1/models?min_parameters=1000000000").json()["count"] == 0
    page = client.get("/api/v1/models?page_size=2&ordering=name").json()
    assert len(page["results"]) == 2 and page["next"]
    entry = client.get("/api/v1/models?q=vision").json()["results"][0]
    assert entry["terms"] == {"price_wei": str(5 * 10**16), "duration_seconds": 3600, "perpetual": False, "listed": True}
    assert client.get("/api/v1/models?format=pickle").json()["code"] == "invalid_input"


def test_model_detail_has_files_manifest_ids_lineage_and_terms(catalog):
    _, _, derived = catalog
    body = APIClient().get("/api/v1/models/acme/tiny-chat").json()
    assert body["model_id"] == derived.model.chain_model_id and body["terms"]["price_wei"] == str(2 * 10**15)
    [version] = body["versions"]
    assert version["files"][0]["path"] == "chat.gguf" and len(version["files"][0]["sha256"]) == 64
    assert version["manifest"]["subject"][0]["digest"]["sha256"] == version["root_digest"]
    assert body["lineage"] == [{"repo_id": "acme/tiny", "model_id": catalog[0].model.chain_model_id, "upstream_bps": 0, "vendor_address": derived.model.vendor.address}]


def send_from_wallet(tx: dict, key: str, **extra) -> str:
    w3 = chain_mod.web3()
    account = Account.from_key(key)
    fields = {
        "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "chainId": tx["chainId"],
        "nonce": w3.eth.get_transaction_count(account.address, "pending"), "gas": 300_000,
        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, **extra,
    }
    return hex0x(w3.eth.send_raw_transaction(account.sign_transaction(fields).raw_transaction))


def test_purchase_helper_then_confirmation_then_download(chain, catalog, make_party):
    buyer = make_party("buyer", chain.keys[2])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    offer = client.get("/api/v1/models/acme/tiny-chat/purchase").json()
    assert offer["licensee"] == buyer.address and offer["price_wei"] == str(2 * 10**15) and offer["perpetual"]
    assert sum(int(c["amount_wei"]) for c in offer["royalties"]) == 2 * 10**15
    assert {c["role"] for c in offer["royalties"]} == {"platform", "upstream", "vendor"}

    chain.rpc("evm_setAutomine", [False])
    tx_hash = send_from_wallet(offer["transaction"], buyer.key)
    pending = client.post("/api/v1/purchases", {"tx_hash": tx_hash}, format="json")
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    chain.rpc("evm_setAutomine", [True])
    chain.rpc("evm_mine")
    confirmed = client.post("/api/v1/purchases", {"tx_hash": tx_hash}, format="json").json()
    assert confirmed["status"] == "confirmed" and confirmed["licenses"][0]["licensee"] == buyer.address
    assert client.get("/acme/tiny-chat/resolve/main/chat.gguf").status_code == 200


def test_a_reverted_purchase_is_reported_and_grants_nothing(chain, catalog, make_party):
    buyer = make_party("buyer", chain.keys[2])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    offer = client.get("/api/v1/models/acme/tiny-chat/purchase").json()
    vendor_address = catalog[2].model.vendor.address
    registry = chain_mod.registry_contract()
    model_id = to_bytes32(catalog[2].model.chain_model_id)
    chain_mod.web3().eth.wait_for_transaction_receipt(registry.functions.setTerms(model_id, 3 * 10**15, 0, True).transact({"from": vendor_address}))
    tx_hash = send_from_wallet(offer["transaction"], buyer.key)  # the price rose above max_price
    failed = client.post("/api/v1/purchases", {"tx_hash": tx_hash}, format="json")
    assert failed.status_code == 422 and failed.json()["code"] == "purchase_reverted"
    assert client.get("/acme/tiny-chat/resolve/main/chat.gguf").status_code == 403


def test_purchase_helper_needs_a_licensee_and_refuses_a_second_perpetual(chain, catalog, make_party):
    assert APIClient().get("/api/v1/models/acme/tiny/purchase").json()["code"] == "licensee_required"
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, catalog[0].model.chain_model_id, buyer.key)
    again = APIClient().get(f"/api/v1/models/acme/tiny/purchase?licensee={buyer.address}")
    assert again.status_code == 409 and again.json()["code"] == "already_licensed"


def test_a_model_the_chain_does_not_know_cannot_be_bought_and_says_so(chain, live_version):
    live_version.model.__class__.objects.filter(pk=live_version.model_id).update(chain_model_id="0x" + "ab" * 32)  # a reset chain
    answer = APIClient().get(f"/api/v1/models/acme/tiny/purchase?licensee={chain.account(2).address}")
    assert answer.status_code == 409 and answer.json()["code"] == "model_not_on_chain"


def test_royalty_preview_follows_the_contract_rule(chain, catalog):
    body = APIClient().get(f"/api/v1/models/acme/tiny-chat/royalties?price_wei={10**18}").json()
    amounts = {c["role"]: int(c["amount_wei"]) for c in body["credits"]}
    assert body["platform_fee_bps"] == 250
    assert amounts == {"platform": 25 * 10**15, "upstream": 243_750 * 10**12, "vendor": 731_250 * 10**12}


def test_downloads_are_rate_limited_per_token(chain, settings, live_version, make_party):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    settings.DOWNLOAD_RATE_LIMIT = "2/min"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    assert [client.head("/acme/tiny/resolve/main/model.gguf").status_code for _ in range(2)] == [200, 200]
    assert not Download.objects.filter(method="HEAD").exists()  # metadata requests are not downloads
    limited = client.get("/acme/tiny/resolve/main/model.gguf")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) > 0


def test_behind_nginx_the_download_is_handed_over_with_x_accel_redirect(chain, settings, live_version, make_party):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    settings.DOWNLOAD_X_ACCEL_REDIRECT_PREFIX = "/_media/"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    response = client.get("/acme/tiny/resolve/main/model.gguf")
    artifact = live_version.artifacts.get()
    assert response.status_code == 200 and response["X-Accel-Redirect"] == f"/_media/{artifact.storage_name}"
    assert response["ETag"] == f'"{artifact.sha256}"' and response.content == b""


def test_a_range_request_gets_206_and_is_recorded(chain, live_version, make_party, gguf_file):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {buyer.token}")
    data = gguf_file.read_bytes()
    response = client.get("/acme/tiny/resolve/main/model.gguf", HTTP_RANGE="bytes=1000-")
    assert response.status_code == 206 and response["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert b"".join(response.streaming_content) == data[1000:]
    record = Download.objects.filter(range_start=1000).get()
    assert record.bytes_sent == len(data) - 1000
    assert client.get("/acme/tiny/resolve/main/model.gguf", HTTP_RANGE=f"bytes={len(data)}-").status_code == 416
