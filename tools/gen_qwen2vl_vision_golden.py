#!/usr/bin/env python3
"""Golden data for Qwen2-VL's vision encoder (models/vision_qwen2vl.c): a tiny randomly
initialised (seeded) Qwen2VLForConditionalGeneration from transformers, its projector file
converted by llama.cpp's convert_hf_to_gguf.py --mmproj, and for two test images the
processor's pixel_values and the image embeddings after the merger, both from transformers
(independent of vkinfer).

  vision  depth 3, embed_dim 32, 2 heads (head dim 16), MLP 128 (mlp_ratio 4, quick GELU),
          patch 14, temporal patch 2, spatial merge 2; merger (ln_q, 128 -> 128 GELU -> 64) to
          the language model's width 64. Depth 3, not 2: the converter maps the merger's
          visual.merger.mlp.{bid} through its per-block name table, so mm.2 needs a block 2.
  images  "a": 56 wide x 84 high, a size smart_resize keeps (2 x 3 merged tokens: rows and
          columns differ, so a swap of the two rotary streams shows);
          "b": tests/data/vision/test_image.png, 40 x 30, which smart_resize grows to 84 x 56
          (min_pixels 56*56): PIL bicubic upscaling in 8 bits.
          Preprocessing: Qwen2VLImageProcessorPil with its defaults (OpenAI CLIP mean/std,
          min_pixels 56*56, max_pixels 28*28*1280).

Output in tests/data/qwen2vl/: vision.mmproj.gguf (F32, the patch kernels F16 as the converter
forces them) and vision_golden.safetensors with, per image X in {a, b}:
  X_image   I32 [h, w, 3]            the RGB bytes
  X_pixels  F32 [gh*gw, 3*2*14*14]   the processor's pixel_values (patch rows, merge order)
  X_grid    I32 [3]                  image_grid_thw: 1, gh, gw (patches)
  X_embd    F32 [gh*gw/4, 64]        the visual model's merger output (what replaces the
                                     image pad tokens)
The test also checks transformers' rounding of the F16 patch kernels: the reference computes
with the kernels the file holds (rounded to F16 here before the forward pass).

Run with /work/venv-sd (torch, transformers 5.x) and llama.cpp's converter:
  /work/venv-sd/bin/python tools/gen_qwen2vl_vision_golden.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "qwen2vl")
LLAMA_CPP = "/tmp/vkinfer-llamacpp/llama_cpp_python-0.3.16/vendor/llama.cpp"


def image_a():
    h, w = 84, 56
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = np.where(((x // 7) + (y // 9)) % 2 == 0, 30, 230).astype(np.uint8)
    disc = (x - 36) ** 2 + (y - 20) ** 2 < 144
    img[disc] = [250, 60, 90]
    return img


def image_b():
    return np.asarray(Image.open(os.path.join(ROOT, "tests", "data", "vision", "test_image.png")).convert("RGB"))


def randomise(model, seed):
    # Default initialisation leaves norms at 1/0 and some biases at zero: random values
    # everywhere make every tensor matter to the result.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("norm" in name or "ln_q" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def convert(model_dir, out_path):
    cmd = [sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), model_dir, "--mmproj",
           "--outtype", "f32", "--outfile", out_path]
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def main():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    os.makedirs(OUT, exist_ok=True)
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         rms_norm_eps=1e-6,
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[4, 6, 6])),
        vision_config=dict(depth=3, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu"),
        image_token_id=300, video_token_id=301, vision_start_token_id=302, vision_end_token_id=303)
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    randomise(model, 5)
    visual = model.model.visual
    with torch.no_grad():  # the converter's F16 patch kernels, as the file holds them
        w = visual.patch_embed.proj.weight
        w.copy_(w.half().float())
    proc = Qwen2VLImageProcessorPil()
    tensors = {}
    for name, img in (("a", image_a()), ("b", image_b())):
        enc = proc(Image.fromarray(img), return_tensors="pt")
        pixels, grid = enc["pixel_values"], enc["image_grid_thw"]
        with torch.no_grad():
            out = visual(pixels, grid_thw=grid)
        embd = out.pooler_output if hasattr(out, "pooler_output") else out
        print(name, img.shape, "grid", grid.tolist(), "pixels", tuple(pixels.shape), "embd", tuple(embd.shape))
        tensors[name + "_image"] = torch.from_numpy(img.astype(np.int32)).contiguous()
        tensors[name + "_pixels"] = pixels.float().contiguous()
        tensors[name + "_grid"] = grid[0].to(torch.int32).contiguous()
        tensors[name + "_embd"] = embd.float().contiguous()
    tmp = tempfile.mkdtemp()
    try:
        d = os.path.join(tmp, "qwen2vl")
        model.save_pretrained(d)
        proc.save_pretrained(d)
        convert(d, os.path.join(OUT, "vision.mmproj.gguf"))
    finally:
        shutil.rmtree(tmp)
    save_file(tensors, os.path.join(OUT, "vision_golden.safetensors"),
              metadata={"family": "qwen2vl", "processor": "Qwen2VLImageProcessorPil (defaults)",
                        "n_embd": "64", "seed": "5"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
