#!/usr/bin/env python3
"""PyTorch's AdamW with gradient clipping, transformers' learning-rate schedules and a LoRA
layer with dropout under torch autograd, as the fixture OptimizerTests compares with:
Tests/LoRACoreTests/Fixtures/pytorch-optimizer.json.

Dev-time only (`make fixtures`): needs torch and transformers.
"""
import json
import math
import os

import numpy as np
import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "LoRACoreTests", "Fixtures", "pytorch-optimizer.json")
rng = np.random.default_rng(7)


def floats(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def lrs(make, peak, total):
    """The learning rate of each optimizer step 0..total-1, as a Trainer steps the scheduler."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = make(optimizer)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def schedules():
    cases = []
    for warmup, total in [(3, 10), (0, 5), (1, 2)]:
        peak = 1e-3
        cases += [
            {"shape": "constant", "warmup": warmup, "total": total, "peak": peak,
             "rates": lrs(lambda o: get_constant_schedule_with_warmup(o, warmup), peak, total)},
            {"shape": "linear", "warmup": warmup, "total": total, "peak": peak,
             "rates": lrs(lambda o: get_linear_schedule_with_warmup(o, warmup, total), peak, total)},
            {"shape": "cosine", "warmup": warmup, "total": total, "peak": peak,
             "rates": lrs(lambda o: get_cosine_schedule_with_warmup(o, warmup, total), peak, total)},
        ]
    return cases


def adamw():
    """Two parameters (a LoRA pair's A [3, 5] and B [4, 3]), six steps of given gradients,
    clipped to a global norm of 1 (some steps clip, some do not), a cosine schedule with
    warm-up, weight decay 0.1."""
    a = torch.nn.Parameter(torch.from_numpy(floats(3, 5)))
    b = torch.nn.Parameter(torch.from_numpy(floats(4, 3)))
    initial = {"a": a.detach().numpy().ravel().tolist(), "b": b.detach().numpy().ravel().tolist()}
    optimizer = torch.optim.AdamW([a, b], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 2, 6)
    steps = []
    for step in range(6):
        scale = [0.05, 0.2, 3.0, 0.1, 5.0, 0.3][step]
        ga, gb = floats(3, 5, scale=scale), floats(4, 3, scale=scale)
        a.grad, b.grad = torch.from_numpy(ga.copy()), torch.from_numpy(gb.copy())
        lr = optimizer.param_groups[0]["lr"]
        norm = torch.nn.utils.clip_grad_norm_([a, b], 1.0).item()
        optimizer.step()
        scheduler.step()
        steps.append({"grad_a": ga.ravel().tolist(), "grad_b": gb.ravel().tolist(), "lr": lr, "grad_norm": norm,
                      "a": a.detach().numpy().ravel().tolist(), "b": b.detach().numpy().ravel().tolist()})
    return {"initial": initial, "weight_decay": 0.1, "clip": 1.0, "steps": steps}


def splitmix_mask(seed, n, p):
    """The library's dropout mask (ops_dropout.c), written again from its definition: element i
    is kept when the top 24 bits of SplitMix64's i-th value from `seed` are at least p·2^24."""
    mask = np.zeros(n, dtype=np.float32)
    threshold = int(p * (1 << 24))
    m64 = (1 << 64) - 1
    for i in range(n):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & m64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
        z = z ^ (z >> 31)
        mask[i] = 1.0 if (z >> 40) >= threshold else 0.0
    return mask


def lora_dropout():
    """PEFT's LoRA layer in training mode, y = s · B(A(dropout(x))), with inverted dropout
    (kept values scaled by 1/(1 − p), as nn.Dropout does) under the library's mask."""
    tokens, inputs, outputs, rank, p, scale, seed = 5, 7, 4, 3, 0.3, 2.0, 12345
    x = torch.from_numpy(floats(tokens, inputs)).requires_grad_(True)
    a = torch.from_numpy(floats(rank, inputs, scale=0.4)).requires_grad_(True)
    b = torch.from_numpy(floats(outputs, rank, scale=0.4)).requires_grad_(True)
    mask = torch.from_numpy(splitmix_mask(seed, tokens * inputs, p).reshape(tokens, inputs))
    y = scale * ((x * mask / (1 - p)) @ a.T) @ b.T
    dy = torch.from_numpy(floats(tokens, outputs))
    y.backward(dy)
    return {"tokens": tokens, "inputs": inputs, "outputs": outputs, "rank": rank, "p": p, "scale": scale, "seed": seed,
            "x": x.detach().numpy().ravel().tolist(), "a": a.detach().numpy().ravel().tolist(),
            "b": b.detach().numpy().ravel().tolist(), "dy": dy.numpy().ravel().tolist(),
            "kept": int(mask.sum().item()), "y": y.detach().numpy().ravel().tolist(),
            "grad_a": a.grad.numpy().ravel().tolist(), "grad_b": b.grad.numpy().ravel().tolist(),
            "grad_x": x.grad.numpy().ravel().tolist()}


fixture = {"torch": torch.__version__, "schedules": schedules(), "adamw": adamw(), "lora_dropout": lora_dropout()}
with open(OUT, "w") as f:
    json.dump(fixture, f, indent=1)
print(f"wrote {OUT}: {len(fixture['schedules'])} schedules, {len(fixture['adamw']['steps'])} AdamW steps, "
      f"{fixture['lora_dropout']['kept']} of {5 * 7} inputs kept by dropout")
assert math.isfinite(fixture["adamw"]["steps"][-1]["grad_norm"])
