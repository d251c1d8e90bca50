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
  llava     LlavaForConditionalGeneration: CLIP ViT, 2-layer MLP projector (see llava()).
  llava16   LlavaNextForConditionalGeneration: llava()'s with anyres tiles, spatial unpad and
            image_newline (see llava16()). Not in the default run.
  qwen2vl   Qwen2VLForConditionalGeneration: tools/gen_qwen2vl_golden.py's model (see qwen2vl());
            the prompt and pixels from Qwen2VLProcessor (smart_resize: 84x56, 6 merged tokens),
            logits with transformers' M-RoPE positions.

The test image is tests/data/vision/test_image.png, 40x30 RGB (a pattern: gradients, a
checkerboard and a disc), so that one side is scaled down and the other up.

Output per family in tests/data/vision/: <family>.mmproj.gguf (F32 except where the converter
forces a type), <family>.text.gguf (the language model, F32, converted by convert_hf_to_gguf.py
with a made-up byte-level tokenizer: see TEXT_CONVERT) and <family>_golden.safetensors with
  image       I32 [30, 40, 3]  the test image's RGB bytes (the test has no PNG decoder)
  pixels      F32 [3, S, S]    the processor's pixel_values (CHW)
  features    F32 [n_tok, n_embd]  get_image_features(pixels): what replaces the image tokens
  prompt_ids  I32 [T]          a prompt with the family's image tokens in place (metadata
                               image_start: the first image token)
  logits      F32 [T, n_vocab] the full model's forward pass over that prompt and image
and metadata holding the family's settings. qwen2vl also has generate_prompt_ids and
generate_greedy (I32): transformers' greedy tokens after a prompt that ends with the image, as
`vkinfer generate --image` lays it out. Its pixels are the processor's patch rows
[n_patch, 3*2*14*14], not an image.

Run with /work/venv-sd (torch, transformers 5.x) and llama.cpp's converter:
  /work/venv-sd/bin/python tools/gen_vision_golden.py [family ...]   (default: all)
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
from safetensors.torch import load_file, save_file

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


# The text model's converter run in-process with two changes: a tokenizer's pre-tokenizer is
# recognised by a hash of its output, unknown for the made-up tokenizer below ("gpt-2" then),
# and the vocabulary is read as that BPE tokenizer, never as a sentencepiece model (Gemma 3's, whose
# size would trim the embedding rows: all of them are kept).
TEXT_CONVERT = """
import sys
sys.path.insert(0, {root!r})
import convert_hf_to_gguf as c
c.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
c.Gemma3Model.set_vocab = lambda self: self._set_vocab_gpt2()
c.LlamaModel.set_vocab = lambda self: self._set_vocab_gpt2()
c.Gemma3Model._create_vocab_sentencepiece = lambda self: ([None] * self.hparams["vocab_size"],)
{extra}
sys.argv = ["convert_hf_to_gguf.py", {src!r}, "--outtype", "f32", "--outfile", {out!r}]
c.main()
"""

# Qwen2-VL's text model: this converter reads the M-RoPE sections from rope_scaling, where
# transformers 5's config (which the converter loads through AutoConfig) has rope_parameters;
# and its vocabulary as the BPE tokenizer (it tries a sentencepiece model first).
MROPE_CONVERT = """
c.Qwen2VLModel.set_vocab = lambda self: self._set_vocab_gpt2()
load = c.ModelBase.load_hparams
def load_mrope(d, mistral):
    cfg = load(d, mistral)
    for h in (cfg, cfg.get("text_config") or {}):
        rp = h.get("rope_parameters") or (cfg.get("text_config") or {}).get("rope_parameters") or {}
        if "mrope_section" in rp:
            h["rope_scaling"] = {"type": "mrope", "mrope_section": list(rp["mrope_section"])}
            h["rope_theta"] = rp["rope_theta"]
    return cfg
c.ModelBase.load_hparams = staticmethod(load_mrope)
"""


