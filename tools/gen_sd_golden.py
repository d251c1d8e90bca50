#!/usr/bin/env python3
"""Tiny Stable Diffusion models and goldens (issue #17), from diffusers, transformers and
k-diffusion: the references the U-Net, VAE, text-encoder, sampler and pipeline code is checked
against. Everything here is offline, seeded, CPU and float32.

Two tiny random models with the real architectures' structure but small widths:
  sd15  SD 1.x: U-Net with 8 heads per level and 1x1-conv proj_in/out, epsilon prediction,
        HF CLIP text encoder (quick GELU), last layer + final norm (and clip skip 2).
  sd21  SD 2.x: U-Net with 64-wide heads and linear proj_in/out, v-prediction, OpenCLIP text
        tower (exact GELU) whose PENULTIMATE layer + final norm conditions the U-Net.
Each is written in two layouts (weights as float16):
  tests/data/sd_tiny/<name>/               diffusers folder (model_index.json, unet/, vae/,
                                           text_encoder/, scheduler/)
  tests/data/sd_tiny/<name>.safetensors    one file in the original CompVis/ldm layout
                                           (model.diffusion_model.*, first_stage_model.*,
                                           cond_stage_model.*), as A1111/ComfyUI/sd.cpp read it
and the goldens, computed from the float16 weights loaded back in float32 math:
  tests/data/sd_tiny/<name>_golden.safetensors
tests/data/sd_tiny/README.md documents every file, tensor and convention; keep it in step.

The ldm key conversion below is ours, written from the architecture (block order, layer names);
it is checked two ways: our inverse mapping gives back every tensor bit for bit, and diffusers'
own single-file loader (from_single_file, offline, config = our folder) gives the same outputs
as the folder model.

Full-size configs (published values) are in tools/sd_configs/{sd15,sd21}/; --check-full-configs
builds each full-size model on the meta device from them and counts its parameters.

Regenerate:
  python3 -m venv /work/venv-sd
  /work/venv-sd/bin/pip install torch
  /work/venv-sd/bin/pip install diffusers transformers safetensors numpy accelerate scipy \
      torchsde tqdm
  /work/venv-sd/bin/pip install --no-deps k-diffusion
  # k_diffusion/__init__.py imports all of its modules; they need these (torch pinned):
  /work/venv-sd/bin/pip install -c <(echo torch==$(/work/venv-sd/bin/python -c \
      'import torch;print(torch.__version__.split("+")[0])')) torchvision scikit-image \
      clean-fid dctorch einops jsonmerge torchdiffeq clip-anytorch "setuptools<80"
  /work/venv-sd/bin/python tools/gen_sd_golden.py
The weights and configs are bit-identical on every run; the goldens are float32 results of CPU
kernels whose summation order depends on the thread count and kernel choice, so a rerun may change
them by float rounding (about 1e-5 relative; 1 vs 2 threads: unet.out 2e-5, the sampled latents
up to 4e-4 on values up to ~60). Commit a regenerated file only with a reason (a changed seed,
config or convention): say it in the commit.
"""
import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "data" / "sd_tiny"
FULL_CONFIG_DIR = REPO / "tools" / "sd_configs"

VOCAB = 1000
BOS = VOCAB - 2  # as CLIP's <|startoftext|> = 49406, <|endoftext|> = 49407 of 49408
EOS = VOCAB - 1
N_CTX = 77
BETA_START, BETA_END, N_TRAIN_STEPS = 0.00085, 0.012, 1000
CFG_SCALE = 5.0
STEPS = 8
SEED_NOISE = 42
UNET_OUT_GAIN = 3.0

UNET_DOWN = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
UNET_UP = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3

