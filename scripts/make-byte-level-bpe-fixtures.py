#!/usr/bin/env python3
"""Small byte-level BPE tokenizers, one per pre-tokenizer family the library implements
(GPT-2, digits-then-GPT-2 as SmolLM2/StarCoder, Llama 3), trained with Hugging Face
`tokenizers` and saved as tokenizer.json, with the ids `tokenizers` gives on a corpus that
stresses each pattern: the reference for our hand-written pre-tokenizers and for the
tokenizer.json loader.

    /tmp/ref/bin/pip install tokenizers
    /tmp/ref/bin/python scripts/make-byte-level-bpe-fixtures.py
"""
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LoRACoreTests", "Fixtures", "byte-level-bpe")

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")

TRAIN = """The library opens at nine in the morning and closes at six in the evening.
Visitors may borrow up to 5 books; they're due back in 21 days. I'M SURE THEY'LL COME.
Café, naïve, Straße — “quotes” and 中文 and 日本語 and emoji 😀👍🏽.
def area(width, height):\n    return width * height  # 2024-11-29\n\n\tindented\r\nwindows
""" * 20

CORPUS = [
    "Hello world!", "The year 2024 had 366 days and 1234567 seconds.", "  two leading spaces", "trailing   ",
    "I'm sure THEY'LL go, it's fine; WE'VE SEEN IT'S", "a\n\nb\r\n\r\nc \n d", "x\t\ty", "Café naïve Straße",
    "中文字符 日本語のテキスト", "Emoji 😀👍🏽 👨‍👩‍👧", "def f(x):\n    return x ** 2  # sq\n", "!!! ??? ... ,,,",
    "12+7=19, 3.14159, 1e-5", "   \n   ", "", "a", "mixed123abc456", "' quote 's 'S",
]


def build(kind):
    tokenizer = Tokenizer(models.BPE())
    if kind == "gpt2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], show_progress=False)
    tokenizer.train_from_iterator(TRAIN.splitlines(keepends=True), trainer)
    return tokenizer


def main():
    os.makedirs(OUT, exist_ok=True)
    for kind in ("gpt2", "smollm", "llama3"):
        tokenizer = build(kind)
        folder = os.path.join(OUT, kind)
        os.makedirs(folder, exist_ok=True)
        tokenizer.save(os.path.join(folder, "tokenizer.json"))
        cases = [{"text": t, "ids": tokenizer.encode(t, add_special_tokens=False).ids} for t in CORPUS]
        with open(os.path.join(folder, "reference.json"), "w") as f:
            json.dump({"kind": kind, "cases": cases}, f, ensure_ascii=False, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
