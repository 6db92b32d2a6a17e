"""`manage.py verify_model` on what the real huggingface_hub client downloaded from a live
marketplace: a cache's `snapshots/<commit>/` folder (links into `blobs/`) and a `local_dir`
folder (with the client's `.cache/huggingface/` state); a changed byte in either is tampered,
and a hostile link in a cache is a clear FILES_DIFFER, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

from hallmark.verify import Outcome
from tests.conftest import publish, purchase

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = b'{"architecture": "llama", "context_length": 128}'


@pytest.fixture
def two_files(chain, vendor, gguf_file):
    """acme/tiny v1 with a weight file and a nested sidecar (a link two folders deep in the cache)."""
    return publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes(), "tokenizer/config.json": CONFIG})


@pytest.fixture
def buyer(chain, two_files, make_party):
    party = make_party("buyer", chain.keys[2])
    purchase(chain, two_files.model.chain_model_id, party.key)
    return party


def verify(capsys, folder, revision="v1") -> dict:
    with pytest.raises(SystemExit) as exited:
        call_command("verify_model", str(folder), "acme/tiny", revision, "--json")
    report = json.loads(capsys.readouterr().out)
    assert exited.value.code == report["exit_code"]
    return report


def flip_last_byte(path: Path) -> None:
    """Change the file in place, as a corrupted disk or an attacker would: through the cache's
    link the blob itself changes."""
    with open(path, "r+b") as stream:
        stream.seek(-1, os.SEEK_END)
        last = stream.read(1)
        stream.seek(-1, os.SEEK_END)
        stream.write(bytes([last[0] ^ 1]))


def test_a_cache_filled_file_by_file_verifies_from_its_snapshot_folder(live_server, two_files, buyer, tmp_path, capsys):
    api = HfApi(endpoint=live_server.url, token=buyer.token)
    paths = [
        hf_hub_download("acme/tiny", name, revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path)
        for name in api.list_repo_files("acme/tiny", revision="v1")
    ]
    snapshot = Path(paths[0]).parent
    assert snapshot.name == two_files.commit_sha and snapshot.parent.name == "snapshots"
    assert all(Path(p).is_symlink() for p in paths)  # the layout this rule is about
    report = verify(capsys, snapshot)
    assert report["outcome"] == "verified" and report["exit_code"] == 0
    assert report["local_root_digest"] == two_files.root_digest

    flip_last_byte(snapshot / "tokenizer" / "config.json")
    report = verify(capsys, snapshot)
    assert report["exit_code"] == Outcome.TAMPERED == 3 and report["tampered"] == ["tokenizer/config.json"]


def test_a_snapshot_download_cache_verifies_and_a_changed_blob_is_tampered(live_server, two_files, buyer, tmp_path, capsys):
    folder = Path(snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path))
    assert (folder / "model.gguf").is_symlink()
    assert verify(capsys, folder)["exit_code"] == 0
    assert verify(capsys, folder, revision="main")["exit_code"] == 0

    flip_last_byte(folder / "model.gguf")
    report = verify(capsys, folder)
    assert report["exit_code"] == Outcome.TAMPERED and report["tampered"] == ["model.gguf"]


def test_a_local_dir_download_verifies_without_the_clients_state_and_a_changed_file_is_tampered(
    live_server, two_files, buyer, tmp_path, capsys
):
    folder = tmp_path / "model"
    snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, local_dir=folder, cache_dir=tmp_path / "cache")
    assert any((folder / ".cache" / "huggingface").rglob("*.metadata"))  # the state that used to count as extra files
    report = verify(capsys, folder)
    assert report["exit_code"] == 0 and report["extra"] == []

    flip_last_byte(folder / "model.gguf")
    report = verify(capsys, folder)
    assert report["exit_code"] == Outcome.TAMPERED and report["tampered"] == ["model.gguf"]


def test_the_hf_download_command_folder_verifies(live_server, two_files, buyer, tmp_path, capsys):
    """The reported case word for word: `hf download REPO --local-dir DIR`, then verify DIR."""
    hf = Path(sys.executable).parent / "hf"
    env = dict(os.environ, HF_ENDPOINT=live_server.url, HF_TOKEN=buyer.token, HF_HOME=str(tmp_path / "home"), HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run(
        [str(hf), "download", "acme/tiny", "--revision", "v1", "--local-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / ".cache" / "huggingface").is_dir()
    assert verify(capsys, tmp_path / "out")["exit_code"] == 0


def test_a_hostile_link_in_a_cache_is_files_differ_with_a_clear_message(live_server, two_files, buyer, tmp_path, capsys):
    folder = Path(snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path))
    outside = tmp_path / "outside.gguf"
    outside.write_bytes((folder / "model.gguf").read_bytes())  # the right bytes, from the wrong place
    link = folder / "model.gguf"
    link.unlink()
    link.symlink_to(outside)
    report = verify(capsys, folder)
    assert report["exit_code"] == Outcome.FILES_DIFFER == 4
    assert "'model.gguf' is a symbolic link to the absolute path" in report["message"] and "[unsafe_path]" in report["message"]

    link.unlink()
    link.symlink_to(os.path.relpath(outside, folder))
    report = verify(capsys, folder)
    assert report["exit_code"] == 4 and "outside" in report["message"]


def test_the_human_output_and_a_missing_folder_are_clear(live_server, two_files, buyer, tmp_path, capsys):
    folder = Path(snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path))
    (folder / "model.gguf").unlink()
    (folder / "model.gguf").symlink_to("/etc/hostname")
    with pytest.raises(SystemExit) as exited:
        call_command("verify_model", str(folder), "acme/tiny", "v1")
    assert exited.value.code == 4 and capsys.readouterr().out.startswith("files_differ: 'model.gguf' is a symbolic link")
    with pytest.raises(CommandError) as missing:
        call_command("verify_model", str(tmp_path / "nowhere"), "acme/tiny", "v1")
    assert missing.value.returncode == 2 and "is not a directory" in str(missing.value)


def test_manage_py_verify_model_ends_without_a_traceback(live_server, two_files, buyer, tmp_path):
    """The command as a user runs it, in its own process: one line, the documented exit code."""
    folder = Path(snapshot_download("acme/tiny", revision="v1", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path))
    (folder / "model.gguf").unlink()
    (folder / "model.gguf").symlink_to("model.gguf")  # a link to itself
    from django.conf import settings
    from django.db import connection

    root = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ, CHAIN_RPC_URL=settings.CHAIN_RPC_URL, REGISTRY_ADDRESS=settings.REGISTRY_ADDRESS,
        DEPLOYMENTS_DIR=str(settings.DEPLOYMENTS_DIR), DATABASE_URL=_database_url(connection.settings_dict),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_model", str(folder), "acme/tiny", "v1"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout.startswith("files_differ: 'model.gguf' is a symbolic link")


def _database_url(db: dict) -> str:
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
