#!/usr/bin/env python3
"""Writes tiny GGUF models, a few KiB each:
  - tests/data/fuzz_llm/: the seed corpus of the load-path fuzzer (tools/fuzz_llm_load.c), one
    valid model of each kind of architecture vkinfer runs (dense and mixture-of-experts), so
    that mutations start from files that get all the way through the hyper-parameters, the
    weights table and the graph build;
  - tests/data/tiny/: models the command-line tests run for what a real model cannot show:
    nan_logits.gguf (its output weights are NaN, so every logit is), long_token.gguf (its
    final norm is zero, so all logits tie and greedy sampling picks token 0, whose text is
    301 bytes long).

    python3 tools/gen_tiny_models.py tests/data

Plain Python (struct and random), no packages: the GGUF v3 layout is written by hand from the
format's specification (header, metadata key/values, tensor records, aligned data).
"""
import os
import random
import struct
import sys

GGUF_U32, GGUF_F32, GGUF_STRING, GGUF_ARRAY = 4, 6, 8, 9
F32, F16, Q8_0 = 0, 1, 8


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, kind, value):
    out = s(key) + struct.pack("<I", kind)
    if kind == GGUF_U32:
        return out + struct.pack("<I", value)
    if kind == GGUF_F32:
        return out + struct.pack("<f", value)
    if kind == GGUF_STRING:
        return out + s(value)
    elem, items = value  # arrays: (element kind, values)
    out += struct.pack("<IQ", elem, len(items))
    for v in items:
        out += s(v) if elem == GGUF_STRING else struct.pack("<f" if elem == GGUF_F32 else "<i", v)
    return out