MODELS = {
    "sd15": {
        "seed": 1501,
        "prediction_type": "epsilon",
        # 8 heads at every level (4 and 8 wide); the 32 -> 64 step keeps a down-path shortcut
        # conv (input_blocks.7.0) as SD 1.x has at 320 -> 640 and 640 -> 1280
        "unet": dict(block_out_channels=(32, 32, 64, 64), attention_head_dim=8,
                     use_linear_projection=False, upcast_attention=False),
        "vae_channels": (32, 32, 32, 32),
        "text": dict(hidden_size=64, num_attention_heads=1, intermediate_size=256,
                     num_hidden_layers=3, hidden_act="quick_gelu"),
        # the tower in the single file has this many layers; the folder has the same
        "text_layers_used": 3,
        "text_layout": "hf",
    },
    "sd21": {
        # 2101 made a trajectory that float rounding moves by 1% (dpmpp_2m karras; README)
        "seed": 2102,
        "prediction_type": "v_prediction",
        # 64-wide heads as SD 2.x (num_head_channels 64): heads = C/64 per level, so with
        # every level 64 wide (the narrowest that holds one such head) each attention has 1 head
        "unet": dict(block_out_channels=(64, 64, 64, 64), attention_head_dim=[1, 1, 1, 1],
                     use_linear_projection=True, upcast_attention=True),
        "vae_channels": (32, 32, 32, 32),
        "text": dict(hidden_size=128, num_attention_heads=2, intermediate_size=512,
                     num_hidden_layers=3, hidden_act="gelu"),
        # SD 2.x conditions on the penultimate layer: the OpenCLIP tower in the single file
        # has 3 layers, the diffusers folder keeps the first 2 (as the published SD 2.x folder
        # keeps 23 of OpenCLIP-H's 24), so its last_hidden_state is what the U-Net gets
        "text_layers_used": 2,
        "text_layout": "openclip",
    },
}


# ---------------------------------------------------------------------------------------------
# Model construction


def unet_config(spec, cross_dim):
    return dict(sample_size=8, in_channels=4, out_channels=4, center_input_sample=False,
                flip_sin_to_cos=True, freq_shift=0, down_block_types=list(UNET_DOWN),
                up_block_types=list(UNET_UP), layers_per_block=2, downsample_padding=1,
                mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
                cross_attention_dim=cross_dim, **spec["unet"])


def vae_config(spec):
    return dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4,
                block_out_channels=list(spec["vae_channels"]), layers_per_block=2,
                act_fn="silu", latent_channels=4, norm_num_groups=32, sample_size=64,
                scaling_factor=0.18215)


def text_config(spec, n_layers):
    t = dict(spec["text"])
    t["num_hidden_layers"] = n_layers
    return dict(vocab_size=VOCAB, max_position_embeddings=N_CTX, layer_norm_eps=1e-5,
                attention_dropout=0.0, dropout=0.0, initializer_factor=1.0,
                initializer_range=0.02, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS,
                projection_dim=t["hidden_size"], **t)


def scheduler_config(spec):
    return {"_class_name": "EulerDiscreteScheduler", "beta_start": BETA_START,
            "beta_end": BETA_END, "beta_schedule": "scaled_linear",
            "num_train_timesteps": N_TRAIN_STEPS, "prediction_type": spec["prediction_type"],
            "timestep_spacing": "linspace", "steps_offset": 1, "trained_betas": None,
            "interpolation_type": "linear", "use_karras_sigmas": False}


def perturb(model, gen):
    """Random norm scales/shifts and non-zero biases, so a swapped or missing norm weight or
    bias changes the output (defaults are 1, 0 and, for CLIP's linears, 0)."""
    for mod in model.modules():
        if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and mod.weight is not None:
            mod.weight.data = 1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen)
            mod.bias.data = 0.1 * torch.randn(mod.bias.shape, generator=gen)
        elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
            if float(mod.bias.detach().abs().max()) == 0.0:
                mod.bias.data = 0.02 * torch.randn(mod.bias.shape, generator=gen)


def round_f16(model):
    for p in model.parameters():
        p.data = p.data.half().float()


def build(name):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = MODELS[name]
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    width = spec["text"]["hidden_size"]
    unet = UNet2DConditionModel(**unet_config(spec, width)).eval()
    vae = AutoencoderKL(**vae_config(spec)).eval()
    # the whole tower: 3 layers; for sd21 the folder drops the last one
    text = CLIPTextModel(CLIPTextConfig(**text_config(spec, spec["text"]["num_hidden_layers"])))
    text.eval()
    for m in (unet, vae, text):
        perturb(m, gen)
    # PyTorch's default init leaves the U-Net output at std ~0.3; a trained model predicts
    # unit-variance eps (or v), and with a weak prediction every sampler's result stays close to
    # the scaled initial noise, so the samplers' goldens would differ from each other by little
    unet.conv_out.weight.data *= UNET_OUT_GAIN
    unet.conv_out.bias.data *= UNET_OUT_GAIN
    for m in (unet, vae, text):
        round_f16(m)
    return unet, vae, text


