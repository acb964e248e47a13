#!/usr/bin/env python3
"""The reference for one LoRA training step on SmolLM2-135M-Instruct in f32: PyTorch + PEFT
on transformers' model loaded from the same GGUF file, a fixed batch of two chat examples
of different lengths (right-padded, attention-masked, prompt tokens labelled -100), a
PEFT adapter with random A and B (init_lora_weights=False, so every gradient term shows)
on all seven projections of three layers. Writes the adapter (PEFT's save_pretrained), the
batch, the mean loss and every lora_A/lora_B gradient; the Swift test loads the adapter,
runs the same batch side by side without padding and compares. Dev-time only.

    .build/peers/bin/pip install torch==2.13.0 transformers peft gguf safetensors
    .build/peers/bin/python scripts/make-smollm2-lora-gradient-fixtures.py "$(scripts/fetch-model)"
"""
import json
import os
import shutil
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LoRACoreTests", "Fixtures", "smollm2-lora")
LAYERS = [0, 14, 29]

# Two benign examples, as SmolLM2's ChatML renders them (the default system turn included):
# (prompt, answer); the loss counts the answer and its <|im_end|>\n.
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
EXAMPLES = [
    ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
     '{"answer": "Paris", "topic": "geography"}<|im_end|>\n'),
    ("<|im_start|>user\nName a bird that cannot fly, and say where it lives.<|im_end|>\n<|im_start|>assistant\n",
     "The penguin cannot fly; most penguins live in the cold seas around Antarctica.<|im_end|>\n"),
]


def main(gguf_path):
    from transformers import AutoTokenizer
    folder, name = os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False, layers_to_transform=LAYERS,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    # B random too, but small: the adapted model stays near the base
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.mul_(0.1)
    model.train()  # dropout is 0: train mode changes nothing but is what a trainer runs
    sequences, labels = [], []
    for prompt, answer in EXAMPLES:
        p = tokenizer(SYSTEM + prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        sequences.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, sequences))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    label_tensor = torch.tensor([l + [-100] * (width - len(l)) for l in labels])
    out = model(input_ids=ids, attention_mask=mask, labels=label_tensor)
    out.loss.backward()
    gradients = {}
    for n, p in model.named_parameters():
        if p.grad is not None:
            key = n.replace("base_model.model.", "", 1).replace(".default.weight", "")  # model.layers.N.self_attn.q_proj.lora_A
            gradients[key] = p.grad.detach().contiguous()
    shutil.rmtree(OUT, ignore_errors=True)
    model.peft_config["default"].base_model_name_or_path = "SmolLM2-135M-Instruct.Q4_1.gguf"
    model.save_pretrained(os.path.join(OUT, "adapter"))
    os.remove(os.path.join(OUT, "adapter", "README.md"))  # a generated model card with this machine's paths
    save_file(gradients, os.path.join(OUT, "gradients.safetensors"))
    with open(os.path.join(OUT, "batch.json"), "w") as f:
        json.dump({"sequences": sequences, "labels": labels, "loss": out.loss.item(),
                   "torch": torch.__version__, "layers": LAYERS}, f)
    print("loss", out.loss.item(), "gradients", len(gradients), "lengths", [len(s) for s in sequences])


if __name__ == "__main__":
    main(sys.argv[1])
