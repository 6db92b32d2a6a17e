"""What a model file is: format checks and facts (architecture, quantization, parameters).

GGUF is read with the `gguf` package, safetensors from its JSON header, ONNX by its protobuf
magic. Pickle-based formats can run code when loaded and are refused. A malformed file gives
an `InspectionError` naming the file, never a crash of the worker.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import PurePosixPath
from typing import Any

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"}
MODEL_SUFFIXES = {".gguf": "gguf", ".safetensors": "safetensors", ".onnx": "onnx"}
SIDECAR_SUFFIXES = {".json", ".txt", ".md", ".model", ".tiktoken", ".yaml", ".yml", ".jinja", ".data"}
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
GGUF_MAGIC = b"GGUF"


class InspectionError(Exception):
    """A file that cannot be accepted; `code` is stable (see docs/errors.md)."""

    def __init__(self, path: str, message: str, code: str = "malformed_file"):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.code = code


def file_kind(path: str) -> str:
    """'gguf' | 'safetensors' | 'onnx' | 'sidecar'; raises for pickle and unknown kinds."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InspectionError(
            path,
            f"{suffix} files are pickle-based and can run code when loaded; "
            "convert the weights to GGUF, safetensors or ONNX",
            code="pickle_refused",
        )
    if suffix in MODEL_SUFFIXES:
        return MODEL_SUFFIXES[suffix]
    if suffix in SIDECAR_SUFFIXES or PurePosixPath(path).name in {"LICENSE", "README", "NOTICE"}:
        return "sidecar"
    raise InspectionError(
        path,
        f"files of kind {suffix or '(no extension)'!r} are not accepted; allowed: "
        + ", ".join(sorted(set(MODEL_SUFFIXES) | SIDECAR_SUFFIXES)),
        code="file_kind_refused",
    )


def inspect_file(local_path: str, name: str) -> dict[str, Any]:
    """Facts about one file (for the version metadata); raises InspectionError when malformed."""
    kind = file_kind(name)
    if kind == "gguf":
        return _inspect_gguf(local_path, name)
    if kind == "safetensors":
        return _inspect_safetensors(local_path, name)
    if kind == "onnx":
        return _inspect_onnx(local_path, name)
    return {"format": "sidecar"}


