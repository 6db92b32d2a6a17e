"""What a model file is: format checks and facts (architecture, quantization, parameters).

Model files come from anyone who signs up as a vendor, so every parser here treats its input as
hostile: each count, length, dimension and offset is checked against hard bounds and against the
bytes actually left in the file *before* anything is allocated or read for it. GGUF is walked by
a streaming parser of our own (the `gguf` package gives only its constants), safetensors from its
JSON header (nesting depth scanned before `json.loads`), ONNX at the protobuf wire level without
loading its weights. Pickle-based formats can run code when loaded and are refused. Any damage
gives an `InspectionError` naming the file and the reason, never another exception.

This module imports no Django: it runs inside the limited child process of `registry.sandbox`.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"}
MODEL_SUFFIXES = {".gguf": "gguf", ".safetensors": "safetensors", ".onnx": "onnx"}
SIDECAR_SUFFIXES = {".json", ".txt", ".md", ".model", ".tiktoken", ".yaml", ".yml", ".jinja", ".data"}

# catalog values: what a version's metadata (and the catalog columns) may hold
MAX_PARAMETERS = 10**15  # a thousand times today's largest models; beyond is a lie, not a model
MAX_CONTEXT_LENGTH = 2**32
MAX_LABEL_LENGTH = 64  # architecture, quantization
MAX_NAME_LENGTH = 256

# GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
GGUF_MAX_KV = 1 << 16
GGUF_MAX_TENSORS = 1 << 20
GGUF_MAX_KEY_LENGTH = 1 << 16
GGUF_MAX_STRING_LENGTH = 16 << 20
GGUF_MAX_TENSOR_NAME = 256  # ggml itself stops at 64 bytes
GGUF_MAX_ARRAY_DEPTH = 3
GGUF_MAX_ITEMS_WALKED = 1 << 24  # strings and nested arrays are visited one by one: a CPU bound
GGUF_MAX_DIMS = 4  # GGML_MAX_DIMS
GGUF_MAX_ALIGNMENT = 1 << 16
GGUF_DEFAULT_ALIGNMENT = 32
GGUF_KEPT_KEYS = {"general.alignment", "general.architecture", "general.name", "general.file_type"}

# safetensors (https://github.com/huggingface/safetensors#format)
SAFETENSORS_MAX_HEADER = 100 * 1000 * 1000  # the spec's 100 MB
SAFETENSORS_MAX_DEPTH = 64
SAFETENSORS_MAX_RANK = 16
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

# ONNX
ONNX_MAX_NODES = 2_000_000
ONNX_MAX_INITIALIZERS = 2_000_000
ONNX_MAX_OPSETS = 1024
ONNX_MAX_OP_TYPES = 10_000
ONNX_MAX_DIMS = 64
ONNX_MAX_STRING = 4096  # op types, domains, producer: read at most this much of each


class InspectionError(Exception):
    """A file that cannot be accepted; `code` is stable (see docs/api.md#errors)."""

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
    """Facts about one file (for the version metadata); raises InspectionError when malformed.

    Only `InspectionError` leaves this function: a parser bug met on a hostile file is reported
    as a malformed file too (named, with the exception), never as a crash of the caller.
    """
    kind = file_kind(name)
    if kind == "sidecar":
        return {"format": "sidecar"}
    parse = {"gguf": _inspect_gguf, "safetensors": _inspect_safetensors, "onnx": _inspect_onnx}[kind]
    try:
        facts = parse(local_path, name)
    except InspectionError:
        raise
    except MemoryError:
        raise
    except RecursionError as exc:
        raise InspectionError(name, f"malformed {kind} file: nested too deeply to inspect") from exc
    except Exception as exc:  # noqa: BLE001 - any other failure on untrusted bytes is the file's fault
        raise InspectionError(name, f"malformed {kind} file: {exc.__class__.__name__}: {exc}") from exc
    return _checked_catalog_values(facts, name)


def _checked_catalog_values(facts: dict[str, Any], name: str) -> dict[str, Any]:
    """The values that flow into the version metadata and the catalog: typed and in range."""
    parameters = facts.get("parameter_count")
    if not _is_int(parameters) or not 0 <= parameters <= MAX_PARAMETERS:
        raise InspectionError(name, f"claims {parameters!r} parameters; at most {MAX_PARAMETERS:.0e} are accepted")
    context = facts.get("context_length")
    if context is not None and (not _is_int(context) or not 0 < context <= MAX_CONTEXT_LENGTH):
        raise InspectionError(name, f"context length {context!r} is not a whole number between 1 and {MAX_CONTEXT_LENGTH}")
    for key, limit in (("architecture", MAX_LABEL_LENGTH), ("quantization", MAX_LABEL_LENGTH), ("name", MAX_NAME_LENGTH)):
        value = facts.get(key)
        if value == "":
            facts[key] = None  # said nothing: as good as absent
            continue
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit or not value.isprintable():
            raise InspectionError(name, f"{key} {value!r:.80} is not a printable text of 1 to {limit} characters")
    return facts


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------ GGUF


class _GGUFReader:
    """A cursor over a GGUF file that checks every length against the bytes left before it
    reads or skips them, so no claim in the header makes it allocate or loop beyond the file."""

    SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def __init__(self, fh: BinaryIO, size: int, name: str):
        self.fh = fh
        self.size = size
        self.name = name
        self.pos = 0
        self.walked = 0

    def fail(self, message: str) -> InspectionError:
        return InspectionError(self.name, f"malformed GGUF file: {message} (at byte {self.pos})")

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.size - self.pos:
            raise self.fail(f"{what} needs {n} bytes but only {self.size - self.pos} are left in the file")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.fh.read(n)
        if len(data) != n:
            raise self.fail(f"{what} is truncated")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n
        self.fh.seek(self.pos)

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.read(8, what))[0]

    def string(self, what: str, limit: int, keep: bool = True) -> str | None:
        length = self.u64(f"the length of {what}")
        if length > limit:
            raise self.fail(f"{what} is {length} bytes long; at most {limit} are accepted")
        if not keep:
            self.skip(length, what)
            return None
        raw = self.read(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8") from exc

    def value(self, value_type: int, what: str, depth: int = 0, keep: bool = True) -> Any:
        """Read (keep) or skip one value; arrays are always skipped, checked item by item."""
        if value_type in self.SCALARS:
            fmt = self.SCALARS[value_type]
            raw = self.read(struct.calcsize(fmt), what)
            return struct.unpack(fmt, raw)[0] if keep else None
        if value_type == 8:
            return self.string(what, GGUF_MAX_STRING_LENGTH, keep=keep)
        if value_type == 9:
            if depth >= GGUF_MAX_ARRAY_DEPTH:
                raise self.fail(f"{what} nests arrays more than {GGUF_MAX_ARRAY_DEPTH} deep")
            item_type = self.u32(f"the item type of {what}")
            count = self.u64(f"the length of {what}")
            if item_type in self.SCALARS:
                item_size = struct.calcsize(self.SCALARS[item_type])
                self.skip(count * item_size, f"{what} ({count} items)")
            elif item_type in (8, 9):
                # each string takes at least its 8-byte length, each array its type and length
                self.need(count * (8 if item_type == 8 else 12), f"{what} ({count} items)")
                self.walked += count
                if self.walked > GGUF_MAX_ITEMS_WALKED:
                    raise self.fail(f"more than {GGUF_MAX_ITEMS_WALKED} strings and arrays in the key/value section")
                for _ in range(count):
                    self.value(item_type, what, depth + 1, keep=False)
            else:
                raise self.fail(f"{what} has an unknown item type {item_type}")
            return None
        raise self.fail(f"{what} has an unknown value type {value_type}")


def _gguf_constants():
    import gguf  # constants only: the package's reader trusts the header it reads

    return gguf.GGML_QUANT_SIZES, gguf.GGMLQuantizationType, gguf.LlamaFileType


def _inspect_gguf(local_path: str, name: str) -> dict[str, Any]:
    """Facts of a GGUF file, read section by section in one forward pass: header, key/values, tensor infos, data layout."""
    size = os.path.getsize(local_path)
    with open(local_path, "rb") as fh:
        reader = _GGUFReader(fh, size, name)
        version, tensor_count, kv_count = _gguf_header(reader)
        values = _gguf_key_values(reader, kv_count)
        alignment = _gguf_alignment(reader, values)
        tensors, tensor_types, parameters = _gguf_tensor_infos(reader, tensor_count, alignment)
        _gguf_check_data_layout(reader, tensors, alignment)

    architecture = _gguf_text(values, "general.architecture", name)
    model_name = _gguf_text(values, "general.name", name)
    quantization = _gguf_quantization(values, name)
    context_length = _gguf_context_length(values, architecture, name)
    types = sorted(tensor_types)
    return {
        "format": "gguf",
        "gguf_version": version,
        "architecture": architecture,
        "name": model_name,
        "quantization": quantization or (types[0] if len(types) == 1 else None),
        "tensor_types": types,
        "parameter_count": parameters,
        "tensor_count": tensor_count,
        "context_length": context_length,
    }


def _gguf_header(reader: _GGUFReader) -> tuple[int, int, int]:
    """Magic, version (2 or 3) and counts: at most GGUF_MAX_TENSORS tensors and GGUF_MAX_KV key/values, all fitting the file."""
    if reader.fh.read(4) != GGUF_MAGIC:
        raise InspectionError(reader.name, "not a GGUF file (the header does not start with 'GGUF')")
    reader.pos = 4
    version = reader.u32("the GGUF version")
    if version not in GGUF_VERSIONS:
        swapped = struct.unpack(">I", struct.pack("<I", version))[0]
        hint = " (a big-endian file: convert it to little-endian)" if swapped in GGUF_VERSIONS else ""
        raise reader.fail(f"GGUF version {version} is not supported; versions 2 and 3 are{hint}")
    tensor_count = reader.u64("the tensor count")
    kv_count = reader.u64("the key/value count")
    if kv_count > GGUF_MAX_KV:
        raise reader.fail(f"{kv_count} key/value pairs; at most {GGUF_MAX_KV} are accepted")
    if tensor_count > GGUF_MAX_TENSORS:
        raise reader.fail(f"{tensor_count} tensors; at most {GGUF_MAX_TENSORS} are accepted")
    # a key/value takes at least 13 bytes, a tensor info 32: the counts must fit in the file
    reader.need(kv_count * 13 + tensor_count * 32, f"{kv_count} key/values and {tensor_count} tensor infos")
    return version, tensor_count, kv_count


def _gguf_key_values(reader: _GGUFReader, kv_count: int) -> dict[str, Any]:
    """The key/values: unique keys, values walked within the reader's bounds; keeps GGUF_KEPT_KEYS and *.context_length only."""
    keys: set[str] = set()
    values: dict[str, Any] = {}  # only the scalars the catalog reads are kept
    for index in range(kv_count):
        key = reader.string(f"key #{index}", GGUF_MAX_KEY_LENGTH)
        if key in keys:
            raise reader.fail(f"key {key!r:.80} appears twice")
        keys.add(key)
        value_type = reader.u32(f"the type of {key!r:.80}")
        wanted = key in GGUF_KEPT_KEYS or key.endswith(".context_length")
        value = reader.value(value_type, f"the value of {key!r:.80}", keep=wanted)
        if wanted:
            values[key] = value if value_type != 9 else ()  # an array is never kept
    return values


def _gguf_alignment(reader: _GGUFReader, values: dict[str, Any]) -> int:
    """general.alignment (GGUF_DEFAULT_ALIGNMENT when absent): a power of two up to GGUF_MAX_ALIGNMENT."""
    alignment = values.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not _is_int(alignment) or not 0 < alignment <= GGUF_MAX_ALIGNMENT or alignment & (alignment - 1):
        raise reader.fail(f"general.alignment {alignment!r} is not a power of two up to {GGUF_MAX_ALIGNMENT}")
    return alignment


def _gguf_tensor_infos(reader: _GGUFReader, tensor_count: int, alignment: int) -> tuple[list[tuple[int, int, str]], set[str], int]:
    """The tensor infos (each tensor's data span, the type names, the parameter count): at most MAX_PARAMETERS in all."""
    quant_sizes, quant_type, _ = _gguf_constants()
    tensors: list[tuple[int, int, str]] = []  # (offset, nbytes, name)
    names: set[str] = set()
    tensor_types: set[str] = set()
    parameters = 0
    for index in range(tensor_count):
        tensor = reader.string(f"the name of tensor #{index}", GGUF_MAX_TENSOR_NAME)
        if tensor in names:
            raise reader.fail(f"tensor {tensor!r} appears twice")
        names.add(tensor)
        dims, elements = _gguf_tensor_shape(reader, tensor)
        type_name, block, type_size = _gguf_tensor_type(reader, tensor, dims[0], quant_sizes, quant_type)
        offset = reader.u64(f"the data offset of {tensor!r}")
        if offset % alignment:
            raise reader.fail(f"tensor {tensor!r}: data offset {offset} is not aligned to {alignment} bytes")
        tensors.append((offset, elements // block * type_size, tensor))
        tensor_types.add(type_name)
        parameters += elements
        if parameters > MAX_PARAMETERS:
            raise reader.fail(f"the tensors claim more than {MAX_PARAMETERS:.0e} parameters")
    return tensors, tensor_types, parameters


def _gguf_tensor_shape(reader: _GGUFReader, tensor: str) -> tuple[list[int], int]:
    """A tensor's dimensions and element count: 1 to GGUF_MAX_DIMS dimensions, none empty, at most MAX_PARAMETERS elements."""
    n_dims = reader.u32(f"the dimension count of {tensor!r}")
    if not 0 < n_dims <= GGUF_MAX_DIMS:
        raise reader.fail(f"tensor {tensor!r} has {n_dims} dimensions; 1 to {GGUF_MAX_DIMS} are accepted")
    dims = [reader.u64(f"a dimension of {tensor!r}") for _ in range(n_dims)]
    elements = 1
    for dim in dims:
        if dim == 0:
            raise reader.fail(f"tensor {tensor!r} has an empty dimension {dims}")
        elements *= dim
        if elements > MAX_PARAMETERS:
            raise reader.fail(f"tensor {tensor!r} of shape {dims} claims more than {MAX_PARAMETERS:.0e} elements")
    return dims, elements


def _gguf_tensor_type(reader: _GGUFReader, tensor: str, first_dim: int, quant_sizes, quant_type) -> tuple[str, int, int]:
    """A tensor's ggml type (name, block, bytes per block): a known type whose block divides the first dimension."""
    type_id = reader.u32(f"the type of {tensor!r}")
    try:
        ggml_type = quant_type(type_id)
        block, type_size = quant_sizes[ggml_type]
    except (ValueError, KeyError):
        raise reader.fail(f"tensor {tensor!r} has an unknown type {type_id}") from None
    if first_dim % block:
        raise reader.fail(f"tensor {tensor!r}: first dimension {first_dim} is not a multiple of {ggml_type.name}'s block of {block}")
    return ggml_type.name, block, type_size


def _gguf_check_data_layout(reader: _GGUFReader, tensors: list[tuple[int, int, str]], alignment: int) -> None:
    """The data section: it starts (aligned) within the file, and each tensor's bytes lie inside it, overlapping no other's."""
    size = reader.size
    data_start = -(-reader.pos // alignment) * alignment
    if data_start > size:
        raise reader.fail(f"the tensor data would start at byte {data_start}, past the end of the file ({size} bytes)")
    end_of_previous, previous = 0, None
    for offset, nbytes, tensor in sorted(tensors):
        if offset < end_of_previous:
            raise reader.fail(f"tensors {previous!r} and {tensor!r} overlap")
        if data_start + offset + nbytes > size:
            raise reader.fail(
                f"tensor {tensor!r} ({nbytes} bytes at data offset {offset}) runs past the end of the file ({size} bytes)"
            )
        end_of_previous, previous = offset + nbytes, tensor


def _gguf_text(values: dict[str, Any], key: str, name: str) -> str | None:
    """A kept text value (general.architecture, general.name): a string when present."""
    value = values.get(key)
    if value is not None and not isinstance(value, str):
        raise InspectionError(name, f"malformed GGUF file: {key} is not a string ({value!r:.40})")
    return value


def _gguf_quantization(values: dict[str, Any], name: str) -> str | None:
    """The quantization named by general.file_type: a uint32 when present; an unknown one is reported by number."""
    file_type = values.get("general.file_type")
    if file_type is None:
        return None
    if not _is_int(file_type) or not 0 <= file_type < 2**32:
        raise InspectionError(name, f"malformed GGUF file: general.file_type is not a whole number ({file_type!r:.40})")
    _, _, file_types = _gguf_constants()
    try:
        return file_types(file_type).name.replace("MOSTLY_", "")
    except ValueError:
        return f"file_type_{file_type}"


def _gguf_context_length(values: dict[str, Any], architecture: str | None, name: str) -> Any:
    """`<architecture>.context_length`: a whole number when present (its range is checked with the catalog values)."""
    context_length = values.get(f"{architecture}.context_length") if architecture else None
    if context_length is not None and not _is_int(context_length):
        raise InspectionError(name, f"malformed GGUF file: {architecture}.context_length is not a whole number")
    return context_length


# ----------------------------------------------------------------------------- safetensors

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit`, found without parsing:
    drop the strings, keep only brackets, then peel the innermost pairs one level per pass (each
    pass is one C-speed regex substitution, so a 100 MB header costs at most `limit` passes)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        peeled = _JSON_INNERMOST.sub(b"", brackets)
        if len(peeled) == len(brackets):
            return False  # unbalanced: json.loads reports it
        brackets = peeled
    return bool(brackets)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r:.80} appears twice")
        result[key] = value
    return result


def _inspect_safetensors(local_path: str, name: str) -> dict[str, Any]:
    """Facts of a safetensors file: its JSON header read within bounds, every entry checked, the data tiled exactly."""
    raw, data_size = _safetensors_header_bytes(local_path, name)
    header = _safetensors_header(raw, name)
    spans, dtypes, parameters = _safetensors_entries(header, data_size, name)
    _safetensors_check_tiling(spans, data_size, name)
    return {"format": "safetensors", "dtypes": sorted(dtypes), "parameter_count": parameters, "tensor_count": len(spans)}


def _safetensors_header_bytes(local_path: str, name: str) -> tuple[bytes, int]:
    """The header's bytes and the data size after it: a length of 2 to SAFETENSORS_MAX_HEADER bytes, within the file."""
    size = os.path.getsize(local_path)
    with open(local_path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise InspectionError(name, "malformed safetensors file: shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length < 2 or length > SAFETENSORS_MAX_HEADER:
            raise InspectionError(name, f"malformed safetensors header length {length}; 2 to {SAFETENSORS_MAX_HEADER} bytes are accepted")
        if 8 + length > size:
            raise InspectionError(name, f"malformed safetensors file: the header claims {length} bytes but the file has {size - 8} after its length")
        raw = fh.read(length)
    if len(raw) != length:
        raise InspectionError(name, "malformed safetensors file: header truncated")
    return raw, size - 8 - length


def _safetensors_header(raw: bytes, name: str) -> dict[str, Any]:
    """The header as a JSON object with unique keys, its nesting depth checked against SAFETENSORS_MAX_DEPTH before parsing."""
    if raw[:1] != b"{":
        raise InspectionError(name, "malformed safetensors header: it must be a JSON object starting with '{'")
    if _json_depth_exceeds(raw, SAFETENSORS_MAX_DEPTH):
        raise InspectionError(name, f"malformed safetensors header: JSON nested more than {SAFETENSORS_MAX_DEPTH} deep")
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InspectionError(name, f"malformed safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise InspectionError(name, "malformed safetensors header: not a JSON object")
    return header


def _safetensors_entries(header: dict[str, Any], data_size: int, name: str) -> tuple[list[tuple[int, int, str]], set[str], int]:
    """Every header entry: __metadata__ as text to text, each tensor checked; at most MAX_PARAMETERS parameters in all."""
    dtypes: set[str] = set()
    parameters = 0
    spans: list[tuple[int, int, str]] = []  # (begin, end, tensor name)
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise InspectionError(name, "malformed safetensors header: __metadata__ must map text to text")
            continue
        begin, end, dtype, elements = _safetensors_tensor(key, entry, data_size, name)
        spans.append((begin, end, key))
        dtypes.add(dtype)
        parameters += elements
        if parameters > MAX_PARAMETERS:
            raise InspectionError(name, f"the tensors claim more than {MAX_PARAMETERS:.0e} parameters")
    return spans, dtypes, parameters


def _safetensors_tensor(key: str, entry: Any, data_size: int, name: str) -> tuple[int, int, str, int]:
    """One tensor entry (begin, end, dtype, elements): exactly dtype, shape, data_offsets; bytes fitting the shape and the data."""
    label = f"tensor {key!r:.80}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise InspectionError(name, f"malformed safetensors header: {label} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPE_BITS:
        raise InspectionError(name, f"malformed safetensors header: {label} has an unknown dtype {dtype!r:.40}")
    elements = _safetensors_elements(label, shape, name)
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise InspectionError(name, f"malformed safetensors header: {label} data_offsets {offsets!r:.80} is not [begin, end]")
    begin, end = offsets
    bits = elements * SAFETENSORS_DTYPE_BITS[dtype]
    if bits % 8 or end - begin != bits // 8:
        raise InspectionError(name, f"malformed safetensors header: {label} holds {end - begin} bytes, but {dtype} x {shape} needs {bits / 8:g}")
    if not 0 <= begin <= end <= data_size:
        raise InspectionError(name, f"malformed safetensors header: {label} data_offsets {offsets} fall outside the {data_size} data bytes")
    return begin, end, dtype, elements


def _safetensors_elements(label: str, shape: Any, name: str) -> int:
    """A tensor's element count: a shape of at most SAFETENSORS_MAX_RANK whole numbers >= 0, at most MAX_PARAMETERS elements."""
    if not isinstance(shape, list) or len(shape) > SAFETENSORS_MAX_RANK or not all(_is_int(d) and d >= 0 for d in shape):
        raise InspectionError(name, f"malformed safetensors header: {label} shape {shape!r:.80} is not a list of at most {SAFETENSORS_MAX_RANK} whole numbers >= 0")
    elements = 1
    for dim in shape:
        elements *= dim
        if elements > MAX_PARAMETERS:
            raise InspectionError(name, f"{label} of shape {shape} claims more than {MAX_PARAMETERS:.0e} parameters")
    return elements


def _safetensors_check_tiling(spans: list[tuple[int, int, str]], data_size: int, name: str) -> None:
    """The tensors' byte spans tile the data exactly: no overlap, no gap, nothing left over."""
    covered, previous = 0, None
    for begin, end, key in sorted(spans):
        if begin < covered:
            raise InspectionError(name, f"malformed safetensors header: tensors {previous!r:.80} and {key!r:.80} overlap")
        if begin > covered:
            raise InspectionError(name, f"malformed safetensors header: bytes {covered}..{begin} of the data belong to no tensor")
        covered, previous = end, key
    if covered != data_size:
        raise InspectionError(name, f"malformed safetensors file: the tensors cover {covered} of its {data_size} data bytes")


# ------------------------------------------------------------------------------------ ONNX

QUANTIZED_ONNX_OPS = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat", "QGemm", "MatMulNBits",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "GatherBlockQuantized", "QAttention",
}


class _ProtoReader:
    """Just enough of the protobuf wire format to walk an ONNX file without loading its weights:
    length-delimited fields are entered or skipped by seeking, so memory stays constant. Every
    length is checked against the message it sits in before the reader moves."""

    def __init__(self, fh, name: str):
        self.fh = fh
        self.name = name

    def fail(self, message: str) -> InspectionError:
        return InspectionError(self.name, f"malformed ONNX file: {message} (at byte {self.fh.tell()})")

    def varint(self, end: int | None = None) -> int:
        shift = result = 0
        while True:
            if end is not None and self.fh.tell() >= end:
                raise self.fail("a varint runs past its field")
            byte = self.fh.read(1)
            if not byte:
                raise self.fail("truncated varint")
            result |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise self.fail("varint too long")

    def fields(self, end: int):
        """Yield (field number, wire type, payload span or value) up to byte `end`."""
        while self.fh.tell() < end:
            key = self.varint(end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail("field number 0")
            if wire == 0:
                yield number, wire, self.varint(end)
            elif wire == 2:
                length = self.varint(end)
                start = self.fh.tell()
                if length > end - start:
                    raise self.fail("a field runs past its message")
                yield number, wire, (start, start + length)
                self.fh.seek(start + length)
            elif wire in (1, 5):
                width = 8 if wire == 1 else 4
                if self.fh.tell() + width > end:
                    raise self.fail("a fixed-width field runs past its message")
                self.fh.seek(width, 1)
            else:
                raise self.fail(f"wire type {wire}")

    def message(self, span: tuple[int, int]):
        """The fields of the embedded message at `span`; no need to seek back: the enclosing walk seeks past it on its next step."""
        self.fh.seek(span[0])
        return self.fields(span[1])

    def packed_varints(self, span: tuple[int, int], into: list[int], limit: int) -> None:
        """Append the packed varints at `span` to `into`, stopping once it holds more than `limit`; the cursor stays put."""
        here = self.fh.tell()
        self.fh.seek(span[0])
        while self.fh.tell() < span[1]:
            into.append(self.varint(span[1]))
            if len(into) > limit:
                break
        self.fh.seek(here)

    def string(self, span) -> str:
        """The text of a field, read without moving the cursor, and at most ONNX_MAX_STRING bytes."""
        here = self.fh.tell()
        if span[1] - span[0] > ONNX_MAX_STRING:
            raise self.fail(f"a name of {span[1] - span[0]} bytes; at most {ONNX_MAX_STRING} are accepted")
        self.fh.seek(span[0])
        text = self.fh.read(span[1] - span[0]).decode("utf-8", "replace")
        self.fh.seek(here)
        return text


@dataclass
class _ONNXModel:
    """What the walk over an ONNX file has gathered so far."""

    ir_version: int | None = None
    producer: str | None = None
    opsets: dict[str, int | None] = field(default_factory=dict)
    op_types: dict[str, int] = field(default_factory=dict)  # op type -> node count
    nodes: int = 0
    initializers: int = 0
    parameters: int = 0


def _inspect_onnx(local_path: str, name: str) -> dict[str, Any]:
    """Facts of an ONNX file, walked at the protobuf wire level without loading its weights."""
    size = os.path.getsize(local_path)
    model = _ONNXModel()
    with open(local_path, "rb") as fh:
        first = fh.read(1)
        # an ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08
        if first != b"\x08":
            raise InspectionError(name, "not an ONNX model (protobuf ModelProto expected)")
        fh.seek(0)
        _onnx_model(_ProtoReader(fh, name), size, model)
    _onnx_check_versions(model, name)
    quantized = sorted(op for op in model.op_types if op in QUANTIZED_ONNX_OPS)
    return {
        "format": "onnx",
        "ir_version": model.ir_version,
        "opset": model.opsets.get("ai.onnx"),
        "opsets": model.opsets,
        "producer": model.producer,
        "node_count": model.nodes,
        "op_types": sorted(model.op_types),
        "quantized_ops": quantized,
        "quantization": "int8" if quantized else None,
        "parameter_count": model.parameters,
        "tensor_count": model.initializers,
    }


def _onnx_model(reader: _ProtoReader, size: int, model: _ONNXModel) -> None:
    """The ModelProto's fields: IR version, producer, opset imports (at most ONNX_MAX_OPSETS) and the graph."""
    for number, wire, value in reader.fields(size):
        if number == 1 and wire == 0:
            model.ir_version = value
        elif number == 2 and wire == 2:
            model.producer = reader.string(value)
        elif number == 8 and wire == 2:
            if len(model.opsets) >= ONNX_MAX_OPSETS:
                raise reader.fail(f"more than {ONNX_MAX_OPSETS} opset imports")
            domain, version = _onnx_opset(reader, value)
            model.opsets[domain or "ai.onnx"] = version
        elif number == 7 and wire == 2:
            _onnx_graph(reader, value, model)


def _onnx_opset(reader: _ProtoReader, span: tuple[int, int]) -> tuple[str, int | None]:
    """One OperatorSetIdProto: its domain (at most ONNX_MAX_STRING bytes) and version."""
    domain, version = "", None
    for number, wire, value in reader.message(span):
        if number == 1 and wire == 2:
            domain = reader.string(value)
        elif number == 2 and wire == 0:
            version = value
    return domain, version


def _onnx_graph(reader: _ProtoReader, span: tuple[int, int], model: _ONNXModel) -> None:
    """The GraphProto's nodes (at most ONNX_MAX_NODES) and initializers (at most ONNX_MAX_INITIALIZERS, MAX_PARAMETERS in all)."""
    for number, wire, value in reader.message(span):
        if number == 1 and wire == 2:  # NodeProto
            model.nodes += 1
            if model.nodes > ONNX_MAX_NODES:
                raise reader.fail(f"the graph has more than {ONNX_MAX_NODES} nodes")
            _onnx_node(reader, value, model.op_types)
        elif number == 5 and wire == 2:  # TensorProto initializer: dims only, data skipped
            model.initializers += 1
            if model.initializers > ONNX_MAX_INITIALIZERS:
                raise reader.fail(f"more than {ONNX_MAX_INITIALIZERS} initializers")
            model.parameters += _onnx_initializer_parameters(reader, value)
            if model.parameters > MAX_PARAMETERS:
                raise InspectionError(reader.name, f"the initializers claim more than {MAX_PARAMETERS:.0e} parameters")


def _onnx_node(reader: _ProtoReader, span: tuple[int, int], op_types: dict[str, int]) -> None:
    """One NodeProto: its op type (at most ONNX_MAX_STRING bytes) counted, at most ONNX_MAX_OP_TYPES kinds in all."""
    for number, wire, value in reader.message(span):
        if number == 4 and wire == 2:
            op = reader.string(value)
            if op not in op_types and len(op_types) >= ONNX_MAX_OP_TYPES:
                raise reader.fail(f"more than {ONNX_MAX_OP_TYPES} kinds of operators")
            op_types[op] = op_types.get(op, 0) + 1


def _onnx_initializer_parameters(reader: _ProtoReader, span: tuple[int, int]) -> int:
    """One initializer TensorProto's element count, from its dims alone: at most MAX_PARAMETERS."""
    dims = _onnx_initializer_dims(reader, span)
    count = 1
    for dim in dims:
        count *= dim  # a negative int64 reads as a huge varint: caught below
        if count > MAX_PARAMETERS:
            raise InspectionError(reader.name, f"an initializer of shape {dims} claims more than {MAX_PARAMETERS:.0e} parameters")
    return count


def _onnx_initializer_dims(reader: _ProtoReader, span: tuple[int, int]) -> list[int]:
    """One initializer TensorProto's dims, plain or packed: at most ONNX_MAX_DIMS; its data is skipped."""
    dims: list[int] = []
    for number, wire, value in reader.message(span):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            reader.packed_varints(value, dims, ONNX_MAX_DIMS)
        if len(dims) > ONNX_MAX_DIMS:
            raise reader.fail(f"an initializer has more than {ONNX_MAX_DIMS} dimensions")
    return dims


def _onnx_check_versions(model: _ONNXModel, name: str) -> None:
    """An IR version and at least one opset, none above 2**31."""
    if model.ir_version is None or not model.opsets:
        raise InspectionError(name, "malformed ONNX model: no IR version or opset")
    if model.ir_version > 2**31 or any(v is not None and v > 2**31 for v in model.opsets.values()):
        raise InspectionError(name, "malformed ONNX model: IR or opset version out of range")
