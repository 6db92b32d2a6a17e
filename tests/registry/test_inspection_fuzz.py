"""Hostile model files: the three parsers end every input accepted or refused, bounded in memory.

Valid files are written the way vendors make them (GGUF with `gguf.GGUFWriter`, safetensors by
hand, ONNX with the `onnx` helpers), then hypothesis mutates their headers; explicit cases add
the shapes attackers use: array bombs, deep nesting, wrong types, impossible shapes, truncation,
overlapping tensors, header lengths past the file. Each case runs in-process (fast) under
tracemalloc: whatever the bytes say, the parser may allocate only a few MiB more than the file.
The limited child process that runs them in production has its own tests
(tests/marketplace/test_hostile_files.py).
"""

from __future__ import annotations

import json
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.inspection import InspectionError, inspect_file

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PEAK_ALLOWANCE = 32 * 1024 * 1024  # bytes a parser may hold above the file's own size


def outcome(path, name: str, data: bytes):
    """Write `data`, inspect it: the facts, or the InspectionError; anything else fails the test."""
    path.write_bytes(data)
    tracemalloc.start()  # traced only while the parser runs: hypothesis's own work stays fast
    try:
        result = inspect_file(str(path), name)
        assert isinstance(result, dict)
    except InspectionError as exc:
        assert exc.code == "malformed_file" and str(exc).startswith(f"{name}: ")
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_ALLOWANCE + len(data), f"{name} made the parser allocate {peak} bytes"
    return result


def refused(tmp_path, name: str, data: bytes, reason: str = "") -> InspectionError:
    result = outcome(tmp_path / name, name, data)
    assert isinstance(result, InspectionError), f"{name} was accepted: {result}"
    assert reason.lower() in str(result).lower(), str(result)
    return result


# ------------------------------------------------------------------------------------ GGUF


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(kvs=(), tensors=(), data: bytes = b"", *, version: int = 3, alignment: int = 32, counts=None) -> bytes:
    """A GGUF file by hand: `kvs` as (key, value type, encoded value), `tensors` as (name, dims, type, offset)."""
    tensor_count, kv_count = counts or (len(tensors), len(kvs))
    out = b"GGUF" + struct.pack("<IQQ", version, tensor_count, kv_count)
    for key, value_type, payload in kvs:
        out += gguf_string(key) + struct.pack("<I", value_type) + payload
    for name, dims, tensor_type, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", tensor_type, offset)
    out += b"\x00" * (-len(out) % alignment)
    return out + data


def written_gguf(tmp_path_factory) -> bytes:
    import gguf

    path = tmp_path_factory.mktemp("gguf") / "seed.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("fuzz-seed")
    writer.add_context_length(512)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_token_list(["<s>", "a", "bc"])
    writer.add_array("fuzz.nested", [[1, 2], [3]])
    writer.add_tensor("a.weight", np.ones((4, 8), dtype=np.float16))
    writer.add_tensor("b.weight", np.ones((3,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def seed_gguf(tmp_path_factory):
    return written_gguf(tmp_path_factory)


def test_the_gguf_seed_is_accepted(tmp_path, seed_gguf):
    facts = outcome(tmp_path / "m.gguf", "m.gguf", seed_gguf)
    assert facts["architecture"] == "llama" and facts["parameter_count"] == 35 and facts["quantization"] == "F16"
    assert facts["tensor_types"] == ["F16", "F32"] and facts["context_length"] == 512 and facts["name"] == "fuzz-seed"


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8), cut=st.integers(0, 10_000))
def test_mutated_gguf_headers_are_accepted_or_refused(tmp_path, seed_gguf, edits, cut):
    data = bytearray(seed_gguf)
    header = len(data) - 76  # the tensor data (4x8 F16, then 3 F32) sits at the end
    for position, value in edits:
        data[position % header] = value
    outcome(tmp_path / "m.gguf", "m.gguf", bytes(data[:cut]))


@FUZZ
@given(position=st.integers(0, 400), value=st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**62, 2**63, 2**64 - 1]))
def test_gguf_lengths_and_counts_set_to_extremes_are_refused_or_harmless(tmp_path, seed_gguf, position, value):
    data = bytearray(seed_gguf)
    data[position : position + 8] = struct.pack("<Q", value)
    outcome(tmp_path / "m.gguf", "m.gguf", bytes(data))


ARRAY, UINT8, UINT32, STRING = 9, 0, 4, 8


