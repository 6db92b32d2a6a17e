"""The written rules bite: the import-linter contracts (.importlinter) refuse an import against the
layering, mypy's settings for the client refuse an unannotated function, and the bench-only
throttle lives in bench/. `make lint` (run first by `make test`) checks the real code with them;
these tests check that they would catch a breach, on a throw-away tree of stand-in packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APPS = ("config", "marketplace", "fleet", "royalties", "registry", "telemetry", "hallmark")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    # the stand-ins come first on the path, before the installed client package
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def _stand_ins(tree: Path, importer: str = "", statement: str = "") -> None:
    """One empty module per app, which import each other along the layers as the real ones do;
    `importer` also runs `statement`."""
    lawful = {"config": "import marketplace.core\n",
              "marketplace": "import fleet.core\nimport royalties.core\nimport registry.core\n",
              "fleet": "import royalties.core\nimport registry.core\n",
              "royalties": "import registry.core\nimport hallmark.core\n",
              "registry": "import telemetry.core\nimport hallmark.core\n", "telemetry": "import hallmark.core\n",
              "hallmark": "import json\n"}
    for app in APPS:
        (tree / app).mkdir()
        (tree / app / "__init__.py").write_text("")
        extra = statement + "\n" if app == importer else ""
        (tree / app / "core.py").write_text(lawful[app] + extra)


def test_the_layering_contracts_pass_when_every_import_points_down(tmp_path):
    _stand_ins(tmp_path)
    done = _lint_imports(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("importer", "statement", "refusal"),
    [
        ("registry", "import marketplace.core", "registry is not allowed to import marketplace"),
        ("registry", "import royalties.core", "registry is not allowed to import royalties"),
        ("telemetry", "import registry.core", "telemetry is not allowed to import registry"),
        ("hallmark", "import telemetry.core", "hallmark is not allowed to import telemetry"),
        ("royalties", "from marketplace import core", "royalties is not allowed to import marketplace"),
        ("marketplace", "import config", "marketplace is not allowed to import config"),
        ("fleet", "import marketplace.core", "fleet is not allowed to import marketplace"),
        ("royalties", "import fleet.core", "royalties is not allowed to import fleet"),
        ("hallmark", "import fleet.core", "hallmark is not allowed to import fleet"),
        ("hallmark", "import registry.core", "hallmark is not allowed to import registry"),
        ("hallmark", "import django.conf", "hallmark is not allowed to import django"),
        ("hallmark", "from rest_framework import serializers", "hallmark is not allowed to import rest_framework"),
        ("hallmark", "import celery", "hallmark is not allowed to import celery"),
    ],
)
def test_an_import_against_the_layering_breaks_a_contract(tmp_path, importer, statement, refusal):
    _stand_ins(tmp_path, importer, statement)
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert refusal in done.stdout, done.stdout + done.stderr


def test_mypy_refuses_an_unannotated_function_in_the_client(tmp_path):
    shutil.copy(ROOT / "client" / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "hallmark").mkdir()
    (tmp_path / "hallmark" / "__init__.py").write_text("")
    (tmp_path / "hallmark" / "typed.py").write_text("def double(value: int) -> int:\n    return 2 * value\n")
    clean = subprocess.run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (tmp_path / "hallmark" / "untyped.py").write_text("def double(value):\n    return 2 * value\n")
    done = subprocess.run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "hallmark/untyped.py:1: error" in done.stdout and "[no-untyped-def]" in done.stdout, done.stdout


def test_the_client_package_ships_its_type_information():
    from importlib import resources

    assert resources.files("hallmark").joinpath("py.typed").is_file()
    package_data = (ROOT / "client" / "pyproject.toml").read_text()
    assert 'hallmark = ["py.typed"' in package_data


def test_the_bench_only_download_throttle_lives_in_bench_not_in_the_app():
    import marketplace.api.throttles as app_throttles
    from bench.throttles import DownloadThrottle

    assert not hasattr(app_throttles, "DownloadThrottle")
    assert DownloadThrottle.scope == "download" and DownloadThrottle.setting == "DOWNLOAD_RATE_LIMIT"


@pytest.mark.django_db
def test_the_bench_urlconf_still_serves_its_context_view_with_the_moved_throttle(client, settings):
    settings.ROOT_URLCONF = "bench.bare_urls"
    assert client.head("/bench/bare").status_code == 200
    assert client.head("/bench/drf").status_code == 401  # token authentication, then the throttle
