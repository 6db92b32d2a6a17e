"""One upload path (raw PUT and tus share admission, quota and completion) and versions whose
files cannot change: a file finishing after finalize is refused, and only the files of the
signed manifest are ever listed or served."""

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from rest_framework.test import APIClient

from marketplace import services
from marketplace.errors import Conflict, MarketplaceError
from marketplace.models import Artifact, Upload, Version
from marketplace.services.uploads import upload_append, upload_create
from tests.conftest import publish_version

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(token=None):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def stored_files(settings, version) -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / "artifacts" / str(version.pk)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def parts(settings) -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / "uploads"
    return sorted(os.listdir(folder)) if folder.exists() else []


class Stream:
    """A request body arriving in blocks; `during(n)` runs before block n is handed out."""

    def __init__(self, data: bytes, block: int = 1000, during=None):
        self.blocks = [data[i : i + block] for i in range(0, len(data), block)]
        self.handed, self.during = 0, during or (lambda n: None)

    def read(self, size: int = -1) -> bytes:
        self.during(self.handed)
        if self.handed >= len(self.blocks):
            return b""
        self.handed += 1
        return self.blocks[self.handed - 1]


class Untouchable:
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("a refused upload must not read a byte of the body")


@pytest.fixture
def draft(live_version):
    version = services.version_create(model=live_version.model)
    services.artifact_upload(version=version, path="README.md", stream=io.BytesIO(b"# tiny\n"))
    return version


# ------------------------------------------------------------------ files after finalize


def test_a_put_that_ends_after_finalize_is_refused_and_its_bytes_removed(settings, draft):
    finalized = []

    def finalize_midway(block: int) -> None:
        if block == 2 and not finalized:
            finalized.append(services.version_finalize(version=Version.objects.get(pk=draft.pk)))

    with pytest.raises(Conflict) as refused:
        services.artifact_upload(version=draft, path="late.gguf", stream=Stream(os.urandom(5000), during=finalize_midway), length=5000)
    assert refused.value.code == "invalid_state" and refused.value.status == 409
    assert "no longer a draft" in refused.value.message and "open a new version" in refused.value.message.lower()
    assert finalized and Version.objects.get(pk=draft.pk).status == Version.Status.HASHING
    assert list(Artifact.objects.filter(version=draft).values_list("path", flat=True)) == ["README.md"]
    assert stored_files(settings, draft) == ["README.md"] and parts(settings) == []
    assert not Upload.objects.filter(version=draft).exists()


def test_a_put_to_a_version_that_is_no_longer_a_draft_is_409_and_stores_nothing(settings, vendor, draft):
    stale = Version.objects.get(pk=draft.pk)  # as a request loaded it, just before finalize committed
    services.version_finalize(version=draft)
    with pytest.raises(Conflict) as refused:
        services.artifact_upload(version=stale, path="late.gguf", stream=Untouchable(), length=10)
    assert refused.value.code == "invalid_state"

    response = client_for(vendor.token).put(
        f"/api/v1/vendor/models/tiny/versions/{draft.pk}/files/late.gguf", data=b"GGUF" * 10, content_type="application/octet-stream"
    )
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert "no longer a draft" in response.json()["message"]
    assert stored_files(settings, draft) == ["README.md"] and parts(settings) == []


def test_a_tus_upload_opened_on_a_stale_draft_is_refused_under_the_version_lock(settings, vendor, draft):
    stale = Version.objects.get(pk=draft.pk)
    services.version_finalize(version=draft)
    with pytest.raises(Conflict) as refused:
        upload_create(user=vendor.user, version=stale, path="late.gguf", length=10)
    assert refused.value.code == "invalid_state"
    assert not Upload.objects.filter(version=draft).exists() and parts(settings) == []


def test_a_tus_upload_completing_after_the_version_left_draft_is_refused_and_its_bytes_removed(settings, vendor, draft):
    upload = upload_create(user=vendor.user, version=draft, path="late.gguf", length=3000)
    # finalize waits for an open tus upload, so here the version leaves draft the only other way
    # a completing upload can meet: behind its back (the row changes while the last chunk streams)
    closed = lambda block: block == 1 and Version.objects.filter(pk=draft.pk).update(status=Version.Status.HASHING)  # noqa: E731
    with pytest.raises(Conflict) as refused:
        upload_append(upload=Upload.objects.get(pk=upload.pk), offset=0, stream=Stream(os.urandom(3000), during=closed), content_length=3000)
    assert refused.value.code == "invalid_state"
    assert not Artifact.objects.filter(version=draft, path="late.gguf").exists()
    assert stored_files(settings, draft) == ["README.md"] and parts(settings) == []
    assert not Upload.objects.filter(pk=upload.pk).exists()