def convert_text(model_dir, out_path, extra=""):
    code = TEXT_CONVERT.format(root=LLAMA_CPP, src=model_dir, out=out_path, extra=extra)
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)


def write_tokenizer(model_dir, vocab_size, specials, bos, eos):
    """A byte-level BPE tokenizer: one token per byte (ids 0..255), one merge (" t", id 256:
    GGUF readers want a merge list), then <unused_i> fillers and the family's special tokens
    at their ids (specials: {id: text}, ids from 257)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["\u0120t"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("\u0120", "t")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    added = [specials.get(i, f"<unused_{i}>") for i in range(len(vocab), vocab_size)]
    tok.add_special_tokens(added)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[bos], eos_token=specials[eos])
    fast.save_pretrained(model_dir)


def save_golden(path, img, pixels, features, meta, extra=None):
    tensors = {"image": torch.from_numpy(img.astype(np.int32)).contiguous(),
               "pixels": pixels.float().contiguous(),
               "features": features.float().contiguous()}
    for k, v in (extra or {}).items():
        tensors[k] = v.contiguous()
    save_file(tensors, path, metadata={k: str(v) for k, v in meta.items()})


def gemma3(img, tmp):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
    cfg = Gemma3Config(
        text_config=dict(vocab_size=320, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=48,
                         max_position_embeddings=256, sliding_window=64, query_pre_attn_scalar=48),
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
    # The language model with the image in place: <bos> text <start_of_image> 16 x
    # <image_soft_token> <end_of_image> text; token_type_ids mark the image so that its tokens
    # see each other both ways (as llama.cpp's non-causal image batch).
    specials = {257: "<pad>", 258: "<eos>", 259: "<bos>", 300: "<start_of_image>",
                301: "<end_of_image>", 302: "<image_soft_token>"}
    ids = [259, 72, 105, 10, 300] + [302] * 16 + [301, 10, 87, 104]
    tt = [1 if i == 302 else 0 for i in ids]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixels,
                       token_type_ids=torch.tensor([tt])).logits[0]
    model.config.text_config.bos_token_id, model.config.text_config.eos_token_id = 259, 258
    model.config.text_config.pad_token_id = 257
    model.save_pretrained(d)  # again, with the token ids above
    st = os.path.join(d, "model.safetensors")
    save_file({k.replace("vision_tower.", "vision_tower.vision_model.", 1): v
               for k, v in load_file(st).items()}, st, metadata={"format": "pt"})
    write_tokenizer(d, 320, specials, 259, 258)
    convert_text(d, os.path.join(OUT, "gemma3.text.gguf"))
    save_golden(os.path.join(OUT, "gemma3_golden.safetensors"), img, pixels[0], feats.reshape(16, 96),
                {"family": "gemma3", "resample": "PIL bilinear", "n_tokens": 16, "n_embd": 96,
                 "image_start": 5, "text_model": "gemma3.text.gguf (tokenizer: bytes and one merge)"},
                {"prompt_ids": torch.tensor(ids, dtype=torch.int32), "logits": logits.float()})


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
    # The language model with the image in place, as SmolVLM's processor lays out one global
    # image: <fake_token_around_image> <global-img> 16 x <image> <fake_token_around_image>,
    # causal attention throughout.
    specials = {257: "<|endoftext|>", 258: "<|im_start|>", 259: "<|im_end|>", 310: "<image>",
                311: "<fake_token_around_image>", 312: "<global-img>"}
    ids = [258, 85, 115, 101, 114, 58, 311, 312] + [310] * 16 + [311, 10, 65]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixels[None]).logits[0]
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["text_config"]["architectures"] = ["LlamaForCausalLM"]  # the converter's text model
    for c in (cfg, cfg["text_config"]):
        c.update(bos_token_id=258, eos_token_id=259, pad_token_id=257)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    write_tokenizer(d, 320, specials, 258, 259)
    convert_text(d, os.path.join(OUT, "idefics3.text.gguf"))
    save_golden(os.path.join(OUT, "idefics3_golden.safetensors"), img, pixels[0], feats.reshape(16, 80),
                {"family": "idefics3", "resample": "PIL lanczos", "n_tokens": 16, "n_embd": 80,
                 "image_start": 8, "text_model": "idefics3.text.gguf (tokenizer: bytes and one merge)"},
                {"prompt_ids": torch.tensor(ids, dtype=torch.int32), "logits": logits.float()})


# The legacy script reads the tower as transformers 4 built it (model.vision_model.*, tensor
# names under vision_model.); transformers 5's CLIPVisionModel is that module itself, so it is
# handed over wrapped under that name.
LEGACY_CONVERT = """
import runpy, sys, torch
from transformers import CLIPVisionModel
class Wrapped(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.vision_model = m
load = CLIPVisionModel.from_pretrained
CLIPVisionModel.from_pretrained = classmethod(lambda cls, d, *a, **k: Wrapped(load(d, *a, **k)))
sys.argv = [{script!r}] + {args!r}
runpy.run_path({script!r}, run_name="__main__")
"""

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def llava(img, tmp):
    """LLaVA 1.5's layout: a CLIP ViT (class token, pre-layernorm, quick GELU), features of the
    penultimate layer without the class token, a 2-layer MLP with GELU. llama.cpp converts it
    with its legacy script (tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py: the
    vision tower as a CLIPVisionModel and the projector's tensors), which drops the last layer,
    stores the patch kernel and the projector in F16 whatever it is asked, and names the MLP's
    fc1 ffn_down and fc2 ffn_up."""
    from transformers import CLIPVisionModel, LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    vc = dict(vision_cfg(), num_hidden_layers=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    cfg = LlavaConfig(
        text_config=dict(model_type="llama", vocab_size=320, hidden_size=72, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=256),
        vision_config=dict(model_type="clip_vision_model", **vc), image_token_index=310,
        vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg).eval()
    randomise(model, 3)
    tower = model.model.vision_tower
    proj = model.model.multi_modal_projector
    with torch.no_grad():  # the converter's F16 tensors, as the file holds them
        for p in [tower.embeddings.patch_embedding.weight, proj.linear_1.weight,
                  proj.linear_2.weight]:
            p.copy_(p.half().float())
    proc = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                 image_mean=CLIP_MEAN, image_std=CLIP_STD)
    pixels = proc(Image.fromarray(img), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels, vision_feature_layer=-2,
                                       vision_feature_select_strategy="default")
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(feats, (list, tuple)):
        feats = feats[0]
    d = os.path.join(tmp, "llava_vision")
    vision = CLIPVisionModel(tower.config)
    vision.load_state_dict(tower.state_dict())
    vision.save_pretrained(d)
    projector = os.path.join(tmp, "llava.projector")
    torch.save({"multi_modal_projector." + k: v for k, v in proj.state_dict().items()}, projector)
    outdir = os.path.join(tmp, "llava_out")
    script = os.path.join(LLAMA_CPP, "tools", "mtmd", "legacy-models", "convert_image_encoder_to_gguf.py")
    args = ["-m", d, "--clip-model-is-vision", "--llava-projector", projector, "--projector-type", "mlp",
            "--use-f32", "--output-dir", outdir, "--image-mean", *map(str, CLIP_MEAN),
            "--image-std", *map(str, CLIP_STD)]
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, "-c", LEGACY_CONVERT.format(script=script, args=args)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    (produced,) = [f for f in os.listdir(outdir) if f.endswith(".gguf")]
    shutil.copy(os.path.join(outdir, produced), os.path.join(OUT, "llava.mmproj.gguf"))
    # The language model with the image in place, as LlavaProcessor expands <image>: one token
    # per patch, causal attention throughout.
    specials = {257: "<pad>", 258: "<s>", 259: "</s>", 310: "<image>"}
    ids = [258, 85, 83, 69, 82, 58, 32] + [310] * 64 + [10, 65, 66]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixels).logits[0]
    d = os.path.join(tmp, "llava")
    model.config.text_config.bos_token_id, model.config.text_config.eos_token_id = 258, 259
    model.config.text_config.pad_token_id = 257
    model.save_pretrained(d)
    write_tokenizer(d, 320, specials, 258, 259)
    convert_text(d, os.path.join(OUT, "llava.text.gguf"))
    save_golden(os.path.join(OUT, "llava_golden.safetensors"), img, pixels[0], feats.reshape(64, 72),
                {"family": "llava", "resample": "PIL bicubic, shortest edge, center crop", "n_tokens": 64,
                 "n_embd": 72, "image_start": 7, "text_model": "llava.text.gguf (tokenizer: bytes and one merge)"},
                {"prompt_ids": torch.tensor(ids, dtype=torch.int32), "logits": logits.float()})


def llava16(img, tmp):
    """LLaVA 1.6 (LLaVA-NeXT): llava()'s CLIP tower and MLP with anyres tiling. Pinpoints (height,
    width) [[32, 64], [64, 32], [64, 64]] on the 32 px encoder: the 40x30 test image picks 32x64
    (one row of two tiles), is resized to 43x32 and padded with black to 64x32; the tiles and the
    overview (the image squashed to 32x32) go through the tower. get_image_features +
    pack_image_features give the overview's 64 features, then the tiles' 8x16 feature grid
    unpadded to the image's aspect (columns 3..12: 8x10) with image_newline after each row: 64 +
    80 + 8 = 152. The mmproj is made as llama.cpp's legacy LLaVA 1.6 route makes it: the vision
    tower saved as a CLIPVisionModel whose config.json carries image_grid_pinpoints,
    mm_patch_merge_type "spatial_unpad" and image_aspect_ratio "anyres", the projector and
    image_newline in a torch file (as llava_surgery_v2.py extracts them), both through
    convert_image_encoder_to_gguf.py. (llama.cpp's mtmd itself runs these files without the
    unpad and the newline: overview and tiles, 64 tokens each; transformers is the reference.)
    Goldens: pixels [3, 3, 32, 32] (overview, tile 0, tile 1), features [152, 72],
    features_flat [192, 72] (overview then tiles, unarranged) for the negative control, and
    llava()'s prompt with 152 image tokens and its logits."""
    from transformers import CLIPVisionModel, LlavaNextConfig, LlavaNextForConditionalGeneration
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    vc = dict(vision_cfg(), num_hidden_layers=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    cfg = LlavaNextConfig(
        text_config=dict(model_type="llama", vocab_size=320, hidden_size=72, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=512),
        vision_config=dict(model_type="clip_vision_model", **vc), image_token_index=310,
        vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
        image_grid_pinpoints=pinpoints)
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(cfg).eval()
    randomise(model, 4)
    tower = model.model.vision_tower
    proj = model.model.multi_modal_projector
    with torch.no_grad():  # the converter's F16 tensors, as the file holds them
        for p in [tower.embeddings.patch_embedding.weight, proj.linear_1.weight,
                  proj.linear_2.weight]:
            p.copy_(p.half().float())
    proc = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                      image_mean=CLIP_MEAN, image_std=CLIP_STD, image_grid_pinpoints=pinpoints)
    enc = proc(Image.fromarray(img), return_tensors="pt")
    pixels, sizes = enc["pixel_values"], enc["image_sizes"]
    assert pixels.shape == (1, 3, 3, 32, 32), pixels.shape
    with torch.no_grad():
        out = model.model.get_image_features(pixel_values=pixels, image_sizes=sizes, vision_feature_layer=-2,
                                             vision_feature_select_strategy="default")
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        feats = feats[0] if isinstance(feats, (list, tuple)) else feats
        # The tiles' features before pack_image_features arranges them (overview, tile 0, 1).
        hidden = tower(pixels[0], output_hidden_states=True, return_dict=True).hidden_states[-2][:, 1:]
        flat = proj(hidden)
    assert feats.shape == (152, 72), feats.shape
    d = os.path.join(tmp, "llava16_vision")
    vision = CLIPVisionModel(tower.config)
    vision.load_state_dict(tower.state_dict())
    vision.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        vcfg = json.load(f)
    vcfg.update(image_grid_pinpoints=pinpoints, mm_patch_merge_type="spatial_unpad", image_aspect_ratio="anyres")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(vcfg, f)
    projector = os.path.join(tmp, "llava16.projector")
    tensors = {"multi_modal_projector." + k: v for k, v in proj.state_dict().items()}
    tensors["image_newline"] = model.model.image_newline.detach().clone()
    torch.save(tensors, projector)
    outdir = os.path.join(tmp, "llava16_out")
    script = os.path.join(LLAMA_CPP, "tools", "mtmd", "legacy-models", "convert_image_encoder_to_gguf.py")
    args = ["-m", d, "--clip-model-is-vision", "--llava-projector", projector, "--projector-type", "mlp",
            "--use-f32", "--output-dir", outdir, "--image-mean", *map(str, CLIP_MEAN),
            "--image-std", *map(str, CLIP_STD)]
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, "-c", LEGACY_CONVERT.format(script=script, args=args)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    (produced,) = [f for f in os.listdir(outdir) if f.endswith(".gguf")]
    shutil.copy(os.path.join(outdir, produced), os.path.join(OUT, "llava16.mmproj.gguf"))
    # The language model with the image in place, as LlavaNextProcessor expands <image>: 152
    # tokens (its _get_number_of_features), causal attention throughout.
    specials = {257: "<pad>", 258: "<s>", 259: "</s>", 310: "<image>"}
    ids = [258, 85, 83, 69, 82, 58, 32] + [310] * 152 + [10, 65, 66]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixels, image_sizes=sizes).logits[0]
    # The converter has no LlavaNext text model: the same weights as a LlavaForConditionalGeneration
    # (llava()'s route), without the newline (the mmproj's).
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    lcfg = LlavaConfig(text_config=cfg.text_config.to_dict(), vision_config=cfg.vision_config.to_dict(),
                       image_token_index=310, vision_feature_layer=-2, vision_feature_select_strategy="default",
                       projector_hidden_act="gelu")
    lm = LlavaForConditionalGeneration(lcfg).eval()
    lm.load_state_dict({k: v for k, v in model.state_dict().items() if "image_newline" not in k})
    d = os.path.join(tmp, "llava16")
    lm.config.text_config.bos_token_id, lm.config.text_config.eos_token_id = 258, 259
    lm.config.text_config.pad_token_id = 257
    lm.save_pretrained(d)
    write_tokenizer(d, 320, specials, 258, 259)
    convert_text(d, os.path.join(OUT, "llava16.text.gguf"))
    save_golden(os.path.join(OUT, "llava16_golden.safetensors"), img, pixels[0], feats.reshape(152, 72),
                {"family": "llava16", "resample": "PIL bicubic; anyres 32x64 (h x w), 2 tiles + overview",
                 "n_tokens": 152, "n_embd": 72, "grid": "1x2 tiles, unpadded 8x10 + 8 newlines",
                 "image_start": 7, "text_model": "llava16.text.gguf (tokenizer: bytes and one merge)"},
                {"features_flat": flat.reshape(-1, 72).float(), "prompt_ids": torch.tensor(ids, dtype=torch.int32),
                 "logits": logits.float()})


