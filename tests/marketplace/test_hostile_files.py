"""Hostile model files through the service: each ends its own version `rejected`, naming the file,
and nothing else (the worker, the next version, recovery) is harmed. Issue 12, first section."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Version
from registry.inspection import InspectionError
from registry.sandbox import Limits, files_hash_and_inspect, run_limited
from tests.conftest import wait_for

MiB = 1024 * 1024


def registered_model(party, slug: str):
    from hallmark import eip712
    from marketplace import services

    model = services.model_create(vendor=party.vendor, slug=slug, price_wei=10**15, license_duration=0, parent=None, upstream_bps=0)
    services.model_submit_signature(model=model, signature=eip712.sign_typed_data(model.typed_data, party.key))
    return services.model_anchor(model_id=model.pk)


def finalized(model, files: dict[str, bytes]) -> Version:
    """A version of `model` with `files` uploaded and finalized: `hashing`, its task queued."""
    from marketplace import services

    version = services.version_create(model=model)
    for name, data in files.items():
        services.artifact_upload(version=version, path=name, stream=io.BytesIO(data))
    return services.version_finalize(version=version)


def hashed(model, files: dict[str, bytes]) -> Version:
    from marketplace import services

    return services.version_hash_and_inspect(version_id=finalized(model, files).pk)


def safetensors(header, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


GGUF_ARRAY_BOMB = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"a" + struct.pack("<IIQ", 9, 0, 2**62)
DEEP_HEADER = safetensors(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
SHAPE_TEXT = safetensors({"w": {"dtype": "F16", "shape": "ab", "data_offsets": [0, 2]}}, b"\x00\x00")
SHAPE_NUMBER = safetensors({"w": {"dtype": "F16", "shape": 5, "data_offsets": [0, 2]}}, b"\x00\x00")
SHAPE_2_80 = safetensors({"w": {"dtype": "U8", "shape": [2**40, 2**40], "data_offsets": [0, 2]}}, b"\x00\x00")
# a header the memory limit stops: millions of tiny JSON lists (valid, shallow, about 400 MB parsed)
MEMORY_HOG = safetensors(b'{"a":[' + b"[0]," * 5_000_000 + b"[0]]}")


@pytest.fixture
def model(chain, vendor):
    return registered_model(vendor, "hostile")


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("model.gguf", GGUF_ARRAY_BOMB, "4611686018427387904 items"),
        ("model.safetensors", DEEP_HEADER, "nested more than 64 deep"),
        ("model.safetensors", SHAPE_TEXT, "shape 'ab'"),
        ("model.safetensors", SHAPE_NUMBER, "shape 5"),
        ("model.safetensors", SHAPE_2_80, "more than 1e+15 parameters"),
    ],
    ids=["gguf-array-of-2^62", "safetensors-nested-100000-deep", "shape-text", "shape-number", "shape-2^80-parameters"],
)
def test_a_hostile_file_rejects_its_version_naming_the_file(model, gguf_file, name, data, reason):
    version = hashed(model, {name: data, "README.md": b"# hostile\n"})
    assert version.status == Version.Status.REJECTED
    assert version.error_code == "malformed_file"
    assert version.error_message.startswith(f"{name}: ") and reason in version.error_message
    assert version.hash_attempts == 1 and not version.metadata


def test_files_that_together_claim_too_many_parameters_reject_the_version(model):
    # ONNX initializers count by their dims (weights may live in external data): each file stays
    # within the bound (10^15), the two together do not, and the catalog must never see the sum
    from tests.registry.test_inspection_fuzz import onnx_bytes

    near_bound = onnx_bytes([6 * 10**14])
    version = hashed(model, {"a.onnx": near_bound, "b.onnx": near_bound})
    assert version.status == Version.Status.REJECTED and version.error_code == "malformed_file"
    assert version.error_message.startswith("a.onnx, b.onnx: together these files claim 1200000000000000 parameters")


def test_a_file_past_the_memory_limit_rejects_its_version_and_says_so(model, settings):
    settings.INSPECTION_MEMORY_LIMIT = 256 * MiB
    version = hashed(model, {"big.safetensors": MEMORY_HOG})
    assert version.status == Version.Status.REJECTED and version.error_code == "malformed_file"
    assert version.error_message.startswith("big.safetensors: inspecting it used more than 256 MiB of memory")


def test_the_worker_survives_a_bomb_and_hashes_the_next_version(model, gguf_file, celery_worker, settings):
    settings.INSPECTION_MEMORY_LIMIT = 256 * MiB
    bomb = finalized(model, {"big.safetensors": MEMORY_HOG})
    good = finalized(model, {"model.gguf": gguf_file.read_bytes()})
    wait_for(lambda: Version.objects.get(pk=good.pk).status != Version.Status.HASHING, timeout=120, message="the good version hashed")
    bomb, good = Version.objects.get(pk=bomb.pk), Version.objects.get(pk=good.pk)
    assert bomb.status == Version.Status.REJECTED and "used more than 256 MiB" in bomb.error_message
    assert good.status == Version.Status.AWAITING_SIGNATURE and good.error_code == ""
    assert good.metadata["architecture"] == "llama" and good.metadata["parameter_count"] == 57408
    assert good.artifacts.get().sha256 == hashlib.sha256(gguf_file.read_bytes()).hexdigest()


def test_a_version_whose_runs_keep_dying_is_rejected_not_retried(model, gguf_file, settings):
    from marketplace import services

    settings.INSPECTION_MAX_ATTEMPTS = 3
    version = finalized(model, {"model.gguf": gguf_file.read_bytes()})
    Version.objects.filter(pk=version.pk).update(hash_attempts=3)  # three runs started, none finished
    version = services.version_hash_and_inspect(version_id=version.pk)
    assert version.status == Version.Status.REJECTED and version.error_code == "inspection_failed"
    assert "started 4 times and never finished" in version.error_message and version.hash_attempts == 4


def test_each_run_is_counted_when_it_starts(model, gguf_file):
    from marketplace import services

    version = finalized(model, {"model.gguf": gguf_file.read_bytes()})
    assert version.hash_attempts == 0
    version = services.version_hash_and_inspect(version_id=version.pk)
    assert version.status == Version.Status.AWAITING_SIGNATURE and version.hash_attempts == 1
    assert services.version_hash_and_inspect(version_id=version.pk).hash_attempts == 1  # no longer hashing: not a run


def test_recovery_rejects_a_version_out_of_attempts_instead_of_queueing_it(model, gguf_file, settings):
    from marketplace import services

    settings.INSPECTION_MAX_ATTEMPTS = 3
    long_ago = timezone.now() - timedelta(hours=1)
    spent = finalized(model, {"model.gguf": gguf_file.read_bytes()})
    Version.objects.filter(pk=spent.pk).update(hash_attempts=3, updated_at=long_ago)
    lost = finalized(model, {"model.gguf": gguf_file.read_bytes()})
    Version.objects.filter(pk=lost.pk).update(hash_attempts=1, updated_at=long_ago)
    running = finalized(model, {"model.gguf": gguf_file.read_bytes()})  # its run started just now
    Version.objects.filter(pk=running.pk).update(hash_attempts=3, updated_at=timezone.now() - timedelta(seconds=150))

    assert services.pending_chain_resume() == 1  # only `lost` is queued again
    spent, lost, running = (Version.objects.get(pk=v.pk) for v in (spent, lost, running))
    assert spent.status == Version.Status.REJECTED and spent.error_code == "inspection_failed"
    assert "started 3 times" in spent.error_message
    assert lost.status == running.status == Version.Status.HASHING  # within its time limit: may still be running
    assert services.pending_chain_resume() == 1  # and a second sweep does not bring `spent` back


# -------------------------------------------------------------------- the sandbox's limits


def test_the_child_is_stopped_at_its_wall_clock_limit_naming_the_file(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)  # nothing ever writes: reading it blocks forever
    with pytest.raises(InspectionError) as caught:
        files_hash_and_inspect([(str(fifo), "model.gguf")], limits=Limits(memory_bytes=512 * MiB, cpu_seconds=30, wall_seconds=2))
    assert caught.value.code == "malformed_file"
    assert str(caught.value).startswith("model.gguf: inspecting it ran longer than 2 s and was stopped")


def test_the_child_is_stopped_at_its_cpu_limit():
    run = run_limited([sys.executable, "-c", "while True: pass"], b"", Limits(memory_bytes=512 * MiB, cpu_seconds=1, wall_seconds=60))
    assert not run.timed_out and run.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


def test_the_child_gets_no_secrets_from_the_worker(monkeypatch):
    monkeypatch.setenv("RELAYER_PRIVATE_KEY", "0xsecret")
    run = run_limited([sys.executable, "-c", "import os; print(sorted(os.environ))"], b"", Limits(wall_seconds=30))
    assert run.returncode == 0 and b"RELAYER_PRIVATE_KEY" not in run.stdout and b"DATABASE_URL" not in run.stdout