def test_an_open_tus_upload_still_holds_finalize_back(vendor, draft):
    upload_create(user=vendor.user, version=draft, path="open.gguf", length=10)
    with pytest.raises(Conflict) as caught:
        services.version_finalize(version=draft)
    assert caught.value.code == "uploads_in_progress"


# ------------------------------------------------------------------ quota and size for PUT


def test_put_counts_the_declared_length_against_the_quota_before_reading_a_byte(settings, vendor, draft):
    settings.VENDOR_STORAGE_QUOTA = sum(Artifact.objects.values_list("size", flat=True)) + 100
    with pytest.raises(MarketplaceError) as refused:
        services.artifact_upload(version=draft, path="big.gguf", stream=Untouchable(), length=101)
    assert refused.value.code == "quota_exceeded" and refused.value.status == 413

    response = client_for(vendor.token).put(
        f"/api/v1/vendor/models/tiny/versions/{draft.pk}/files/big.gguf", data=b"x" * 500, content_type="application/octet-stream"
    )
    assert response.status_code == 413 and response.json()["code"] == "quota_exceeded"
    assert stored_files(settings, draft) == ["README.md"] and parts(settings) == [] and not Upload.objects.exists()


def test_put_without_a_length_stops_when_the_bytes_pass_the_quota_or_the_size_limit(settings, draft):
    settings.VENDOR_STORAGE_QUOTA = sum(Artifact.objects.values_list("size", flat=True)) + 2500
    body = Stream(os.urandom(10_000))
    with pytest.raises(MarketplaceError) as refused:
        services.artifact_upload(version=draft, path="big.gguf", stream=body)
    assert refused.value.code == "quota_exceeded" and body.handed == 3  # stopped at the block past it
    settings.VENDOR_STORAGE_QUOTA = 10**12
    settings.MAX_ARTIFACT_SIZE = 1500
    with pytest.raises(MarketplaceError) as too_large:
        services.artifact_upload(version=draft, path="big.gguf", stream=Stream(os.urandom(10_000)))
    assert too_large.value.code == "file_too_large" and too_large.value.status == 413
    assert stored_files(settings, draft) == ["README.md"] and parts(settings) == [] and not Upload.objects.exists()

    fits = services.artifact_upload(version=draft, path="small.gguf", stream=Stream(b"GGUF" * 300))
    assert fits.size == 1200 and fits.sha256 == hashlib.sha256(b"GGUF" * 300).hexdigest()


def test_a_put_cut_short_leaves_nothing_and_can_be_sent_again(settings, draft):
    with pytest.raises(MarketplaceError) as cut:
        services.artifact_upload(version=draft, path="m.gguf", stream=io.BytesIO(b"x" * 40), length=100)
    assert cut.value.code == "incomplete_upload"
    assert parts(settings) == [] and not Upload.objects.exists()
    assert services.artifact_upload(version=draft, path="m.gguf", stream=io.BytesIO(b"x" * 100), length=100).size == 100


# ------------------------------------------------------------------ only signed files are served