# ---------------------------------------------------------------------------------------------
# Key conversion: diffusers -> original (CompVis/ldm) layout, and back


def unet_key_map(unet_sd, n_levels=4, layers=2):
    """diffusers U-Net key -> ldm key (without the model.diffusion_model. prefix)."""
    res = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
    prefixes = {"time_embedding.linear_1.": "time_embed.0.",
                "time_embedding.linear_2.": "time_embed.2.",
                "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.",
                "conv_out.": "out.2."}
    for i in range(n_levels):
        for j in range(layers):
            blk = 3 * i + j + 1
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{blk}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{blk}.1."
        prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{3 * i + 3}.0.op."
        has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in unet_sd)
        for j in range(layers + 1):
            blk = 3 * i + j
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{blk}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{blk}.1."
        prefixes[f"up_blocks.{i}.upsamplers.0.conv."] = \
            f"output_blocks.{3 * i + 2}.{2 if has_attn else 1}.conv."
    prefixes["mid_block.resnets.0."] = "middle_block.0."
    prefixes["mid_block.attentions.0."] = "middle_block.1."
    prefixes["mid_block.resnets.1."] = "middle_block.2."

    out = {}
    for key in unet_sd:
        hit = [p for p in prefixes if key.startswith(p)]
        if len(hit) != 1:
            raise KeyError(f"unet key {key}: {hit}")
        p = hit[0]
        rest = key[len(p):]
        if ".resnets." in p:
            head, _, tail = rest.partition(".")
            rest = res[head] + "." + tail
        # attention (Transformer2DModel) names are the same in both layouts
        out[key] = prefixes[p] + rest
    return out


def vae_key_map(vae_sd, n_levels=4, layers=2):
    """diffusers VAE key -> ldm key (without the first_stage_model. prefix)."""
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    prefixes = {}
    for coder in ("encoder", "decoder"):
        prefixes[f"{coder}.mid_block.resnets.0."] = f"{coder}.mid.block_1."
        prefixes[f"{coder}.mid_block.resnets.1."] = f"{coder}.mid.block_2."
        prefixes[f"{coder}.mid_block.attentions.0."] = f"{coder}.mid.attn_1."
        prefixes[f"{coder}.conv_norm_out."] = f"{coder}.norm_out."
        prefixes[f"{coder}.conv_in."] = f"{coder}.conv_in."
        prefixes[f"{coder}.conv_out."] = f"{coder}.conv_out."
    for i in range(n_levels):
        for j in range(layers):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0.conv."] = \
            f"encoder.down.{i}.downsample.conv."
        # the decoder's up blocks run from the lowest resolution; ldm numbers them by level
        for j in range(layers + 1):
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = \
                f"decoder.up.{n_levels - 1 - i}.block.{j}."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0.conv."] = \
            f"decoder.up.{n_levels - 1 - i}.upsample.conv."
    prefixes["quant_conv."] = "quant_conv."
    prefixes["post_quant_conv."] = "post_quant_conv."
    out = {}
    for key in vae_sd:
        hit = [p for p in prefixes if key.startswith(p)]
        if len(hit) != 1:
            raise KeyError(f"vae key {key}: {hit}")
        p = hit[0]
        rest = key[len(p):]
        if ".attentions." in p:
            for a, b in attn.items():
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            else:
                raise KeyError(key)
        elif "resnets" in p and rest.startswith("conv_shortcut."):
            rest = "nin_shortcut." + rest[len("conv_shortcut."):]
        out[key] = prefixes[p] + rest
    return out


def hf_text_sd(text):
    """The HF CLIPTextModel state dict with the text_model. prefix that published files use
    (transformers >= 5.6 drops it in memory)."""
    sd = text.state_dict()
    out = {}
    for k, v in sd.items():
        if k == "embeddings.position_ids":
            continue
        out[k if k.startswith("text_model.") else "text_model." + k] = v
    return out


