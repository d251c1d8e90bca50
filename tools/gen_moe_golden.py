#!/usr/bin/env python3
"""Golden data for vkinfer's mixture-of-experts language models (tests/models/test_llm_moe.cc).

For each architecture llama.cpp runs as MoE -- qwen2moe, qwen3moe, olmoe, granitemoe (also with
Granite-MoE-Shared's shared expert) and Mixtral (GGUF architecture "llama" with experts) -- a tiny seeded random model is built with transformers
(2 layers, 64 wide, 4 or 8 experts of which 2 are used), saved, converted by llama.cpp's
convert_hf_to_gguf.py to GGUF (f32, f16, and Mixtral also q8_0), and run by transformers on a
fixed token sequence: logits at every position and a greedy continuation. The f16 files are held
to the logits of the same model with its weights rounded to f16 the way the converter rounds
them (every tensor of 2+ dims except the routers), so they are compared as tightly as the f32
ones; q8_0 is compared to the f32 model's logits with a looser bound. Where llama.cpp's build is
beside it (/tmp/vkinfer-llamacpp/build/bin/llama-server), each f32 file's greedy continuation by
llama.cpp must equal transformers' (a check that the files are what llama.cpp reads them as).

    /work/venv-sd/bin/python tools/gen_moe_golden.py tests/data/moe

Weights are drawn with a larger spread than transformers' default (std 0.1, norms 1 +- 0.2) so
that logits and router choices are well separated: a router whose k-th and (k+1)-th logits
nearly tie would let rounding pick another expert.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import transformers as T

LLAMA_CPP = "/tmp/vkinfer-llamacpp/llama_cpp_python-0.3.16/vendor/llama.cpp"
LLAMA_SERVER = "/tmp/vkinfer-llamacpp/build/bin/llama-server"
VOCAB = 272
TOKENS = [1, 17, 42, 99, 150, 7, 200, 33, 5, 260, 71, 128]
GREEDY_STEPS = 8

COMMON = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
              pad_token_id=0)

MODELS = [
    ("qwen2moe", T.Qwen2MoeConfig, T.Qwen2MoeForCausalLM,
     dict(intermediate_size=32, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
          shared_expert_intermediate_size=32, norm_topk_prob=False, rms_norm_eps=1e-6)),
    # Qwen3-MoE checkpoints set norm_topk_prob (llama.cpp always normalises for qwen3moe).
    ("qwen3moe", T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
     dict(intermediate_size=32, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16,
          head_dim=16, norm_topk_prob=True, rms_norm_eps=1e-6)),
    # llama.cpp sizes OLMoE's k norm by n_embd: no grouped-query attention.
    ("olmoe", T.OlmoeConfig, T.OlmoeForCausalLM,
     dict(intermediate_size=32, num_experts=8, num_experts_per_tok=2, num_key_value_heads=4,
          norm_topk_prob=False)),
    ("granitemoe", T.GraniteMoeConfig, T.GraniteMoeForCausalLM,
     dict(intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
          embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.2,
          logits_scaling=6.0)),
    # Granite-MoE-Shared: GGUF "granitemoe" with an ungated shared expert (f32 only).
    ("granitemoeshared", T.GraniteMoeSharedConfig, T.GraniteMoeSharedForCausalLM,
     dict(intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=48,
          embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.2,
          logits_scaling=6.0)),
    ("mixtral", T.MixtralConfig, T.MixtralForCausalLM,
     dict(intermediate_size=32, num_local_experts=4, num_experts_per_tok=2)),
]


def build(name, cfg_cls, model_cls, extra, seed):
    torch.manual_seed(seed)
    cfg = cfg_cls(**{**COMMON, **extra})
    model = model_cls(cfg).float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or "layernorm" in pname:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def is_router(pname):
    # convert_hf_to_gguf keeps the routers f32 (FFN_GATE_INP); Qwen2-MoE's shared-expert gate
    # [1, n_embd] it stores f16 like any matrix.
    return pname.endswith("mlp.gate.weight") or pname.endswith("router.weight")


def rounded_f16(model):
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2 and not is_router(pname):
                p.copy_(p.half().float())
    return model


def run(model):
    with torch.no_grad():
        ids = torch.tensor([TOKENS])
        logits = model(ids).logits[0].float()
        seq = list(TOKENS)
        greedy = []
        for _ in range(GREEDY_STEPS):
            nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
            greedy.append(nxt)
            seq.append(nxt)
    return [[float("%.7g" % v) for v in row] for row in logits.tolist()], greedy


def tiny_tokenizer(path):
    """A byte-level BPE tokenizer of VOCAB tokens (the converter needs one; vkinfer's test reads ids)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog " * 20,
                             "mixture of experts routes each token to a few experts " * 20], trainer)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                     pad_token="<pad>")
    fast.save_pretrained(path)


