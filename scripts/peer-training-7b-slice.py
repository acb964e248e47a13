#!/usr/bin/env python3
"""Training speed at the 7B shape, against the Python peers on the same shapes: a 4-layer
slice of Llama-2-7B (hidden 4096, intermediate 11008, 32 heads, vocab 32000), LoRA rank 16,
alpha 32 on all seven projections, AdamW, batch 1 x 512, every position learned, the same
thread count, random weights.

- swift-lora: `lora synthesize` writes the slice as Q4_0 and as Q8_0; `lora finetune` trains
  it from a packed text JSONL at --precision q4 and int8 (direct backward, and the transposed
  copy where it fits); tok/s of a whole optimizer step from its train_log.jsonl.
- PyTorch + PEFT: the same slice built by transformers (random init), f32, and f32 weights
  under bf16 autocast.
- PEFT + bitsandbytes 4-bit (NF4) on the CPU: the slice saved and loaded back through
  BitsAndBytesConfig, QLoRA's recipe, with bf16 compute.

bf16 runs natively only where the CPU has AVX-512 BF16 or AMX. Elsewhere (an AVX2-only CPU)
PyTorch emulates it: bf16 autocast ran under 1 tok/s there (3 steps had not finished after
32 minutes), so the script skips it and gives bitsandbytes f32 compute instead, and prints
which; SWIFT_LORA_PEERS_BF16=1 runs the bf16 variants anyway.

Each peer times whole steps (forward, backward, AdamW) after one warm-up step and keeps the
best. Prints JSON lines like the Swift suites, then each variant's ratio to the best peer.
Needs ~12 GiB and ~15 minutes on 2 cores. Dev-time only:

    swift build -c release --product lora
    .build/peers/bin/pip install torch==2.13.0 transformers peft bitsandbytes
    .build/peers/bin/python scripts/peer-training-7b-slice.py [threads]
"""
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIG = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures", "llama2-configs", "Llama-2-7b-chat-hf.config.json")
LORA = os.path.join(ROOT, ".build", "release", "lora")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LAYERS, TOKENS, STEPS = 4, 512, 3


def emit(name, value, unit, threads, **extra):
    print(json.dumps({"suite": "training-7b-slice", "name": name, "value": round(value, 2), "unit": unit, "threads": threads,
                      **extra}), flush=True)


def slice_config(work):
    with open(CONFIG) as f:
        config = json.load(f)
    config["num_hidden_layers"] = LAYERS
    path = os.path.join(work, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path, config


def text_data(work):
    # benign prose (the Apache license the fixtures ship), one example a paragraph, packed
    with open(os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures", "apache-2.0.txt")) as f:
        paragraphs = [p.strip() for p in f.read().split("\n\n") if p.strip()]
    path = os.path.join(work, "text.jsonl")
    with open(path, "w") as f:
        for _ in range(8):
            for p in paragraphs:
                f.write(json.dumps({"text": p}) + "\n")
    return path


def swift_lora(work, config_path, data, threads):
    results = {}
    for gguf_type, precision, backward in [("q4_0", "q4", "direct"), ("q8_0", "int8", "direct"), ("q8_0", "int8", "copy")]:
        model = os.path.join(work, f"slice-{gguf_type}.gguf")
        if not os.path.exists(model):
            subprocess.run([LORA, "synthesize", "--config", config_path, "--type", gguf_type, "--out", model, "--seed", "1"],
                           check=True, stdout=subprocess.DEVNULL)
        out = os.path.join(work, f"run-{precision}-{backward}")
        subprocess.run([LORA, "finetune", "--model", model, "--precision", precision, "--backward-data", backward,
                        "--threads", str(threads), "--data", data, "--pack", "--out", out, "--steps", str(STEPS),
                        "--batch", "1", "--seq-len", str(TOKENS), "--rank", "16", "--alpha", "32", "--recompute", "never"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(out, "train_log.jsonl")) as f:
            rates = [json.loads(line)["tokens_per_second"] for line in f]
        name = f"swift_lora_{precision}" + ("_copy" if backward == "copy" else "")
        results[name] = max(rates[1:])
        emit(f"train_step_7b_slice_{name}_r16_b1x512", results[name], "tok/s", threads)
        shutil.rmtree(out)
    return results


def native_bf16():
    """Whether the CPU computes bf16 in hardware (AVX-512 BF16 or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def time_steps(model, vocab, autocast):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, vocab, (1, TOKENS), generator=torch.Generator().manual_seed(1))
    model.train()
    best = float("inf")
    for step in range(STEPS):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step > 0:
            best = min(best, time.perf_counter() - start)
    return TOKENS / best


def peers(work, config, threads):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules=TARGETS)
    results = {}
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**config))
    model = get_peft_model(base, lora)
    bf16 = native_bf16() or os.environ.get("SWIFT_LORA_PEERS_BF16") == "1"
    for name, autocast in [("pytorch_peft_f32", False), ("pytorch_peft_bf16_autocast", True)]:
        if autocast and not bf16:
            print(json.dumps({"suite": "training-7b-slice", "name": f"train_step_7b_slice_{name}_r16_b1x512",
                              "skipped": "no AVX-512 BF16 or AMX: PyTorch emulates bf16 (under 1 tok/s)"}), flush=True)
            continue
        results[name] = time_steps(model, config["vocab_size"], autocast)
        emit(f"train_step_7b_slice_{name}_r16_b1x512", results[name], "tok/s", threads, torch=torch.__version__)
    saved = os.path.join(work, "hf-slice")
    model.unload().to(torch.bfloat16).save_pretrained(saved)
    del model, base
    gc.collect()

    import bitsandbytes
    compute = torch.bfloat16 if bf16 else torch.float32
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    qmodel = AutoModelForCausalLM.from_pretrained(saved, quantization_config=quantization, device_map="cpu",
                                                  torch_dtype=compute)
    qmodel = get_peft_model(qmodel, lora)
    name = "peft_bitsandbytes_nf4" + ("" if bf16 else "_f32_compute")
    results[name] = time_steps(qmodel, config["vocab_size"], autocast=False)
    emit(f"train_step_7b_slice_{name}_r16_b1x512", results[name], "tok/s", threads, bitsandbytes=bitsandbytes.__version__,
         compute=str(compute).removeprefix("torch."))
    return results


def main(threads):
    torch.set_num_threads(threads)
    work = tempfile.mkdtemp(prefix="swift-lora-7b-slice-")
    try:
        config_path, config = slice_config(work)
        ours = swift_lora(work, config_path, text_data(work), threads)
        theirs = peers(work, config, threads)
        best_name = max(theirs, key=theirs.get)
        for name, value in ours.items():
            emit(f"ratio_{name}_to_best_peer", value / theirs[best_name], "x", threads, best_peer=best_name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count())
