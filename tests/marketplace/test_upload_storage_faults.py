"""Uploads when the server's own storage fails: a full disk, a crash of the machine that took
bytes the kernel had not yet written, an fsync that fails. Each ends in a documented error or a
resume from what the disk really holds, and never in a file with a gap or foreign bytes."""

import contextlib
import hashlib
import os
import resource
import signal

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from marketplace import services
from marketplace.models import Artifact, Upload
from marketplace.services import uploads
from tests.marketplace.test_tus_uploads import metadata, tus_headers

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


@pytest.fixture
def draft(live_version):
    return services.version_create(model=live_version.model)


@contextlib.contextmanager
def file_size_limit(limit: int):
    """The kernel's limit on the size of a file this process writes (RLIMIT_FSIZE): a write past
    it fails with EFBIG, as a write to a full disk fails with ENOSPC (SIGXFSZ ignored, as the
    default action would kill the process)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


class Tus:
    def __init__(self, vendor, draft):
        self.client, self.vendor = Client(), vendor
        self.creation = f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/uploads"
        self.url = ""

    def create(self, name: str, length: int):
        answer = self.client.post(self.creation, data=b"", content_type="application/offset+octet-stream",
                                  headers=tus_headers(self.vendor, **{"Upload-Length": str(length), "Upload-Metadata": metadata(name)}))
        assert answer.status_code == 201, answer.content
        self.url = answer["Location"].removeprefix("http://testserver")
        return answer

    def patch(self, offset: int, data: bytes, *, checksum: bool = False):
        more = {"Upload-Offset": str(offset)}
        if checksum:
            import base64

            more["Upload-Checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
        return self.client.patch(self.url, data=data, content_type="application/offset+octet-stream",
                                 headers=tus_headers(self.vendor, **more))

    def offset(self) -> int:
        answer = self.client.head(self.url, headers=tus_headers(self.vendor))
        assert answer.status_code == 200
        return int(answer["Upload-Offset"])


def part_path(upload: Upload) -> str:
    return uploads._part_path(upload)


def stored_bytes(draft, path: str) -> bytes:
    artifact = Artifact.objects.get(version=draft, path=path)
    with default_storage.open(artifact.storage_name, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "with-checksum"])
def test_a_chunk_the_disk_has_no_room_for_is_507_and_keeps_nothing(vendor, draft, checksum):
    data = os.urandom(3 * MiB)
    tus = Tus(vendor, draft)
    tus.create("big.gguf", len(data))
    first = tus.patch(0, data[:MiB], checksum=checksum)
    assert first.status_code == 204, first.content
    upload = Upload.objects.get()

    with file_size_limit(MiB + MiB // 2):  # room for half of the second chunk
        refused = tus.patch(MiB, data[MiB : 2 * MiB], checksum=checksum)
    assert refused.status_code == 507, refused.content
    assert refused.json()["code"] == "insufficient_storage"
    assert "retry later" in refused.json()["message"]
    # not taken for a client gone away: none of the chunk's bytes were kept, the offset did not move
    assert tus.offset() == MiB
    assert os.path.getsize(part_path(upload)) == MiB

    # with room again, the same chunk goes through and the file is whole
    assert tus.patch(MiB, data[MiB : 2 * MiB], checksum=checksum).status_code == 204
    assert tus.patch(2 * MiB, data[2 * MiB :], checksum=checksum).status_code == 204
    assert stored_bytes(draft, "big.gguf") == data


def test_a_whole_file_put_the_disk_has_no_room_for_is_507_and_leaves_nothing(vendor, draft):
    data = os.urandom(2 * MiB)
    url = f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/files/w.gguf"
    with file_size_limit(MiB):
        refused = Client().put(url, data=data, content_type="application/octet-stream", headers={"Authorization": f"Bearer {vendor.token}"})
    assert refused.status_code == 507, refused.content
    assert refused.json()["code"] == "insufficient_storage"
    assert not Upload.objects.exists() and not Artifact.objects.filter(version=draft).exists()
    assert os.listdir(uploads._parts_dir()) == []

    stored = Client().put(url, data=data, content_type="application/octet-stream", headers={"Authorization": f"Bearer {vendor.token}"})
    assert stored.status_code in (200, 201), stored.content
    assert stored_bytes(draft, "w.gguf") == data


def test_after_a_crash_took_acknowledged_bytes_the_upload_resumes_from_what_the_disk_holds(vendor, draft):
    data = os.urandom(3 * MiB)
    tus = Tus(vendor, draft)
    tus.create("m.gguf", len(data))
    assert tus.patch(0, data[: 2 * MiB]).status_code == 204
    upload = Upload.objects.get()
    assert upload.offset == 2 * MiB

    # what a power cut can leave: chunks are acknowledged before the kernel has written them out,
    # so the file holds fewer bytes than the offset recorded
    os.truncate(part_path(upload), MiB + 12345)
    # the client's next chunk at the offset it was told is refused: the server's offset moved back
    stale = tus.patch(2 * MiB, data[2 * MiB :])
    assert stale.status_code == 409 and stale.json()["code"] == "offset_mismatch"
    assert tus.offset() == MiB + 12345
    assert Upload.objects.get().offset == MiB + 12345
    assert tus.patch(MiB + 12345, data[MiB + 12345 :]).status_code == 204
    assert stored_bytes(draft, "m.gguf") == data


def test_after_a_crash_took_the_whole_part_file_the_upload_starts_again_from_zero(vendor, draft):
    data = os.urandom(MiB + 5)
    tus = Tus(vendor, draft)
    tus.create("gone.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204
    os.unlink(part_path(Upload.objects.get()))  # its creation was never made durable either

    assert tus.offset() == 0
    assert tus.patch(0, data).status_code == 204
    assert stored_bytes(draft, "gone.gguf") == data


def test_a_completion_whose_fsync_fails_starts_the_upload_again(vendor, draft, tmp_path):
    """An fsync error at completion may mean any earlier chunk's write-back failed: the offset goes
    back to 0 (the client's HEAD says so) and the answer is a storage error, never a recorded file."""
    data = b"0123456789"
    tus = Tus(vendor, draft)
    tus.create("f.gguf", len(data))
    assert tus.patch(0, data[:4]).status_code == 204
    upload = Upload.objects.get()
    # a character device: fsync answers EINVAL, a real error from the kernel
    with pytest.raises(uploads.UploadError) as refused:
        uploads._make_durable(upload, "/dev/null")
    assert refused.value.code == "storage_error" and refused.value.status == 500
    assert Upload.objects.get().offset == 0
    assert tus.offset() == 0
    assert not Artifact.objects.filter(version=draft).exists()
