"""Uploads when the server's own storage fails: a full disk, a part file that holds less than its
recorded offset (or is gone), an fsync that fails, a request in the middle of a completion. Each
ends in a documented error or a resume from what the disk really holds, never in a file with a
gap or foreign bytes, and leaves no file behind that nothing will remove."""

import contextlib
import errno
import fcntl
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


def test_a_part_file_holding_less_than_its_offset_resumes_from_what_it_holds(vendor, draft):
    data = os.urandom(3 * MiB)
    tus = Tus(vendor, draft)
    tus.create("m.gguf", len(data))
    assert tus.patch(0, data[: 2 * MiB]).status_code == 204
    upload = Upload.objects.get()
    assert upload.offset == 2 * MiB

    # a file damaged from outside (restored from a backup, a disk that lost acknowledged writes):
    # it holds fewer bytes than the offset recorded
    os.truncate(part_path(upload), MiB + 12345)
    # the client's next chunk at the offset it was told is refused: the server's offset moved back
    stale = tus.patch(2 * MiB, data[2 * MiB :])
    assert stale.status_code == 409 and stale.json()["code"] == "offset_mismatch"
    assert tus.offset() == MiB + 12345
    assert Upload.objects.get().offset == MiB + 12345
    assert tus.patch(MiB + 12345, data[MiB + 12345 :]).status_code == 204
    assert stored_bytes(draft, "m.gguf") == data


def test_a_part_file_that_is_gone_starts_the_upload_again_from_zero(vendor, draft):
    data = os.urandom(MiB + 5)
    tus = Tus(vendor, draft)
    tus.create("gone.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204
    os.unlink(part_path(Upload.objects.get()))  # e.g. its directory entry lost in a crash (never fsynced)

    assert tus.offset() == 0
    assert tus.patch(0, data).status_code == 204
    assert stored_bytes(draft, "gone.gguf") == data


def test_a_head_while_the_last_chunk_completes_still_sees_every_byte(vendor, draft, monkeypatch):
    """The part keeps its name until the artifact is committed: a HEAD in between (a client that
    timed out on its last PATCH and asks where it stands) must not take the file for lost."""
    data = os.urandom(MiB + 3)
    tus = Tus(vendor, draft)
    tus.create("race.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204
    seen = []
    real = uploads._fsync_directory

    def head_in_the_window(path):  # runs after the artifact's name exists, before it is recorded
        real(path)
        seen.append(Tus.offset(tus))

    monkeypatch.setattr(uploads, "_fsync_directory", head_in_the_window)
    last = tus.patch(MiB, data[MiB:])
    assert last.status_code == 204 and last["Upload-Offset"] == str(len(data))
    assert seen == [len(data)]
    assert Upload.objects.get().completed_at is not None and Upload.objects.get().offset == len(data)
    assert stored_bytes(draft, "race.gguf") == data
    assert os.listdir(uploads._parts_dir()) == []  # the part's own name went once recorded


def test_a_last_chunk_whose_file_cannot_be_recorded_is_sent_again(vendor, draft, monkeypatch):
    """Giving the finished file its artifact name fails (a full disk): the answer is 507, the
    offset goes back to where that chunk began, and sending it again completes the file."""
    data = os.urandom(MiB + 10)
    tus = Tus(vendor, draft)
    tus.create("again.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(uploads.os, "link", no_room)
        refused = tus.patch(MiB, data[MiB:])
    assert refused.status_code == 507 and refused.json()["code"] == "insufficient_storage"
    assert tus.offset() == MiB and not Artifact.objects.filter(version=draft).exists()
    assert tus.patch(MiB, data[MiB:]).status_code == 204
    assert stored_bytes(draft, "again.gguf") == data


def failing_fsync(only_read_only: bool):
    """os.fsync answering EIO (an I/O error cannot be had for real on a healthy disk), for every
    file or only for files opened read-only (the completion's fsync; a chunk's runs on its
    read-write descriptor)."""
    real = os.fsync

    def fsync(fd):
        if not only_read_only or fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    return fsync


def test_a_chunk_whose_fsync_fails_is_not_acknowledged_and_a_put_leaves_nothing(vendor, draft, monkeypatch):
    data = os.urandom(MiB + 1)
    tus = Tus(vendor, draft)
    tus.create("eio.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204

    with monkeypatch.context() as patched:
        patched.setattr(uploads.os, "fsync", failing_fsync(only_read_only=False))
        refused = tus.patch(MiB, data[MiB:])
        assert refused.status_code == 500 and refused.json()["code"] == "storage_error"
        assert tus.offset() == MiB and os.path.getsize(part_path(Upload.objects.get())) == MiB
        put = Client().put(f"/api/v1/vendor/models/{draft.model.slug}/versions/{draft.pk}/files/p.gguf", data=b"abc",
                           content_type="application/octet-stream", headers={"Authorization": f"Bearer {vendor.token}"})
        assert put.status_code == 500 and put.json()["code"] == "storage_error"
    assert list(Upload.objects.values_list("path", flat=True)) == ["eio.gguf"]  # the PUT left no row
    assert os.listdir(uploads._parts_dir()) == [Upload.objects.get().part_name]  # nor a part file
    assert tus.patch(MiB, data[MiB:]).status_code == 204
    assert stored_bytes(draft, "eio.gguf") == data and not Artifact.objects.filter(version=draft, path="p.gguf").exists()


def test_an_fsync_error_at_completion_sends_the_upload_back_to_zero(vendor, draft, monkeypatch):
    """An fsync that fails when the file is complete may mean an earlier write-back failed too: the
    upload starts again from 0 (HEAD says so), and nothing is recorded."""
    data = os.urandom(MiB + 1)
    tus = Tus(vendor, draft)
    tus.create("eio.gguf", len(data))
    assert tus.patch(0, data[:MiB]).status_code == 204
    with monkeypatch.context() as patched:
        patched.setattr(uploads.os, "fsync", failing_fsync(only_read_only=True))
        refused = tus.patch(MiB, data[MiB:])
    assert refused.status_code == 500 and refused.json()["code"] == "storage_error"
    assert tus.offset() == 0 and os.path.getsize(part_path(Upload.objects.get())) == 0
    assert not Artifact.objects.filter(version=draft).exists()
    assert tus.patch(0, data).status_code == 204
    assert stored_bytes(draft, "eio.gguf") == data


def test_expiry_sweeps_part_files_no_open_upload_owns(vendor, draft):
    tus = Tus(vendor, draft)
    tus.create("open.gguf", 10)
    assert tus.patch(0, b"01234").status_code == 204
    owned = part_path(Upload.objects.get())
    directory = uploads._parts_dir()
    orphan = os.path.join(directory, "00000000-0000-0000-0000-000000000000.part")  # what a crash between two steps leaves
    fresh = os.path.join(directory, "11111111-1111-1111-1111-111111111111.part")  # maybe being created right now
    for path in (orphan, fresh):
        with open(path, "wb") as fh:
            fh.write(b"x")
    old = os.path.getmtime(owned) - 2 * uploads.ORPHAN_GRACE_SECONDS
    os.utime(orphan, (old, old))
    os.utime(owned, (old, old))  # an idle upload that has not expired yet keeps its bytes

    assert uploads.uploads_expire() == 0
    assert not os.path.exists(orphan)
    assert os.path.exists(fresh) and os.path.exists(owned)
    assert tus.offset() == 5
