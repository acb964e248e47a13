#!/usr/bin/env python3
"""PyTorch + PEFT on the configuration of TrainingBenchmarks: SmolLM2-135M-Instruct (loaded
by transformers from the same GGUF, f32, CPU), LoRA rank 16, alpha 32, all seven
projections, AdamW, batch 4 x 256 random token ids, every position learned, the same thread
count. Prints JSON lines like the Swift suites (tokens/s of a whole optimizer step, best of
the timed steps after a warm-up; peak RSS).

    .build/peers/bin/pip install torch==2.13.0 transformers peft gguf
    .build/peers/bin/python scripts/peer-training.py "$(scripts/fetch-model)" [threads]
"""
import json
import os
import resource
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main(path, threads):
    torch.set_num_threads(threads)
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (4, 256), generator=generator)
    best = float("inf")
    for step in range(5):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        elapsed = time.perf_counter() - start
        if step > 0:
            best = min(best, elapsed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, value, unit in [("train_step_pytorch_peft_f32_r16_b4x256", 1024 / best, "tok/s"), ("train_peak_rss_pytorch_peft", rss, "MiB")]:
        print(json.dumps({"suite": "training-peers", "name": name, "value": round(value, 1), "unit": unit, "threads": threads,
                          "torch": torch.__version__}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count())
