#!/usr/bin/env python3
"""Golden data for the vision encoders (models/vision.c): tiny randomly initialised (seeded)
multimodal models of each family from transformers, their projector files converted by
llama.cpp's convert_hf_to_gguf.py --mmproj, and for a fixed test image the family's
preprocessed pixels and projected image features, both from transformers (independent of
vkinfer).

  gemma3    Gemma3ForConditionalGeneration: SigLIP 32 px, patch 4 (8x8 patches), width 64,
            2 layers, 2 heads; 16 tokens per image (2x2 average pooling), text width 96.
            Preprocessing: Gemma3ImageProcessorPil (PIL bilinear to 32x32, mean/std 0.5).
  idefics3  Idefics3ForConditionalGeneration: SigLIP 32 px, patch 4, width 64, 2 layers;
            pixel shuffle by 2 (16 tokens of 256), linear to text width 80. Preprocessing:
            Idefics3ImageProcessorPil with do_image_splitting=False and do_resize=False, i.e.
            one PIL Lanczos resize to the encoder's square (llama.cpp encodes one image for
            this family; the aspect-preserving resize to 4x the side before it is skipped).

The test image is tests/data/vision/test_image.png, 40x30 RGB (a pattern: gradients, a
checkerboard and a disc), so that one side is scaled down and the other up.

Output per family in tests/data/vision/: <family>.mmproj.gguf (F32 except where the converter
forces a type) and <family>_golden.safetensors with
  image     I32 [30, 40, 3]  the test image's RGB bytes (the test has no PNG decoder)
  pixels    F32 [3, S, S]    the processor's pixel_values (CHW)
  features  F32 [n_tok, n_embd]  get_image_features(pixels): what replaces the image tokens
  features_from_pixels: the same features; metadata holds the family's settings.

Run with /work/venv-sd (torch, transformers 5.x) and llama.cpp's converter:
  /work/venv-sd/bin/python tools/gen_vision_golden.py
"""
import json
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
OUT = os.path.join(ROOT, "tests", "data", "vision")
LLAMA_CPP = "/tmp/vkinfer-llamacpp/llama_cpp_python-0.3.16/vendor/llama.cpp"


def test_image():
    h, w = 30, 40
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = np.where(((x // 5) + (y // 5)) % 2 == 0, 40, 220).astype(np.uint8)
    disc = (x - 26) ** 2 + (y - 12) ** 2 < 49
    img[disc] = [250, 240, 30]
    return img


def vision_cfg():
    return dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                image_size=32, patch_size=4, num_channels=3, layer_norm_eps=1e-6,
                hidden_act="gelu_pytorch_tanh")


def randomise(model, seed):
    # Default initialisation leaves norms at 1/0 and some projections at zero: random values
    # everywhere make every tensor matter to the result.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def convert(model_dir, out_path):
    cmd = [sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), model_dir, "--mmproj",
           "--outtype", "f32", "--outfile", out_path]
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def save_golden(path, img, pixels, features, meta):
    save_file({"image": torch.from_numpy(img.astype(np.int32)).contiguous(),
               "pixels": pixels.float().contiguous(),
               "features": features.float().contiguous()}, path,
              metadata={k: str(v) for k, v in meta.items()})


def gemma3(img, tmp):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
    cfg = Gemma3Config(
        text_config=dict(vocab_size=320, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=48,
                         max_position_embeddings=256, sliding_window=64),
        vision_config=dict(model_type="siglip_vision_model", vision_use_head=False, **vision_cfg()),
        mm_tokens_per_image=16, boi_token_index=300, eoi_token_index=301, image_token_index=302)
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    randomise(model, 1)
    proc = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3, image_seq_length=16)
    pixels = proc(Image.fromarray(img), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        # The converter stores the projection in F16 whatever --outtype says: the reference
        # computes with the weight the file holds.
        w = model.model.multi_modal_projector.mm_input_projection_weight
        w.copy_(w.half().float())
        out = model.get_image_features(pixel_values=pixels)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    d = os.path.join(tmp, "gemma3")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    # transformers 5 writes the tower's tensors as vision_tower.*; the converter knows the
    # released checkpoints' vision_tower.vision_model.*
    from safetensors.torch import load_file
    st = os.path.join(d, "model.safetensors")
    tensors = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v
               for k, v in load_file(st).items()}
    save_file(tensors, st, metadata={"format": "pt"})
    with open(os.path.join(d, "preprocessor_config.json")) as f:
        pc = json.load(f)
    pc["image_seq_length"] = 16  # the converter derives the pooling from it
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(pc, f)
    convert(d, os.path.join(OUT, "gemma3.mmproj.gguf"))
    save_golden(os.path.join(OUT, "gemma3_golden.safetensors"), img, pixels[0], feats.reshape(16, 96),
                {"family": "gemma3", "resample": "PIL bilinear", "n_tokens": 16, "n_embd": 96})


def idefics3(img, tmp):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    cfg = Idefics3Config(
        text_config=dict(model_type="llama", vocab_size=320, hidden_size=80, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256),
        vision_config=dict(**vision_cfg()), scale_factor=2, image_token_id=310)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(cfg).eval()
    randomise(model, 2)
    proc = Idefics3ImageProcessorPil(do_image_splitting=False, do_resize=False,
                                     max_image_size={"longest_edge": 32}, image_mean=[0.5] * 3,
                                     image_std=[0.5] * 3)
    enc = proc(Image.fromarray(img), return_tensors="pt")
    pixels = enc["pixel_values"].reshape(-1, 3, 32, 32)
    assert pixels.shape[0] == 1, pixels.shape
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels[None])
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(feats, (list, tuple)):  # one entry per image
        feats = feats[0]
    d = os.path.join(tmp, "idefics3")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    convert(d, os.path.join(OUT, "idefics3.mmproj.gguf"))
    save_golden(os.path.join(OUT, "idefics3_golden.safetensors"), img, pixels[0], feats.reshape(16, 80),
                {"family": "idefics3", "resample": "PIL lanczos", "n_tokens": 16, "n_embd": 80})


def main():
    os.makedirs(OUT, exist_ok=True)
    img = test_image()
    Image.fromarray(img).save(os.path.join(OUT, "test_image.png"))
    families = sys.argv[1:] or ["gemma3", "idefics3"]
    tmp = tempfile.mkdtemp()
    try:
        for fam in families:
            globals()[fam](img, tmp)
            print("wrote", fam)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
