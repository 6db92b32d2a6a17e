"""File inspection: real GGUF facts; malformed headers and pickle files give clear errors."""

import json
import struct

import pytest

from marketplace.demo import write_demo_gguf
from registry.inspection import InspectionError, inspect_file


def test_gguf_facts_come_from_the_header(tmp_path):
    path = write_demo_gguf(tmp_path / "m.gguf", layers=2, width=64)
    facts = inspect_file(path, "m.gguf")
    assert facts["format"] == "gguf"
    assert facts["architecture"] == "llama"
    assert facts["quantization"] == "ALL_F32"
    assert facts["context_length"] == 2048
    assert facts["tensor_count"] == 6
    assert facts["parameter_count"] == 256 * 64 + 2 * (64 * 64 + 256 * 64) + 64


def test_truncated_gguf_is_a_clear_error(tmp_path):
    good = (tmp_path / "good.gguf")
    write_demo_gguf(good)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(InspectionError) as caught:
        inspect_file(str(bad), "bad.gguf")
    assert caught.value.code == "malformed_file" and "bad.gguf" in str(caught.value)


def test_file_without_gguf_magic_is_refused(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + b"\x00" * 100)
    with pytest.raises(InspectionError, match="not a GGUF file"):
        inspect_file(str(bad), "x.gguf")


def test_safetensors_header_is_read_and_malformed_one_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F16", "shape": [4, 8], "data_offsets": [0, 64]}, "__metadata__": {}}).encode()
    good = tmp_path / "m.safetensors"
    good.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 64)
    facts = inspect_file(str(good), "m.safetensors")
    assert facts == {"format": "safetensors", "dtypes": ["F16"], "parameter_count": 32, "tensor_count": 1}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(InspectionError):
        inspect_file(str(bad), "bad.safetensors")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "x.pkl"])
def test_pickle_formats_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InspectionError) as caught:
        inspect_file(str(path), name)
    assert caught.value.code == "pickle_refused"
