#!/usr/bin/env python3
"""llama.cpp's view of the shipped model, for the 4-bit path's quality tests: llama.cpp
(llama-cpp-python) running SmolLM2-135M-Instruct.Q4_1.gguf, the file the q4 precision keeps
as stored. Writes Tests/LoRACoreTests/Fixtures/llama-cpp-quality.json with

- the perplexity of the first 2000 tokens of Tests/LoRACoreTests/Fixtures/apache-2.0.txt
  (the ids too: llama.cpp's tokenizer on the same file), every position scored;
- 5-shot multiple-choice requests built from Examples/data/mc-general.jsonl (each item's
  question after the five items before it, cyclically, each with its answer), encoded as
  lm-evaluation-harness's encode_pair does, with llama.cpp's log-likelihood of each choice.

The Swift test scores the same ids with its f32, int8 and q4 paths and compares. Dev-time
only:

    CMAKE_ARGS=-DGGML_NATIVE=ON .build/peers/bin/pip install llama-cpp-python==0.3.36
    .build/peers/bin/python scripts/make-llama-cpp-quality-fixtures.py "$(scripts/fetch-model)"
"""
import json
import math
import os
import sys

import numpy as np
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
TEXT = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures", "apache-2.0.txt")
DATA = os.path.join(ROOT, "Examples", "data", "mc-general.jsonl")
OUT = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures", "llama-cpp-quality.json")
SHOTS = 5


def log_softmax(logits):
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def score(llm, ids):
    """Log-probabilities [len(ids) - 1, vocab] of every next token, one evaluation."""
    llm.reset()
    llm.eval(ids)
    return log_softmax(np.array(llm.scores[: len(ids)], dtype=np.float32))


def encode(llm, text):
    return llm.tokenize(text.encode(), add_bos=False, special=False)


def encode_pair(llm, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(llm, context + continuation)
    ctx = encode(llm, context)
    return ctx, whole[len(ctx):]


def main(gguf_path):
    llm = Llama(model_path=gguf_path, n_ctx=4096, n_batch=512, logits_all=True, n_threads=2, verbose=False)
    with open(TEXT) as f:
        ids = encode(llm, f.read())[:2000]
    logprobs = score(llm, ids)
    picked = logprobs[np.arange(len(ids) - 1), np.array(ids[1:])]
    perplexity = math.exp(-picked.mean())

    with open(DATA) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    items = []
    for i, doc in enumerate(docs):
        shots = [docs[(i - s) % len(docs)] for s in range(SHOTS, 0, -1)]
        context = "".join(f"{d['question']} {d['choices'][d['answer']]}\n\n" for d in shots) + doc["question"]
        requests = []
        for choice in doc["choices"]:
            ctx, cont = encode_pair(llm, context, " " + choice)
            logprobs = score(llm, ctx + cont)
            requests.append({"context": ctx, "continuation": cont,
                             "log_likelihood": float(sum(logprobs[len(ctx) - 1 + j, t] for j, t in enumerate(cont)))})
        items.append({"answer": doc["answer"], "requests": requests})
    with open(OUT, "w") as f:
        json.dump({"source": f"llama-cpp-python {__import__('llama_cpp').__version__} on {os.path.basename(gguf_path)}, "
                             "2 threads, every logit scored; lm-evaluation-harness encode_pair",
                   "text": "apache-2.0.txt", "ids": ids, "perplexity": perplexity,
                   "shots": SHOTS, "data": "Examples/data/mc-general.jsonl", "items": items}, f, indent=None)
    print(f"wrote {OUT}: perplexity {perplexity:.4f} over {len(ids)} tokens, {len(items)} 5-shot items")


if __name__ == "__main__":
    main(sys.argv[1])
