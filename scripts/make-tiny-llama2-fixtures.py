#!/usr/bin/env python3
"""A tiny random Llama 2-style model in every form Llama 2 chat checkpoints ship in, with
reference outputs, so the loaders are proven on Llama 2's layout without a 7B download.

- tokenizer: a SentencePiece BPE model (byte fallback, identity normalization, dummy
  prefix, split digits: Llama 2's settings) trained on a small benign corpus; saved as
  `tokenizer.model` and as transformers' `tokenizer.json` conversion.
- model: transformers `LlamaForCausalLM` with a small config, saved by `save_pretrained`
  in f32, bf16, and f32 sharded by a small `max_shard_size`; the same weights written as
  GGUF (the `gguf` package, Q/K permuted as llama.cpp's converter does) in F16 and Q8_0.
- references: transformers' logits for each form's stored weights; token ids from
  sentencepiece, checked equal to transformers' tokenizer.json and llama.cpp (when
  llama-cpp-python is installed); the Llama 2 chat rendering from Jinja2.

    /tmp/ref/bin/pip install torch transformers gguf sentencepiece protobuf jinja2
    /tmp/ref/bin/python scripts/make-tiny-llama2-fixtures.py
"""
import io
import json
import os
import sys
import shutil

import gguf
import numpy as np
import sentencepiece as spm
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_templates import LLAMA2 as LLAMA2_TEMPLATE  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LoRACoreTests", "Fixtures", "tiny-llama2")

CORPUS = """The library opens at nine in the morning and closes at six in the evening.
Visitors may borrow up to five books at a time and return them within three weeks.
A quiet reading room on the second floor has large windows facing the river.
On Saturdays there is a story hour for children, followed by a drawing workshop.
The old town has narrow streets, a market square, and a clock tower from 1742.
Fresh bread, cheese, apples and honey are sold at the market every Thursday.
Café owners put tables outside when the weather is warm; naïve tourists love it.
Numbers like 12, 345 and 6789 appear in timetables, receipts and page counts.
def area(width, height):
    return width * height
Rain is expected tomorrow, so bring an umbrella and a warm coat.
""" * 6

TEXTS = [
    "Hello world",
    "The library opens at nine.",
    " leading space and  double  spaces",
    "Numbers 2024 and 3.14 and 1e-5",
    "naïve café, Straße, Ελληνικά, 中文, 😀",
    "def f(x):\n    return x * 2\n",
    "<s>[INST] Hi [/INST] Hello </s>",
    "tabs\tand\nnewlines\n\n",
    "",
    "unknown ☃ snowman and ∑ sum",
]



