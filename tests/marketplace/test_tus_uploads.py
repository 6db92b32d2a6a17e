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


def tus_headers(vendor=None, **more):
    headers = {"Tus-Resumable": "1.0.0", **more}
    if vendor is not None:
        headers["Authorization"] = f"Bearer {vendor.token}"
    return headers


def metadata(name):
    return f"filename {base64.b64encode(name.encode()).decode()}"


def test_creation_with_upload_takes_the_post_body_as_the_first_chunk(vendor, draft):
    from django.test import Client

    client, path = Client(), f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/uploads"
    created = client.post(path, data=b"0123456789", content_type="application/offset+octet-stream",
                          headers=tus_headers(vendor, **{"Upload-Length": "16", "Upload-Metadata": metadata("a.gguf")}))
    assert created.status_code == 201 and created["Upload-Offset"] == "10"
    rest = client.patch(created["Location"].removeprefix("http://testserver"), data=b"abcdef", content_type="application/offset+octet-stream",
                        headers=tus_headers(vendor, **{"Upload-Offset": "10"}))
    assert rest.status_code == 204 and rest["Upload-Offset"] == "16"
    whole = client.post(path, data=b"whole file", content_type="application/offset+octet-stream",
                        headers=tus_headers(vendor, **{"Upload-Length": "10", "Upload-Metadata": metadata("b.gguf")}))
    assert whole.status_code == 201 and whole["Upload-Offset"] == "10"
    from django.core.files.storage import default_storage

    stored = {a.path: default_storage.open(a.storage_name).read() for a in Artifact.objects.filter(version=draft)}
    assert stored == {"a.gguf": b"0123456789abcdef", "b.gguf": b"whole file"}


def test_method_override_is_ignored_for_a_session_and_honoured_for_a_bearer_token(vendor, draft):
    from django.test import Client

    session = Client()
    session.force_login(vendor.user)
    created = session.post(f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/uploads",
                           headers=tus_headers(**{"Upload-Length": "10", "Upload-Metadata": metadata("a.gguf")}))
    assert created.status_code == 201
    url = created["Location"].removeprefix("http://testserver")
    # a form POST riding the session cookie stays a POST: it cannot become a DELETE (or a PATCH)
    forged = session.post(url, headers=tus_headers(**{"X-HTTP-Method-Override": "DELETE"}))
    assert forged.status_code == 405 and Upload.objects.filter(version=draft).exists()
    bearer = Client().post(url, headers=tus_headers(vendor, **{"X-HTTP-Method-Override": "DELETE"}))
    assert bearer.status_code == 204 and not Upload.objects.filter(version=draft).exists()


def test_chunked_patch_and_chunked_put_behind_gunicorn(vendor, draft, settings):
    """No Content-Length (Transfer-Encoding: chunked): gunicorn decodes the body, the view reads it to its end."""
    from tests.conftest import free_port
    from tests.e2e.test_upload_restart import kill, start_server

    data = os.urandom(300_000)
    port = free_port()
    server = start_server(port, settings.MEDIA_ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        created = requests.post(f"{base}/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/uploads",
                                headers=tus_headers(vendor, **{"Upload-Length": str(len(data)), "Upload-Metadata": metadata("c.gguf")}))
        assert created.status_code == 201
        chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))  # a generator: requests sends it chunked
        patched = requests.patch(created.headers["Location"], data=chunks,
                                 headers=tus_headers(vendor, **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
        assert patched.status_code == 204 and patched.headers["Upload-Offset"] == str(len(data))
        put = requests.put(f"{base}/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/files/p.gguf",
                           data=(data[i : i + 65536] for i in range(0, len(data), 65536)), headers={"Authorization": f"Bearer {vendor.token}"})
        assert put.status_code == 201, put.text
    finally:
        kill(server)
    sha = hashlib.sha256(data).hexdigest()
    from django.core.files.storage import default_storage

    for name in ("c.gguf", "p.gguf"):
        artifact = Artifact.objects.get(version=draft, path=name)
        with default_storage.open(artifact.storage_name, "rb") as fh:
            assert artifact.size == len(data) and hashlib.sha256(fh.read()).hexdigest() == sha


def test_a_chunked_body_a_server_cannot_decode_is_411_not_an_empty_file(vendor, draft):
    from django.test import Client

    # Django's own development server hands the chunks over undecoded and without a length
    response = Client().put(f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/files/e.gguf",
                            headers={"Authorization": f"Bearer {vendor.token}", "Transfer-Encoding": "chunked"})
    assert response.status_code == 411 and response.json()["code"] == "length_required"
    assert not Artifact.objects.filter(version=draft).exists()
