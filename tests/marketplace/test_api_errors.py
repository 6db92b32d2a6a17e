"""Bad input gets a clear error and changes nothing: wrong signatures, unknown models and files,
unsafe paths, refused file kinds, and an unreachable chain."""

import io

import pytest
from rest_framework.test import APIClient

from hallmark import eip712
from marketplace import services
from marketplace.models import Artifact, Download, Model, Version
from registry.models import ChainTransaction
from royalties.models import License
from tests.conftest import purchase

pytestmark = pytest.mark.django_db


def client_for(token=None):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_model_signature_from_another_key_is_refused_and_nothing_is_queued(chain, vendor):
    response = client_for(vendor.token).post("/api/v1/vendor/models", {"slug": "tiny", "price_wei": "1000"}, format="json")
    assert response.status_code == 201
    forged = eip712.sign_typed_data(response.json()["typed_data"], chain.keys[5])
    refused = client_for(vendor.token).post("/api/v1/vendor/models/tiny/signature", {"signature": forged}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_signature"
    assert "not to the vendor" in refused.json()["message"]
    assert Model.objects.get(slug="tiny").status == Model.Status.AWAITING_SIGNATURE
    assert not ChainTransaction.objects.exists()


def test_version_signature_over_other_digest_is_refused(chain, vendor, live_version, gguf_file):
    version = services.version_create(model=live_version.model)
    with open(gguf_file, "rb") as fh:
        services.artifact_upload(version=version, path="model.gguf", stream=fh)
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    tampered = dict(version.typed_data, message=dict(version.typed_data["message"], rootDigest="0x" + "ab" * 32))
    signature = eip712.sign_typed_data(tampered, vendor.key)
    url = f"/api/v1/vendor/models/tiny/versions/{version.pk}/signature"
    refused = client_for(vendor.token).post(url, {"signature": signature}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_signature"
    malformed = client_for(vendor.token).post(url, {"signature": "0x1234"}, format="json")
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_input"
    version.refresh_from_db()
    assert version.status == Version.Status.AWAITING_SIGNATURE and version.number is None
    assert ChainTransaction.objects.filter(function="publishVersionBySig").count() == 1  # the first version only


def test_unknown_repo_revision_and_file_have_hugging_face_error_codes(chain, vendor, live_version):
    client = client_for(vendor.token)
    repo = client.get("/nobody/nothing/resolve/main/model.gguf")
    assert repo.status_code == 404 and repo["X-Error-Code"] == "RepoNotFound" and repo.json()["code"] == "RepoNotFound"
    revision = client.get("/acme/tiny/resolve/v9/model.gguf")
    assert revision.status_code == 404 and revision["X-Error-Code"] == "RevisionNotFound"
    entry = client.get("/acme/tiny/resolve/main/other.gguf")
    assert entry.status_code == 404 and entry["X-Error-Code"] == "EntryNotFound"
    assert entry["X-Repo-Commit"] == live_version.commit_sha
    assert client.get("/api/v1/models/nobody/nothing").json()["code"] == "RepoNotFound"
    assert client.get("/api/v1/vendor/models/nothing").json()["code"] == "model_not_found"


def test_no_token_is_gated_401_and_unknown_token_401(chain, live_version):
    anonymous = client_for().get("/acme/tiny/resolve/main/model.gguf")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "GatedRepo"
    unknown = client_for("hm_00000000_not-a-token").get("/acme/tiny/resolve/main/model.gguf")
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_token"


@pytest.mark.parametrize(
    "path, code",
    [
        ("../../etc/passwd", "unsafe_path"),
        ("/etc/passwd", "unsafe_path"),
        ("a\\..\\b.gguf", "unsafe_path"),
        ("dir/./x.gguf", "unsafe_path"),
        (".git/config", "unsafe_path"),
        ("weights.bin", "pickle_refused"),
        ("model.pt", "pickle_refused"),
        ("run.sh", "file_kind_refused"),
    ],
)
def test_unsafe_or_refused_file_names_store_nothing(chain, vendor, live_version, path, code):
    version = services.version_create(model=live_version.model)
    with pytest.raises(Exception) as caught:
        services.artifact_upload(version=version, path=path, stream=io.BytesIO(b"x" * 10))
    assert caught.value.code == code
    assert not Artifact.objects.filter(version=version).exists()


def test_traversal_in_upload_url_is_refused(chain, vendor, live_version):
    version = services.version_create(model=live_version.model)
    response = client_for(vendor.token).put(
        f"/api/v1/vendor/models/tiny/versions/{version.pk}/files/..%2F..%2Fetc%2Fpasswd.gguf",
        data=b"GGUF", content_type="application/octet-stream",
    )
    assert response.status_code == 400 and response.json()["code"] == "unsafe_path"
    assert not Artifact.objects.filter(version=version).exists()


def test_model_create_with_chain_unreachable_is_503_and_writes_nothing(chain_down, vendor):
    response = client_for(vendor.token).post("/api/v1/vendor/models", {"slug": "tiny", "price_wei": "1"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "chain_unavailable"
    assert response["Retry-After"]
    assert not Model.objects.exists()


def test_download_with_chain_unreachable_and_no_mirrored_license_fails_closed(chain, settings, live_version, make_party):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)  # bought, but never seen by us
    from tests.conftest import free_port, reset_chain_caches

    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    response = client_for(buyer.token).get("/acme/tiny/resolve/main/model.gguf")
    assert response.status_code == 503
    assert response.json()["code"] == "chain_unavailable" and int(response["Retry-After"]) > 0
    assert Download.objects.filter(status_code=503, error_code="chain_unavailable").count() == 1

    settings.CHAIN_RPC_URL = chain.rpc_url
    reset_chain_caches()
    assert client_for(buyer.token).get("/acme/tiny/resolve/main/model.gguf").status_code == 200
    assert License.objects.filter(licensee=buyer.address).exists()

    # once mirrored, the licence holds while the chain is down again
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    assert client_for(buyer.token).get("/acme/tiny/resolve/main/model.gguf").status_code == 200


def test_version_waits_pending_chain_while_chain_is_down_then_goes_live(chain, settings, vendor, live_version, gguf_file):
    from registry.chain import ChainUnavailable
    from tests.conftest import free_port, reset_chain_caches

    version = services.version_create(model=live_version.model)
    with open(gguf_file, "rb") as fh:
        services.artifact_upload(version=version, path="model.gguf", stream=fh)
    services.artifact_upload(version=version, path="README.md", stream=io.BytesIO(b"# tiny\n"))
    services.version_finalize(version=version)
    version = services.version_hash_and_inspect(version_id=version.pk)
    services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key))

    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    with pytest.raises(ChainUnavailable):
        services.version_anchor(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == Version.Status.PENDING_CHAIN and version.number == 2
    assert ChainTransaction.objects.get(pk=version.publish_transaction_id).status == "queued"

    settings.CHAIN_RPC_URL = chain.rpc_url
    reset_chain_caches()
    version = services.version_anchor(version_id=version.pk)
    assert version.status == Version.Status.LIVE
