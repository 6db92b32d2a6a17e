"""The client package stands alone: no Django, and the console script is installed."""

import subprocess
import sys

from .conftest import HALLMARK


def test_the_cli_imports_no_django():
    code = (
        "import sys, hallmark.cli\n"
        "from hallmark.commands import buy, login, publish, pull, verify\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'marketplace', 'registry')], sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", timeout=60)


def test_the_console_script_is_installed_and_says_its_version():
    done = subprocess.run([str(HALLMARK), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("hallmark ")
    assert subprocess.run([str(HALLMARK)], capture_output=True, timeout=60).returncode == 2


def test_exclude_leaves_tool_state_out_of_the_hash_and_nothing_by_default(tmp_path):
    from hallmark.manifest import hash_directory

    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / ".hallmark").mkdir()
    (tmp_path / ".hallmark" / "version.json").write_text("{}")
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / ".gitignore").write_text("*")
    (tmp_path / ".cache" / "notes.txt").write_text("a file of the model")
    everything = [f.name for f in hash_directory(tmp_path)]
    assert everything == [".cache/huggingface/.gitignore", ".cache/notes.txt", ".hallmark/version.json", "model.gguf"]
    kept = [f.name for f in hash_directory(tmp_path, exclude=(".hallmark", ".cache/huggingface"))]
    assert kept == [".cache/notes.txt", "model.gguf"]
