#!/usr/bin/env python3
"""Projects data-parallel step time for Llama-2 7B, 13B and 70B on N machines from two
figures measured here (TrainingBenchmarks' GradientSumBenchmarks line):

  --layer-step  seconds of a 7B micro-batch of 1 x 512 tokens on the 4-bit base, one machine
                (the benchmark's baseline_value: the rest + 32 layers, projected from slices)
  --sum-local   seconds the 40M-float gradient sum took between 2 ranks of one machine
                (the benchmark's value: memory copies and adds, no network)

and the library's own accounting: a micro-batch's compute scales with the model's matrix
parameters; every step sums the adapter's gradients with ProcessGroup.OrderedSum, which
moves (items a rank + 1) x (N - 1)/N of the gradient vector per rank (an all-to-all of
segments, then an all-gather); one micro-batch a rank here. A global batch of 16 micro-batches
a step; the network runs at the stated rate, full duplex, latency ignored.

    python3 scripts/project-scaling.py [--layer-step S] [--sum-local S]
"""
import argparse
import math

# (matrix parameters, rank-16 adapter parameters on all seven projections)
MODELS = {
    "Llama-2-7B": (6.74e9, 39_976_960),
    "Llama-2-13B": (13.02e9, 62_586_880),
    "Llama-2-70B": (68.98e9, 207_093_760),
}
MICRO_BATCHES = 16


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer-step", type=float, default=85.38)
    parser.add_argument("--sum-local", type=float, default=0.531)
    args = parser.parse_args()
    base_params, base_adapter = MODELS["Llama-2-7B"]
    print(f"| model | machines | compute a step | gradient sum at 10 / 25 / 100 Gb/s | step at 10 / 25 / 100 Gb/s | speed-up at 25 Gb/s |")
    print("|---|---|---|---|---|---|")
    for name, (params, adapter) in MODELS.items():
        micro = args.layer_step * params / base_params
        single = MICRO_BATCHES * micro
        for n in [1, 2, 4, 8, 16]:
            compute = math.ceil(MICRO_BATCHES / n) * micro
            mine = math.ceil(MICRO_BATCHES / n)
            floats = (mine + 1) * adapter * (n - 1) / n
            local = args.sum_local * adapter / base_adapter if n > 1 else 0.0
            sums = [local + floats * 32 / (rate * 1e9) for rate in (10, 25, 100)]
            steps = [compute + s for s in sums]
            print(f"| {name} | {n} | {compute:.0f} s | " + " / ".join(f"{s:.1f} s" for s in sums) + " | "
                  + " / ".join(f"{s:.0f} s" for s in steps) + f" | {single / steps[1]:.2f}x |")


if __name__ == "__main__":
    main()