def qwen2vl(img, tmp):
    """Qwen2-VL: tools/gen_qwen2vl_golden.py's tiny seeded model (its build(): vision depth 3,
    width 32, patch 14, merge 2; text width 64, M-RoPE sections 4/6/6), here with a byte-level
    tokenizer carrying Qwen2-VL's specials and the prompt made by the real Qwen2VLProcessor:
    its image processor's smart_resize takes the 40x30 image up to 84x56 (6x4 patches, 3x2
    merged tokens) and its <|image_pad|> becomes 6 of them. The logits come from the full
    model (get_rope_index's M-RoPE positions: the text after the image goes on from
    max(3, 2) past the image's first position, not from its row count)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_qwen2vl_golden as q
    from transformers import PreTrainedTokenizerFast, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    model = q.build(False)  # patch kernels rounded to F16, as the mmproj file holds them
    proc = Qwen2VLImageProcessorPil()
    d = os.path.join(tmp, "qwen2vl")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    convert(d, os.path.join(OUT, "qwen2vl.mmproj.gguf"))
    specials = {257: "<|endoftext|>", 258: "<|im_start|>", 259: "<|im_end|>", q.IMAGE_TOKEN: "<|image_pad|>",
                301: "<|video_pad|>", q.VISION_START: "<|vision_start|>", q.VISION_END: "<|vision_end|>"}
    write_tokenizer(d, q.VOCAB, specials, 258, 259)
    tok = PreTrainedTokenizerFast.from_pretrained(d)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    processor = Qwen2VLProcessor(image_processor=proc, tokenizer=tok, video_processor=Qwen2VLVideoProcessor())
    # A user turn with the image first, as llama.cpp's mtmd and vkinfer's chat place it; the
    # text after the image is where a wrong rope position shows.
    enc = processor(images=[Image.fromarray(img)], return_tensors="pt",
                    text=["<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?"])
    ids = enc["input_ids"][0].tolist()
    grid = enc["image_grid_thw"]
    n_img = ids.count(q.IMAGE_TOKEN)
    assert n_img == 6 and grid.tolist() == [[1, 4, 6]], (n_img, grid.tolist())
    with torch.no_grad():
        logits = model(**enc).logits[0]
        out = model.model.visual(enc["pixel_values"], grid_thw=grid)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    # What `vkinfer generate -p "<|im_start|>user\nWhat is this?" --image test_image.png
    # --temp 0` does (generate puts the image after the prompt's text): transformers' greedy
    # continuation of the same prompt, 8 tokens.
    gen = processor(images=[Image.fromarray(img)], return_tensors="pt",
                    text=["<|im_start|>user\nWhat is this?<|vision_start|><|image_pad|><|vision_end|>"])
    with torch.no_grad():
        greedy = model.generate(**gen, max_new_tokens=8, do_sample=False)[0, gen["input_ids"].shape[1]:]
    cfg = json.load(open(os.path.join(d, "config.json")))
    for c in (cfg, cfg["text_config"]):
        c.update(bos_token_id=258, eos_token_id=259, pad_token_id=257)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    convert_text(d, os.path.join(OUT, "qwen2vl.text.gguf"), MROPE_CONVERT)
    # pixels: the processor's patch rows (merge order), not an image: [n_patch, 3*2*14*14].
    save_golden(os.path.join(OUT, "qwen2vl_golden.safetensors"), img, enc["pixel_values"], feats.reshape(6, 64),
                {"family": "qwen2vl", "resample": "PIL bicubic, smart_resize to 84x56", "n_tokens": 6, "n_embd": 64,
                 "grid": "3x2 merged tokens (w x h)", "image_start": ids.index(q.IMAGE_TOKEN),
                 "text_model": "qwen2vl.text.gguf (tokenizer: bytes and one merge)"},
                {"prompt_ids": torch.tensor(ids, dtype=torch.int32), "logits": logits.float(),
                 "generate_prompt_ids": gen["input_ids"][0].to(torch.int32),
                 "generate_greedy": greedy.to(torch.int32)})


def main():
    os.makedirs(OUT, exist_ok=True)
    img = test_image()
    Image.fromarray(img).save(os.path.join(OUT, "test_image.png"))
    families = sys.argv[1:] or ["gemma3", "idefics3", "llava", "qwen2vl"]
    tmp = tempfile.mkdtemp()
    try:
        for fam in families:
            globals()[fam](img, tmp)
            print("wrote", fam)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
