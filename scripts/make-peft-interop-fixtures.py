#!/usr/bin/env python3
"""Does an adapter swift-lora trains load in PEFT and mean the same there? For each base
precision (int8, and the file's own 4-bit blocks) this fine-tunes a small adapter with
`lora finetune` on the GGUF model (the q/k rows GGUF permutes for RoPE: the saved lora_B
must be back in Hugging Face order), loads it with `PeftModel.from_pretrained` onto
transformers' model from the same GGUF (dequantized, f32), and records the
log-probabilities of a text. The Swift test attaches each committed adapter to its own f32
model and compares. Dev-time only.

    swift build -c release --product lora
    .build/peers/bin/python scripts/make-peft-interop-fixtures.py "$(scripts/fetch-model)"
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "LoRACoreTests", "Fixtures")
# base precision -> fixture folder
OUTPUTS = {"int8": "smollm2-trained-adapter", "q4": "smollm2-trained-adapter-q4"}
# token ids of a benign chat exchange in SmolLM2's vocabulary, from `lora tokenize`
TEXT = ("<|im_start|>user\nWhat is the capital of Italy?<|im_end|>\n<|im_start|>assistant\n"
        "{\"answer\": \"Rome\", \"topic\": \"geography\"}<|im_end|>\n")


def main(gguf_path):
    for precision, folder in OUTPUTS.items():
        write_fixture(gguf_path, precision, os.path.join(FIXTURES, folder))


def write_fixture(gguf_path, precision, out):
    lora = os.path.join(ROOT, ".build", "release", "lora")
    work = tempfile.mkdtemp()
    subprocess.run([lora, "finetune", "--model", gguf_path, "--precision", precision, "--data", os.path.join(ROOT, "Examples", "data", "format-train.jsonl"),
                    "--out", work + "/adapter", "--steps", "12", "--batch", "4", "--seq-len", "96", "--rank", "4", "--alpha", "8",
                    "--targets", "q,k,v,o,down", "--layers", "0,15,29", "--lr", "3e-3", "--seed", "7"],
                   check=True, stdout=subprocess.DEVNULL)
    ids = json.loads(subprocess.run([lora, "tokenize", "--model", gguf_path, "--text", TEXT], check=True,
                                    capture_output=True, text=True).stdout.strip().splitlines()[-1])
    folder, name = os.path.split(os.path.abspath(gguf_path))
    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, work + "/adapter")
    model.eval()

    def logprobs(m):
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].double()
        picked = torch.log_softmax(logits[:-1], dim=-1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
        return [round(float(x), 6) for x in picked]

    adapted = logprobs(model)
    with model.disable_adapter():
        plain = logprobs(model)
    os.makedirs(out, exist_ok=True)
    for file in ["adapter_model.safetensors", "adapter_config.json"]:
        shutil.copy(os.path.join(work, "adapter", file), out)
    with open(os.path.join(out, "peft-logprobs.json"), "w") as f:
        json.dump({"source": f"peft {__import__('peft').__version__}, transformers {__import__('transformers').__version__}, "
                             f"torch {torch.__version__}: PeftModel.from_pretrained on {name} (dequantized, f32); "
                             f"adapter trained by lora finetune --precision {precision}",
                   "ids": ids, "logprobs": adapted, "base_logprobs": plain}, f)
    shutil.rmtree(work)
    change = max(abs(a - b) for a, b in zip(adapted, plain))
    print(f"wrote {out}: {len(ids)} tokens, the adapter moves log-probabilities by up to {change:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
