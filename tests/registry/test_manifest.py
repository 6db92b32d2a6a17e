"""The manifest and root digest follow the OMS rule, recomputed here independently."""

import hashlib
import io
import json
import os

import pytest

from hallmark.errors import UnsafePath
from hallmark.manifest import (
    build_statement,
    canonical_json,
    hash_directory,
    metadata_digest,
    root_digest,
    sha256_stream,
    validate_relative_path,
)


def oms_root_digest(directory):
    """Independent reading of the OMS rule: sha256 over raw file digests in sorted name order."""
    names = []
    for root, _, files in os.walk(directory):
        for name in files:
            names.append(os.path.relpath(os.path.join(root, name), directory).replace(os.sep, "/"))
    concatenated = b"".join(hashlib.sha256(open(os.path.join(directory, n), "rb").read()).digest() for n in sorted(names))
    return hashlib.sha256(concatenated).hexdigest()


def test_root_digest_of_a_directory_matches_the_oms_rule(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "Z.bin.gguf").write_bytes(b"zz" * 1000)
    (tmp_path / "b.gguf").write_bytes(os.urandom(70_000))
    (tmp_path / "sub" / "a.json").write_text('{"x": 1}')
    files = hash_directory(tmp_path)
    assert [f.name for f in files] == ["Z.bin.gguf", "b.gguf", "sub/a.json"]
    assert root_digest(files) == oms_root_digest(tmp_path)


def test_statement_is_an_in_toto_oms_statement(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF-demo")
    files = hash_directory(tmp_path)
    statement = build_statement("acme/tiny", files)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["subject"] == [{"name": "acme/tiny", "digest": {"sha256": root_digest(files)}}]
    assert statement["predicate"]["resources"] == [
        {"name": "m.gguf", "algorithm": "sha256", "digest": hashlib.sha256(b"GGUF-demo").hexdigest()}
    ]
    assert statement["predicate"]["serialization"]["method"] == "files"


def test_streamed_hash_equals_whole_hash_across_block_boundaries():
    data = os.urandom(3 * 1024 + 17)
    digest, size = sha256_stream(io.BytesIO(data), block_size=1024)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_metadata_digest_is_sha256_of_canonical_json():
    metadata = {"b": 1, "a": ["é", 2]}
    assert canonical_json(metadata) == '{"a":["é",2],"b":1}'.encode()
    assert metadata_digest(metadata) == hashlib.sha256(json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


@pytest.mark.parametrize(
    "name",
    ["", "../../etc/passwd", "/etc/passwd", "C:/x.gguf", "a/../b", "a//b", "./a", "a\\b", "a\x00b", "a\nb", ".git/HEAD", ".github/x"],
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(UnsafePath):
        validate_relative_path(name)


def test_plain_relative_names_are_accepted():
    for name in ["model.gguf", "onnx/model.onnx", "tokenizer.json", "a b/ü.gguf"]:
        assert validate_relative_path(name) == name


def test_symlinks_are_refused(tmp_path):
    (tmp_path / "real.gguf").write_bytes(b"x")
    (tmp_path / "link.gguf").symlink_to(tmp_path / "real.gguf")
    with pytest.raises(UnsafePath):
        hash_directory(tmp_path)
