#!/usr/bin/env python3
"""Golden data for weight conversion at load (`--type`), from an independent implementation:
the `gguf` Python package's numpy quantisers (llama.cpp's gguf-py, which follow ggml's
reference quantisers bit for bit) and numpy's float16 rounding.

The source values are random with a spread of scales per row (as trained weights have), an
all-zero block and a block with one outlier, rounded to values that bfloat16 and float16 both
hold exactly, so that one golden checks conversion from F32, F16 and BF16 storage alike.

Output: tests/data/quant_encode_golden.bin
  header: u32 rows, u32 cols; f32 source[rows * cols]
  records: u32 ggml_type (1 f16, 2 q4_0, 3 q4_1, 8 q8_0), u32 n_bytes, bytes[n_bytes]
Usage: pip install gguf numpy && python3 tools/gen_quant_encode_golden.py
"""
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

ROWS, COLS = 8, 96  # 3 blocks of 32 per row


def main() -> int:
    rng = np.random.default_rng(20261206)
    x = rng.normal(0.0, 1.0, size=(ROWS, COLS)) * rng.uniform(0.005, 2.0, size=(ROWS, 1))
    x[1, 32:64] = 0.0          # a zero block: scale 0, every quant at its zero point
    x[2, 5] = 40.0             # an outlier dominating its block's scale
    x[3, 64:96] = np.abs(x[3, 64:96]) + 0.5  # all positive: Q4_0's sign rule and Q4_1's min
    x = x.astype(np.float32)
    # bfloat16 rounding (to nearest even), then drop what float16 would make subnormal.
    b = x.view(np.uint32)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    x = b.view(np.float32)
    x[np.abs(x) < 2.0 ** -14] = 0.0
    assert np.array_equal(x.astype(np.float16).astype(np.float32), x)

    out = bytearray(struct.pack("<2I", ROWS, COLS))
    out += x.tobytes()
    for qtype, code in ((T.F16, 1), (T.Q4_0, 2), (T.Q4_1, 3), (T.Q8_0, 8)):
        q = np.ascontiguousarray(quantize(x, qtype)).view(np.uint8).tobytes()
        out += struct.pack("<2I", code, len(q)) + q
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "quant_encode_golden.bin"
    path.write_bytes(bytes(out))
    print(f"wrote {path} ({len(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