def train_tokenizer(folder):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()), model_writer=model, model_type="bpe", vocab_size=400,
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    path = os.path.join(folder, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return path


def permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permutation: rotate_half rows -> adjacent pairs."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, config, state, sp, qtype):
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-llama2")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(config.rope_theta if hasattr(config, "rope_theta") else 10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == gguf.GGMLQuantizationType.Q8_0 else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    types = []
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i): types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i): types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i): types.append(gguf.TokenType.BYTE)
        else: types.append(gguf.TokenType.NORMAL)
    writer.add_token_list(pieces)
    writer.add_token_scores([sp.get_score(i) for i in range(sp.get_piece_size())])
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(LLAMA2_TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    stored = {}
    for name, tensor in state.items():
        w = tensor.float().numpy()
        if name in names:
            gname = names[name]
        else:
            layer, part = name[len("model.layers."):-len(".weight")].split(".", 1)
            gname = f"blk.{layer}.{parts[part]}.weight"
        if name.endswith("q_proj.weight"): w = permute(w, config.num_attention_heads)
        if name.endswith("k_proj.weight"): w = permute(w, config.num_key_value_heads)
        if w.ndim == 1:
            writer.add_tensor(gname, w.astype(np.float32))
            stored[name] = w
        elif qtype == gguf.GGMLQuantizationType.Q8_0:
            q = gguf.quants.quantize(w, qtype)
            writer.add_tensor(gname, q, raw_dtype=qtype)
            stored[name] = gguf.quants.dequantize(q, qtype).reshape(w.shape)
        else:
            writer.add_tensor(gname, w.astype(np.float16))
            stored[name] = w.astype(np.float16).astype(np.float32)
        if name.endswith("q_proj.weight") or name.endswith("k_proj.weight"):  # back to HF order for the reference
            heads = config.num_attention_heads if "q_proj" in name else config.num_key_value_heads
            stored[name] = stored[name].reshape(heads, stored[name].shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


def logits(model, state, ids):
    model.load_state_dict({k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in state.items()})
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    work = os.path.join(OUT, "..", "tiny-llama2-work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    sp_path = train_tokenizer(work)
    sp = spm.SentencePieceProcessor(model_file=sp_path)

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms away from 1 so a wrong norm shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"): p.add_(0.25 * torch.randn_like(p))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    settings = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": True,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "chat_template": LLAMA2_TEMPLATE}
    with open(os.path.join(work, "tokenizer_config.json"), "w") as f:
        json.dump(settings, f)
    fast = AutoTokenizer.from_pretrained(work)  # transformers' conversion of tokenizer.model to tokenizer.json
    forms = {"f32": dict(), "bf16": dict(dtype=torch.bfloat16), "sharded": dict(max_shard_size="100KB")}
    references = {}
    for form, options in forms.items():
        folder = os.path.join(OUT, f"hf-{form}")
        m = LlamaForCausalLM(config).eval()
        m.load_state_dict(state)
        if "dtype" in options: m = m.to(options["dtype"])
        m.save_pretrained(folder, max_shard_size=options.get("max_shard_size", "50MB"))
        if form == "sharded":
            fast.save_pretrained(folder)  # tokenizer.json
        else:  # tokenizer.model, as Llama 2 repositories also ship it
            shutil.copy(sp_path, folder)
            shutil.copy(os.path.join(work, "tokenizer_config.json"), folder)
        references[f"hf-{form}"] = {k: v.float().numpy() for k, v in m.state_dict().items()}
    assert len([f for f in os.listdir(os.path.join(OUT, "hf-sharded")) if f.endswith(".safetensors")]) > 1
    for qtype, name in [(gguf.GGMLQuantizationType.F16, "f16"), (gguf.GGMLQuantizationType.Q8_0, "q8_0")]:
        references[f"gguf-{name}"] = write_gguf(os.path.join(OUT, f"tiny-llama2.{name}.gguf"), config, state, sp, qtype)

    ids = sp.encode("The library opens at nine in the morning; visitors borrow books.", add_bos=True)
    reference = LlamaForCausalLM(config).eval()
    fixture = {"ids": ids, "logits": {}}
    for form, weights in references.items():
        fixture["logits"][form] = [[round(float(x), 7) for x in row] for row in logits(reference, weights, ids)]

    # token ids: sentencepiece (and llama.cpp, which follows it) for tokenizer.model and GGUF;
    # transformers' tokenizer.json for its own conversion, which differs on leading spaces
    # (Metaspace prepends no second "▁") and parses special-token text
    cases = [{"text": t, "sentencepiece": sp.encode(t), "huggingface": fast.encode(t, add_special_tokens=False)} for t in TEXTS]
    try:
        from llama_cpp import Llama
        vocab = Llama(model_path=os.path.join(OUT, "tiny-llama2.f16.gguf"), vocab_only=True, verbose=False)
        for case in cases:
            got = vocab.tokenize(case["text"].encode(), add_bos=False, special=False)
            assert got == case["sentencepiece"], (case["text"], got, case["sentencepiece"])
        print("token ids: llama.cpp == sentencepiece on all texts")
    except ImportError:
        print("llama-cpp-python not installed: token ids not cross-checked with llama.cpp")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."},
            {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}]
    text = fast.apply_chat_template(chat, tokenize=False)
    fixture["chat"] = {"messages": chat, "text": text, "ids": fast.encode(text, add_special_tokens=False)}
    fixture["tokenizer"] = cases
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(fixture, f, ensure_ascii=False)
    shutil.rmtree(work)
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
