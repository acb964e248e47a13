#!/usr/bin/env python3
"""Does llama.cpp read what `lora merge` and `lora export-adapter` write, and mean by it
what PEFT means? On the tiny Llama 2 GGUF (f16) and its PEFT adapter (rank and alpha
patterns), this writes the merged model (f32) and the GGUF LoRA adapter with the lora
command, runs llama.cpp (llama-cpp-python) on the merged file alone and on the base with
`lora_path=` the adapter, and records both logits beside PEFT's (reference.json). The Swift
test regenerates the files and compares its own logits with llama.cpp's. Dev-time only.

    CMAKE_ARGS=-DGGML_NATIVE=ON .build/peers/bin/pip install llama-cpp-python==0.3.36
    swift build -c release --product lora
    .build/peers/bin/python scripts/make-llama-cpp-export-fixtures.py
"""
import json
import os
import subprocess
import tempfile

import numpy as np
from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TINY = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures", "tiny-llama2")
OUT = os.path.join(TINY, "llama-cpp-export.json")


def logits(model_path, ids, lora_path=None):
    llm = Llama(model_path=model_path, lora_path=lora_path, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float64)


def main():
    lora = os.path.join(ROOT, ".build", "release", "lora")
    base, adapter = os.path.join(TINY, "tiny-llama2.f16.gguf"), os.path.join(TINY, "adapter")
    with open(os.path.join(adapter, "reference.json")) as f:
        reference = json.load(f)
    ids, peft = reference["ids"], np.array(reference["logits"]["gguf-f16"])
    work = tempfile.mkdtemp()
    merged, exported = os.path.join(work, "merged.gguf"), os.path.join(work, "adapter.gguf")
    subprocess.run([lora, "merge", "--model", base, "--adapter", adapter, "--out", merged, "--type", "f32"], check=True)
    subprocess.run([lora, "export-adapter", "--model", base, "--adapter", adapter, "--out", exported], check=True)
    from_merged, with_adapter, plain = logits(merged, ids), logits(base, ids, exported), logits(base, ids)
    for name, value in [("merged", from_merged), ("base + GGUF adapter", with_adapter)]:
        print(f"llama.cpp {name} vs PEFT: worst |diff| {np.abs(value - peft).max():.2e} "
              f"(the adapter moves logits by {np.abs(peft - plain).max():.2f})")
    with open(OUT, "w") as f:
        json.dump({"source": f"llama-cpp-python {__import__('llama_cpp').__version__} on files written by lora merge "
                             "--type f32 and lora export-adapter (f32)",
                   "ids": ids, "merged": from_merged.round(6).tolist(), "adapter": with_adapter.round(6).tolist(),
                   "base": plain.round(6).tolist()}, f)


if __name__ == "__main__":
    main()
