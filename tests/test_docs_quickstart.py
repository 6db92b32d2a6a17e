"""docs/quickstart.md's shell blocks, pasted as they are into one bash shell, all succeed: the
exports get the endpoint and a token, the download is the demo file's bytes, no token gets 401.
And `make seed` prints no warning a newcomer would read as an error.

What the test substitutes, and nothing else (SUBSTITUTED below; a substituted line that is no
longer in the document fails the test, so the two cannot drift apart):

- `git clone ... && cd hallmark`: the shell runs in a scratch folder holding links to this
  checkout's `.venv` and `manage.py` (so `model.gguf` is not written into the checkout);
- `make run`: pytest-django's live server, on the session's anvil chain and the test database.
  The shell gets what `make run` would have given the documents' commands: `DATABASE_URL`,
  `CHAIN_RPC_URL`, `REGISTRY_ADDRESS`, `MEDIA_ROOT` of that server, and `PUBLIC_BASE_URL` (the
  live server's address, where `make run` serves http://127.0.0.1:8000);
- `make seed`: the demo seeded beforehand in this process (`call_command("seed_demo")`, what
  `make seed` runs). `REDIS_URL` is left out of the shell's environment, as for `make seed`.

Every other line (the `seed_demo --json` runs, the exports, curl, sha256sum) runs verbatim.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "docs" / "quickstart.md"
SUBSTITUTED = {
    "git clone <this repository> hallmark && cd hallmark": "the scratch folder linking to this checkout",
    "make run": "pytest-django's live server",
    "make seed": "seed_demo, run in this process before the shell starts",
}
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def shell_commands(markdown: str) -> list[str]:
    """The commands of every sh block, in order: continued lines joined, blank lines and whole-line
    comments dropped (a trailing comment stays: bash ignores it)."""
    commands = []
    for block in SHELL_BLOCK.findall(markdown):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line + "\n"
            if not line.endswith("\\"):
                commands.append(pending.rstrip("\n"))
                pending = ""
        assert not pending, f"a shell block ends with a continued line: {pending!r}"
    return commands


def script(commands: list[str], steps: Path) -> str:
    """One bash script: each command in braces (so `export` stays in this shell), its output and
    exit status kept per step."""
    lines = ["set -o pipefail"]
    for index, command in enumerate(commands):
        lines.append(f'{{\n{command}\n}} >"{steps}/{index}.out" 2>"{steps}/{index}.err"')
        lines.append(f'echo $? >"{steps}/{index}.status"')
    lines.append(f'env >"{steps}/env"')
    return "\n".join(lines) + "\n"


def shell_env(live_server, anvil, data_dir: Path) -> dict[str, str]:
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to point at PostgreSQL (make test does)"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "CELERY_", "HALLMARK", "LICENSED_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CHAIN_RPC_URL=anvil.rpc_url,
        REGISTRY_ADDRESS=anvil.address,
        DEPLOYMENTS_DIR=str(settings.DEPLOYMENTS_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        HALLMARK_DATA_DIR=str(data_dir),  # nothing lands in the checkout's .data/
        PUBLIC_BASE_URL=live_server.url,
        PYTHONUNBUFFERED="1",
    )
    return env


def test_shell_commands_keep_continued_lines_and_drop_comments():
    markdown = "text\n```sh\n# a comment\ncurl -f a \\\n  b   # trailing\n\nls\n```\n```json\n{}\n```\n```sh\nmake run\n```\n"
    assert shell_commands(markdown) == ["curl -f a \\\n  b   # trailing", "ls", "make run"]


def test_the_quickstart_shell_blocks_run_as_written(chain, settings, live_server, tmp_path):
    settings.PUBLIC_BASE_URL = live_server.url
    seeded = io.StringIO()
    call_command("seed_demo", "--json", stdout=seeded)  # `make seed`
    [demo_file] = json.loads(seeded.getvalue())["files"]

    commands = shell_commands(QUICKSTART.read_text())
    for line in SUBSTITUTED:
        assert line in commands, f"docs/quickstart.md no longer says {line!r}: update SUBSTITUTED and this test's docstring"
    commands = [command for command in commands if command not in SUBSTITUTED]
    assert any("seed_demo --json" in command for command in commands) and any("curl" in command for command in commands)

    folder = tmp_path / "newcomer"
    folder.mkdir()
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "manage.py").symlink_to(ROOT / "manage.py")
    steps = tmp_path / "steps"
    steps.mkdir()
    session = tmp_path / "quickstart.sh"
    session.write_text(script(commands, steps))
    # bounded: a hung command fails the test after a minute (no assertion depends on the time)
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", str(session)], cwd=folder, env=shell_env(live_server, chain, tmp_path / "data"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr

    for index, command in enumerate(commands):
        status = int((steps / f"{index}.status").read_text())
        err = (steps / f"{index}.err").read_text()
        assert status == 0, f"`{command}` exited with {status}:\n{err}"
        assert "Traceback" not in err, f"`{command}`:\n{err}"

    outputs = {command: (steps / f"{index}.out").read_text() for index, command in enumerate(commands)}
    printed = json.loads(next(out for command, out in outputs.items() if command.endswith("seed_demo --json")))
    documented = set(re.findall(r'"(\w+)":', QUICKSTART.read_text().split("```json", 1)[1].split("```", 1)[0]))
    assert documented - set(printed) - set(printed["files"][0]) == set(), "the quickstart shows keys seed_demo --json does not print"

    exported = dict(line.split("=", 1) for line in (steps / "env").read_text().splitlines() if "=" in line)
    assert exported["HALLMARK"] == live_server.url
    assert exported["LICENSED_TOKEN"].startswith("hm_")

    model = (folder / "model.gguf").read_bytes()
    assert len(model) == demo_file["size"] and hashlib.sha256(model).hexdigest() == demo_file["sha256"]
    assert any(out.startswith(f"{demo_file['sha256']}  model.gguf") for out in outputs.values())
    [no_token] = [out for command, out in outputs.items() if "%{http_code}" in command and "Authorization" not in command]
    assert no_token.strip() == "401"


def test_make_seed_prints_no_warnings_without_a_broker(chain, tmp_path):
    """`make seed` runs `manage.py seed_demo` in the user's shell, where `REDIS_URL` is unset
    (`make run` keeps it to its own children), so tasks run eagerly through the in-memory broker:
    kombu used to warn "No hostname was supplied" for it on every seed."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "this test needs DATABASE_URL to point at PostgreSQL (make test does)"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "CELERY_"))}
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CHAIN_RPC_URL=chain.rpc_url, REGISTRY_ADDRESS=chain.address, DEPLOYMENTS_DIR=str(settings.DEPLOYMENTS_DIR),
        MEDIA_ROOT=str(tmp_path / "media"), HALLMARK_DATA_DIR=str(tmp_path / "data"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",  # what the Makefile exports
    )
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "licensed_token: hm_" in done.stdout
    # the tasks ran here, eagerly: the path that used to warn was taken
    assert "marketplace.version_anchor" in done.stderr and "succeeded" in done.stderr
    assert "No hostname was supplied" not in done.stderr
    noisy = [line for line in done.stderr.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]
    assert not noisy, "\n".join(noisy)