def openclip_from_hf(hf_sd, n_layers, width, gen):
    """HF CLIPTextModel (text_model.*) -> OpenCLIP text tower names (without the
    cond_stage_model.model. prefix)."""
    t = "text_model."
    out = {"token_embedding.weight": hf_sd[t + "embeddings.token_embedding.weight"],
           "positional_embedding": hf_sd[t + "embeddings.position_embedding.weight"],
           "ln_final.weight": hf_sd[t + "final_layer_norm.weight"],
           "ln_final.bias": hf_sd[t + "final_layer_norm.bias"]}
    for i in range(n_layers):
        h = f"{t}encoder.layers.{i}."
        o = f"transformer.resblocks.{i}."
        out[o + "ln_1.weight"] = hf_sd[h + "layer_norm1.weight"]
        out[o + "ln_1.bias"] = hf_sd[h + "layer_norm1.bias"]
        out[o + "ln_2.weight"] = hf_sd[h + "layer_norm2.weight"]
        out[o + "ln_2.bias"] = hf_sd[h + "layer_norm2.bias"]
        out[o + "attn.in_proj_weight"] = torch.cat(
            [hf_sd[h + f"self_attn.{x}_proj.weight"] for x in "qkv"], 0)
        out[o + "attn.in_proj_bias"] = torch.cat(
            [hf_sd[h + f"self_attn.{x}_proj.bias"] for x in "qkv"], 0)
        out[o + "attn.out_proj.weight"] = hf_sd[h + "self_attn.out_proj.weight"]
        out[o + "attn.out_proj.bias"] = hf_sd[h + "self_attn.out_proj.bias"]
        out[o + "mlp.c_fc.weight"] = hf_sd[h + "mlp.fc1.weight"]
        out[o + "mlp.c_fc.bias"] = hf_sd[h + "mlp.fc1.bias"]
        out[o + "mlp.c_proj.weight"] = hf_sd[h + "mlp.fc2.weight"]
        out[o + "mlp.c_proj.bias"] = hf_sd[h + "mlp.fc2.bias"]
    # unused by SD (it conditions on token states), present in real checkpoints: x @ proj
    out["text_projection"] = (torch.randn([width, width], generator=gen) /
                              math.sqrt(width)).half().float()
    out["logit_scale"] = torch.tensor(math.log(1 / 0.07)).half().float()
    return out


def hf_from_openclip(oc, n_layers):
    """Inverse of openclip_from_hf (for the round trip); text_projection/logit_scale dropped."""
    t = "text_model."
    width = oc["token_embedding.weight"].shape[1]
    out = {t + "embeddings.token_embedding.weight": oc["token_embedding.weight"],
           t + "embeddings.position_embedding.weight": oc["positional_embedding"],
           t + "final_layer_norm.weight": oc["ln_final.weight"],
           t + "final_layer_norm.bias": oc["ln_final.bias"]}
    for i in range(n_layers):
        h = f"{t}encoder.layers.{i}."
        o = f"transformer.resblocks.{i}."
        for a, b in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                     ("self_attn.out_proj", "attn.out_proj"), ("mlp.fc1", "mlp.c_fc"),
                     ("mlp.fc2", "mlp.c_proj")):
            out[h + a + ".weight"] = oc[o + b + ".weight"]
            out[h + a + ".bias"] = oc[o + b + ".bias"]
        w = oc[o + "attn.in_proj_weight"]
        b = oc[o + "attn.in_proj_bias"]
        for n, x in enumerate("qkv"):
            out[h + f"self_attn.{x}_proj.weight"] = w[n * width:(n + 1) * width]
            out[h + f"self_attn.{x}_proj.bias"] = b[n * width:(n + 1) * width]
    return out


def alphas_cumprod():
    """ldm's schedule: betas = linspace(sqrt(b0), sqrt(b1), 1000)^2 in float64, cumulative
    product in float64, then float32 (the buffer stored in SD checkpoints)."""
    betas = np.linspace(BETA_START ** 0.5, BETA_END ** 0.5, N_TRAIN_STEPS, dtype=np.float64) ** 2
    return torch.from_numpy(np.cumprod(1.0 - betas)).float()


def to_original(name, unet_sd, vae_sd, text_hf_sd, gen):
    spec = MODELS[name]
    out = {}
    for k, v in unet_key_map(unet_sd).items():
        out["model.diffusion_model." + v] = unet_sd[k]
    for k, v in vae_key_map(vae_sd).items():
        t = vae_sd[k]
        if ".attn_1." in v and t.dim() == 2:
            t = t.reshape(t.shape[0], t.shape[1], 1, 1)  # ldm's attention uses 1x1 convs
        out["first_stage_model." + v] = t
    if spec["text_layout"] == "hf":
        for k, v in text_hf_sd.items():
            out["cond_stage_model.transformer." + k] = v
        # most SD 1.x checkpoints carry CLIP's position_ids buffer (int64); readers skip it
        out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = \
            torch.arange(N_CTX, dtype=torch.int64)[None]
    else:
        oc = openclip_from_hf(text_hf_sd, spec["text"]["num_hidden_layers"],
                              spec["text"]["hidden_size"], gen)
        for k, v in oc.items():
            out["cond_stage_model.model." + k] = v
    out["alphas_cumprod"] = alphas_cumprod()  # float32, as in real checkpoints
    return out