def _inspect_gguf(local_path: str, name: str) -> dict[str, Any]:
    with open(local_path, "rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise InspectionError(name, "not a GGUF file (the header does not start with 'GGUF')")
    try:
        import gguf

        reader = gguf.GGUFReader(local_path, "r")
        fields = reader.fields

        def field(key: str) -> Any:
            f = fields.get(key)
            return f.contents() if f is not None else None

        architecture = field("general.architecture")
        file_type = field("general.file_type")
        quantization = None
        if file_type is not None:
            try:
                quantization = gguf.LlamaFileType(int(file_type)).name.replace("MOSTLY_", "")
            except ValueError:
                quantization = f"file_type_{file_type}"
        parameters = sum(int(t.n_elements) for t in reader.tensors)
        tensor_types = sorted({t.tensor_type.name for t in reader.tensors})
        context_length = field(f"{architecture}.context_length") if architecture else None
        return {
            "format": "gguf",
            "gguf_version": int(field("GGUF.version") or 0) or None,
            "architecture": architecture,
            "name": field("general.name"),
            "quantization": quantization or (tensor_types[0] if len(tensor_types) == 1 else None),
            "tensor_types": tensor_types,
            "parameter_count": parameters,
            "tensor_count": len(reader.tensors),
            "context_length": int(context_length) if context_length is not None else None,
        }
    except InspectionError:
        raise
    except Exception as exc:  # the gguf reader raises many kinds on a damaged file
        raise InspectionError(name, f"malformed GGUF header: {exc.__class__.__name__}: {exc}") from exc


def _inspect_safetensors(local_path: str, name: str) -> dict[str, Any]:
    with open(local_path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise InspectionError(name, "malformed safetensors file: shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length == 0 or length > SAFETENSORS_MAX_HEADER:
            raise InspectionError(name, f"malformed safetensors header length {length}")
        raw = fh.read(length)
    if len(raw) != length:
        raise InspectionError(name, "malformed safetensors file: header truncated")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectionError(name, f"malformed safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise InspectionError(name, "malformed safetensors header: not a JSON object")
    dtypes: set[str] = set()
    parameters = 0
    tensors = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or "dtype" not in entry or "shape" not in entry:
            raise InspectionError(name, f"malformed safetensors header entry {key!r}")
        dtypes.add(str(entry["dtype"]))
        parameters += math.prod(int(d) for d in entry["shape"])
        tensors += 1
    return {"format": "safetensors", "dtypes": sorted(dtypes), "parameter_count": parameters, "tensor_count": tensors}


QUANTIZED_ONNX_OPS = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat", "QGemm", "MatMulNBits",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "GatherBlockQuantized", "QAttention",
}
ONNX_MAX_NODES = 2_000_000


class _ProtoReader:
    """Just enough of the protobuf wire format to walk an ONNX file without loading its weights:
    length-delimited fields are entered or skipped by seeking, so memory stays constant."""

    def __init__(self, fh, name: str):
        self.fh = fh
        self.name = name

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.fh.read(1)
            if not byte:
                raise InspectionError(self.name, "malformed ONNX file: truncated varint")
            result |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise InspectionError(self.name, "malformed ONNX file: varint too long")

    def fields(self, end: int):
        """Yield (field number, wire type, payload end or value) up to byte `end`."""
        while self.fh.tell() < end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise InspectionError(self.name, "malformed ONNX file: field number 0")
            if wire == 0:
                yield number, wire, self.varint()
            elif wire == 2:
                length = self.varint()
                start = self.fh.tell()
                if start + length > end:
                    raise InspectionError(self.name, "malformed ONNX file: a field runs past its message")
                yield number, wire, (start, start + length)
                self.fh.seek(start + length)
            elif wire == 1:
                self.fh.seek(8, 1)
            elif wire == 5:
                self.fh.seek(4, 1)
            else:
                raise InspectionError(self.name, f"malformed ONNX file: wire type {wire}")

    def string(self, span) -> str:
        self.fh.seek(span[0])
        return self.fh.read(span[1] - span[0]).decode("utf-8", "replace")


def _inspect_onnx(local_path: str, name: str) -> dict[str, Any]:
    size = os.path.getsize(local_path)
    with open(local_path, "rb") as fh:
        first = fh.read(1)
        # an ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08
        if first != b"\x08":
            raise InspectionError(name, "not an ONNX model (protobuf ModelProto expected)")
        fh.seek(0)
        reader = _ProtoReader(fh, name)
        ir_version = None
        opsets: dict[str, int] = {}
        op_types: dict[str, int] = {}
        parameters = 0
        initializers = 0
        producer = None
        for number, wire, value in reader.fields(size):
            if number == 1 and wire == 0:
                ir_version = value
            elif number == 2 and wire == 2:
                here = fh.tell()
                producer = reader.string(value)
                fh.seek(here)
            elif number == 8 and wire == 2:
                here = fh.tell()
                fh.seek(value[0])
                domain, version = "", None
                for n, w, v in reader.fields(value[1]):
                    if n == 1 and w == 2:
                        back = fh.tell()
                        domain = reader.string(v)
                        fh.seek(back)
                    elif n == 2 and w == 0:
                        version = v
                opsets[domain or "ai.onnx"] = version
                fh.seek(here)
            elif number == 7 and wire == 2:
                here = fh.tell()
                fh.seek(value[0])
                for n, w, v in reader.fields(value[1]):
                    if n == 1 and w == 2:  # NodeProto
                        back = fh.tell()
                        fh.seek(v[0])
                        for nn, ww, vv in reader.fields(v[1]):
                            if nn == 4 and ww == 2:
                                again = fh.tell()
                                op = reader.string(vv)
                                fh.seek(again)
                                op_types[op] = op_types.get(op, 0) + 1
                        fh.seek(back)
                        if sum(op_types.values()) > ONNX_MAX_NODES:
                            raise InspectionError(name, "ONNX graph has too many nodes to inspect")
                    elif n == 5 and w == 2:  # TensorProto initializer: dims only, data skipped
                        back = fh.tell()
                        fh.seek(v[0])
                        count = 1
                        for nn, ww, vv in reader.fields(v[1]):
                            if nn == 1 and ww == 0:
                                count *= vv
                            elif nn == 1 and ww == 2:  # packed dims
                                again = fh.tell()
                                fh.seek(vv[0])
                                while fh.tell() < vv[1]:
                                    count *= reader.varint()
                                fh.seek(again)
                        parameters += count
                        initializers += 1
                        fh.seek(back)
                fh.seek(here)
    if ir_version is None or not opsets:
        raise InspectionError(name, "malformed ONNX model: no IR version or opset")
    quantized = sorted(op for op in op_types if op in QUANTIZED_ONNX_OPS)
    return {
        "format": "onnx",
        "ir_version": ir_version,
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "producer": producer,
        "node_count": sum(op_types.values()),
        "op_types": sorted(op_types),
        "quantized_ops": quantized,
        "quantization": "int8" if quantized else None,
        "parameter_count": parameters,
        "tensor_count": initializers,
    }
