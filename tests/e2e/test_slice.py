"""The foundation slice, end to end on real parts: PostgreSQL, Redis + a Celery worker, anvil
and the deployed contract, a live HTTP server, and the vendor's and buyer's own keys."""

import hashlib

import pytest
import requests

from hallmark import eip712
from marketplace.models import Download, Model, Version
from registry import chain as chain_module
from registry.models import ChainTransaction
from tests.conftest import purchase, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def api(live_server, token):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = live_server.url
    return session


def test_vendor_publishes_through_worker_and_only_licensed_buyer_downloads(
    chain, celery_worker, live_server, make_party, gguf_file
):
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    buyer = make_party("buyer", chain.keys[2])
    stranger = make_party("stranger", chain.keys[3])
    http = api(live_server, vendor.token)
    base = live_server.url

    # the model: drafted, signed by the vendor's key, relayed by a worker as createModelBySig
    created = http.post(f"{base}/api/v1/vendor/models", json={"slug": "tiny", "price_wei": str(10**15), "license_duration": 3600})
    assert created.status_code == 201, created.text
    model_sig = eip712.sign_typed_data(created.json()["typed_data"], vendor.key)
    assert http.post(f"{base}/api/v1/vendor/models/tiny/signature", json={"signature": model_sig}).status_code == 202
    wait_for(lambda: http.get(f"{base}/api/v1/vendor/models/tiny").json()["status"] == "live", message="model live")
    model = Model.objects.get(slug="tiny")
    assert chain_module.model_on_chain(model.chain_model_id).vendor == vendor.address

    # a version: upload a real GGUF, a worker hashes and inspects it into the OMS manifest
    version_id = http.post(f"{base}/api/v1/vendor/models/tiny/versions").json()["id"]
    payload = gguf_file.read_bytes()
    put = http.put(f"{base}/api/v1/vendor/models/tiny/versions/{version_id}/files/model.gguf", data=payload)
    assert put.status_code == 201, put.text
    assert http.post(f"{base}/api/v1/vendor/models/tiny/versions/{version_id}/finalize").status_code == 202
    pending = wait_for(
        lambda: (v := http.get(f"{base}/api/v1/vendor/models/tiny/versions/{version_id}").json())["status"] == "awaiting_signature" and v,
        message="hashing",
    )
    sha = hashlib.sha256(payload).hexdigest()
    assert pending["root_digest"] == hashlib.sha256(bytes.fromhex(sha)).hexdigest()  # OMS rule, one file
    assert pending["metadata"]["architecture"] == "llama"
    typed = pending["typed_data"]
    assert typed["message"]["rootDigest"] == "0x" + pending["root_digest"]

    # the vendor signs PublishVersion; a worker relays publishVersionBySig and waits for the receipt
    signature = eip712.sign_typed_data(typed, vendor.key)
    assert http.post(f"{base}/api/v1/vendor/models/tiny/versions/{version_id}/signature", json={"signature": signature}).status_code == 202
    live = wait_for(
        lambda: (v := http.get(f"{base}/api/v1/vendor/models/tiny/versions/{version_id}").json())["status"] == "live" and v,
        message="version live",
    )
    assert live["number"] == 1
    on_chain = chain_module.registry_contract().functions.versionDigest(chain_module.to_bytes32(model.chain_model_id), 1).call()
    assert on_chain.hex() == live["root_digest"]
    assert ChainTransaction.objects.filter(status="confirmed").count() == 2

    # the buyer pays from their own key; the download then returns exactly the uploaded bytes
    purchase(chain, model.chain_model_id, buyer.key)
    got = requests.get(f"{base}/acme/tiny/resolve/main/model.gguf", headers={"Authorization": f"Bearer {buyer.token}"})
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == sha
    assert got.headers["X-Repo-Commit"] == live["root_digest"][:40]

    # no licence: 403 with a JSON code; an unknown token: 401
    refused = requests.get(f"{base}/acme/tiny/resolve/main/model.gguf", headers={"Authorization": f"Bearer {stranger.token}"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "GatedRepo"
    unknown = requests.get(f"{base}/acme/tiny/resolve/main/model.gguf", headers={"Authorization": "Bearer hm_nope_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_token"

    granted = Download.objects.get(user=buyer.user, status_code=200)
    assert granted.bytes_sent == len(payload) and granted.wallet == buyer.address
    assert Download.objects.filter(user=stranger.user, status_code=403, error_code="GatedRepo").exists()
    assert Version.objects.get(pk=version_id).signer == vendor.address
