"""hallmark.segments: one pass gives the file's SHA-256 and each segment's; a segment document is
accepted only when it is the one the signed metadata names and fits the files, bounded first."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hallmark.segments import (
    MAX_SEGMENTS,
    MIN_SEGMENT_SIZE,
    SegmentDocumentError,
    SegmentHasher,
    check_document,
    metadata_entry,
    segment_count,
    segment_document,
    segment_range,
)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200), segment_size=st.integers(1, 40), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_one_pass_equals_hashing_each_segment_alone(data, segment_size, cuts):
    hasher = SegmentHasher(segment_size=segment_size)
    at = 0
    for cut in sorted(cuts) + [len(data)]:  # fed in arbitrary pieces
        hasher.update(data[at:max(at, cut)])
        at = max(at, cut)
    whole, digests = hasher.finish()
    assert whole == hashlib.sha256(data).hexdigest()
    assert len(digests) == segment_count(len(data), segment_size)
    for index, digest in enumerate(digests):
        start, end = segment_range(index, len(data), segment_size)
        assert digest == hashlib.sha256(data[start:end]).hexdigest()


def _document(sizes: dict[str, int], segment_size: int = MIN_SEGMENT_SIZE):
    files = {path: [hashlib.sha256(f"{path}:{i}".encode()).hexdigest() for i in range(segment_count(size, segment_size))]
             for path, size in sizes.items()}
    document = segment_document(files, segment_size)
    return document, metadata_entry(document)


def test_the_committed_document_is_accepted():
    sizes = {"model.gguf": 3 * MIN_SEGMENT_SIZE + 1, "README.md": 10, "empty.txt": 0}
    document, committed = _document(sizes)
    digests = check_document(document, committed, sizes)
    assert [len(digests[p]) for p in ("model.gguf", "README.md", "empty.txt")] == [4, 1, 0]


@pytest.mark.parametrize("change", [
    lambda d, c: d["files"]["model.gguf"].__setitem__(0, "0" * 64),  # not the committed document
    lambda d, c: d["files"]["model.gguf"].pop(),  # (digest no longer matches either)
    lambda d, c: d.__setitem__("segment_size", 1),  # below the minimum
    lambda d, c: c.__setitem__("size", 2 * MIN_SEGMENT_SIZE),  # metadata says another size
    lambda d, c: d.__setitem__("files", []),
])
def test_a_changed_document_is_refused(change):
    sizes = {"model.gguf": 3 * MIN_SEGMENT_SIZE + 1}
    document, committed = _document(sizes)
    change(document, committed)
    with pytest.raises(SegmentDocumentError):
        check_document(document, committed, sizes)


def test_wrong_counts_and_malformed_digests_are_refused_even_when_committed():
    sizes = {"model.gguf": 2 * MIN_SEGMENT_SIZE}
    short, committed = _document({"model.gguf": MIN_SEGMENT_SIZE})
    with pytest.raises(SegmentDocumentError, match="wrong number of segments"):
        check_document(short, committed, sizes)
    bad = segment_document({"model.gguf": ["XYZ" * 21 + "x", "a" * 64]}, MIN_SEGMENT_SIZE)
    with pytest.raises(SegmentDocumentError, match="malformed digest"):
        check_document(bad, metadata_entry(bad), sizes)


def test_a_document_for_more_segments_than_allowed_is_refused_before_it_is_read():
    huge = {"model.gguf": (MAX_SEGMENTS + 1) * MIN_SEGMENT_SIZE}
    document = segment_document({"model.gguf": []}, MIN_SEGMENT_SIZE)
    with pytest.raises(SegmentDocumentError, match="larger than the files"):
        check_document(document, metadata_entry(document), huge)