@pytest.mark.parametrize(
    "data, reason",
    [
        # the issue's 49 bytes: one key/value, an array of 2^62 uint8 with nothing behind it
        (gguf_bytes([("a", ARRAY, struct.pack("<IQ", UINT8, 2**62))], alignment=1), "only 0 are left"),
        (gguf_bytes([("tokens", ARRAY, struct.pack("<IQ", STRING, 2**40))]), "bytes but only"),
        (gguf_bytes([("deep", ARRAY, struct.pack("<IQ", ARRAY, 1) * 10)]), "nests arrays"),
        (gguf_bytes([("s", STRING, struct.pack("<Q", 2**63))]), "at most"),
        (gguf_bytes([("x", 77, b"")]), "unknown value type"),
        (gguf_bytes(counts=(0, 2**63)), "key/value pairs"),
        (gguf_bytes(counts=(2**40, 0)), "tensors; at most"),
        (gguf_bytes(counts=(1000, 0)), "bytes but only"),
        (gguf_bytes(version=1), "version 1"),
        (gguf_bytes(version=0x03000000), "big-endian"),
        (gguf_bytes([("k", STRING, gguf_string("v")), ("k", STRING, gguf_string("w"))]), "appears twice"),
        (gguf_bytes([("k", STRING, gguf_string(b"\xff\xfe"))] + [("general.architecture", STRING, gguf_string(b"\xff"))]), "not UTF-8"),
        (gguf_bytes(tensors=[("t", [4, 4, 4, 4, 4], 0, 0)]), "dimensions"),
        (gguf_bytes(tensors=[("t", [4, 0], 0, 0)]), "empty dimension"),
        (gguf_bytes(tensors=[("t", [2**40, 2**40], 0, 0)]), "more than 1e+15"),  # 2^80 parameters
        (gguf_bytes(tensors=[("t", [4], 99, 0)], data=b"\x00" * 16), "unknown type"),
        (gguf_bytes(tensors=[("t", [4], 2, 0)], data=b"\x00" * 16), "block"),  # Q4_0 needs rows of 32
        (gguf_bytes(tensors=[("t", [4], 0, 8)], data=b"\x00" * 64), "not aligned"),
        (gguf_bytes(tensors=[("t", [4], 0, 0), ("u", [16], 0, 0)], data=b"\x00" * 64), "overlap"),
        (gguf_bytes(tensors=[("t", [4], 0, 0), ("t", [4], 0, 32)], data=b"\x00" * 64), "appears twice"),
        (gguf_bytes(tensors=[("t", [64], 0, 0)], data=b"\x00" * 16), "past the end"),
        (gguf_bytes(tensors=[("t", [4], 0, 2**63)], data=b"\x00" * 16), "past the end"),
        (gguf_bytes([("general.alignment", UINT32, struct.pack("<I", 24))]), "power of two"),
        (gguf_bytes([("general.alignment", UINT32, struct.pack("<I", 0))]), "power of two"),
        (gguf_bytes([("general.alignment", STRING, gguf_string("32"))]), "power of two"),
        (gguf_bytes([("general.architecture", UINT32, struct.pack("<I", 5))]), "not a string"),
        (gguf_bytes([("general.architecture", STRING, gguf_string("x" * 500))]), "architecture"),
        (gguf_bytes([("general.architecture", STRING, gguf_string("llama\n\x1b[31m"))]), "printable"),
        (gguf_bytes([("general.architecture", STRING, gguf_string("llama")), ("llama.context_length", STRING, gguf_string("4k"))]), "context_length"),
        (gguf_bytes([("general.architecture", STRING, gguf_string("llama")), ("llama.context_length", 10, struct.pack("<Q", 2**60))]), "context length"),
        (gguf_bytes([("general.file_type", STRING, gguf_string("Q4"))]), "file_type"),
        (b"GGUF\x03\x00\x00", "only 3 are left"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**64 - 1) + b"\x00" * 16, "at most"),
    ],
    ids=lambda value: value if isinstance(value, str) else "file",
)
def test_gguf_bombs_and_lies_are_refused(tmp_path, data, reason):
    refused(tmp_path, "m.gguf", data, reason)


def test_empty_texts_in_a_gguf_header_count_as_absent(tmp_path):
    facts = outcome(tmp_path / "m.gguf", "m.gguf", gguf_bytes([("general.name", STRING, gguf_string("")), ("general.architecture", STRING, gguf_string(""))]))
    assert facts["name"] is None and facts["architecture"] is None and facts["parameter_count"] == 0


