"""The demo's material: a small but real GGUF model file (written with the `gguf` package) and
the demo vendor's P-256 key for OpenSSF Model Signing, for `seed_demo` and tests."""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from hallmark import oms
from hallmark.manifest import FileDigest

from .models import Version

# The demo vendor's OMS signing key is derived from this public phrase, as anvil's development
# accounts come from a public mnemonic: anyone can sign as the demo vendor, which is the point of
# a demo, never of a real vendor (who makes theirs with `hallmark keys init`).
DEMO_SIGNING_KEY_PHRASE = b"hallmark demo vendor OMS signing key (public, development only)"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def demo_signing_key() -> ec.EllipticCurvePrivateKey:
    """The demo vendor's P-256 key (deterministic; see DEMO_SIGNING_KEY_PHRASE)."""
    scalar = int.from_bytes(hashlib.sha256(DEMO_SIGNING_KEY_PHRASE).digest(), "big") % (P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def demo_oms_bundle(version: Version) -> dict:
    """The OMS signature bundle (model.sig) of a hashed demo version, signed with the demo key."""
    files = [FileDigest(r["name"], r["digest"], 0) for r in version.manifest["predicate"]["resources"]]
    return oms.sign_statement(demo_signing_key(), oms.signing_statement(version.model.repo_id, files))


def write_demo_gguf(path: str | os.PathLike[str], *, seed: int = 7, name: str = "hallmark-demo-tiny", layers: int = 2, width: int = 64) -> str:
    """Write a tiny llama-architecture GGUF (F32 tensors, deterministic for a given seed)."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(os.fspath(path), "llama")
    writer.add_name(name)
    writer.add_context_length(2048)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(width * 4)
    writer.add_head_count(4)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_tensor("token_embd.weight", rng.standard_normal((256, width), dtype=np.float32))
    for layer in range(layers):
        writer.add_tensor(f"blk.{layer}.attn_q.weight", rng.standard_normal((width, width), dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.ffn_up.weight", rng.standard_normal((width * 4, width), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return os.fspath(path)
