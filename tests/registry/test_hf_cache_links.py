"""Which files a downloaded folder holds: a huggingface_hub cache snapshot is read through its
links into the repository's `blobs/`, and only those links; every other link is refused.

The cache here is laid out as huggingface_hub lays it out (file_download.py `_create_symlink`:
`snapshots/<commit>/<path>` -> `../../blobs/<etag>`, relative); tests/marketplace/
test_verify_hf_downloads.py checks the same rule on caches the real client filled.
"""

import hashlib
import os
from pathlib import Path

import pytest

from hallmark.errors import UnsafePath
from hallmark.manifest import TOOL_STATE_FOLDERS, hash_directory, hf_snapshot_blobs

COMMIT = "ab" * 20
WEIGHTS = b"GGUF" + bytes(range(256)) * 8
CONFIG = b'{"architecture": "llama"}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_repo(root: Path, name: str = "models--acme--tiny") -> Path:
    """`<root>/models--acme--tiny/` holding two blobs and a snapshot that links to them."""
    repo = root / name
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    (snapshot / "tokenizer").mkdir(parents=True)
    for path, data in (("model.gguf", WEIGHTS), ("tokenizer/config.json", CONFIG)):
        (repo / "blobs" / sha(data)).write_bytes(data)
        link = snapshot / path
        link.symlink_to(os.path.relpath(repo / "blobs" / sha(data), link.parent))
    return repo


@pytest.fixture
def snapshot(tmp_path) -> Path:
    return cache_repo(tmp_path / "hub") / "snapshots" / COMMIT


def follow(folder) -> list[tuple[str, str]]:
    return [(f.name, f.sha256) for f in hash_directory(folder, exclude=TOOL_STATE_FOLDERS, follow_hf_cache_links=True)]


def refused(folder) -> str:
    with pytest.raises(UnsafePath) as caught:
        follow(folder)
    return str(caught.value)


def test_a_cache_snapshot_is_hashed_through_its_links_into_blobs(snapshot):
    assert hf_snapshot_blobs(snapshot) == snapshot.parent.parent / "blobs"
    assert follow(snapshot) == [("model.gguf", sha(WEIGHTS)), ("tokenizer/config.json", sha(CONFIG))]


def test_the_snapshot_may_be_named_through_a_link_to_it(snapshot, tmp_path):
    (tmp_path / "model").symlink_to(snapshot)
    assert follow(tmp_path / "model") == follow(snapshot)


def test_without_the_option_or_outside_a_snapshot_links_stay_refused(snapshot, tmp_path):
    with pytest.raises(UnsafePath, match="symbolic link"):
        hash_directory(snapshot)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.gguf").symlink_to(snapshot / "model.gguf")
    assert "give its snapshots/<commit> folder" in refused(plain)


def test_the_whole_cache_repository_is_refused_with_the_folder_to_give(snapshot):
    assert "give its snapshots/<commit> folder" in refused(snapshot.parent.parent)


def test_an_absolute_link_is_refused_even_into_blobs(snapshot):
    link = snapshot / "model.gguf"
    link.unlink()
    link.symlink_to(snapshot.parent.parent / "blobs" / sha(WEIGHTS))
    assert "absolute path" in refused(snapshot)


def test_a_relative_link_out_of_the_cache_is_refused(snapshot, tmp_path):
    (tmp_path / "secret.txt").write_text("not a model")
    link = snapshot / "model.gguf"
    link.unlink()
    link.symlink_to(os.path.relpath(tmp_path / "secret.txt", snapshot))
    assert "outside" in refused(snapshot)
    link.unlink()
    link.symlink_to("../../blobs/../../../secret.txt")  # starts like a blob path
    assert "outside" in refused(snapshot)


def test_a_link_into_another_repositorys_blobs_is_refused(snapshot, tmp_path):
    other = cache_repo(tmp_path / "hub", "models--evil--other")
    link = snapshot / "model.gguf"
    link.unlink()
    link.symlink_to(os.path.relpath(other / "blobs" / sha(WEIGHTS), snapshot))
    assert "outside" in refused(snapshot)


def test_a_link_to_a_directory_is_refused(snapshot):
    blobs = snapshot.parent.parent / "blobs"
    (blobs / "folder").mkdir()
    (blobs / "folder" / "x.gguf").write_bytes(WEIGHTS)
    (snapshot / "weights").symlink_to("../../blobs/folder")
    assert "directory" in refused(snapshot)


