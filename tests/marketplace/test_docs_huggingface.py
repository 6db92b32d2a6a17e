"""docs/huggingface.md as a user pastes it on the local demo: its `export ... seed_demo --json`
lines set `$HALLMARK`, `$TOKEN` and `$LICENSED_TOKEN`, and its "Then verify" block, run on a folder
`hf download --local-dir` filled, verifies with both commands.

Run verbatim in one bash shell: the block of exports and the block under "Then verify". The test
adds only what a reader does between them, with the values the exports set: the download
(`hf download ... --local-dir ./model`, as the doc's `hf` block shows) and the doc's purchase
request with `<vendor>/<model>` filled in. `make run` is pytest-django's live server on the
session's chain, and `make seed` is `seed_demo` run here first; the shell gets the settings
`make run` would have given it (database, chain, registry, public address).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "huggingface.md"
SHELL_BLOCK = re.compile(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def section(markdown: str, heading: str) -> str:
    return markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_docs_exports_and_verify_commands_run_as_written(chain, settings, live_server, tmp_path):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.PUBLIC_CHAIN_RPC_URL = chain.rpc_url  # what /api/v1/chain reports to `hallmark verify --endpoint`
    seeded = io.StringIO()
    call_command("seed_demo", "--json", stdout=seeded)  # `make seed`
    demo = json.loads(seeded.getvalue())

    markdown = DOC.read_text()
    [exports] = SHELL_BLOCK.findall(section(markdown, "On the local demo"))
    [verify] = SHELL_BLOCK.findall(section(markdown, "Then verify"))
    exports, verify = commands(exports), commands(verify)
    assert [line.split("=", 1)[0] for line in exports] == ["export HALLMARK", "export TOKEN", "export LICENSED_TOKEN"]
    assert any("verify_model ./model" in line for line in verify) and any(line.startswith("hallmark verify ./model") for line in verify)
    between = [
        'HF_ENDPOINT=$HALLMARK HF_TOKEN=$LICENSED_TOKEN hf download hallmark-demo/tiny-llama-gguf --revision v1 --local-dir ./model',
        'curl -sf -H "Authorization: Bearer $TOKEN" $HALLMARK/api/v1/models/hallmark-demo/tiny-llama-gguf/purchase',
    ]
    steps = exports + between + verify

    folder = tmp_path / "reader"
    folder.mkdir()
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "manage.py").symlink_to(ROOT / "manage.py")
    out = tmp_path / "steps"
    out.mkdir()
    lines = ["set -o pipefail"]
    for index, step in enumerate(steps):
        lines += [f'{{\n{step}\n}} >"{out}/{index}.out" 2>"{out}/{index}.err"', f'echo $? >"{out}/{index}.status"']
    lines.append(f'env >"{out}/env"')
    (tmp_path / "session.sh").write_text("\n".join(lines) + "\n")

    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "HALLMARK", "HF_", "TOKEN", "LICENSED_"))}
    env.update(
        PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CHAIN_RPC_URL=chain.rpc_url, REGISTRY_ADDRESS=chain.address, DEPLOYMENTS_DIR=str(settings.DEPLOYMENTS_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT), HALLMARK_DATA_DIR=str(tmp_path / "data"), PUBLIC_BASE_URL=live_server.url,
        HALLMARK_CONFIG_DIR=str(tmp_path / "hallmark-config"), HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", str(tmp_path / "session.sh")], cwd=folder, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for index, step in enumerate(steps):
        status, err = int((out / f"{index}.status").read_text()), (out / f"{index}.err").read_text()
        assert status == 0 and "Traceback" not in err, f"`{step}` exited with {status}:\n{err}"

    exported = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines() if "=" in line)
    assert exported["HALLMARK"] == demo["endpoint"] == live_server.url
    assert exported["TOKEN"].startswith("hm_") and exported["LICENSED_TOKEN"].startswith("hm_")
    assert exported["TOKEN"] != exported["LICENSED_TOKEN"]
    assert (folder / "model" / ".cache" / "huggingface").is_dir()  # the state both commands leave out
    purchase = json.loads((out / f"{len(exports) + 1}.out").read_text())
    assert purchase["transaction"]["to"].lower() == chain.address.lower()  # the guest can buy: $TOKEN is theirs
    verified = [(out / f"{len(exports) + len(between) + i}.out").read_text() for i in range(len(verify))]
    assert all(text.startswith("verified") for text in verified), verified
