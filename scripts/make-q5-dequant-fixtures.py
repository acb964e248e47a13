#!/usr/bin/env python3
"""Do this library's Q5_0, Q5_1 and Q5_K dequantizers mean what the GGUF tools mean?
Writes random blocks of each type (seed 5; scales set to sane fp16 values, every other
byte random) into Tests/LoRACoreTests/Fixtures/q5-blocks.gguf with gguf-py's own writer,
and gguf-py's dequantization of them (gguf.quants, numpy) into q5-blocks.json. The Swift
test reads the file and compares. Dev-time only:

    .build/peers/bin/pip install gguf numpy
    .build/peers/bin/python scripts/make-q5-dequant-fixtures.py
"""
import json
import os
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures")
ROWS, COLS = 3, 512

# Byte offsets of each block's fp16 scale fields: (offset, low, high) for d, then m/dmin.
SCALES = {
    T.Q5_0: [(0, 1e-3, 5e-2)],
    T.Q5_1: [(0, 1e-3, 5e-2), (2, -0.5, 0.5)],
    T.Q5_K: [(0, 1e-4, 2e-3), (2, 1e-4, 2e-3)],
}


def random_blocks(rng, qtype):
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    count = ROWS * COLS // block_values
    raw = rng.integers(0, 256, size=(count, block_bytes), dtype=np.uint8)
    for offset, low, high in SCALES[qtype]:
        halves = rng.uniform(low, high, size=count).astype(np.float16)
        raw[:, offset : offset + 2] = halves.view(np.uint8).reshape(count, 2)
    return raw.reshape(ROWS, COLS // block_values * block_bytes)


def main():
    rng = np.random.default_rng(5)
    writer = gguf.GGUFWriter(os.path.join(FIXTURES, "q5-blocks.gguf"), "llama")
    values = {}
    for qtype in SCALES:
        blocks = random_blocks(rng, qtype)
        name = qtype.name.lower()
        writer.add_tensor(name, blocks, raw_dtype=qtype)  # shape from the bytes: [ROWS, COLS]
        values[name] = quants.dequantize(blocks, qtype).astype(np.float32).reshape(-1).tolist()
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(os.path.join(FIXTURES, "q5-blocks.json"), "w") as f:
        json.dump({"gguf": version("gguf"), "rows": ROWS, "cols": COLS, "values": values}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
