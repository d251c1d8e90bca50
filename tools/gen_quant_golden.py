#!/usr/bin/env python3
"""Golden data for the GGUF block decoders, from an independent implementation: the `gguf`
Python package (llama.cpp's gguf-py, numpy dequantisation).

For each block type: random block bytes (with the f16 scale fields set to finite values, since
random bits can be NaN/inf), and gguf's dequantised floats. Output: tests/data/quant_golden.bin

  record: u32 ggml_type, u32 n_blocks, u32 block_bytes, u32 block_elems,
          bytes[n_blocks * block_bytes], f32[n_blocks * block_elems]
Usage: pip install gguf numpy && python3 tools/gen_quant_golden.py
"""
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES
from gguf.quants import dequantize

# Byte offsets of the f16 fields in each block (per the GGUF layouts).
HALF_FIELDS = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
N_BLOCKS = 6


def main() -> int:
    rng = np.random.default_rng(20261126)
    out = bytearray()
    for qtype, halves in HALF_FIELDS.items():
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(N_BLOCKS, block_bytes), dtype=np.uint8)
        for off in halves:
            scales = rng.uniform(-0.05, 0.05, size=N_BLOCKS).astype(np.float16)
            raw[:, off:off + 2] = scales.view(np.uint8).reshape(N_BLOCKS, 2)
        values = dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
        assert values.size == N_BLOCKS * block_elems and np.all(np.isfinite(values))
        out += struct.pack("<4I", int(qtype), N_BLOCKS, block_bytes, block_elems)
        out += raw.tobytes() + values.tobytes()
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "quant_golden.bin"
    path.write_bytes(bytes(out))
    print(f"wrote {path} ({len(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
