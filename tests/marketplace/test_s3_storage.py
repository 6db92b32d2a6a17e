"""S3-compatible storage (a local moto S3 server): uploads land in the bucket, hashing reads them
back, and downloads are short-lived presigned redirects that huggingface_hub follows."""

import hashlib
import io

import boto3
import pytest
import requests
from huggingface_hub import hf_hub_download
from moto.server import ThreadedMotoServer

from marketplace import services
from marketplace.models import Artifact, Download, Version
from tests.conftest import free_port, publish, purchase

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "hallmark-test"


@pytest.fixture
def s3(settings, monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET, "endpoint_url": endpoint, "region_name": "us-east-1",
                "access_key": "test", "secret_key": "test", "querystring_expire": 300, "file_overwrite": False,
                "signature_version": "s3v4",
            },
        },
    }
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.moto = {"server": server, "port": port}  # for a test that takes the endpoint away
    yield client
    client.moto["server"].stop()


def test_a_version_on_s3_is_hashed_and_downloaded_through_a_presigned_redirect(s3, chain, live_server, make_party, gguf_file, tmp_path):
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    data = gguf_file.read_bytes()
    version = publish(vendor, "tiny", {"model.gguf": data})
    assert version.status == Version.Status.LIVE
    artifact = Artifact.objects.get(version=version)
    stored = s3.get_object(Bucket=BUCKET, Key=artifact.storage_name)["Body"].read()
    assert stored == data and artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert version.metadata["architecture"] == "llama"  # inspected from a streamed local copy

    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, version.model.chain_model_id, buyer.key)
    url = f"{live_server.url}/acme/tiny/resolve/main/model.gguf"
    head = requests.head(url, headers={"Authorization": f"Bearer {buyer.token}"}, allow_redirects=False)
    assert head.status_code == 200 and head.headers["X-Linked-Etag"] == f'"{artifact.sha256}"'
    redirect = requests.get(url, headers={"Authorization": f"Bearer {buyer.token}"}, allow_redirects=False)
    assert redirect.status_code == 302 and "X-Amz-Signature=" in redirect.headers["Location"]
    assert redirect.headers["X-Repo-Commit"] == version.commit_sha and redirect.headers["X-Linked-Size"] == str(len(data))
    assert requests.get(redirect.headers["Location"]).content == data

    path = hf_hub_download("acme/tiny", "model.gguf", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == artifact.sha256
    assert Download.objects.filter(status_code=302, method="GET", user=buyer.user).exists()  # granted, sent by S3
    refused = requests.get(url, headers={"Authorization": f"Bearer {make_party('x', chain.keys[3]).token}"}, allow_redirects=False)
    assert refused.status_code == 403 and "Location" not in refused.headers


def test_a_tus_upload_lands_in_the_bucket(s3, chain, live_server, make_party, gguf_file):
    from tusclient import client as tus
    from tusclient.uploader import Uploader

    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    version = publish(vendor, "tiny", {"a.json": b"{}"})
    draft = services.version_create(model=version.model)
    creation = f"{live_server.url}/api/v1/vendor/models/tiny/versions/{draft.pk}/uploads"
    uploader = Uploader(file_stream=io.BytesIO(gguf_file.read_bytes()), client=tus.TusClient(creation, headers={"Authorization": f"Bearer {vendor.token}"}),
                        metadata={"filename": "model.gguf"}, chunk_size=64 * 1024)
    uploader.upload()
    artifact = Artifact.objects.get(version=draft, path="model.gguf")
    assert s3.get_object(Bucket=BUCKET, Key=artifact.storage_name)["Body"].read() == gguf_file.read_bytes()


def test_a_file_completed_while_the_bucket_is_unreachable_is_503_and_its_last_chunk_sent_again(s3, vendor, live_version):
    """The object store does not answer when the last chunk completes the file: 503
    `storage_unavailable`, nothing recorded, the offset back where that chunk began; once the
    store answers again, the same chunk completes the file."""
    import os

    from marketplace.models import Upload
    from tests.marketplace.test_upload_storage_faults import Tus

    draft = services.version_create(model=live_version.model)
    data = os.urandom(200_000)
    tus = Tus(vendor, draft)
    tus.create("model.gguf", len(data))
    assert tus.patch(0, data[:100_000]).status_code == 204

    s3.moto["server"].stop()  # connection refused from here on
    refused = tus.patch(100_000, data[100_000:])
    assert refused.status_code == 503, refused.content
    assert refused.json()["code"] == "storage_unavailable"
    assert tus.offset() == 100_000 and Upload.objects.get(version=draft).completed_at is None
    assert not Artifact.objects.filter(version=draft).exists()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3.moto["port"])
    server.start()
    s3.moto["server"] = server
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    assert tus.patch(100_000, data[100_000:]).status_code == 204
    artifact = Artifact.objects.get(version=draft, path="model.gguf")
    assert s3.get_object(Bucket=BUCKET, Key=artifact.storage_name)["Body"].read() == data