# ---------------------------------------------------------------------------------------------
# Writing the layouts


def f16(sd):
    """Weights as float16; the schedule buffer stays float32 and integer buffers keep their
    type, as in real checkpoints."""
    return {k: (v.half().contiguous() if v.is_floating_point() and k != "alphas_cumprod"
                else v.contiguous())
            for k, v in sd.items()}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_folder(name, unet, vae, text_hf_used, text_cfg):
    import diffusers
    import transformers
    spec = MODELS[name]
    root = OUT_DIR / name
    if root.exists():
        shutil.rmtree(root)
    dv = diffusers.__version__
    write_json(root / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": dv,
        "feature_extractor": [None, None], "safety_checker": [None, None],
        "requires_safety_checker": False, "image_encoder": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    unet_cfg = dict(unet.config)
    vae_cfg = dict(vae.config)
    for cfg, cls, sub in ((unet_cfg, "UNet2DConditionModel", "unet"),
                          (vae_cfg, "AutoencoderKL", "vae")):
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
        cfg["_class_name"] = cls
        cfg["_diffusers_version"] = dv
        write_json(root / sub / "config.json", cfg)
    save_file(f16(unet.state_dict()), root / "unet" / "diffusion_pytorch_model.safetensors",
              metadata={"format": "pt"})
    save_file(f16(vae.state_dict()), root / "vae" / "diffusion_pytorch_model.safetensors",
              metadata={"format": "pt"})
    tcfg = dict(text_cfg)
    tcfg.update({"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
                 "torch_dtype": "float16", "transformers_version": transformers.__version__})
    write_json(root / "text_encoder" / "config.json", tcfg)
    save_file(f16(text_hf_used), root / "text_encoder" / "model.safetensors",
              metadata={"format": "pt"})
    sc = scheduler_config(spec)
    sc["_diffusers_version"] = dv
    write_json(root / "scheduler" / "scheduler_config.json", sc)


def load_folder(name):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    root = OUT_DIR / name
    unet = UNet2DConditionModel.from_pretrained(root / "unet", torch_dtype=torch.float32,
                                                local_files_only=True).eval()
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=torch.float32,
                                        local_files_only=True).eval()
    text = CLIPTextModel.from_pretrained(root / "text_encoder", torch_dtype=torch.float32,
                                         local_files_only=True).eval()
    return unet, vae, text


# ---------------------------------------------------------------------------------------------
# Goldens


def k_diffusion_modules():
    import k_diffusion.external as kext
    import k_diffusion.sampling as ks
    return kext, ks


def text_ids():
    g = torch.Generator().manual_seed(1234)
    ids = torch.full([2, N_CTX], EOS, dtype=torch.int64)
    ids[:, 0] = BOS
    ids[0, 1:11] = torch.randint(1, BOS, [10], generator=g)
    # row 0: BOS, 10 tokens, EOS, then EOS padding; row 1: BOS, EOS, EOS padding (empty prompt)
    return ids


class CFGDenoiser:
    """k-diffusion denoiser with classifier-free guidance on the denoised prediction:
    uncond + scale * (cond - uncond), one batch [cond, uncond]."""

    def __init__(self, den, cond, uncond, scale):
        self.den, self.cond, self.uncond, self.scale = den, cond, uncond, scale
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        xx = torch.cat([x, x])
        ss = torch.cat([sigma, sigma])
        ctx = torch.cat([self.cond, self.uncond])
        d = self.den(xx, ss, encoder_hidden_states=ctx)
        c, u = d.chunk(2)
        return u + (c - u) * self.scale


class UNetInner(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, encoder_hidden_states):
        return self.unet(x, t, encoder_hidden_states=encoder_hidden_states).sample


