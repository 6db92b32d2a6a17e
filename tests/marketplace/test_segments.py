"""Per-segment digests (issue 17, server side): computed in the same read as each file's SHA-256,
stored per file, committed by the version's signed metadata (`segments`) and served at
`/api/v1/models/<vendor>/<model>/versions/<number>/segments`."""

from __future__ import annotations

import hashlib
import os

import pytest
from rest_framework.test import APIClient

from hallmark.manifest import metadata_digest
from hallmark.segments import MIN_SEGMENT_SIZE, check_document, metadata_entry, segment_document_digest
from marketplace.models import Artifact, Model, Version
from registry.sandbox import Limits, files_hash_and_inspect
from tests.conftest import publish, publish_version

SEG = MIN_SEGMENT_SIZE  # 1 MiB: small files still span several segments
SIZES = {"empty.data": 0, "small.data": 1000, "two.data": 2 * SEG, "three-plus.data": 3 * SEG + 1}


def expected_digests(data: bytes, segment_size: int = SEG) -> list[str]:
    return [hashlib.sha256(data[i:i + segment_size]).hexdigest() for i in range(0, len(data), segment_size)]


def url(version: Version, number: int | None = None) -> str:
    model = version.model
    return f"/api/v1/models/{model.vendor.slug}/{model.slug}/versions/{version.number if number is None else number}/segments"


@pytest.fixture
def files(gguf_file) -> dict[str, bytes]:
    data = {name: os.urandom(size) for name, size in SIZES.items()}
    return {"model.gguf": gguf_file.read_bytes(), **data}


@pytest.fixture
def segmented(chain, settings, vendor, files):
    """acme/seg v1, published through the services with 1 MiB segments."""
    settings.VERSION_SEGMENT_SIZE = SEG
    version = publish(vendor, "seg", files)
    assert version.status == Version.Status.LIVE  # the whole publish still goes live
    return version


def test_the_sandbox_returns_each_segment_digest_with_the_file_digest(tmp_path):
    paths = []
    for name, size in SIZES.items():
        (tmp_path / name).write_bytes(os.urandom(size))
        paths.append((str(tmp_path / name), name))
    results = files_hash_and_inspect(paths, limits=Limits.for_bytes(sum(SIZES.values())), segment_size=SEG)
    for (path, name), result in zip(paths, results, strict=True):
        data = open(path, "rb").read()
        assert result.name == name and result.size == len(data)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert list(result.segments) == expected_digests(data)
    assert [len(r.segments) for r in results] == [0, 1, 2, 4]


def test_a_segment_size_out_of_bounds_is_refused(tmp_path):
    (tmp_path / "a.data").write_bytes(b"x")
    with pytest.raises(ValueError, match="segment_size"):
        files_hash_and_inspect([(str(tmp_path / "a.data"), "a.data")], limits=Limits(), segment_size=SEG - 1)


def test_each_file_keeps_its_segment_digests(segmented, files):
    stored = {a.path: a.segment_digests for a in segmented.artifacts.all()}
    assert stored == {name: expected_digests(data) for name, data in files.items()}
    assert [len(stored[name]) for name in SIZES] == [0, 1, 2, 4]


def test_the_signed_metadata_commits_to_the_served_document(segmented, files):
    response = APIClient().get(url(segmented))
    assert response.status_code == 200
    document = response.json()
    assert document == {
        "version": 1,
        "segment_size": SEG,
        "files": {name: expected_digests(data) for name, data in sorted(files.items())},
    }
    metadata = segmented.metadata
    assert metadata["segments"] == metadata_entry(document) == {"size": SEG, "sha256": segment_document_digest(document)}
    # the digest the vendor signed (and the chain's VersionPublished carries) covers the entry
    assert segmented.metadata_digest == metadata_digest(metadata)
    assert segmented.typed_data["message"]["metadataDigest"] == "0x" + metadata_digest(metadata)
    without = {k: v for k, v in metadata.items() if k != "segments"}
    assert metadata_digest(without) != segmented.metadata_digest
    # what a client accepts, given the sizes from the signed file list
    sizes = {f["path"]: f["size"] for f in metadata["files"]}
    assert check_document(document, metadata["segments"], sizes) == document["files"]


