"""A small but real GGUF model file (written with the `gguf` package) for the demo and tests."""

from __future__ import annotations

import os

import numpy as np


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
