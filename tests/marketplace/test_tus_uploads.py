"""Resumable uploads with a standard tus client (tuspy): chunks, checksums, resume, limits."""

import base64
import hashlib
import os

import pytest
import requests
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from marketplace import services
from marketplace.models import Artifact, Upload
from marketplace.services.uploads import uploads_expire

pytestmark = pytest.mark.django_db(transaction=True)


class Sha256Uploader(Uploader):
    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def tus_client(live_server, token):
    return tus.TusClient(f"{live_server.url}/api/v1/uploads", headers={"Authorization": f"Bearer {token}"})


def creation_url(live_server, version):
    return f"{live_server.url}/api/v1/vendor/models/{version.model.slug}/versions/{version.pk}/uploads"


@pytest.fixture
def draft(live_version):
    return services.version_create(model=live_version.model)


def new_uploader(live_server, vendor, draft, path, name, **kwargs):
    client = tus_client(live_server, vendor.token)
    return Sha256Uploader(
        file_path=str(path), client=client, metadata={"filename": name},
        upload_checksum=True, **kwargs,
    ), client


def test_tuspy_uploads_in_checksummed_chunks_into_the_draft(live_server, vendor, draft, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 123)
    source = tmp_path / "weights.gguf"
    source.write_bytes(data)
    uploader, _ = new_uploader(live_server, vendor, draft, source, "sub/weights.gguf", chunk_size=1024 * 1024)
    uploader.client.url = creation_url(live_server, draft)
    uploader.upload()
    artifact = Artifact.objects.get(version=draft, path="sub/weights.gguf")
    from django.core.files.storage import default_storage

    with default_storage.open(artifact.storage_name, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert artifact.size == len(data)
    assert Upload.objects.get(version=draft).completed_at is not None


def test_an_interrupted_upload_resumes_from_the_stored_offset(live_server, vendor, draft, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 7)
    source = tmp_path / "m.gguf"
    source.write_bytes(data)
    first, client = new_uploader(live_server, vendor, draft, source, "m.gguf", chunk_size=512 * 1024)
    client.url = creation_url(live_server, draft)
    first.upload(stop_at=1024 * 1024)  # the client stops after two chunks
    url = first.url
    head = requests.head(url, headers={"Authorization": f"Bearer {vendor.token}", "Tus-Resumable": "1.0.0"})
    assert head.status_code == 200 and int(head.headers["Upload-Offset"]) == 1024 * 1024
    assert head.headers["Upload-Length"] == str(len(data)) and head.headers["Upload-Expires"]

    resumed, _ = new_uploader(live_server, vendor, draft, source, "m.gguf", chunk_size=512 * 1024, url=url)
    assert resumed.offset == 1024 * 1024
    resumed.upload()
    artifact = Artifact.objects.get(version=draft, path="m.gguf")
    from django.core.files.storage import default_storage

    with default_storage.open(artifact.storage_name, "rb") as fh:
        assert fh.read() == data


def create(live_server, vendor, draft, name, length):
    encoded = base64.b64encode(name.encode()).decode()
    response = requests.post(
        creation_url(live_server, draft),
        headers={"Authorization": f"Bearer {vendor.token}", "Tus-Resumable": "1.0.0", "Upload-Length": str(length), "Upload-Metadata": f"filename {encoded}"},
    )
    return response


def test_a_chunk_with_a_wrong_checksum_is_discarded_with_460(live_server, vendor, draft):
    url = create(live_server, vendor, draft, "m.gguf", 10).headers["Location"]
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    response = requests.patch(url, data=b"0123456789", headers={
        "Authorization": f"Bearer {vendor.token}", "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream", "Upload-Checksum": f"sha256 {bad}",
    })
    assert response.status_code == 460 and response.json()["code"] == "checksum_mismatch"
    assert Upload.objects.get().offset == 0
    wrong_offset = requests.patch(url, data=b"01234", headers={
        "Authorization": f"Bearer {vendor.token}", "Tus-Resumable": "1.0.0", "Upload-Offset": "3",
        "Content-Type": "application/offset+octet-stream",
    })
    assert wrong_offset.status_code == 409 and wrong_offset.json()["code"] == "offset_mismatch"


def test_creation_refuses_traversal_pickle_oversize_and_missing_protocol_header(live_server, vendor, draft, settings):
    assert create(live_server, vendor, draft, "../../etc/passwd", 10).json()["code"] == "unsafe_path"
    assert create(live_server, vendor, draft, "model.pt", 10).json()["code"] == "pickle_refused"
    settings.MAX_ARTIFACT_SIZE = 100
    too_big = create(live_server, vendor, draft, "m.gguf", 101)
    assert too_big.status_code == 413 and too_big.json()["code"] == "file_too_large"
    settings.MAX_ARTIFACT_SIZE = 10**12
    settings.VENDOR_STORAGE_QUOTA = 1000
    over_quota = create(live_server, vendor, draft, "m.gguf", 5000)
    assert over_quota.status_code == 413 and over_quota.json()["code"] == "quota_exceeded"
    no_header = requests.post(creation_url(live_server, draft), headers={"Authorization": f"Bearer {vendor.token}", "Upload-Length": "1"})
    assert no_header.status_code == 412 and no_header.headers["Tus-Version"] == "1.0.0"
    assert not Upload.objects.exists()


def test_another_vendor_cannot_touch_the_upload(live_server, vendor, draft, make_party, chain):
    other = make_party("other", chain.keys[6], vendor_slug="other")
    url = create(live_server, vendor, draft, "m.gguf", 10).headers["Location"]
    head = requests.head(url, headers={"Authorization": f"Bearer {other.token}", "Tus-Resumable": "1.0.0"})
    assert head.status_code == 404
    assert create(live_server, other, draft, "x.gguf", 10).status_code == 404


def test_termination_and_expiry_remove_the_bytes(live_server, vendor, draft, settings):
    url = create(live_server, vendor, draft, "a.gguf", 10).headers["Location"]
    deleted = requests.delete(url, headers={"Authorization": f"Bearer {vendor.token}", "Tus-Resumable": "1.0.0"})
    assert deleted.status_code == 204 and not Upload.objects.exists()
    create(live_server, vendor, draft, "b.gguf", 10)
    part = settings.MEDIA_ROOT / "uploads" / Upload.objects.get().part_name
    assert part.exists()
    from datetime import timedelta

    from django.utils import timezone

    assert uploads_expire(now=timezone.now() + timedelta(days=2)) == 1
    assert not part.exists() and not Upload.objects.exists()


def test_finalize_waits_for_open_uploads(live_server, vendor, draft):
    from marketplace.errors import Conflict

    create(live_server, vendor, draft, "a.gguf", 10)
    with pytest.raises(Conflict) as caught:
        services.version_finalize(version=draft)
    assert caught.value.code == "uploads_in_progress"


def test_options_advertises_the_extensions(live_server, vendor, draft):
    response = requests.options(creation_url(live_server, draft))
    assert response.status_code == 204
    assert "checksum" in response.headers["Tus-Extension"] and "termination" in response.headers["Tus-Extension"]
    assert "sha256" in response.headers["Tus-Checksum-Algorithm"]


def test_unknown_token_is_refused(live_server, draft):
    with pytest.raises(TusCommunicationError):
        client = tus.TusClient(creation_url(live_server, draft), headers={"Authorization": "Bearer nope"})
        client.uploader(file_stream=__import__("io").BytesIO(b"x"), metadata={"filename": "a.gguf"}).upload()