def test_the_document_is_cached_for_good_and_public(segmented):
    response = APIClient().get(url(segmented))  # no token: public like the model detail
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"] == f'"{segmented.metadata["segments"]["sha256"]}"'
    assert response["Content-Type"].startswith("application/json")


def test_the_default_segment_size_is_16_mib(chain, vendor, gguf_file):
    version = publish(vendor, "big-segments", {"model.gguf": gguf_file.read_bytes()})
    assert version.metadata["segments"]["size"] == 16 * 1024 * 1024
    document = APIClient().get(url(version)).json()
    assert document["files"] == {"model.gguf": [hashlib.sha256(gguf_file.read_bytes()).hexdigest()]}


def test_a_version_hashed_before_segments_existed_has_none(segmented):
    # as a version hashed before this change looks: no `segments` in its metadata, no digests stored
    metadata = {k: v for k, v in segmented.metadata.items() if k != "segments"}
    Version.objects.filter(pk=segmented.pk).update(metadata=metadata, metadata_digest=metadata_digest(metadata))
    Artifact.objects.filter(version=segmented).update(segment_digests=[])
    response = APIClient().get(url(segmented))
    assert response.status_code == 404
    assert response.json()["code"] == "segments_unavailable"
    assert "Cache-Control" not in response or "immutable" not in response["Cache-Control"]


def test_digests_that_differ_from_the_commitment_are_never_served(segmented):
    artifact = segmented.artifacts.get(path="two.data")
    Artifact.objects.filter(pk=artifact.pk).update(segment_digests=list(reversed(artifact.segment_digests)))
    response = APIClient().get(url(segmented))
    assert response.status_code == 404
    assert response.json()["code"] == "segments_unavailable"


def test_only_files_of_the_signed_manifest_are_listed(segmented):
    Artifact.objects.create(version=segmented, path="extra.data", storage_name="x", size=1, sha256="0" * 64, segment_digests=["0" * 64])
    response = APIClient().get(url(segmented))
    assert response.status_code == 200
    assert "extra.data" not in response.json()["files"]


def test_access_follows_the_model_detail(chain, segmented, vendor, files):
    client = APIClient()
    # unknown model, unknown number, a number past the column's range
    assert client.get("/api/v1/models/acme/nope/versions/1/segments").json()["code"] == "RepoNotFound"
    assert client.get(url(segmented, 99)).json()["code"] == "RevisionNotFound"
    assert client.get(url(segmented, 2**63)).json()["code"] == "RevisionNotFound"
    # a version not live yet is not listed on the model detail, nor served here
    model = segmented.model
    draft = Version.objects.create(model=model, status=Version.Status.AWAITING_SIGNATURE, number=2)
    assert client.get(url(draft)).status_code == 404
    assert all(v["number"] != 2 for v in client.get(f"/api/v1/models/acme/{model.slug}").json()["versions"])
    # an unlisted model (not for sale) still shows its detail, and its segments
    Model.objects.filter(pk=model.pk).update(listed=False)
    assert client.get(f"/api/v1/models/acme/{model.slug}").status_code == 200
    assert client.get(url(segmented)).status_code == 200
    # a model that is not live shows neither
    Model.objects.filter(pk=model.pk).update(status=Model.Status.PENDING_CHAIN)
    assert client.get(f"/api/v1/models/acme/{model.slug}").status_code == 404
    assert client.get(url(segmented)).json()["code"] == "RepoNotFound"


def test_a_second_version_gets_its_own_document(segmented, vendor, settings):
    settings.VERSION_SEGMENT_SIZE = 2 * SEG
    data = os.urandom(3 * SEG)
    second = publish_version(vendor, segmented.model, {"weights.data": data})
    assert second.status == Version.Status.LIVE and second.number == segmented.number + 1
    document = APIClient().get(url(second)).json()
    assert document == {"version": 1, "segment_size": 2 * SEG, "files": {"weights.data": expected_digests(data, 2 * SEG)}}
    assert APIClient().get(url(segmented)).json()["segment_size"] == SEG