def test_the_issue_array_bomb_is_49_bytes_and_refused_at_once(tmp_path):
    bomb = gguf_bytes([("a", ARRAY, struct.pack("<IQ", UINT8, 2**62))], alignment=1)
    assert len(bomb) == 49
    assert "4611686018427387904 items" in str(refused(tmp_path, "bomb.gguf", bomb))


# ----------------------------------------------------------------------------- safetensors


def safetensors_bytes(header, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


SEED_SAFETENSORS = safetensors_bytes(
    {
        "__metadata__": {"format": "pt"},
        "embed": {"dtype": "F16", "shape": [4, 8], "data_offsets": [0, 64]},
        "norm": {"dtype": "F32", "shape": [4], "data_offsets": [64, 80]},
        "scale": {"dtype": "BF16", "shape": [], "data_offsets": [80, 82]},
    },
    b"\x00" * 82,
)


def test_the_safetensors_seed_is_accepted(tmp_path):
    facts = outcome(tmp_path / "m.safetensors", "m.safetensors", SEED_SAFETENSORS)
    assert facts == {"format": "safetensors", "dtypes": ["BF16", "F16", "F32"], "parameter_count": 37, "tensor_count": 3}


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(b'{}[]":,0123456789-.eE "xtfn\\\x00\xff')), min_size=1, max_size=6))
def test_mutated_safetensors_headers_are_accepted_or_refused(tmp_path, edits):
    data = bytearray(SEED_SAFETENSORS)
    header_end = len(data) - 82
    for position, value in edits:
        data[position % header_end] = value
    outcome(tmp_path / "m.safetensors", "m.safetensors", bytes(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(tensor=st.sampled_from(["embed", "norm", "scale"]), field=st.sampled_from(["dtype", "shape", "data_offsets", "extra"]), value=json_values)
def test_safetensors_entries_with_any_json_value_are_accepted_or_refused(tmp_path, tensor, field, value):
    header = json.loads(SEED_SAFETENSORS[8:-82])
    header[tensor][field] = value
    outcome(tmp_path / "m.safetensors", "m.safetensors", safetensors_bytes(header, b"\x00" * 82))


def one(dtype="F16", shape=(4, 8), offsets=(0, 64)):
    return {"w": {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}}


@pytest.mark.parametrize(
    "data, reason",
    [
        (safetensors_bytes(b"{" + b'"a":' * 0 + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested more than"),
        (safetensors_bytes(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested more than"),
        (safetensors_bytes(b'{"a":' + b'{"b":' * 100_000 + b"1" + b"}" * 100_000 + b"}"), "nested more than"),
        (safetensors_bytes({"w": {"dtype": "F16", "shape": "ab", "data_offsets": [0, 64]}}, b"\x00" * 64), "shape 'ab'"),
        (safetensors_bytes({"w": {"dtype": "F16", "shape": 5, "data_offsets": [0, 64]}}, b"\x00" * 64), "shape 5"),
        (safetensors_bytes(one(shape=[True, 4]), b"\x00" * 64), "whole numbers"),
        (safetensors_bytes(one(shape=[-4, -8]), b"\x00" * 64), "whole numbers"),
        (safetensors_bytes(one(shape=[4.0, 8]), b"\x00" * 64), "whole numbers"),
        (safetensors_bytes(one(shape=[2**40, 2**40], offsets=[0, 2**81])), "more than 1e+15"),  # 2^80 parameters
        (safetensors_bytes(one(dtype="F128"), b"\x00" * 64), "unknown dtype"),
        (safetensors_bytes(one(dtype=["F16"]), b"\x00" * 64), "unknown dtype"),
        (safetensors_bytes(one(offsets=[0, 63]), b"\x00" * 64), "needs 64"),
        (safetensors_bytes(one(offsets=[0, 64, 128]), b"\x00" * 64), "[begin, end]"),
        (safetensors_bytes(one(offsets=["0", "64"]), b"\x00" * 64), "[begin, end]"),
        (safetensors_bytes(one(offsets=[64, 128]), b"\x00" * 64), "fall outside"),
        (safetensors_bytes(one(offsets=[-64, 0]), b"\x00" * 64), "fall outside"),
        (safetensors_bytes({**one(), "v": {"dtype": "F16", "shape": [16], "data_offsets": [32, 64]}}, b"\x00" * 64), "overlap"),
        (safetensors_bytes(one(), b"\x00" * 128), "cover 64 of its 128"),
        (safetensors_bytes({"w": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]}}, b"\x00" * 8), "belong to no tensor"),
        (safetensors_bytes(one(), b"\x00" * 64, length=10**6), "claims 1000000 bytes"),  # header length past the file
        (safetensors_bytes(one(), b"\x00" * 64, length=2**64 - 1), "header length"),
        (safetensors_bytes(one(), b"\x00" * 64, length=100_000_001), "header length"),
        (safetensors_bytes(b"[1, 2]"), "JSON object"),
        (safetensors_bytes(b'{"w": 1, "w": 2}'), "appears twice"),
        (safetensors_bytes(b'{"w": ' + b"9" * 5000 + b"}"), "malformed safetensors header"),
        (safetensors_bytes(b'{"w": "\xff"}'), "malformed safetensors header"),
        (safetensors_bytes({"__metadata__": {"k": 1}}), "__metadata__"),
        (safetensors_bytes({"__metadata__": ["k"]}), "__metadata__"),
        (safetensors_bytes({"w": "F16"}), "needs exactly"),
        (b"\x10\x00\x00", "shorter than"),
        (SEED_SAFETENSORS[:40], "claims"),  # truncated inside the header
        (SEED_SAFETENSORS[:-1], "fall outside"),  # truncated in the data
    ],
    ids=lambda value: value if isinstance(value, str) else "file",
)
def test_safetensors_bombs_and_lies_are_refused(tmp_path, data, reason):
    refused(tmp_path, "m.safetensors", data, reason)


# ------------------------------------------------------------------------------------ ONNX


@pytest.fixture(scope="module")
def seed_onnx(tmp_path_factory):
    from tests.registry.test_inspection import onnx_model

    path = tmp_path_factory.mktemp("onnx") / "seed.onnx"
    return open(onnx_model(path, quantized=True), "rb").read()


def test_the_onnx_seed_is_accepted(tmp_path, seed_onnx):
    facts = outcome(tmp_path / "m.onnx", "m.onnx", seed_onnx)
    assert facts["parameter_count"] == 34 and facts["quantization"] == "int8" and facts["node_count"] == 3


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8), cut=st.integers(1, 10_000))
def test_mutated_onnx_files_are_accepted_or_refused(tmp_path, seed_onnx, edits, cut):
    data = bytearray(seed_onnx)
    for position, value in edits:
        data[position % len(data)] = value
    outcome(tmp_path / "m.onnx", "m.onnx", bytes(data[:cut]))


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def onnx_bytes(*initializer_dims: list[int], graph_extra: bytes = b"", opset: int = 17) -> bytes:
    initializers = b"".join(field(5, b"".join(field(1, d) for d in dims) + field(2, 1)) for dims in initializer_dims)
    return field(1, 8) + field(8, field(2, opset)) + field(7, initializers + graph_extra)


def test_a_hand_built_onnx_model_is_read(tmp_path):
    facts = outcome(tmp_path / "m.onnx", "m.onnx", onnx_bytes([4, 8], [3]))
    assert facts["parameter_count"] == 35 and facts["tensor_count"] == 2 and facts["opset"] == 17


@pytest.mark.parametrize(
    "data, reason",
    [
        (onnx_bytes([2**40, 2**40]), "more than 1e+15"),  # 2^80 parameters
        (onnx_bytes([2**64 - 4]), "more than 1e+15"),  # -4 as an int64 varint
        (onnx_bytes([1] * 100), "more than 64 dimensions"),
        (onnx_bytes(graph_extra=field(1, field(4, b"X" * 100_000))), "at most 4096"),
        (field(1, 8) + varint(8 << 3 | 2) + varint(2**62), "runs past"),
        (field(1, 8) + b"\x42" + b"\xff" * 20, "varint"),
        (field(1, 8) + b"\x0b", "wire type 3"),
        (field(1, 8) + b"\x09\x00", "fixed-width"),
        (field(1, 8) + field(8, field(2, 2**40)), "out of range"),
        (field(1, 8), "no IR version or opset"),
        (b"\x08", "varint"),
        (b"PK\x03\x04", "not an ONNX model"),
    ],
    ids=lambda value: value if isinstance(value, str) else "file",
)
def test_onnx_bombs_and_lies_are_refused(tmp_path, data, reason):
    refused(tmp_path, "m.onnx", data, reason)
