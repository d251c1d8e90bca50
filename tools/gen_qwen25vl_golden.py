#!/usr/bin/env python3
"""Golden data for Qwen2.5-VL (projector "qwen2.5vl_merger": models/vision_qwen2vl.c with RMS
norms, gated MLPs and window attention; the language model is GGUF "qwen2vl", as the converter
writes it for Qwen2_5_VLForConditionalGeneration): a tiny seeded
Qwen2_5_VLForConditionalGeneration from transformers, converted by llama.cpp's
convert_hf_to_gguf.py (the mmproj file and the text model), and transformers' outputs.

  text    as tools/gen_qwen2vl_golden.py's: width 64, 2 layers, 2 heads, 1 KV head, M-RoPE
          sections 4/6/6, vocabulary 320 (a byte-level tokenizer with Qwen's specials).
  vision  depth 4, width 32, 2 heads (head dim 16), gated MLP 48 (SiLU), RMS norms, patch 14,
          merge 2, out width 64; window_size 56 px = 2 x 2 merged patches (the released models:
          112 px = 4 x 4), fullatt_block_indexes [1, 3]: layers 0 and 2 attend within windows,
          1 and 3 over the whole image (clip.vision.n_wa_pattern 2). With windows of 2 x 2
          merged patches the 40 x 30 test image (3 x 2 merged) has 2 windows, one partial.
          The converter of llama.cpp's release here does not write clip.vision.window_size
          (llama.cpp assumes 112); it is run with its set_gguf_parameters also writing it, as
          later converters do.

Output in tests/data/vision/: qwen25vl.mmproj.gguf, qwen25vl.text.gguf and
qwen25vl_golden.safetensors with what tests/serve/test_llm_images.cc reads for every family
(image, pixels, features, prompt_ids, logits: the Qwen2_5_VLProcessor's prompt with the test
image after "<|im_start|>user\\n", and the full model's logits over it) and, for the encoder test
(tests/models/test_vision_qwen2vl.cc), per image X in {a, b}:
  X_image  I32 [h, w, 3]           the RGB bytes
  X_grid   I32 [3]                 image_grid_thw: 1, gh, gw (patches)
  X_embd   F32 [gh*gw/4, 64]       the visual model's merger output, in the image's order
  a: the test image (40 x 30 -> 84 x 56, 3 x 2 merged: 2 windows, one partial);
  b: 150 x 90, which smart_resize takes to 140 x 84 (10 x 6 patches, 5 x 3 merged): 3 x 2
     windows, the right column and the bottom row of them partial (the grid is a multiple of
     the window neither across nor down).

    /work/venv-sd/bin/python tools/gen_qwen25vl_golden.py
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_qwen2vl_vision_golden as vis  # noqa: E402  (randomise)
import gen_vision_golden as gv  # noqa: E402  (tokenizer, text converter, test image, save_golden)

OUT = gv.OUT
VOCAB = 320
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 300, 301, 302, 303

# The mmproj converter, in-process, also writing the window (later converters do).
MMPROJ_CONVERT = """
import sys
sys.path.insert(0, {root!r})
import convert_hf_to_gguf as c
base = c.Qwen2VLVisionModel.set_gguf_parameters
def with_window(self):
    base(self)
    self.gguf_writer.add_uint32("clip.vision.window_size", self.hparams_vision["window_size"])
c.Qwen2VLVisionModel.set_gguf_parameters = with_window
sys.argv = ["convert_hf_to_gguf.py", {src!r}, "--mmproj", "--outtype", "f32", "--outfile", {out!r}]
c.main()
"""


def build():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         rms_norm_eps=1e-6,
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[4, 6, 6])),
        vision_config=dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1, 3], hidden_act="silu"),
        image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN, vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    vis.randomise(model, 5)
    with torch.no_grad():  # the converter's F16 patch kernels, as the file holds them
        w = model.model.visual.patch_embed.proj.weight
        w.copy_(w.half().float())
    return model


def image_b():
    h, w = 90, 150
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = np.where(((x // 11) + (y // 7)) % 2 == 0, 20, 235).astype(np.uint8)
    disc = (x - 110) ** 2 + (y - 55) ** 2 < 400
    img[disc] = [240, 80, 40]
    return img


def main():
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    model = build()
    proc = Qwen2VLImageProcessorPil()
    img = gv.test_image()
    tmp = tempfile.mkdtemp()
    try:
        d = os.path.join(tmp, "qwen25vl")
        model.save_pretrained(d)
        proc.save_pretrained(d)
        code = MMPROJ_CONVERT.format(root=gv.LLAMA_CPP, src=d, out=os.path.join(OUT, "qwen25vl.mmproj.gguf"))
        env = dict(os.environ, PYTHONPATH=os.path.join(gv.LLAMA_CPP, "gguf-py"))
        subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
        specials = {257: "<|endoftext|>", 258: "<|im_start|>", 259: "<|im_end|>", IMAGE_TOKEN: "<|image_pad|>",
                    VIDEO_TOKEN: "<|video_pad|>", VISION_START: "<|vision_start|>", VISION_END: "<|vision_end|>"}
        gv.write_tokenizer(d, VOCAB, specials, 258, 259)
        tok = PreTrainedTokenizerFast.from_pretrained(d)
        processor = Qwen2_5_VLProcessor(image_processor=proc, tokenizer=tok, video_processor=Qwen2VLVideoProcessor())
        enc = processor(images=[Image.fromarray(img)], return_tensors="pt",
                        text=["<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?"])
        ids = enc["input_ids"][0].tolist()
        grid = enc["image_grid_thw"]
        assert ids.count(IMAGE_TOKEN) == 6 and grid.tolist() == [[1, 4, 6]], (ids, grid.tolist())
        with torch.no_grad():
            logits = model(**enc).logits[0]
            feats = model.model.visual(enc["pixel_values"], grid_thw=grid).pooler_output
        extra = {"prompt_ids": torch.tensor(ids, dtype=torch.int32), "logits": logits.float()}
        for name, im in (("a", img), ("b", image_b())):
            e = proc(Image.fromarray(im), return_tensors="pt")
            with torch.no_grad():
                embd = model.model.visual(e["pixel_values"], grid_thw=e["image_grid_thw"]).pooler_output
            print(name, im.shape, "grid", e["image_grid_thw"].tolist(), "embd", tuple(embd.shape))
            extra[name + "_image"] = torch.from_numpy(im.astype(np.int32))
            extra[name + "_grid"] = e["image_grid_thw"][0].to(torch.int32)
            extra[name + "_embd"] = embd.float()
        cfg = json.load(open(os.path.join(d, "config.json")))
        for c in (cfg, cfg["text_config"]):
            c.update(bos_token_id=258, eos_token_id=259, pad_token_id=257)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        gv.convert_text(d, os.path.join(OUT, "qwen25vl.text.gguf"), gv.MROPE_CONVERT)
    finally:
        shutil.rmtree(tmp)
    gv.save_golden(os.path.join(OUT, "qwen25vl_golden.safetensors"), img, enc["pixel_values"], feats.reshape(6, 64),
                   {"family": "qwen25vl", "resample": "PIL bicubic, smart_resize to 84x56", "n_tokens": 6,
                    "n_embd": 64, "grid": "3x2 merged tokens (w x h)", "window": "56 px (2x2 merged)",
                    "fullatt_block_indexes": "[1, 3]", "image_start": ids.index(IMAGE_TOKEN),
                    "text_model": "qwen25vl.text.gguf (tokenizer: bytes and one merge)"}, extra)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
