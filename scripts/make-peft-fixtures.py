#!/usr/bin/env python3
"""A PEFT LoRA adapter for the tiny Llama 2 model (run make-tiny-llama2-fixtures.py first),
with PEFT's logits on the Hugging Face checkpoint and on the GGUF file (loaded by
transformers, which un-permutes Q/K): the reference for loading PEFT adapters onto both
layouts. A and B are both random (init_lora_weights=False) so every term shows, and one
module has its own rank and one its own alpha (rank_pattern, alpha_pattern).

    /tmp/ref/bin/pip install torch transformers accelerate gguf peft
    /tmp/ref/bin/python scripts/make-peft-fixtures.py
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LoRACoreTests", "Fixtures", "tiny-llama2")


def main():
    torch.manual_seed(1)
    base = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "hf-f32"), dtype=torch.float32).eval()
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        rank_pattern={"model.layers.1.mlp.down_proj": 2}, alpha_pattern={"o_proj": 4}, task_type="CAUSAL_LM")
    model = get_peft_model(base, config).eval()
    model.peft_config["default"].base_model_name_or_path = "hf-f32"  # relative: no path of this machine in the fixture
    folder = os.path.join(ROOT, "adapter")
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))  # a generated model card with this machine's paths
    ids = json.load(open(os.path.join(ROOT, "reference.json")))["ids"]
    logits = {}
    with torch.no_grad():
        logits["hf-f32"] = model(torch.tensor([ids])).logits[0].tolist()
        gguf_base = LlamaForCausalLM.from_pretrained(ROOT, gguf_file="tiny-llama2.f16.gguf", dtype=torch.float32).eval()
        on_gguf = PeftModel.from_pretrained(gguf_base, folder).eval()
        logits["gguf-f16"] = on_gguf(torch.tensor([ids])).logits[0].tolist()
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"ids": ids, "logits": {k: [[round(x, 6) for x in row] for row in v] for k, v in logits.items()}}, f)
    print("wrote", sorted(os.listdir(folder)))


if __name__ == "__main__":
    main()