def sample_ddim_eta0(model, x, sigmas):
    """DDIM with eta 0 in k-diffusion's sigma form: x' = denoised + sigma' * eps, eps from x.
    On the same sigmas this is the Euler step written differently."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        eps = (x - denoised) / sigmas[i]
        x = denoised + sigmas[i + 1] * eps
    return x


def sample_lcm(model, x, sigmas, noise_sampler):
    """LCM in k-diffusion form: x = denoised, then re-noised to the next sigma with a fresh
    draw (none after the last step)."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * s_in)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


def run_samplers(name, unet, cond, uncond, golden):
    kext, ks = k_diffusion_modules()
    spec = MODELS[name]
    ac = alphas_cumprod()
    inner = UNetInner(unet)
    if spec["prediction_type"] == "epsilon":
        den = kext.DiscreteEpsDDPMDenoiser(inner, ac, quantize=False)
    else:
        den = kext.DiscreteVDDPMDenoiser(inner, ac, quantize=False)
    golden["sched.alphas_cumprod"] = ac.clone()
    golden["sched.sigmas"] = den.sigmas.clone()
    smin, smax = float(den.sigmas[0]), float(den.sigmas[-1])
    schedules = {
        "discrete": den.get_sigmas(STEPS),
        "karras": ks.get_sigmas_karras(STEPS, smin, smax, rho=7.0),
        "exponential": ks.get_sigmas_exponential(STEPS, smin, smax),
    }
    for k, v in schedules.items():
        golden[f"sample.sigmas.{k}"] = v.float().clone()
    model = CFGDenoiser(den, cond, uncond, CFG_SCALE)

    runs = [(s, "discrete") for s in ("euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m",
                                       "dpmpp_sde", "ddim", "lcm")]
    runs += [("dpmpp_2m", "karras"), ("euler", "exponential")]
    draws = {}
    for sampler, sched in runs:
        sigmas = schedules[sched].float()
        g = torch.Generator().manual_seed(SEED_NOISE)
        noise = torch.randn([1, 4, 8, 8], generator=g)
        golden["sample.noise"] = noise.clone()
        x = noise * sigmas[0]
        count = [0]

        def ns(sigma, sigma_next):
            count[0] += 1
            return torch.randn([1, 4, 8, 8], generator=g)

        model.calls = 0
        with torch.no_grad():
            if sampler == "ddim":
                out = sample_ddim_eta0(model, x, sigmas)
            elif sampler == "lcm":
                out = sample_lcm(model, x, sigmas, ns)
            else:
                fn = getattr(ks, "sample_" + sampler)
                kw = {"disable": True}
                if sampler in ("euler_ancestral", "dpmpp_sde"):
                    kw["noise_sampler"] = ns
                out = fn(model, x, sigmas, **kw)
        golden[f"sample.{sampler}.{sched}.latent"] = out.clone()
        draws[f"{sampler}.{sched}"] = (model.calls, count[0])
    with torch.no_grad():
        s0 = schedules["discrete"][:1].float()
        golden["sample.step0.denoised"] = model(golden["sample.noise"] * s0, s0).clone()
    return draws


def make_goldens(name, unet, vae, text, text_full=None):
    spec = MODELS[name]
    golden = {}
    ids = text_ids()
    with torch.no_grad():
        out = text(ids, output_hidden_states=True)
        golden["text.ids"] = ids.int()
        golden["text.hidden"] = out.last_hidden_state.clone()
        if spec["text_layout"] == "hf":
            golden["text.hidden_skip2"] = text.final_layer_norm(out.hidden_states[-2]).clone()
        if text_full is not None:
            # independent path: the full tower's penultimate layer through the final norm
            full = text_full(ids, output_hidden_states=True)
            pen = text_full.final_layer_norm(full.hidden_states[-2])
            d = float((pen - golden["text.hidden"]).abs().max())
            print(f"  {name}: folder text (2 layers) vs full tower penultimate+norm: "
                  f"max |diff| {d:.3g}")
            assert d < 1e-5, d

        g = torch.Generator().manual_seed(777)
        x = torch.randn([2, 4, 8, 8], generator=g)
        t = torch.tensor([999.0, 421.5])
        ctx = golden["text.hidden"].clone()
        golden["unet.x"] = x
        golden["unet.t"] = t
        golden["unet.ctx"] = ctx
        golden["unet.out"] = unet(x, t, encoder_hidden_states=ctx).sample.clone()

        z = torch.randn([1, 4, 8, 8], generator=g)
        golden["vae.z"] = z
        golden["vae.decoded"] = vae.decode(z).sample.clone()
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64),
                                indexing="ij")
        img = torch.stack([torch.sin(3 * xx + 1), torch.cos(4 * yy), xx * yy])[None]
        img = (0.8 * img + 0.2 * (2 * torch.rand([1, 3, 64, 64], generator=g) - 1))
        img = img.clamp(-1, 1)
        golden["vae.image"] = img
        golden["vae.mean"] = vae.encode(img).latent_dist.mean.clone()

    cond = golden["text.hidden"][0:1]
    uncond = golden["text.hidden"][1:2]
    draws = run_samplers(name, unet, cond, uncond, golden)
    return golden, draws