def rename_router(model_dir):
    """This converter maps Mixtral's block_sparse_moe.gate to ffn_gate (SmallThinker's name wins
    over Mixtral's in its table), where llama.cpp reads ffn_gate_inp: name it as Qwen2-MoE does,
    which maps to ffn_gate_inp alone."""
    from safetensors.torch import load_file, save_file
    path = os.path.join(model_dir, "model.safetensors")
    tensors = load_file(path)
    renamed = {k.replace("block_sparse_moe.gate.weight", "mlp.gate.weight"): v for k, v in tensors.items()}
    save_file(renamed, path, metadata={"format": "pt"})


def legacy_config(cfg):
    """transformers 5 names some keys anew; the converter reads the old names."""
    if "rope_theta" not in cfg and "rope_theta" in (cfg.get("rope_parameters") or {}):
        cfg["rope_theta"] = cfg["rope_parameters"]["rope_theta"]
    if cfg.get("model_type") == "qwen3_moe" and "num_experts" not in cfg:
        cfg["num_experts"] = cfg["num_local_experts"]
    return cfg


def convert(model_dir, out_file, outtype):
    sys.path.insert(0, os.path.join(LLAMA_CPP, "gguf-py"))
    sys.path.insert(0, LLAMA_CPP)
    import convert_hf_to_gguf as conv
    # Our tiny tokenizer is none the converter knows by its hash: call it the default pre-tokenizer.
    conv.TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
    # Nor is there a sentencepiece model: the converters that try one first go on to the BPE one.
    def no_sentencepiece(self):
        raise FileNotFoundError("no tokenizer.model")
    conv.TextModel._set_vocab_sentencepiece = no_sentencepiece
    if not getattr(conv.ModelBase, "_vki_patched", False):
        load = conv.ModelBase.load_hparams
        conv.ModelBase.load_hparams = staticmethod(lambda d, mistral: legacy_config(load(d, mistral)))
        conv.ModelBase._vki_patched = True
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", out_file, "--outtype", outtype]
    try:
        conv.main()
    finally:
        sys.argv = argv


def llama_cpp_greedy(gguf_path, port=18431):
    """llama.cpp's greedy continuation of TOKENS for a file (its llama-server, CPU), or None
    without a build: a third implementation that must read the file as transformers' model."""
    import subprocess
    import time
    import urllib.request
    server = LLAMA_SERVER
    if not os.path.exists(server):
        return None
    proc = subprocess.Popen([server, "-m", gguf_path, "--port", str(port), "-t", "2", "-c", "64",
                             "-ngl", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port
        for _ in range(120):
            try:
                if b"ok" in urllib.request.urlopen(url + "/health").read():
                    break
            except OSError:
                time.sleep(0.5)
        body = json.dumps({"prompt": TOKENS, "n_predict": GREEDY_STEPS, "temperature": 0,
                           "top_k": 1, "return_tokens": True, "cache_prompt": False}).encode()
        req = urllib.request.Request(url + "/completion", body, {"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req).read())["tokens"]
    finally:
        proc.terminate()
        proc.wait()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/moe"
    os.makedirs(out_dir, exist_ok=True)
    golden = {"tokens": TOKENS, "n_vocab": VOCAB, "models": []}
    tmp = tempfile.mkdtemp(prefix="moe_golden_")
    try:
        for i, (name, cfg_cls, model_cls, extra) in enumerate(MODELS):
            model = build(name, cfg_cls, model_cls, extra, 1234 + i)
            model_dir = os.path.join(tmp, name)
            model.save_pretrained(model_dir, safe_serialization=True)
            if name == "mixtral":
                rename_router(model_dir)
            tiny_tokenizer(model_dir)
            variants = [("f32", model)]
            if name != "granitemoeshared":
                variants.append(("f16", rounded_f16(build(name, cfg_cls, model_cls, extra, 1234 + i))))
            if name == "mixtral":
                variants.append(("q8_0", None))  # against the f32 logits
            f32_logits = f32_greedy = None
            for outtype, ref in variants:
                file = "%s-%s.gguf" % (name, outtype)
                convert(model_dir, os.path.join(out_dir, file), outtype)
                if ref is not None:
                    logits, greedy = run(ref)
                else:
                    logits, greedy = f32_logits, f32_greedy
                if outtype == "f32":
                    f32_logits, f32_greedy = logits, greedy
                    # llama.cpp stops at the end-of-text token (2): compare up to it.
                    lc = llama_cpp_greedy(os.path.join(out_dir, file))
                    if lc is not None:
                        want = greedy[:greedy.index(2) + 1] if 2 in greedy else greedy
                        assert lc == want, "%s: llama.cpp's greedy %s, transformers' %s" % (file, lc, want)
                        print("%s: llama.cpp's greedy tokens are transformers'" % file)
                golden["models"].append({"name": "%s_%s" % (name, outtype), "file": file,
                                         "exact_reference": ref is not None,
                                         "logits": logits, "greedy": greedy})
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