def tensor_bytes(rng, ggml_type, ne, fill=None):
    n = 1
    for d in ne:
        n *= d
    if fill is not None:
        assert ggml_type == F32
        return struct.pack("<%df" % n, *[fill] * n)
    if ggml_type == F32:
        return struct.pack("<%df" % n, *[rng.gauss(0, 0.3) for _ in range(n)])
    if ggml_type == F16:
        return struct.pack("<%de" % n, *[rng.gauss(0, 0.3) for _ in range(n)])
    assert ggml_type == Q8_0 and n % 32 == 0
    out = b""
    for _ in range(n // 32):  # a block: f16 scale, then 32 int8 quants
        out += struct.pack("<e", 0.01) + bytes(rng.randrange(256) for _ in range(32))
    return out


def gguf(metadata, tensors, rng, fills=None):
    fills = fills or {}
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    head += b"".join(kv(*m) for m in metadata)
    data, offsets = b"", []
    for name, ggml_type, ne in tensors:
        offsets.append(len(data))
        data += tensor_bytes(rng, ggml_type, ne, fills.get(name))
        data += b"\0" * (-len(data) % 32)
    for (name, ggml_type, ne), off in zip(tensors, offsets):
        head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", ggml_type, off)
    head += b"\0" * (-len(head) % 32)
    return head + data


def model(arch, embd, heads, kv_heads, ff, vocab, layers, wtype, tokenizer=False, first_token=None,
          experts=None):
    """experts=(E, k): a mixture of experts (llama files with experts are Mixtral's; qwen3moe has
    QK-norm per head), its E experts ff wide, k per token, stacked 3-D."""
    hd = embd // heads
    meta = [("general.architecture", GGUF_STRING, arch),
            (arch + ".block_count", GGUF_U32, layers),
            (arch + ".embedding_length", GGUF_U32, embd),
            (arch + ".feed_forward_length", GGUF_U32, ff),
            (arch + ".attention.head_count", GGUF_U32, heads),
            (arch + ".attention.head_count_kv", GGUF_U32, kv_heads),
            (arch + ".context_length", GGUF_U32, 64),
            (arch + ".attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
            (arch + ".rope.freq_base", GGUF_F32, 10000.0)]
    if arch == "gemma3":
        meta.append((arch + ".attention.sliding_window", GGUF_U32, 4))
    if experts:
        meta += [(arch + ".expert_count", GGUF_U32, experts[0]),
                 (arch + ".expert_used_count", GGUF_U32, experts[1])]
    if tokenizer:  # SentencePiece: <unk>, <s>, </s>, then byte-like pieces
        toks = ["<unk>", "<s>", "</s>"] + ["\u2581" + chr(97 + i) for i in range(vocab - 3)]
        types = [2, 3, 3] + [1] * (vocab - 3)
        if first_token:  # token 0 is an ordinary token with this text (no <unk> then)
            toks[0], types[0] = first_token, 1
            meta.append(("tokenizer.ggml.unknown_token_id", GGUF_U32, 3))
        meta += [("tokenizer.ggml.model", GGUF_STRING, "llama"),
                 ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, toks)),
                 ("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, [-float(i) for i in range(vocab)])),
                 ("tokenizer.ggml.token_type", GGUF_ARRAY, (5, types))]
    t = [("token_embd.weight", wtype, [embd, vocab])]
    for i in range(layers):
        p = "blk.%d." % i
        t += [(p + "attn_norm.weight", F32, [embd]),
              (p + "attn_q.weight", wtype, [embd, hd * heads]),
              (p + "attn_k.weight", wtype, [embd, hd * kv_heads]),
              (p + "attn_v.weight", wtype, [embd, hd * kv_heads]),
              (p + "attn_output.weight", wtype, [hd * heads, embd]),
              (p + "ffn_norm.weight", F32, [embd])]
        if experts:
            n = experts[0]
            t += [(p + "ffn_gate_inp.weight", F32, [embd, n]),
                  (p + "ffn_gate_exps.weight", wtype, [embd, ff, n]),
                  (p + "ffn_up_exps.weight", wtype, [embd, ff, n]),
                  (p + "ffn_down_exps.weight", wtype, [ff, embd, n])]
        else:
            t += [(p + "ffn_gate.weight", wtype, [embd, ff]),
                  (p + "ffn_up.weight", wtype, [embd, ff]),
                  (p + "ffn_down.weight", wtype, [ff, embd])]
        if arch == "qwen2":
            t += [(p + "attn_q.bias", F32, [hd * heads]), (p + "attn_k.bias", F32, [hd * kv_heads]),
                  (p + "attn_v.bias", F32, [hd * kv_heads])]
        if arch == "qwen3moe":
            t += [(p + "attn_q_norm.weight", F32, [hd]), (p + "attn_k_norm.weight", F32, [hd])]
        if arch == "gemma3":
            t += [(p + "attn_q_norm.weight", F32, [hd]), (p + "attn_k_norm.weight", F32, [hd]),
                  (p + "post_attention_norm.weight", F32, [embd]),
                  (p + "post_ffw_norm.weight", F32, [embd])]
    t += [("output_norm.weight", F32, [embd])]
    if arch != "gemma3":  # Gemma ties the output to the embedding
        t += [("output.weight", wtype, [embd, vocab])]
    return meta, t


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    seeds = {
        "fuzz_llm/llama_f32.gguf": (model("llama", 8, 2, 1, 16, 12, 1, F32, tokenizer=True), {}),
        "fuzz_llm/llama_q8_0.gguf": (model("llama", 32, 2, 1, 32, 8, 1, Q8_0), {}),
        "fuzz_llm/qwen2_f16.gguf": (model("qwen2", 8, 2, 2, 16, 12, 1, F16), {}),
        "fuzz_llm/gemma3_f32.gguf": (model("gemma3", 8, 2, 1, 16, 12, 2, F32), {}),
        "fuzz_llm/mixtral_f16.gguf": (model("llama", 8, 2, 1, 16, 12, 1, F16, experts=(4, 2)), {}),
        "fuzz_llm/qwen3moe_f32.gguf": (model("qwen3moe", 8, 2, 1, 8, 12, 1, F32, experts=(3, 2)), {}),
        "tiny/nan_logits.gguf": (model("llama", 8, 2, 1, 16, 12, 1, F32, tokenizer=True),
                                 {"output.weight": float("nan")}),
        "tiny/long_token.gguf": (model("llama", 8, 2, 1, 16, 12, 1, F32, tokenizer=True,
                                       first_token="\u2581" + "x" * 298),
                                 {"output_norm.weight": 0.0}),
    }
    # Each file's random seed, fixed so that adding a file leaves the others' bytes as they are.
    rng_seed = {"fuzz_llm/gemma3_f32.gguf": 0, "fuzz_llm/llama_f32.gguf": 1,
                "fuzz_llm/llama_q8_0.gguf": 2, "fuzz_llm/qwen2_f16.gguf": 3,
                "tiny/long_token.gguf": 4, "tiny/nan_logits.gguf": 5,
                "fuzz_llm/mixtral_f16.gguf": 6, "fuzz_llm/qwen3moe_f32.gguf": 7}
    for name, ((meta, tensors), fills) in sorted(seeds.items()):
        path = os.path.join(top, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(gguf(meta, tensors, random.Random(rng_seed[name]), fills))


if __name__ == "__main__":
    main()