def randn_goldens(golden):
    golden["sample.randn_seed42"] = torch.randn(64, generator=torch.Generator().manual_seed(42))
    golden["sample.randn_seed7_256"] = torch.randn(256,
                                                   generator=torch.Generator().manual_seed(7))


# ---------------------------------------------------------------------------------------------
# Verification of the single file


def check_inverse(name, orig, unet_sd, vae_sd, text_hf_sd):
    """Our inverse: every tensor of the folder layout comes back bit for bit, nothing is left."""
    spec = MODELS[name]
    umap = unet_key_map(unet_sd)
    vmap = vae_key_map(vae_sd)
    inv_u = {"model.diffusion_model." + v: k for k, v in umap.items()}
    inv_v = {"first_stage_model." + v: k for k, v in vmap.items()}
    seen = set()
    n = 0
    for ok, dk in inv_u.items():
        assert torch.equal(orig[ok].float(), unet_sd[dk].half().float()), ok
        seen.add(ok)
        n += 1
    for ok, dk in inv_v.items():
        t = orig[ok].float()
        ref = vae_sd[dk].half().float()
        assert torch.equal(t.reshape(ref.shape), ref), ok
        seen.add(ok)
        n += 1
    if spec["text_layout"] == "hf":
        p = "cond_stage_model.transformer."
        for k, v in text_hf_sd.items():
            assert torch.equal(orig[p + k].float(), v.half().float()), k
            seen.add(p + k)
            n += 1
        seen.add(p + "text_model.embeddings.position_ids")
    else:
        p = "cond_stage_model.model."
        oc = {k[len(p):]: v for k, v in orig.items() if k.startswith(p)}
        back = hf_from_openclip(oc, spec["text"]["num_hidden_layers"])
        assert set(back) == set(text_hf_sd), set(back) ^ set(text_hf_sd)
        for k, v in back.items():
            assert torch.equal(v.float(), text_hf_sd[k].half().float()), k
            n += 1
        seen.update(p + k for k in oc)
    assert orig["alphas_cumprod"].dtype == torch.float32
    assert torch.equal(orig["alphas_cumprod"], alphas_cumprod())
    seen.add("alphas_cumprod")
    left = set(orig) - seen
    assert not left, sorted(left)[:10]
    print(f"  {name}: inverse mapping gives back all {n} tensors bit for bit")


