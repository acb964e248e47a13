#!/usr/bin/env python3
"""Reference fixtures for the SmolLM2 tests, from implementations independent of ours:
Hugging Face transformers loading the same GGUF file (logits), Hugging Face `tokenizers`
built from the file's vocabulary and merges with SmolLM2's own pre-tokenizer, cross-checked
with llama.cpp when llama-cpp-python is installed (token ids), and Jinja2 running the chat
templates. Dev-time only: the tests read the JSON this writes, never Python.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers accelerate gguf tokenizers jinja2
    /tmp/ref/bin/python scripts/make-smollm2-fixtures.py "$(scripts/fetch-model)"

Why not transformers' tokenizer from the GGUF: its converter drops SmolLM2's digit split
(Digits(individual_digits) before ByteLevel), so whitespace before a digit splits
differently from the model's own tokenizer.json and from llama.cpp ("\n\n   1").
"""
import json
import os
import sys

import gguf
import jinja2
import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_templates import LLAMA2 as LLAMA2_TEMPLATE, LLAMA3 as LLAMA3_TEMPLATE  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "LoRACoreTests", "Fixtures")

# Covers what byte-level BPE must get right: ASCII, accents, CJK, emoji (with ZWJ and
# skin tones), digits, code, runs of spaces/tabs/newlines, contractions, control-token text.
CORPUS = [
    "Hello world!",
    "The year 2024 had 366 days, and 1,000,000 is a million.",
    "  leading spaces and\ttabs\nnewline",
    "naïve café — “quotes” 😀",
    "Ünïcödé àccénts: ñ, ç, ø, ß, œ, Å, Ž.",
    "中文字符测试，日本語のテキスト、한국어 문장.",
    "Emoji: 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "if (a != b && c <= 3) { printf(\"%d\\n\", a); }",
    "Multiple     spaces   here.\n\n\n\nAnd four newlines.   \n  ",
    "I'm sure they've said we'll go, isn't it? He'd know. YOU'LL SEE.",
    "<|im_start|>user\nWhat's 12+7?<|im_end|>\n<|im_start|>assistant\n",
    "Text with <|endoftext|> in the middle and <repo_name> too.",
    "Numbers: 3.14159, -42, 1e-5, 0x1F, 12345678901234567890.",
    "Tabs\t\tand\r\nwindows line endings\r\n",
    "",
    " ",
    "a",
    "ΑΒΓ δεζ ηθι — Ελληνικά; Кириллица тоже.",
    "https://example.com/path?query=1&other=two#frag",
]

# A benign 64-token text for the logits check.
LOGITS_TEXT = (
    "The library opens at nine in the morning. Visitors can borrow up to five books at a time, "
    "and the reading room on the second floor stays quiet all day. On Saturdays there is a "
    "story hour for children, followed by a small workshop on drawing maps of the old town, "
    "its rivers, bridges and the hill where the observatory stands."
)


CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "You answer in one sentence."}, {"role": "user", "content": "What is a prime number?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  Name a color.  "},
        {"role": "assistant", "content": " Blue. "},
        {"role": "user", "content": "Another one?\n"},
    ],
    [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof\nthe garden drinks quietly\nclouds drift to the east"},
        {"role": "user", "content": "Thanks! Now one about snow ❄️."},
    ],
]


def render(template, messages, add_generation_prompt, bos, eos):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers compiles templates
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos
    )


def reference_tokenizer(gguf_path):
    """SmolLM2's tokenizer.json rebuilt from the GGUF's vocabulary and merges."""
    reader = gguf.GGUFReader(gguf_path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    types = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types.parts[i][0]) for i in types.data]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                                     merges=[tuple(m.split(" ", 1)) for m in merges]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(tokens[i], special=True) for i, t in enumerate(types) if t == 3])
    return tokenizer


def llama_cpp_ids(gguf_path, texts):
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python not installed: token ids not cross-checked with llama.cpp")
        return None
    vocab = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    return [vocab.tokenize(t.encode(), add_bos=False, special=True) for t in texts]


def main(gguf_path):
    folder, name = os.path.split(os.path.abspath(gguf_path))
    reference = reference_tokenizer(gguf_path)
    encode = lambda text: reference.encode(text, add_special_tokens=False).ids
    texts = CORPUS + [open(os.path.join(OUT, "apache-2.0.txt")).read()]
    ids = [encode(t) for t in texts]
    cpp = llama_cpp_ids(gguf_path, texts)
    if cpp is not None:
        for text, a, b in zip(texts, ids, cpp):
            assert a == b, f"tokenizers and llama.cpp disagree on {text[:40]!r}"
        print(f"token ids: tokenizers == llama.cpp on all {len(texts)} texts")
    with open(os.path.join(OUT, "smollm2-tokenizer.json"), "w") as f:
        json.dump({"source": "tokenizers " + __import__("tokenizers").__version__ + " BPE from the GGUF vocab/merges, "
                             "Sequence[Digits(individual), ByteLevel]" + (", equal to llama.cpp" if cpp else ""),
                   "cases": [{"text": t, "ids": i} for t, i in zip(CORPUS, ids)]},
                  f, ensure_ascii=False, indent=1)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)  # for its chat template

    smol_template = tokenizer.chat_template
    templates = {"chatml": (smol_template, "", ""), "llama2": (LLAMA2_TEMPLATE, "<s>", "</s>"),
                 "llama3": (LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>")}
    renders = []
    for family, (template, bos, eos) in templates.items():
        for conversation in CONVERSATIONS:
            for generation in (True, False):
                if family == "llama2" and generation and conversation[-1]["role"] == "assistant":
                    continue
                renders.append({"family": family, "template": template, "bos": bos, "eos": eos,
                                "messages": conversation, "add_generation_prompt": generation,
                                "text": render(template, conversation, generation, bos, eos)})
    with open(os.path.join(OUT, "chat-templates.json"), "w") as f:
        json.dump({"source": f"jinja2 {jinja2.__version__}", "renders": renders}, f, ensure_ascii=False, indent=1)

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    ids = encode(LOGITS_TEXT)[:64]
    assert len(ids) == 64, len(ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    probe = sorted(set(rng.choice(logits.shape[1], 48, replace=False).tolist()))
    positions = []
    for row in logits:
        top = np.argsort(-row)[:16].tolist()
        chosen = sorted(set(top) | set(probe))
        positions.append({"argmax": int(top[0]), "max": float(row.max()), "min": float(row.min()),
                          "ids": chosen, "logits": [round(float(row[i]), 6) for i in chosen]})
    with open(os.path.join(OUT, "smollm2-logits.json"), "w") as f:
        json.dump({"source": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
                             f"LlamaForCausalLM from {name} (dequantized, f32)",
                   "text": LOGITS_TEXT, "ids": ids, "positions": positions}, f, indent=None)

    # perplexity of the first 2000 tokens of the license text: the f32 mode must match it,
    # the int8 mode must stay within 1% of the f32 mode
    text = open(os.path.join(OUT, "apache-2.0.txt")).read()
    ids = encode(text)[:2000]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
        nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
    perplexity = float(torch.exp(nll))
    print(f"transformers perplexity of the first {len(ids)} tokens of apache-2.0.txt: {perplexity:.4f}")
    path = os.path.join(OUT, "smollm2-logits.json")
    fixture = json.load(open(path))
    fixture["perplexity2000"] = perplexity
    with open(path, "w") as f:
        json.dump(fixture, f, indent=None)


if __name__ == "__main__":
    main(sys.argv[1])
