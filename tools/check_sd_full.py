#!/usr/bin/env python3
"""Goldens for vkinfer's FULL-SIZE synthetic Stable Diffusion checkpoints (issue #17), from
diffusers/transformers run on the very same file. Offline, seeded, CPU, float32 math.

vkinfer generates a single-file checkpoint with the real SD 1.5 / SD 2.1 shapes and seeded random
F16 weights (models/sd_synthetic.c, vki_sd_synthetic(name, seed 1)); this script, for sd15 and
sd21:
  1. gets that file: runs `vkinfer bench sd --synthetic NAME --save FILE --size 64 --steps 1`
     (stopped as soon as the file is written: the benchmark itself is not needed), or takes
     --checkpoint NAME=PATH;
  2. loads it in diffusers with from_single_file (offline, config = the published configs in
     tools/sd_configs/NAME) and, for the text encoder, the step the pipeline's from_single_file
     uses (create_diffusers_clip_model_from_ldm);
  3. writes it again as a diffusers folder under --work (unet/, vae/, text_encoder/ in float16,
     which holds the F16 weights exactly, plus model_index.json and scheduler/ from the configs),
     and checks that the folder loads back to bit-identical outputs;
  4. writes tests/data/sd_full/NAME_golden.safetensors (float32, ids int32):
       text.ids      [2, 77]    row 0: BOS 49406, 10 seeded ids, EOS 49407, padding; row 1: BOS,
                                EOS, padding (the empty prompt). Padding: 49407 (SD 1.x's
                                tokenizer) or 0 (SD 2.x's OpenCLIP tokenizer)
       text.hidden   [2, 77, D] what the pipeline conditions the U-Net on: sd15 CLIP's last layer
                                + final norm (D 768); sd21 OpenCLIP-H's penultimate layer (23 of
                                24) + final norm (D 1024): diffusers' SD 2.x text encoder has 23
                                layers, its last_hidden_state is exactly that
       unet.x        [2, 4, 8, 8] seed 777 normal;  unet.t [2] = 999, 421.5
       unet.out      [2, 4, 8, 8] U-Net(x, t, context = text.hidden)
       vae.z         [1, 4, 8, 8] same generator; vae.decoded [1, 3, 64, 64] = decode(z), no
                                scaling factor
     metadata: model, generator, checkpoint_size and checkpoint_hash (so that the test can check
     that vki_sd_synthetic still builds the same bytes): the file padded with zeros to a multiple
     of 8 bytes, read as little-endian uint64 words w_i, hash = sum_i w_i * (2 i + 1) mod 2^64
     (decimal). Not cryptographic: it detects a changed generator, which is all it is for.

The work folder (about 2 GB per model) is not committed. The test (tests/models/test_sd_full.cc,
run with VKI_SD_FULL=1) rebuilds the checkpoint in memory; with VKI_SD_FULL_DIR=WORK it also
reads the folders written here.

  /work/venv-sd/bin/python tools/check_sd_full.py --work /tmp/sd_full
The goldens are float32 results of CPU kernels whose summation order depends on the thread
count; a rerun may change them by float rounding (~1e-6 relative).
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "tools" / "sd_configs"
OUT_DIR = REPO / "tests" / "data" / "sd_full"
N_CTX, BOS, EOS = 77, 49406, 49407
PAD = {"sd15": EOS, "sd21": 0}


def checkpoint_hash(path):
    """sum_i w_i * (2 i + 1) mod 2^64 over the file's little-endian uint64 words (zero-padded)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    size = raw.shape[0]
    h = np.uint64(0)
    chunk = 1 << 24  # words
    words = size // 8
    w = raw[: words * 8].view("<u8")
    with np.errstate(over="ignore"):
        for s in range(0, words, chunk):
            part = np.asarray(w[s:s + chunk], dtype=np.uint64)
            idx = np.arange(s, s + part.shape[0], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            h = h + (part * idx).sum(dtype=np.uint64)
        if size % 8:
            tail = np.zeros(8, dtype=np.uint8)
            tail[: size % 8] = raw[words * 8:]
            h = h + tail.view("<u8")[0] * np.uint64(2 * words + 1)
    return size, int(h)


def make_checkpoint(vkinfer, name, path):
    """vkinfer writes the file before it loads the model: stop it once the file is written."""
    cmd = [str(vkinfer), "bench", "sd", "--synthetic", name, "--save", str(path),
           "--size", "64", "--steps", "1"]
    print("  $", " ".join(cmd))
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if line.startswith("vkinfer: wrote"):
            print("  " + line.strip())
            break
    p.terminate()
    p.wait()
    if not path.exists() or not any(x.startswith("vkinfer: wrote") for x in lines):
        sys.exit(f"vkinfer did not write {path}:\n" + "".join(lines))


def text_ids(name):
    g = torch.Generator().manual_seed(1234)
    ids = torch.full([2, N_CTX], PAD[name], dtype=torch.int64)
    ids[:, 0] = BOS
    ids[0, 1:11] = torch.randint(1, BOS, [10], generator=g)
    ids[0, 11] = EOS
    ids[1, 1] = EOS
    return ids


def maxdiff(a, b):
    return float((a - b).abs().max())


def run(name, args):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = Path(args.checkpoint[name]) if name in args.checkpoint else work / f"{name}.safetensors"
    if not path.exists():
        make_checkpoint(args.vkinfer, name, path)
    t0 = time.time()
    size, h = checkpoint_hash(path)
    print(f"  {name}: {path} {size} bytes, hash {h} ({time.time() - t0:.1f} s)")

    cfg = str(CONFIGS / name)
    folder = work / name
    folder.mkdir(exist_ok=True)
    shutil.copy(CONFIGS / name / "model_index.json", folder / "model_index.json")
    shutil.copytree(CONFIGS / name / "scheduler", folder / "scheduler", dirs_exist_ok=True)
    golden = {}
    results = {}
    f32 = torch.float32
    with torch.no_grad():
        # ---- text encoder
        t0 = time.time()
        sd = load_file(str(path))
        te = create_diffusers_clip_model_from_ldm(
            CLIPTextModel, sd, subfolder="text_encoder", config=cfg, torch_dtype=f32,
            local_files_only=True).eval()
        del sd
        n_layers = te.config.num_hidden_layers
        assert n_layers == (12 if name == "sd15" else 23), n_layers
        ids = text_ids(name)
        out = te(ids, output_hidden_states=True)
        hidden = out.last_hidden_state.clone()
        # the same thing spelled out: the last layer's output through the final norm
        norm = te.final_layer_norm if hasattr(te, "final_layer_norm") else te.text_model.final_layer_norm
        d = maxdiff(norm(out.hidden_states[-1]), hidden)
        assert d == 0, d
        golden["text.ids"] = ids.int()
        golden["text.hidden"] = hidden
        # The published SD folders (written by transformers 4) name the tensors
        # "text_model.embeddings..."; transformers 5's save_pretrained drops that prefix.
        # Written by hand in the published names, which both versions load.
        (folder / "text_encoder").mkdir(exist_ok=True)
        te.config.save_pretrained(folder / "text_encoder")
        tsd = {k if k.startswith("text_model.") else "text_model." + k: v.half().contiguous()
               for k, v in te.state_dict().items()}
        save_file(tsd, str(folder / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
        del te, tsd
        te2 = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=f32,
                                            local_files_only=True).eval()
        results["text folder vs file"] = maxdiff(te2(ids).last_hidden_state, hidden)
        del te2
        print(f"  {name}: text ({n_layers} layers) {time.time() - t0:.1f} s")

        # ---- U-Net
        t0 = time.time()
        unet = UNet2DConditionModel.from_single_file(
            str(path), config=cfg, subfolder="unet", local_files_only=True,
            torch_dtype=f32).eval()
        g = torch.Generator().manual_seed(777)
        x = torch.randn([2, 4, 8, 8], generator=g)
        t = torch.tensor([999.0, 421.5])
        golden["unet.x"] = x
        golden["unet.t"] = t
        golden["unet.out"] = unet(x, t, encoder_hidden_states=hidden).sample.clone()
        unet.half().save_pretrained(folder / "unet", safe_serialization=True)
        del unet
        unet2 = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=f32,
                                                     local_files_only=True).eval()
        results["unet folder vs file"] = maxdiff(
            unet2(x, t, encoder_hidden_states=hidden).sample, golden["unet.out"])
        del unet2
        print(f"  {name}: unet {time.time() - t0:.1f} s")

        # ---- VAE
        t0 = time.time()
        vae = AutoencoderKL.from_single_file(
            str(path), config=cfg, subfolder="vae", local_files_only=True,
            torch_dtype=f32).eval()
        z = torch.randn([1, 4, 8, 8], generator=g)
        golden["vae.z"] = z
        golden["vae.decoded"] = vae.decode(z).sample.clone()
        vae.half().save_pretrained(folder / "vae", safe_serialization=True)
        del vae
        vae2 = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=f32,
                                             local_files_only=True).eval()
        results["vae folder vs file"] = maxdiff(vae2.decode(z).sample, golden["vae.decoded"])
        del vae2
        print(f"  {name}: vae {time.time() - t0:.1f} s")

    for k, v in results.items():
        print(f"  {name}: {k}: max |diff| {v}")
        assert v == 0, (k, v)
    for k in sorted(golden):
        v = golden[k].double()
        print(f"    {k:14s} {str(list(v.shape)):18s} rms {float(v.pow(2).mean().sqrt()):10.4g}"
              f"  max|x| {float(v.abs().max()):10.4g}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    meta = {"model": name, "generator": "tools/check_sd_full.py",
            "checkpoint_size": str(size), "checkpoint_hash": str(h),
            "torch": torch.__version__}
    import diffusers
    import transformers
    meta["diffusers"] = diffusers.__version__
    meta["transformers"] = transformers.__version__
    out = OUT_DIR / f"{name}_golden.safetensors"
    save_file({k: v.contiguous() for k, v in golden.items()}, str(out), metadata=meta)
    print(f"  {name}: wrote {out} ({out.stat().st_size} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/sd_full",
                    help="where the checkpoints and diffusers folders go (GBs; not committed)")
    ap.add_argument("--vkinfer", default=str(REPO / "build-full" / "vkinfer"))
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="use this file instead of running vkinfer")
    ap.add_argument("models", nargs="*", default=["sd15", "sd21"])
    args = ap.parse_args()
    args.checkpoint = dict(c.split("=", 1) for c in args.checkpoint)
    torch.manual_seed(0)
    for name in args.models:
        if name not in PAD:
            sys.exit(f"unknown model {name} (sd15, sd21)")
        run(name, args)


if __name__ == "__main__":
    main()
