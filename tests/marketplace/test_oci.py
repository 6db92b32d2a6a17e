"""The OCI registry (`/v2/`, marketplace/api/oci.py), pull side: the token flow, ModelPack manifests
whose layers are the signed files, the licence check of every download on layer blobs, OCI error
bodies; against the real stack (PostgreSQL, anvil, the relayer) with Django's test client. The
real clients, skopeo and oras, are in test_oci_clients.py."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from django.test import Client

from hallmark.manifest import FileDigest, root_digest
from marketplace import oci, selectors, services
from marketplace.models import Download, Receipt
from registry import chain as chain_module
from tests.conftest import publish_version, purchase
from tests.telemetry.test_metrics import scrape, value

pytestmark = pytest.mark.django_db

REPO = "/v2/acme/tiny"


def basic(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"anyone:{token}".encode()).decode()}


def registry_token(client: Client, api_token: str | None, scope: str = "repository:acme/tiny:pull") -> str:
    response = client.get("/v2/token", {"service": "testserver", "scope": scope}, **(basic(api_token) if api_token else {}))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == oci.REGISTRY_TOKEN_SECONDS
    assert body["issued_at"].endswith("Z")
    return body["token"]


def bearer(value: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


def errors(response) -> list[str]:
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"
    return [e["code"] for e in response.json()["errors"]]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def buyer(chain, live_version, make_party):
    party = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, party.key)
    return party


def test_the_registry_starts_the_token_flow_and_trades_an_api_token_for_a_registry_token(live_version, buyer, settings):
    settings.PUBLIC_BASE_URL = "https://models.example"
    client = Client()
    before = value(scrape(), "hallmark_http_requests_total", family="oci", status="401")
    ping = client.get("/v2/")
    assert value(scrape(), "hallmark_http_requests_total", family="oci", status="401") == before + 1  # its own family
    assert ping.status_code == 401 and errors(ping) == ["UNAUTHORIZED"]
    assert ping["WWW-Authenticate"] == 'Bearer realm="https://models.example/v2/token",service="models.example"'

    token = registry_token(client, buyer.token)
    assert client.get("/v2/", **bearer(token)).status_code == 200
    assert client.get("/v2/", **bearer(buyer.token)).status_code == 200  # the API token itself works too
    assert client.get("/v2/", **bearer(token + "x")).status_code == 401
    assert registry_token(client, None)  # anonymous: a token for public reads

    refused = client.get("/v2/token", {"scope": "repository:acme/tiny:pull"}, **basic("hm_not-a-token"))
    assert refused.status_code == 401 and errors(refused) == ["UNAUTHORIZED"]
    garbled = client.get("/v2/token", HTTP_AUTHORIZATION="Basic %%%")
    assert garbled.status_code == 401 and errors(garbled) == ["UNAUTHORIZED"]

    # a revoked API token ends the registry tokens made from it at once
    api_token = buyer.user.api_tokens.get()
    services.api_token_revoke(token=api_token)
    assert client.get("/v2/", **bearer(token)).status_code == 401


def test_the_manifest_is_modelpack_and_its_layers_are_the_signed_files_on_chain(chain, live_version, gguf_file):
    client = Client()  # manifests, tags and the config are public, like the model page
    by_tag = client.get(f"{REPO}/manifests/v1")
    assert by_tag.status_code == 200 and by_tag["Content-Type"] == oci.MANIFEST_MEDIA_TYPE
    digest = by_tag["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(by_tag.content).hexdigest()
    manifest = json.loads(by_tag.content)
    assert manifest["schemaVersion"] == 2 and manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    assert layer["annotations"]["org.cncf.model.filepath"] == "model.gguf"
    assert layer["digest"] == "sha256:" + hashlib.sha256(gguf_file.read_bytes()).hexdigest() and layer["size"] == gguf_file.stat().st_size

    # the layers are the signed manifest's files: their root digest is the one on chain
    assert {layer["annotations"]["org.cncf.model.filepath"]: layer["digest"][7:] for layer in manifest["layers"]} == selectors.manifest_digests(live_version)
    files = [FileDigest(layer["annotations"]["org.cncf.model.filepath"], layer["digest"][7:], layer["size"]) for layer in manifest["layers"]]
    contract = chain_module.registry_contract()
    on_chain = bytes(contract.functions.versionDigest(chain_module.to_bytes32(live_version.model.chain_model_id), 1).call()).hex()
    assert root_digest(files) == on_chain == live_version.root_digest

    # main and the digest name the same bytes; HEAD answers the same headers without the body
    assert client.get(f"{REPO}/manifests/main").content == by_tag.content
    assert client.get(f"{REPO}/manifests/{digest}").content == by_tag.content
    head = client.head(f"{REPO}/manifests/v1")
    assert head["Docker-Content-Digest"] == digest and head["Content-Length"] == str(len(by_tag.content)) and head.content == b""

    # the config blob: public, ModelPack's shape, the same bytes on every request
    config = client.get(f"{REPO}/blobs/{manifest['config']['digest']}")
    assert config.status_code == 200 and config["Content-Type"] == "application/vnd.cncf.model.config.v1+json"
    assert "sha256:" + hashlib.sha256(config.content).hexdigest() == manifest["config"]["digest"]
    document = json.loads(config.content)
    assert set(document) == {"descriptor", "config", "modelfs"}
    assert document["modelfs"] == {"type": "layers", "diffIds": [layer["digest"]]}
    assert document["descriptor"]["name"] == "acme/tiny" and document["descriptor"]["revision"] == live_version.root_digest
    assert document["config"]["format"] == "gguf"
    assert client.get(f"{REPO}/blobs/{manifest['config']['digest']}").content == config.content


def test_a_layer_blob_is_a_licensed_download_with_its_receipt(chain, live_version, buyer, make_party, gguf_file):
    client = Client()
    layer = json.loads(client.get(f"{REPO}/manifests/v1").content)["layers"][0]
    url = f"{REPO}/blobs/{layer['digest']}"

    anonymous = client.get(url)
    assert anonymous.status_code == 401 and errors(anonymous) == ["UNAUTHORIZED"]
    assert 'scope="repository:acme/tiny:pull"' in anonymous["WWW-Authenticate"]

    stranger = make_party("stranger", chain.keys[3])
    denied = client.get(url, **bearer(registry_token(client, stranger.token)))
    assert denied.status_code == 403 and errors(denied) == ["DENIED"]
    assert denied.json()["errors"][0]["detail"] == {"code": "GatedRepo"}

    token = registry_token(client, buyer.token)
    full = client.get(url, **bearer(token))
    assert full.status_code == 200 and body(full) == gguf_file.read_bytes()
    assert full["Docker-Content-Digest"] == layer["digest"] and "X-Hallmark-Receipt" in full
    ranged = client.get(url, HTTP_RANGE="bytes=0-3", **bearer(token))
    assert ranged.status_code == 206 and body(ranged) == b"GGUF"
    head = client.head(url, **bearer(token))
    assert head.status_code == 200 and head["Content-Length"] == str(layer["size"])

    # recorded exactly as resolve GETs are: refusals and grants, with a receipt per granted GET
    rows = Download.objects.filter(version=live_version, path="model.gguf", method="GET")
    assert sorted(rows.values_list("status_code", flat=True)) == [200, 206, 401, 403]
    assert Receipt.objects.filter(download__in=rows.filter(status_code__in=(200, 206))).count() == 2

    # a token scoped to another repository is asked to fetch one for this one
    other = client.get(url, **bearer(registry_token(client, buyer.token, scope="repository:acme/other:pull")))
    assert other.status_code == 401 and 'error="insufficient_scope"' in other["WWW-Authenticate"]


def test_tags_list_pages_and_every_input_is_checked_before_a_query(chain, live_version, vendor, gguf_file):
    publish_version(vendor, live_version.model, {"model.gguf": gguf_file.read_bytes() + b"\0", "README.md": b"# tiny\n"})
    client = Client()
    assert client.get(f"{REPO}/tags/list").json() == {"name": "acme/tiny", "tags": ["main", "v1", "v2"]}
    first = client.get(f"{REPO}/tags/list", {"n": 2})
    assert first.json()["tags"] == ["main", "v1"] and first["Link"] == '</v2/acme/tiny/tags/list?n=2&last=v1>; rel="next"'
    assert client.get(f"{REPO}/tags/list", {"n": 2, "last": "v1"}).json()["tags"] == ["v2"]
    assert client.get(f"{REPO}/tags/list", {"n": 10**6}).status_code == 400

    v2 = json.loads(client.get(f"{REPO}/manifests/main").content)
    assert v2["annotations"]["org.opencontainers.image.version"] == "v2"
    kinds = {layer["annotations"]["org.cncf.model.filepath"]: layer["mediaType"] for layer in v2["layers"]}
    assert kinds == {"README.md": oci.DOC_MEDIA_TYPE, "model.gguf": oci.WEIGHT_MEDIA_TYPE}

    cases = {
        f"{REPO}/manifests/v7": (404, "MANIFEST_UNKNOWN"),
        f"{REPO}/manifests/sha256:{'0' * 64}": (404, "MANIFEST_UNKNOWN"),
        f"{REPO}/manifests/sha256:xyz": (400, "DIGEST_INVALID"),
        f"{REPO}/blobs/md5:abc": (400, "DIGEST_INVALID"),
        f"{REPO}/blobs/sha256:{'0' * 64}": (404, "BLOB_UNKNOWN"),
        "/v2/acme/nothing/manifests/main": (404, "NAME_UNKNOWN"),
        "/v2/acme/nothing/tags/list": (404, "NAME_UNKNOWN"),
        "/v2/acme/..x/manifests/main": (400, "NAME_INVALID"),
        "/v2/_catalog": (404, "UNSUPPORTED"),
    }
    for url, (status, code) in cases.items():
        response = client.get(url)
        assert (response.status_code, errors(response)) == (status, [code]), url
    push = client.post(f"{REPO}/blobs/uploads/")
    assert push.status_code == 405 and errors(push) == ["UNSUPPORTED"]


def test_referrers_is_an_oci_index_empty_for_a_version_without_a_bundle(live_version):
    client = Client()
    digest = client.get(f"{REPO}/manifests/v1")["Docker-Content-Digest"]
    response = client.get(f"{REPO}/referrers/{digest}")
    assert response.status_code == 200 and response["Content-Type"] == oci.INDEX_MEDIA_TYPE
    assert json.loads(response.content) == {"schemaVersion": 2, "mediaType": oci.INDEX_MEDIA_TYPE, "manifests": []}
    assert client.get(f"{REPO}/referrers/sha256:{'1' * 64}").status_code == 200  # an unknown subject: empty, never 404
    assert errors(client.get(f"{REPO}/referrers/nope")) == ["DIGEST_INVALID"]


def test_an_oms_bundle_is_a_referrer_of_the_manifest_and_its_blob_is_served(chain, vendor, gguf_file):
    from hallmark import eip712
    from hallmark import oms as hallmark_oms
    from marketplace.oms import OMS_BUNDLE_MEDIA_TYPE, oms_bundle_bytes
    from tests.conftest import publish
    from tests.marketplace.test_oms import hashed_draft, statement_files

    key = hallmark_oms.generate_key()
    services.vendor_signing_key_register(vendor=vendor.vendor, public_key_pem=hallmark_oms.public_key_pem(key))
    model = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}).model  # v1: hashed before the key, no bundle
    version = hashed_draft(vendor, model, {"model.gguf": gguf_file.read_bytes(), "config.json": b'{"architecture": "llama"}'})
    bundle = hallmark_oms.sign_statement(key, hallmark_oms.signing_statement(model.repo_id, statement_files(version)))
    services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key), oms_bundle=bundle)
    version = services.version_anchor(version_id=version.pk)
    signature = oms_bundle_bytes(version)
    assert signature is not None

    client = Client()
    subject = client.get(f"{REPO}/manifests/v2")
    index = json.loads(client.get(f"{REPO}/referrers/{subject['Docker-Content-Digest']}").content)
    [entry] = index["manifests"]
    assert entry["artifactType"] == OMS_BUNDLE_MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    referrer = client.get(f"{REPO}/manifests/{entry['digest']}")
    assert referrer.status_code == 200 and referrer["Docker-Content-Digest"] == entry["digest"]
    document = json.loads(referrer.content)
    assert document["subject"] == {"mediaType": oci.MANIFEST_MEDIA_TYPE, "digest": subject["Docker-Content-Digest"], "size": len(subject.content)}
    [layer] = document["layers"]
    assert layer["digest"] == "sha256:" + hashlib.sha256(signature).hexdigest()
    assert layer["annotations"]["org.opencontainers.image.title"] == "model.sig"
    assert client.get(f"{REPO}/blobs/{layer['digest']}").content == signature  # public, as model.sig is
    assert client.get(f"{REPO}/blobs/{document['config']['digest']}").content == b"{}"
    filtered = client.get(f"{REPO}/referrers/{subject['Docker-Content-Digest']}", {"artifactType": "application/x-other"})
    assert json.loads(filtered.content)["manifests"] == [] and filtered["OCI-Filters-Applied"] == "artifactType"
    v1 = client.get(f"{REPO}/manifests/v1")["Docker-Content-Digest"]
    assert json.loads(client.get(f"{REPO}/referrers/{v1}").content)["manifests"] == []
    # model.sig is beside the files, never one of them: the manifest's layers are the signed files only
    paths = [x["annotations"]["org.cncf.model.filepath"] for x in json.loads(subject.content)["layers"]]
    assert paths == ["config.json", "model.gguf"]
    assert [x["mediaType"] for x in json.loads(subject.content)["layers"]] == [oci.WEIGHT_CONFIG_MEDIA_TYPE, oci.WEIGHT_MEDIA_TYPE]


def test_a_device_token_is_a_registry_password_and_its_download_takes_a_seat(chain, live_version, buyer, settings):
    from fleet.models import Seat
    from tests.fleet.conftest import device_token, new_device, register

    settings.DEVICE_AUTH_RATE_LIMIT = "1000000/min"
    client = Client()
    device = new_device()
    assert register(client, buyer.token, device).status_code == 201
    device.token = device_token(client, device).json()["token"]
    layer = json.loads(client.get(f"{REPO}/manifests/main").content)["layers"][0]

    token = registry_token(client, device.token)
    response = client.get(f"{REPO}/blobs/{layer['digest']}", **bearer(token))
    assert response.status_code == 200 and len(body(response)) == layer["size"]
    row = Download.objects.get(method="GET", status_code=200, device__address=device.address)
    assert row.user == buyer.user and row.token is None
    assert Seat.objects.filter(device__address=device.address).count() == 1


def test_a_revoked_version_leaves_the_tags_and_its_files_are_refused(chain, live_version, vendor, buyer, gguf_file):
    v2 = publish_version(vendor, live_version.model, {"model.gguf": gguf_file.read_bytes() + b"\0"})
    client = Client()
    v1 = client.get(f"{REPO}/manifests/v1")
    layer = json.loads(v1.content)["layers"][0]
    services.version_mark_revoked(model=live_version.model, number=1, reason="0x" + "00" * 32)

    assert client.get(f"{REPO}/tags/list").json()["tags"] == ["main", "v2"]
    revoked = client.get(f"{REPO}/manifests/v1")
    assert revoked.status_code == 410 and errors(revoked) == ["MANIFEST_UNKNOWN"]
    assert client.get(f"{REPO}/manifests/{v1['Docker-Content-Digest']}").status_code == 410  # by digest too
    assert json.loads(client.get(f"{REPO}/manifests/main").content)["annotations"]["org.opencontainers.image.version"] == "v2"
    refused = client.get(f"{REPO}/blobs/{layer['digest']}", **bearer(registry_token(client, buyer.token)))
    assert refused.status_code == 410 and errors(refused) == ["BLOB_UNKNOWN"]
    assert refused.json()["errors"][0]["detail"] == {"code": "VersionRevoked"}
    assert v2.revoked is False
