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


def onnx_model(path, *, quantized: bool):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 8), dtype=np.float32), "W")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["Y"])]
    initializers = [weight]
    if quantized:
        initializers += [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"), numpy_helper.from_array(np.array(0, dtype=np.uint8), "z")]
        nodes = [helper.make_node("QuantizeLinear", ["X", "s", "z"], ["Xq"]), helper.make_node("DequantizeLinear", ["Xq", "s", "z"], ["Xd"]), helper.make_node("MatMul", ["Xd", "W"], ["Y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])], initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hallmark-tests")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_onnx_opset_parameters_and_quantized_ops_are_read_without_loading_weights(tmp_path):
    facts = inspect_file(onnx_model(tmp_path / "q.onnx", quantized=True), "q.onnx")
    assert facts["format"] == "onnx" and facts["opset"] == 17 and facts["producer"] == "hallmark-tests"
    assert facts["quantized_ops"] == ["DequantizeLinear", "QuantizeLinear"] and facts["quantization"] == "int8"
    assert facts["parameter_count"] == 32 + 1 + 1 and facts["node_count"] == 3
    plain = inspect_file(onnx_model(tmp_path / "f.onnx", quantized=False), "f.onnx")
    assert plain["quantized_ops"] == [] and plain["quantization"] is None and plain["parameter_count"] == 32


def test_truncated_onnx_is_a_clear_error(tmp_path):
    good = (tmp_path / "g.onnx")
    onnx_model(good, quantized=False)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(InspectionError) as caught:
        inspect_file(str(bad), "bad.onnx")
    assert "bad.onnx" in str(caught.value) and caught.value.code == "malformed_file"
