#!/usr/bin/env python3
"""Golden data for vkinfer's Qwen2-VL language model, GGUF architecture "qwen2vl"
(tests/models/test_llm_qwen2vl.cc): Qwen2 with multi-section rotary positions (M-RoPE).

The model is tools/gen_qwen2vl_vision_golden.py's tiny seeded Qwen2VLForConditionalGeneration,
built the same way (same config, torch seed 0, the same randomisation with seed 5), so that its
language model here and its vision file there are one model: text hidden 64, 2 layers, 2 heads
(head dim 32) and 1 KV head, mrope_section [4, 6, 6]. llama.cpp's convert_hf_to_gguf.py writes
the language model (f32 and f16; f16 is held to the same model with its weights rounded to f16
as the converter rounds them: every tensor of 2+ dims).

Goldens (llm_golden.json), from transformers:
  text   logits at every position of a 12-token prompt (all rope streams = the position) and 8
         greedy tokens; where llama.cpp's build is beside it, llama-server's greedy tokens on the
         f32 file must equal them.
  image  the 56 x 84 test image "a" of the vision golden (smart_resize keeps it: 4 x 6 patches,
         2 x 3 merged tokens) placed after 3 text tokens: vision_start, 6 image tokens,
         vision_end, 3 more text tokens. Logits at every position (f32 model), the image
         embeddings the visual model gives (what the test feeds in place of the image tokens, so
         the language model is checked apart from vkinfer's encoder), the grid and the rope
         positions transformers' get_rope_index gives (3 streams per token).

    /work/venv-sd/bin/python tools/gen_qwen2vl_golden.py
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_moe_golden as moe  # noqa: E402  (its converter glue and llama.cpp check)
import gen_qwen2vl_vision_golden as vis  # noqa: E402  (the image)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "qwen2vl")
VOCAB = 320
IMAGE_TOKEN, VISION_START, VISION_END = 300, 302, 303
TOKENS = [1, 17, 42, 99, 150, 7, 200, 33, 5, 260, 71, 128]
GREEDY_STEPS = 8
IMAGE_BEFORE = [1, 17, 42]
IMAGE_AFTER = [99, 150, 7]


def build(f16):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         rms_norm_eps=1e-6,
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[4, 6, 6])),
        vision_config=dict(depth=3, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu"),
        image_token_id=IMAGE_TOKEN, video_token_id=301, vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END)
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    vis.randomise(model, 5)
    with torch.no_grad():
        w = model.model.visual.patch_embed.proj.weight
        w.copy_(w.half().float())
        if f16:
            for name, p in model.named_parameters():
                if p.dim() >= 2 and not name.startswith("model.visual"):
                    p.copy_(p.half().float())
    return model


def legacy_config(cfg):
    """This converter reads the M-RoPE sections from rope_scaling (transformers 5 keeps them in
    text_config.rope_parameters)."""
    cfg = moe_legacy(cfg)
    for c in (cfg, cfg.get("text_config") or {}):
        rp = c.get("rope_parameters") or (cfg.get("text_config") or {}).get("rope_parameters") or {}
        if "mrope_section" in rp:
            c["rope_scaling"] = {"type": "mrope", "mrope_section": list(rp["mrope_section"])}
            c["rope_theta"] = rp["rope_theta"]
    return cfg


moe_legacy = moe.legacy_config
moe.legacy_config = legacy_config  # convert()'s hook looks the name up at call time
moe.VOCAB = VOCAB
moe.TOKENS = TOKENS
moe.GREEDY_STEPS = GREEDY_STEPS


def logits_of(model, ids, **kw):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), **kw).logits[0].float()
    return [[float("%.7g" % v) for v in row] for row in out.tolist()]


def greedy_of(model):
    seq = list(TOKENS)
    with torch.no_grad():
        for _ in range(GREEDY_STEPS):
            seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(TOKENS):]


def image_case(model):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    enc = Qwen2VLImageProcessorPil()(Image.fromarray(vis.image_a()), return_tensors="pt")
    pixels, grid = enc["pixel_values"], enc["image_grid_thw"]
    _, gh, gw = (int(v) for v in grid[0])
    merged_h, merged_w = gh // 2, gw // 2
    ids = IMAGE_BEFORE + [VISION_START] + [IMAGE_TOKEN] * (merged_h * merged_w) + [VISION_END] + IMAGE_AFTER
    types = torch.tensor([[1 if t == IMAGE_TOKEN else 0 for t in ids]], dtype=torch.int32)
    with torch.no_grad():
        out = model.model.visual(pixels, grid_thw=grid)
        embd = out.pooler_output if hasattr(out, "pooler_output") else out
        pos, _ = model.model.get_rope_index(torch.tensor([ids]), types, image_grid_thw=grid)
    logits = logits_of(model, ids, pixel_values=pixels, image_grid_thw=grid, mm_token_type_ids=types)
    return {"tokens": ids, "image_token": IMAGE_TOKEN, "image_at": len(IMAGE_BEFORE) + 1,
            "grid_w": merged_w, "grid_h": merged_h,  # merged tokens: columns, rows
            "positions": pos[:, 0, :].tolist(),     # [3][n]: t, h, w
            "embd": [[float("%.8g" % v) for v in row] for row in embd.float().tolist()],
            "logits": logits}


def main():
    os.makedirs(OUT, exist_ok=True)
    golden = {"tokens": TOKENS, "n_vocab": VOCAB, "models": []}
    tmp = tempfile.mkdtemp(prefix="qwen2vl_golden_")
    try:
        model = build(False)
        model_dir = os.path.join(tmp, "qwen2vl")
        model.save_pretrained(model_dir)
        moe.tiny_tokenizer(model_dir)
        for outtype in ("f32", "f16"):
            ref = model if outtype == "f32" else build(True)
            file = "qwen2vl-%s.gguf" % outtype
            moe.convert(model_dir, os.path.join(OUT, file), outtype)
            entry = {"name": "qwen2vl_" + outtype, "file": file, "logits": logits_of(ref, TOKENS),
                     "greedy": greedy_of(ref)}
            if outtype == "f32":
                lc = moe.llama_cpp_greedy(os.path.join(OUT, file))
                if lc is not None:
                    want = entry["greedy"][:entry["greedy"].index(2) + 1] if 2 in entry["greedy"] else entry["greedy"]
                    assert lc == want, "llama.cpp's greedy %s, transformers' %s" % (lc, want)
                    print("%s: llama.cpp's greedy tokens are transformers' %s" % (file, lc))
                    entry["llama_cpp_greedy"] = lc
                entry["image"] = image_case(ref)
            golden["models"].append(entry)
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(OUT, "llm_golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
