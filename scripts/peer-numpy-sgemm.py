#!/usr/bin/env python3
"""Peer baseline for the kernel benchmarks: numpy's f32 GEMM (its bundled, current
OpenBLAS) at the shapes of KernelBenchmarks, as JSON lines of the same form.

Run by `make bench`. Debian's OpenBLAS may be steered by OPENBLAS_CORETYPE in this
environment; numpy's own OpenBLAS needs no steering, so the variable is cleared for it.
"""
import json
import os
import sys
import time

if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

threads = os.environ.get("SWIFT_LORA_THREADS") or str(os.cpu_count())
os.environ.setdefault("OPENBLAS_NUM_THREADS", threads)
import numpy as np  # noqa: E402  (after the thread setting)

SHAPES = [(576, 1536), (1536, 576), (576, 576), (4096, 11008)]


def best_time(fn, budget=0.6):
    fn()
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or spent < budget:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best


rng = np.random.default_rng(0)
for m in (512, 2048):
    for k, n in SHAPES:
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        seconds = best_time(lambda: x @ w.T)
        gflops = 2 * m * n * k / seconds / 1e9
        print(json.dumps({"suite": "peer", "name": f"numpy_sgemm_{m}x{k}x{n}", "value": round(gflops, 1),
                          "unit": "GFLOP/s", "baseline": None, "baseline_value": None, "ratio": None,
                          "numpy": np.__version__, "threads": int(threads)}), flush=True)