def check_from_single_file(name, golden):
    """diffusers' own converter, offline, config = our folder: same outputs as the folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel
    path = OUT_DIR / f"{name}.safetensors"
    cfg = str(OUT_DIR / name)
    results = {}
    with torch.no_grad():
        unet = UNet2DConditionModel.from_single_file(
            str(path), config=cfg, subfolder="unet", local_files_only=True,
            torch_dtype=torch.float32).eval()
        o = unet(golden["unet.x"], golden["unet.t"],
                 encoder_hidden_states=golden["unet.ctx"]).sample
        results["unet"] = float((o - golden["unet.out"]).abs().max())
        vae = AutoencoderKL.from_single_file(
            str(path), config=cfg, subfolder="vae", local_files_only=True,
            torch_dtype=torch.float32).eval()
        o = vae.decode(golden["vae.z"]).sample
        results["vae.decode"] = float((o - golden["vae.decoded"]).abs().max())
        o = vae.encode(golden["vae.image"]).latent_dist.mean
        results["vae.encode"] = float((o - golden["vae.mean"]).abs().max())
        # the pipeline's from_single_file wants the safety checker's files from the hub;
        # its text-encoder step is this function, called as the pipeline calls it
        try:
            te = create_diffusers_clip_model_from_ldm(
                CLIPTextModel, load_file(path), subfolder="text_encoder", config=cfg,
                torch_dtype=torch.float32, local_files_only=True).eval()
            o = te(golden["text.ids"].long()).last_hidden_state
            results["text"] = float((o - golden["text.hidden"]).abs().max())
        except Exception as e:  # reported; the inverse mapping still covers the text
            results["text"] = f"failed: {type(e).__name__}: {e}"[:300]
    for k, v in results.items():
        print(f"  {name}: from_single_file {k}: max |diff| vs folder = {v}")
    return results


# ---------------------------------------------------------------------------------------------


def stats(golden):
    for k in sorted(golden):
        v = golden[k].double()
        std = float(v.std()) if v.numel() > 1 else 0.0
        print(f"    {k:40s} {str(list(v.shape)):16s} std {std:10.4g}"
              f"  rms {float(v.pow(2).mean().sqrt()):10.4g}  max|x| {float(v.abs().max()):10.4g}")


def check_full_configs():
    """Each full-size config builds on the meta device; parameter counts printed."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    for name in ("sd15", "sd21"):
        root = FULL_CONFIG_DIR / name
        with init_empty_weights():
            u = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(root / "unet"))
            v = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
            t = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        for label, m in (("unet", u), ("vae", v), ("text_encoder", t)):
            print(f"  full {name} {label}: {sum(p.numel() for p in m.parameters()) / 1e6:.2f} M")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="sd15,sd21")
    ap.add_argument("--check-full-configs", action="store_true")
    ap.add_argument("--skip-single-file-check", action="store_true")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)

    if args.check_full_configs:
        check_full_configs()
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    import diffusers
    import transformers
    from importlib.metadata import version
    print(f"torch {torch.__version__} diffusers {diffusers.__version__} "
          f"transformers {transformers.__version__} k-diffusion {version('k-diffusion')}")

    for name in args.models.split(","):
        spec = MODELS[name]
        print(f"== {name}")
        unet, vae, text_full = build(name)
        gen = torch.Generator().manual_seed(spec["seed"] + 2)
        unet_sd = unet.state_dict()
        vae_sd = vae.state_dict()
        text_full_sd = hf_text_sd(text_full)
        used = spec["text_layers_used"]
        text_used_sd = {k: v for k, v in text_full_sd.items()
                        if ".encoder.layers." not in k or int(k.split(".")[3]) < used}
        text_cfg = text_config(spec, used)
        write_folder(name, unet, vae, text_used_sd, text_cfg)
        orig = to_original(name, unet_sd, vae_sd, text_full_sd, gen)
        save_file(f16(orig), OUT_DIR / f"{name}.safetensors", metadata={"format": "pt"})
        check_inverse(name, load_file(OUT_DIR / f"{name}.safetensors"), unet_sd, vae_sd,
                      text_full_sd)

        unet_f, vae_f, text_f = load_folder(name)
        # the folder loads back to exactly the f16-rounded weights (no missing/renamed keys)
        for a, b in ((unet_f, unet), (vae_f, vae)):
            sa, sb = a.state_dict(), b.state_dict()
            assert set(sa) == set(sb)
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
        st = hf_text_sd(text_f)
        assert set(st) == set(text_used_sd), set(st) ^ set(text_used_sd)
        assert all(torch.equal(st[k], text_used_sd[k]) for k in st)

        golden, draws = make_goldens(name, unet_f, vae_f, text_f,
                                     text_full if used != spec["text"]["num_hidden_layers"]
                                     else None)
        randn_goldens(golden)
        d = float((golden["sample.ddim.discrete.latent"] -
                   golden["sample.euler.discrete.latent"]).abs().max())
        print(f"  {name}: ddim(eta 0) vs euler on the discrete schedule: max |diff| {d:.3g}")
        for k, (calls, nd) in draws.items():
            print(f"  {name}: sampler {k}: {calls} guided denoiser calls, {nd} later noise draws")
        if not args.skip_single_file_check:
            res = check_from_single_file(name, golden)
            for k, v in res.items():
                if isinstance(v, float):
                    assert v < 1e-5, (k, v)
        out = {k: (v.contiguous() if v.dtype == torch.int32 else v.float().contiguous())
               for k, v in golden.items()}
        save_file(out, OUT_DIR / f"{name}_golden.safetensors",
                  metadata={"model": name, "generator": "tools/gen_sd_golden.py"})
        print(f"  {name}: goldens")
        stats(out)
    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"tests/data/sd_tiny: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
