#!/usr/bin/env python3
"""Reference log-likelihoods for the multiple-choice evaluation: transformers running
SmolLM2-135M-Instruct (the GGUF dequantized to f32) on Examples/data/mc-general.jsonl,
each request encoded as lm-evaluation-harness's `_encode_pair` does (trailing whitespace of
the context moves to the continuation; the continuation is what `encode(context +
continuation)` adds after `encode(context)`), with SmolLM2's own tokenizer rebuilt from the
GGUF (see make-smollm2-fixtures.py for why not transformers' GGUF tokenizer). acc and
acc_norm follow the harness's `process_results` (argmax, ties to the first; acc_norm divides
by `len(choice)` in code points). Dev-time only: the tests read the JSON this writes.

    .build/peers/bin/python scripts/make-mc-fixtures.py "$(scripts/fetch-model)"
"""
import importlib.util
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "Examples", "data", "mc-general.jsonl")
OUT = os.path.join(HERE, "..", "Tests", "EvaluationTests", "Fixtures", "mc-general-smollm2.json")

spec = importlib.util.spec_from_file_location("smollm2_fixtures", os.path.join(HERE, "make-smollm2-fixtures.py"))
smollm2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smollm2)


def encode_pair(tokenizer, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation).ids
    ctx = tokenizer.encode(context).ids
    return ctx, whole[len(ctx):]


def main(gguf_path):
    tokenizer = smollm2.reference_tokenizer(gguf_path)
    folder, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    items = []
    with open(DATA) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    for doc in docs:
        scores, requests = [], []
        for choice in doc["choices"]:
            ctx, cont = encode_pair(tokenizer, doc["question"], " " + choice)
            with torch.no_grad():
                logits = model(torch.tensor([ctx + cont[:-1]])).logits[0].double()
            logprobs = torch.log_softmax(logits, dim=-1)[len(ctx) - 1:]
            picked = logprobs[torch.arange(len(cont)), torch.tensor(cont)]
            scores.append(float(picked.sum()))
            requests.append({"context": ctx, "continuation": cont,
                             "greedy": bool((logprobs.argmax(dim=-1) == torch.tensor(cont)).all())})
        lengths = np.array([float(len(c)) for c in doc["choices"]])
        items.append({"log_likelihoods": scores, "requests": requests,
                      "acc": int(np.argmax(scores)) == doc["answer"],
                      "acc_norm": int(np.argmax(np.array(scores) / lengths)) == doc["answer"]})
    with open(OUT, "w") as f:
        json.dump({"source": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
                             f"LlamaForCausalLM from {name} (dequantized, f32); lm-evaluation-harness encode_pair and metrics",
                   "data": "Examples/data/mc-general.jsonl",
                   "acc": float(np.mean([i["acc"] for i in items])), "acc_norm": float(np.mean([i["acc_norm"] for i in items])),
                   "items": items}, f, indent=None)
    print(f"wrote {OUT}: acc {np.mean([i['acc'] for i in items]):.3f}, acc_norm {np.mean([i['acc_norm'] for i in items]):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
