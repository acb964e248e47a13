#!/usr/bin/env python3
"""Peers for InferenceBenchmarks, measured in one run on the same file and threads:
llama.cpp (llama-cpp-python, on the Q4_1 file and on its Q8_0 requantization), PyTorch
(transformers, f32, the same GGUF dequantized), and swift-lora's own `lora generate` run the
same way, each in a fresh process so its peak RSS is its own. Prints JSON lines like the
Swift suites: prefill tok/s for a 512-token prompt, decode tok/s for 128 greedy tokens.

    python3 -m venv /tmp/peers && CMAKE_ARGS=-DGGML_NATIVE=ON /tmp/peers/bin/pip install \
        llama-cpp-python==0.3.36 torch transformers accelerate gguf
    swift build -c release --product lora
    /tmp/peers/bin/python scripts/peer-inference.py "$(scripts/fetch-model)"
    /tmp/peers/bin/python scripts/peer-inference.py 7b-q4_0.gguf --large   # lora synthesize's file
"""
import ctypes
import json
import os
import re
import subprocess
import sys
import time

THREADS = int(os.environ.get("SWIFT_LORA_THREADS", "2"))
TEXT = "The library opens at nine in the morning and closes at six in the evening. " * 80
# a 7B-shaped file (--large) decodes about 5 tokens a second here: a shorter prompt and run
PROMPT_TOKENS, DECODE_TOKENS = (128, 32) if "--large" in sys.argv else (512, 128)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def emit(name, value, unit):
    print(json.dumps({"suite": "inference-peers", "name": name, "value": round(value, 2), "unit": unit}), flush=True)


def prompt_ids(model_path):
    from llama_cpp import Llama

    vocab = Llama(model_path=model_path, vocab_only=True, verbose=False)
    return vocab.tokenize(TEXT.encode(), add_bos=False, special=False)[:PROMPT_TOKENS]


def run_llama_cpp(model_path, ids):
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=1024, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS,
                verbose=False)

    def greedy():  # the last position's logits, read from llama.cpp's own buffer
        logits = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),))))

    prefill = float("inf")
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        prefill = min(prefill, time.perf_counter() - start)
    token = greedy()
    start = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        llm.eval([token])
        token = greedy()
    decode = time.perf_counter() - start
    return len(ids) / prefill, DECODE_TOKENS / decode


def run_torch(model_path, ids):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(THREADS)
    folder, name = os.path.split(model_path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        prefill = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            out = model(x, use_cache=True)
            prefill = min(prefill, time.perf_counter() - start)
        past, token = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        decode = time.perf_counter() - start
    return len(ids) / prefill, DECODE_TOKENS / decode


def worker(kind, model_path, ids):
    rates = run_llama_cpp(model_path, ids) if kind == "llama.cpp" else run_torch(model_path, ids)
    print(json.dumps(rates))


def child(kind, model_path, ids):
    """Runs one peer in a fresh process: its rates and its own peak RSS (MiB)."""
    out = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", sys.executable, __file__, "--worker", kind, model_path,
                          json.dumps(ids)], capture_output=True, text=True, check=True)
    prefill, decode = json.loads(out.stdout.strip().splitlines()[-1])
    return prefill, decode, int(re.search(r"maxrss (\d+)", out.stderr).group(1)) / 1024


def swift_lora(model_path, ids, precision):
    """`lora generate --precision P` on the same prompt: best of 3 runs (the peers' prefill is
    best of 3 within one process; each of ours is a fresh process), largest peak RSS."""
    from llama_cpp import Llama

    text = Llama(model_path=model_path, vocab_only=True, verbose=False).detokenize(ids).decode()
    lora = os.path.join(ROOT, ".build", "release", "lora")
    runs = []
    for _ in range(3):
        out = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", lora, "generate", "--model", model_path, "--raw", "--prompt",
                              text, "--max-tokens", str(DECODE_TOKENS + 1), "--stop-token", "99999", "--threads", str(THREADS),
                              "--precision", precision],
                             capture_output=True, text=True, check=True)
        stats = re.search(r"\[(\d+) prompt tokens ([\d.]+) tok/s, (\d+) generated ([\d.]+) tok/s", out.stderr)
        # a synthesized vocabulary does not re-encode llama.cpp's text to the very same ids
        assert stats and abs(int(stats.group(1)) - len(ids)) <= (4 if "--large" in sys.argv else 0), out.stderr
        runs.append((float(stats.group(2)), float(stats.group(4)), int(re.search(r"maxrss (\d+)", out.stderr).group(1)) / 1024))
    return max(r[0] for r in runs), max(r[1] for r in runs), max(r[2] for r in runs)


def main(model_path, large=False):
    """`large`: a 7B-shaped file (lora synthesize): no Q8_0 requantization nor PyTorch run."""
    import llama_cpp

    ids = prompt_ids(model_path)
    assert len(ids) == PROMPT_TOKENS
    q8 = os.path.splitext(model_path)[0] + ".Q8_0-requantized.gguf"
    if not large and not os.path.exists(q8):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = 7  # LLAMA_FTYPE_MOSTLY_Q8_0
        params.allow_requantize = True
        partial = q8 + ".partial"  # renamed only once complete: a failed run leaves no broken file
        assert llama_cpp.llama_model_quantize(model_path.encode(), partial.encode(), ctypes.byref(params)) == 0
        os.replace(partial, q8)
    print(f"# {THREADS} threads, prompt {len(ids)} tokens, {DECODE_TOKENS} decode tokens", flush=True)
    runs = [("swift-lora_q4", lambda: swift_lora(model_path, ids, "q4")),
            ("swift-lora_int8", lambda: swift_lora(model_path, ids, "int8")),
            ("llama.cpp_file", lambda: child("llama.cpp", model_path, ids))]
    if not large:
        runs += [("llama.cpp_q8_0", lambda: child("llama.cpp", q8, ids)), ("pytorch_f32", lambda: child("torch", model_path, ids))]
    for label, run in runs:
        prefill, decode, rss = run()
        emit(f"{label}_prefill_{PROMPT_TOKENS}", prefill, "tok/s")
        emit(f"{label}_decode_{DECODE_TOKENS}", decode, "tok/s")
        emit(f"{label}_peak_rss", rss, "MiB")


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        main(sys.argv[1], large="--large" in sys.argv[2:])