def test_an_artifact_row_outside_the_signed_manifest_is_never_listed_nor_served(settings, vendor, live_version):
    data = b"GGUF not signed by anyone"
    name = f"artifacts/{live_version.pk}/extra.gguf"
    (Path(settings.MEDIA_ROOT) / name).write_bytes(data)
    Artifact.objects.create(version=live_version, path="extra.gguf", storage_name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    client = client_for(vendor.token)  # the vendor may download its own files: only the manifest stands between

    for revision in ("main", "v1", live_version.commit_sha):
        missing = client.get(f"/acme/tiny/resolve/{revision}/extra.gguf")
        assert missing.status_code == 404 and missing["X-Error-Code"] == "EntryNotFound", revision
        assert missing["X-Repo-Commit"] == live_version.commit_sha
    assert client.get("/acme/tiny/resolve/main/model.gguf").status_code == 200
    assert [s["rfilename"] for s in client.get("/api/models/acme/tiny").json()["siblings"]] == ["model.gguf"]
    assert [e["path"] for e in client.get("/api/models/acme/tiny/tree/main?recursive=true").json()] == ["model.gguf"]
    [listed] = client.get("/api/v1/models/acme/tiny").json()["versions"]
    assert [f["path"] for f in listed["files"]] == ["model.gguf"]
    assert client.get(f"/api/v1/provenance/sha256/{hashlib.sha256(data).hexdigest()}").json()["versions"] == []
    page = client.get("/acme/tiny").content.decode()  # the public page lists the signed files only
    assert "model.gguf" in page and "extra.gguf" not in page

    # a signed name with other bytes behind it is not the signed file either
    Artifact.objects.filter(version=live_version, path="model.gguf").update(sha256="00" * 32)
    assert client.get("/acme/tiny/resolve/v1/model.gguf").status_code == 404


def test_main_never_falls_back_to_a_file_of_an_older_version(vendor, live_version, gguf_file):
    v2 = publish_version(vendor, live_version.model, {"other.gguf": gguf_file.read_bytes()})
    assert v2.status == Version.Status.LIVE and v2.number == 2
    client = client_for(vendor.token)
    gone = client.get("/acme/tiny/resolve/main/model.gguf")
    assert gone.status_code == 404 and gone["X-Error-Code"] == "EntryNotFound"
    assert gone["X-Repo-Commit"] == v2.commit_sha
    assert client.head("/acme/tiny/resolve/main/model.gguf").status_code == 404
    assert client.get("/acme/tiny/resolve/v1/model.gguf").status_code == 200  # named explicitly, v1 still has it
    assert client.get("/acme/tiny/resolve/main/other.gguf")["X-Repo-Commit"] == v2.commit_sha


def test_x_accel_redirect_names_the_stored_file_url_encoded(settings, vendor, live_version, gguf_file):
    name = "weights #1 100%?é.gguf"
    v2 = publish_version(vendor, live_version.model, {name: gguf_file.read_bytes()})
    settings.DOWNLOAD_X_ACCEL_REDIRECT_PREFIX = "/_protected/"
    response = client_for(vendor.token).get(f"/acme/tiny/resolve/main/{quote(name)}")
    assert response.status_code == 200
    storage_name = v2.artifacts.get().storage_name
    assert "#" not in response["X-Accel-Redirect"] and "?" not in response["X-Accel-Redirect"] and " " not in response["X-Accel-Redirect"]
    assert response["X-Accel-Redirect"] == "/_protected/" + quote(storage_name, safe="/")
    assert unquote(response["X-Accel-Redirect"]) == "/_protected/" + storage_name


def test_a_body_is_hashed_in_order_beside_its_writes_and_handed_to_disk_as_it_arrives(tmp_path):
    """`_receive` hashes on a thread of its own (in order, every digest asked for) and asks the
    kernel to start writing back every WRITEBACK_EVERY bytes; a body refused midway stops that
    thread too."""
    import threading

    from marketplace.services import uploads

    assert uploads._sync_file_range() is not None  # Linux: the hint is really given
    data = os.urandom(3 * uploads.WRITEBACK_EVERY + 12345)
    digests = [hashlib.sha256(), hashlib.sha1()]
    target = tmp_path / "part"
    target.write_bytes(b"")
    threads = threading.active_count()
    with open(target, "r+b") as part:
        written = uploads._receive(part, io.BytesIO(data), limit=len(data), digests=digests, over=lambda: AssertionError())
    assert written == len(data) and target.read_bytes() == data
    assert [d.hexdigest() for d in digests] == [hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest()]

    class TooLong(MarketplaceError):
        pass

    with open(target, "r+b") as part, pytest.raises(TooLong):
        uploads._receive(part, io.BytesIO(data), limit=len(data) // 2, digests=[hashlib.sha256()], over=lambda: TooLong("too long"))
    assert threading.active_count() == threads  # no digest thread left behind


def test_a_digest_that_fails_midway_fails_the_body_and_leaves_no_thread_waiting(tmp_path):
    import threading

    from marketplace.services import uploads

    class Broken:
        def __init__(self):
            self.calls = 0

        def update(self, block):
            self.calls += 1
            if self.calls == 2:
                raise MemoryError("no memory for the digest")

    data = os.urandom(12 * uploads.BLOCK)  # more blocks than the digest queue holds
    target = tmp_path / "part"
    target.write_bytes(b"")
    threads = threading.active_count()
    with open(target, "r+b") as part, pytest.raises(MemoryError, match="no memory for the digest"):
        uploads._receive(part, io.BytesIO(data), limit=len(data), digests=[Broken()], over=lambda: AssertionError())
    assert threading.active_count() == threads