def test_loops_and_dangling_links_are_refused(snapshot):
    (snapshot / "a.gguf").symlink_to("b.gguf")
    (snapshot / "b.gguf").symlink_to("a.gguf")
    assert "a.gguf" in refused(snapshot)
    (snapshot / "a.gguf").unlink()
    (snapshot / "b.gguf").unlink()
    (snapshot / "c.gguf").symlink_to("../../blobs/" + "0" * 64)  # a blob that is not there
    assert "does not resolve" in refused(snapshot)
    (snapshot / "c.gguf").unlink()
    blobs = snapshot.parent.parent / "blobs"
    (blobs / "loop").symlink_to("loop")  # a blob that is a link to itself
    (snapshot / "c.gguf").symlink_to("../../blobs/loop")
    assert "c.gguf" in refused(snapshot)


def test_a_blob_that_is_itself_a_link_out_is_refused(snapshot, tmp_path):
    (tmp_path / "secret.txt").write_text("not a model")
    blobs = snapshot.parent.parent / "blobs"
    (blobs / "forged").symlink_to(tmp_path / "secret.txt")
    (snapshot / "extra.txt").symlink_to("../../blobs/forged")
    assert "extra.txt" in refused(snapshot)


def test_a_path_that_only_looks_like_it_stays_in_blobs_is_refused(snapshot, tmp_path):
    """`../../x/../blobs/b` reads as `blobs/b`, but the kernel follows `x` first: the resolved file
    must be the very blob the link names."""
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    (tmp_path / "elsewhere" / "blobs").mkdir()
    (tmp_path / "elsewhere" / "blobs" / sha(WEIGHTS)).write_bytes(b"other bytes")
    repo = snapshot.parent.parent
    (repo / "x").symlink_to(elsewhere)
    link = snapshot / "model.gguf"
    link.unlink()
    link.symlink_to(f"../../x/../blobs/{sha(WEIGHTS)}")
    assert link.read_bytes() == b"other bytes"  # what a naive reader would hash
    assert "model.gguf" in refused(snapshot)


def test_a_blobs_folder_that_is_a_link_makes_no_cache(snapshot, tmp_path):
    repo = snapshot.parent.parent
    (repo / "blobs").rename(tmp_path / "real-blobs")
    (repo / "blobs").symlink_to(tmp_path / "real-blobs")
    assert hf_snapshot_blobs(snapshot) is None
    assert "symbolic link" in refused(snapshot)


def test_a_folder_link_anywhere_is_refused_not_skipped(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(WEIGHTS)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.gguf").write_bytes(WEIGHTS)
    (folder / "more").symlink_to(tmp_path / "more")
    with pytest.raises(UnsafePath, match="'more' is a symbolic link to a directory"):
        hash_directory(folder)


def test_a_local_dir_download_leaves_huggingface_hub_state_out(tmp_path):
    folder = tmp_path / "model"
    (folder / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / ".gitignore").write_text("*")
    (folder / ".cache" / "huggingface" / "download" / "model.gguf.metadata").write_text("abc\n")
    (folder / "model.gguf").write_bytes(WEIGHTS)
    assert follow(folder) == [("model.gguf", sha(WEIGHTS))]


def test_a_pipe_in_the_folder_is_refused_not_waited_on(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(WEIGHTS)
    os.mkfifo(folder / "weights.gguf")  # opening it to read would wait for a writer forever
    with pytest.raises(UnsafePath, match="'weights.gguf' is not a regular file"):
        hash_directory(folder)


def test_verify_directory_reports_an_unsafe_folder_as_files_differ_before_asking_the_chain(snapshot):
    from hallmark.verify import Outcome, verify_directory

    (snapshot / "model.gguf").unlink()
    (snapshot / "model.gguf").symlink_to("/etc/hostname")
    # nothing listens at this RPC URL: the folder is judged before the chain is asked
    result = verify_directory(snapshot, rpc_url="http://127.0.0.1:9", registry_address="0x" + "11" * 20, model_id="0x" + "12" * 32, version=1)
    assert result.outcome is Outcome.FILES_DIFFER and result.message.endswith("[unsafe_path]")
    assert "'model.gguf' is a symbolic link to the absolute path '/etc/hostname'" in result.message
