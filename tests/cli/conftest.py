"""Drive the installed `hallmark` console script as a subprocess against a live marketplace
(pytest-django's live_server, with a Celery worker where the server needs one) and the session's
anvil chain. Nothing is mocked: the CLI talks HTTP to the server and JSON-RPC to anvil."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HALLMARK = Path(sys.executable).parent / "hallmark"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Cli:
    """`cli.run("verify", ...)`: the console script with a private config folder and HF cache."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, key: str | None = None, stdin: str | None = None, **extra_env: str) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HALLMARK_", "HF_"))}
        env.update(
            HALLMARK_CONFIG_DIR=str(self.home / "config"), HF_HOME=str(self.home / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
            PYTHONUNBUFFERED="1", **self.env, **extra_env,
        )
        if key:
            env["HALLMARK_PRIVATE_KEY"] = key
        # the timeout only stops a hung process; no assertion depends on how long a command takes
        done = subprocess.run([str(HALLMARK), *args], env=env, input=stdin or "", capture_output=True, text=True, timeout=240)
        return Result(done.returncode, done.stdout, done.stderr)

    @property
    def config(self) -> Path:
        return self.home / "config"


@pytest.fixture(scope="session", autouse=True)
def _console_script_installed():
    assert HALLMARK.exists(), f"{HALLMARK} is missing: run `.venv/bin/pip install -e ./client` (make install does)"


@pytest.fixture
def cli(tmp_path):
    home = tmp_path / "cli-home"
    home.mkdir()
    return Cli(home)


@pytest.fixture
def marketplace_cli(cli, live_server):
    cli.env["HALLMARK_ENDPOINT"] = live_server.url
    return cli


@pytest.fixture
def registered(chain, vendor):
    """acme/tiny registered on chain (signed by the vendor's key, relayed), with no version yet."""
    from hallmark import eip712
    from marketplace import services

    model = services.model_create(vendor=vendor.vendor, slug="tiny", price_wei=10**15, license_duration=0, parent=None, upstream_bps=0)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, vendor.key))
    return services.model_anchor(model_id=model.pk)


@pytest.fixture
def model_dir(tmp_path, gguf_file):
    """A model folder: a real GGUF and its model card."""
    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(gguf_file, folder / "model.gguf")
    (folder / "README.md").write_text("# tiny\n\nA tiny llama for tests.\n")
    return folder


def root_digest_printed(output: str) -> str:
    return re.search(r"^root digest: 0x([0-9a-f]{64})$", output, re.M).group(1)


def save_version_json(folder: Path, version) -> None:
    """What `hallmark pull` keeps beside the files (docs/cli.md): model id, number, manifest, metadata."""
    (folder / ".hallmark").mkdir(exist_ok=True)
    record = {"model_id": version.model.chain_model_id, "version": version.number, "manifest": version.manifest, "metadata": version.metadata}
    (folder / ".hallmark" / "version.json").write_text(json.dumps(record))
