#!/usr/bin/env python3
"""Does llama.cpp read what `lora synthesize` writes, and mean by it what this library does?
Writes a small random-weight model of Tests/LoRACoreTests/Fixtures/synthetic-tiny.config.json
in each recipe (seed 1) with the `lora` binary, then runs llama.cpp (llama-cpp-python) on
it: the file's FNV-1a 64 checksum, the ids llama.cpp's tokenizer gives a text, and the
logits of its last 8 positions. The Swift test writes the same files and compares. Dev-time only:

    CMAKE_ARGS=-DGGML_NATIVE=ON .build/peers/bin/pip install llama-cpp-python==0.3.36
    swift build -c release --product lora
    .build/peers/bin/python scripts/make-synthetic-llama-cpp-fixtures.py
"""
import json
import os
import subprocess
import tempfile

import numpy as np
from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures")
CONFIG = os.path.join(FIXTURES, "synthetic-tiny.config.json")
OUT = os.path.join(FIXTURES, "synthetic-llama-cpp.json")
TEXT = "Hello, wörld ✓ 123 — a synthetic model encodes any text."


def fnv1a(path):
    h = 0xCBF29CE484222325
    with open(path, "rb") as f:
        for byte in f.read():
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    lora = os.path.join(ROOT, ".build", "release", "lora")
    recipes = {}
    with tempfile.TemporaryDirectory() as work:
        for recipe in ["q4_0", "q4_k_m", "q8_0"]:
            path = os.path.join(work, f"{recipe}.gguf")
            subprocess.run([lora, "synthesize", "--config", CONFIG, "--type", recipe, "--out", path, "--seed", "1"], check=True)
            llm = Llama(model_path=path, n_ctx=256, logits_all=True, n_threads=2, verbose=False)
            ids = llm.tokenize(TEXT.encode(), add_bos=True, special=False)
            llm.eval(ids)
            logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
            assert llm.detokenize(ids).decode() == TEXT
            recipes[recipe] = {"checksum": f"{fnv1a(path):016x}", "ids": ids, "logits": logits[-8:].round(5).tolist()}
    with open(OUT, "w") as f:
        json.dump({"source": f"llama-cpp-python {__import__('llama_cpp').__version__}, lora synthesize --seed 1",
                   "text": TEXT, "recipes": recipes}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
