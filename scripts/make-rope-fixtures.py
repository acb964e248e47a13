#!/usr/bin/env python3
"""RoPE frequencies of the scaled variants Llama checkpoints use, from transformers' own
rope_init_functions: the reference for LlamaConfig.ropeFrequencies().

    /tmp/ref/bin/pip install torch transformers
    /tmp/ref/bin/python scripts/make-rope-fixtures.py
"""
import json
import os

from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LoRACoreTests", "Fixtures", "rope-scaling.json")

CASES = [
    {"rope_theta": 10000.0, "rope_scaling": None},
    {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0}},
    {"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
]


def main():
    out = []
    for case in CASES:
        config = LlamaConfig(hidden_size=4096, num_attention_heads=32, max_position_embeddings=131072,
                             rope_theta=case["rope_theta"], rope_scaling=case["rope_scaling"])
        kind = (case["rope_scaling"] or {}).get("rope_type", "default")
        inv_freq, _ = ROPE_INIT_FUNCTIONS[kind](config, "cpu") if kind != "default" else \
            (1.0 / (case["rope_theta"] ** (__import__("torch").arange(0, 128, 2).float() / 128)), 1.0)
        out.append({"config": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 1,
                               "num_attention_heads": 32, "vocab_size": 32000, "rope_theta": case["rope_theta"],
                               "rope_scaling": case["rope_scaling"], "max_position_embeddings": 131072},
                    "inv_freq": [float(x) for x in inv_freq]})
    with open(OUT, "w") as f:
        json.dump(out, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
