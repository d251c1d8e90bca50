#!/usr/bin/env python3
"""Golden data for the language-model path (tokenizer, forward pass, greedy decoding), from two
implementations independent of vkinfer, for SmolLM2-135M-Instruct.Q4_1.gguf (--model-kind
smollm2, the default) and gemma-3-270m-q4_k_m.gguf (--model-kind gemma3).

  llama_cpp  llama.cpp through llama-cpp-python (the primary golden): prompt token ids, greedy
             tokens and logits. Its CPU matmuls round activations to 8 bits (q8_1) for the
             Q4_1 dot products and its KV cache is f16, so its logits are not those of the
             exact weights (they differ from numpy_f32 by up to ~0.8).
  numpy_f32  a plain numpy float32 forward pass written below (RMSNorm, RoPE, grouped-query
             attention, SwiGLU, output tied to token_embd; for Gemma 3 also the scaled
             embeddings, per-head q/k norms, post-attention and post-FFN norms, GELU, NeoX rope
             and local/global layers) on weights dequantised by the `gguf` package: the logits
             of the exact dequantised weights, without activation rounding. It takes its prompt
             ids from llama.cpp's tokenizer.

Per prompt, each source records greedy tokens (top-1 each step, no sampling, stopping after an
end-of-generation token), the gap between the top-1 and top-2 logit at every step (a small gap
is a near-tie, where a correct implementation may pick the other token), and the top-10
(id, logit) pairs of the first steps (step 0 = the logits right after the prompt).
"agreement" compares the two on llama.cpp's token sequence (teacher forcing), and checks the
numpy code itself: llama.cpp on an all-F32 copy of the model with an F32 KV cache must give the
same logits as the numpy forward up to float rounding (f32_llama_cpp_vs_numpy_max_abs, ~1e-4).

Output: tests/data/smollm2_golden.json (smollm2) or tests/data/gemma3_golden.json (gemma3)
  {"generator": {...versions, n_threads, n_ctx...}, "model": {"file", "sha256", "add_bos_token"},
   "n_gen", "n_top_steps", "top_k",
   "cases": [{"name", "prompt", "prompt_ids",
              "llama_cpp" | "numpy_f32": {"greedy_ids", "greedy_text", "top1_gap": [n steps],
                                          "top": [n_top_steps][top_k] of [id, logit]},
              "agreement": {"greedy_same": bool, "first_greedy_diff": step | null,
                            "max_abs_logit_diff_top10": [n_top_steps],
                            "f32_llama_cpp_vs_numpy_max_abs": float}}]}

Regenerate (llama-cpp-python compiles llama.cpp, about half an hour on 2 cores):
  python3 -m venv /tmp/venv-ref
  CMAKE_ARGS="-DGGML_NATIVE=OFF" MAKEFLAGS=-j2 \
    /tmp/venv-ref/bin/pip install llama-cpp-python numpy gguf
  tools/fetch_models.sh --gemma3
  /tmp/venv-ref/bin/python tools/gen_llm_golden.py --llama-cpp-commit <hash of vendor/llama.cpp>
  /tmp/venv-ref/bin/python tools/gen_llm_golden.py --model-kind gemma3 --llama-cpp-commit <hash>
Changing the prompts, n_gen or the llama.cpp version changes the file; say why in the commit.
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

# Per model kind: the file in the model cache, the output under tests/data, and the prompts
# (a raw continuation, the model's own chat format, and code).
MODELS = {
    "smollm2": {
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "out": "smollm2_golden.json",
        "prompts": [
            ("raw_capital", "The capital of France is"),
            ("chat_arith",
             "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
             "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
            ("code_fib", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
            ("numbers_primes", "The first ten prime numbers are 2, 3, 5,"),
        ],
    },
    "gemma3": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "out": "gemma3_golden.json",
        "prompts": [
            ("raw_capital", "The capital of France is"),
            ("chat_arith", "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"),
            ("code_fib", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
        ],
    },
}
N_GEN = 32
N_TOP_STEPS = 8
TOP_K = 10
N_CTX = 512


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def top_k(logits, k):
    # Stable sort: equal logits keep the lower id first, as greedy argmax does.
    order = np.argsort(-logits, kind="stable")[:k]
    return [[int(i), round(float(logits[i]), 4)] for i in order]


def step_record(logits):
    order = np.argsort(-logits, kind="stable")[:2]
    return int(order[0]), round(float(logits[order[0]] - logits[order[1]]), 4)


# ---- llama.cpp -------------------------------------------------------------------------------

class LlamaCpp:
    def __init__(self, path, n_threads, kv_f32=False):
        import llama_cpp
        self.lib = llama_cpp
        # The KV cache is f16 unless kv_f32 (llama.cpp's default, so the golden uses it).
        f32 = llama_cpp.GGML_TYPE_F32
        kv = {"type_k": f32, "type_v": f32} if kv_f32 else {}
        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_CTX,
                                   n_threads=n_threads, n_threads_batch=n_threads,
                                   logits_all=True, verbose=False, **kv)
        self.add_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)

    def tokenize(self, text):
        # add_bos=True means "add what the model's metadata asks for" to llama.cpp; pass the
        # model's own flag so the choice is explicit. special=True parses <|im_start|> etc.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=self.add_bos, special=True)

    def is_eog(self, tok):
        return bool(self.lib.llama_vocab_is_eog(self.vocab, tok))

    def detokenize(self, ids):
        return self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace")

    def logits_after(self, ids):
        """Logits after each position of ids, [len(ids), n_vocab], from one batched eval."""
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[:len(ids)], dtype=np.float32, copy=True)

    def greedy(self, prompt_ids):
        self.llm.reset()
        self.llm.eval(prompt_ids)
        ids, gaps, tops = [], [], []
        for step in range(N_GEN):
            logits = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32)
            tok, gap = step_record(logits)
            ids.append(tok)
            gaps.append(gap)
            if step < N_TOP_STEPS:
                tops.append(top_k(logits, TOP_K))
            if self.is_eog(tok):
                break
            self.llm.eval([tok])
        return {"greedy_ids": ids, "greedy_text": self.detokenize(ids), "top1_gap": gaps,
                "top": tops}


# ---- numpy float32 forward pass ---------------------------------------------------------------

class NumpyLlama:
    """A llama-architecture forward pass in float32, written from the GGUF conventions:
    weights [n_out, n_in] after dequantisation, RoPE on adjacent pairs (the GGUF converter has
    already permuted q/k for that layout), rope frequencies base^(-2i/n_rot)."""

    ARCH = "llama"

    def __init__(self, path):
        from gguf import GGUFReader
        from gguf.quants import dequantize
        r = GGUFReader(str(path))
        meta = {name: f.contents() for name, f in r.fields.items()
                if not name.startswith("tokenizer.ggml.")}
        arch = meta["general.architecture"]
        assert arch == self.ARCH, f"{type(self).__name__} is written for {self.ARCH}, not {arch}"
        hp = lambda key, default=None: meta.get(f"{arch}.{key}", default)  # noqa: E731
        self.n_layer = int(hp("block_count"))
        self.n_embd = int(hp("embedding_length"))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv"))
        self.head_dim = int(hp("attention.key_length", self.n_embd // self.n_head))
        self.n_rot = int(hp("rope.dimension_count", self.head_dim))
        self.eps = float(hp("attention.layer_norm_rms_epsilon"))
        self.freq_base = float(hp("rope.freq_base", 10000.0))
        self.hparams(hp)
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).astype(np.float32)
            # GGUF lists dims innermost first: a weight [n_in, n_out] is the numpy [n_out, n_in].
            self.w[t.name] = a.reshape([int(n) for n in reversed(t.shape)])
        self.out_w = self.w.get("output.weight", self.w["token_embd.weight"])
        self.reset()

    def hparams(self, hp):
        """Architecture-specific hyper-parameters; hp(key, default) reads "<arch>.<key>"."""

    def reset(self):
        self.k_cache = [np.zeros((0, self.n_head_kv, self.head_dim), np.float32)
                        for _ in range(self.n_layer)]
        self.v_cache = [np.zeros((0, self.n_head_kv, self.head_dim), np.float32)
                        for _ in range(self.n_layer)]

    def rms_norm(self, x, w):
        return (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps)) * w

    def rope(self, x, pos):
        # x [T, heads, head_dim]; rotates pairs (2i, 2i+1) for 2i < n_rot.
        cos, sin = self.rope_angles(pos, self.freq_base)
        out = x.copy()
        x0, x1 = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
        out[..., 0:self.n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:self.n_rot:2] = x0 * sin + x1 * cos
        return out

    def rope_angles(self, pos, base):
        """cos, sin [T, 1, n_rot/2] of pos * base^(-2i/n_rot)."""
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        theta = pos[:, None].astype(np.float64) * base ** (-2.0 * i / self.n_rot)
        return (np.cos(theta).astype(np.float32)[:, None, :],
                np.sin(theta).astype(np.float32)[:, None, :])

    def attend(self, l, q, k, v, mask):
        """Appends k, v [T, n_head_kv, head_dim] to layer l's cache; returns the attention of
        q [T, n_head, head_dim] over the cache, [T, n_head * head_dim]. mask [T, S] adds."""
        T = q.shape[0]
        group = self.n_head // self.n_head_kv
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        self.k_cache[l] = np.concatenate([self.k_cache[l], k])
        self.v_cache[l] = np.concatenate([self.v_cache[l], v])
        K = np.repeat(self.k_cache[l], group, axis=1).transpose(1, 0, 2)  # [heads, S, hd]
        V = np.repeat(self.v_cache[l], group, axis=1).transpose(1, 0, 2)
        s = (q.transpose(1, 0, 2) @ K.transpose(0, 2, 1)) * scale + mask  # [heads, T, S]
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        return (s @ V).transpose(1, 0, 2).reshape(T, self.n_head * self.head_dim)

    def forward(self, ids):
        """Appends ids to the KV cache; returns logits [len(ids), n_vocab]."""
        T = len(ids)
        p0 = self.k_cache[0].shape[0]
        pos = np.arange(p0, p0 + T)
        x = self.w["token_embd.weight"][np.asarray(ids)]                      # [T, n_embd]
        mask = np.where(pos[:, None] >= np.arange(p0 + T)[None, :], 0.0, -np.inf).astype(np.float32)
        for l in range(self.n_layer):
            w = lambda n: self.w[f"blk.{l}.{n}.weight"]  # noqa: E731
            h = self.rms_norm(x, w("attn_norm"))
            q = (h @ w("attn_q").T).reshape(T, self.n_head, self.head_dim)
            k = (h @ w("attn_k").T).reshape(T, self.n_head_kv, self.head_dim)
            v = (h @ w("attn_v").T).reshape(T, self.n_head_kv, self.head_dim)
            q, k = self.rope(q, pos), self.rope(k, pos)
            x = x + self.attend(l, q, k, v, mask) @ w("attn_output").T
            h = self.rms_norm(x, w("ffn_norm"))
            g = h @ w("ffn_gate").T
            x = x + ((g / (1.0 + np.exp(-g))) * (h @ w("ffn_up").T)) @ w("ffn_down").T
        return self.rms_norm(x, self.w["output_norm.weight"]) @ self.out_w.T

    def logits_after(self, ids):
        self.reset()
        return self.forward(ids)

    def greedy(self, prompt_ids, detokenize, is_eog):
        # Tokenizer and end-of-generation set are llama.cpp's: this class checks the model math.
        self.reset()
        logits = self.forward(prompt_ids)[-1]
        ids, gaps, tops = [], [], []
        for step in range(N_GEN):
            tok, gap = step_record(logits)
            ids.append(tok)
            gaps.append(gap)
            if step < N_TOP_STEPS:
                tops.append(top_k(logits, TOP_K))
            if is_eog(tok):
                break
            logits = self.forward([tok])[-1]
        return {"greedy_ids": ids, "greedy_text": detokenize(ids), "top1_gap": gaps, "top": tops}


class NumpyGemma3(NumpyLlama):
    """Gemma 3 in float32, from llama.cpp's conventions for the architecture: token embeddings
    times sqrt(n_embd); per layer RMSNorm, q/k/v, an RMSNorm over each head of q and of k,
    NeoX rope (pairs (i, i + n_rot/2)), attention scaled by 1/sqrt(head_dim), an RMSNorm of
    the attention output before the residual add, and likewise around the GELU (tanh) FFN;
    output tied to token_embd. The GGUF norm weights already hold Gemma's (1 + w).
    Every sixth layer (l % 6 == 5) is global, with the file's rope base; the others attend to
    the last `sliding_window` positions only and use rope base 10000. Neither the pattern nor
    the local base is in the file: llama.cpp fixes both for gemma3."""
    ARCH = "gemma3"
    SWA_PERIOD = 6
    FREQ_BASE_LOCAL = 10000.0

    def hparams(self, hp):
        self.n_swa = int(hp("attention.sliding_window"))

    def rope(self, x, pos, base):
        cos, sin = self.rope_angles(pos, base)
        half = self.n_rot // 2
        out = x.copy()
        x0, x1 = x[..., 0:half], x[..., half:self.n_rot]
        out[..., 0:half] = x0 * cos - x1 * sin
        out[..., half:self.n_rot] = x0 * sin + x1 * cos
        return out

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.float32(np.sqrt(2.0 / np.pi)) * (x + 0.044715 * x ** 3)))

    def forward(self, ids):
        T = len(ids)
        p0 = self.k_cache[0].shape[0]
        pos = np.arange(p0, p0 + T)
        dist = pos[:, None] - np.arange(p0 + T)[None, :]                       # query - key
        mask_global = np.where(dist >= 0, 0.0, -np.inf).astype(np.float32)
        mask_local = np.where((dist >= 0) & (dist < self.n_swa), 0.0, -np.inf).astype(np.float32)
        x = self.w["token_embd.weight"][np.asarray(ids)] * np.float32(np.sqrt(self.n_embd))
        for l in range(self.n_layer):
            w = lambda n: self.w[f"blk.{l}.{n}.weight"]  # noqa: E731
            is_global = l % self.SWA_PERIOD == self.SWA_PERIOD - 1
            base = self.freq_base if is_global else self.FREQ_BASE_LOCAL
            h = self.rms_norm(x, w("attn_norm"))
            q = (h @ w("attn_q").T).reshape(T, self.n_head, self.head_dim)
            k = (h @ w("attn_k").T).reshape(T, self.n_head_kv, self.head_dim)
            v = (h @ w("attn_v").T).reshape(T, self.n_head_kv, self.head_dim)
            q = self.rope(self.rms_norm(q, w("attn_q_norm")), pos, base)
            k = self.rope(self.rms_norm(k, w("attn_k_norm")), pos, base)
            att = self.attend(l, q, k, v, mask_global if is_global else mask_local)
            x = x + self.rms_norm(att @ w("attn_output").T, w("post_attention_norm"))
            h = self.rms_norm(x, w("ffn_norm"))
            f = (self.gelu(h @ w("ffn_gate").T) * (h @ w("ffn_up").T)) @ w("ffn_down").T
            x = x + self.rms_norm(f, w("post_ffw_norm"))
        return self.rms_norm(x, self.w["output_norm.weight"]) @ self.out_w.T


def numpy_model(path):
    """The numpy forward pass for the file's general.architecture."""
    from gguf import GGUFReader
    arch = GGUFReader(str(path)).fields["general.architecture"].contents()
    classes = {c.ARCH: c for c in (NumpyLlama, NumpyGemma3)}
    assert arch in classes, f"no numpy forward pass for {arch}"
    return classes[arch](path)


def write_f32_copy(src, dst):
    """Writes src with every tensor dequantised to F32, so that llama.cpp runs it without
    rounding activations: with an F32 KV cache too it should match the numpy forward closely,
    which checks the numpy code itself."""
    from gguf import GGUFReader, GGUFWriter
    from gguf.quants import dequantize
    r = GGUFReader(str(src))
    w = GGUFWriter(str(dst), r.fields["general.architecture"].contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        w.add_key_value(name, f.contents(), f.types[0])
    w.add_file_type(0)  # all F32
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(n) for n in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def agreement(prompt_ids, ref, ref_logits, other_logits, other):
    """Compares logits along the llama.cpp sequence: row n_prompt-1+s is step s."""
    n = len(prompt_ids)
    diffs = []
    for s, top in enumerate(ref["top"]):
        ids = [i for i, _ in top]
        d = np.abs(ref_logits[n - 1 + s, ids] - other_logits[n - 1 + s, ids])
        diffs.append(round(float(d.max()), 4))
    pairs = enumerate(zip(ref["greedy_ids"], other["greedy_ids"]))
    first = next((s for s, (a, b) in pairs if a != b), None)
    if first is None and len(ref["greedy_ids"]) != len(other["greedy_ids"]):
        first = min(len(ref["greedy_ids"]), len(other["greedy_ids"]))
    return {"greedy_same": first is None, "first_greedy_diff": first,
            "max_abs_logit_diff_top10": diffs}


def main():
    root = Path(__file__).resolve().parent.parent
    default_dir = os.environ.get("VKI_MODEL_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vkinfer", "models")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-kind", choices=sorted(MODELS), default="smollm2",
                    help="which model, prompts and output file (default smollm2)")
    ap.add_argument("--model", help="the GGUF file (default: the kind's file in the model cache)")
    ap.add_argument("--out", help="output JSON (default: tests/data/<kind>_golden.json)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-cpp-commit", default="unknown",
                    help="commit of llama-cpp-python's vendor/llama.cpp (not visible from Python)")
    ap.add_argument("--no-numpy", action="store_true", help="skip the numpy forward pass")
    ap.add_argument("--no-validate", action="store_true",
                    help="skip checking the numpy forward against llama.cpp on an F32 copy "
                         "(writes a temp file of 540 MB for smollm2, 1.1 GB for gemma3)")
    args = ap.parse_args()
    kind = MODELS[args.model_kind]
    args.model = args.model or os.path.join(default_dir, kind["file"])
    args.out = args.out or str(root / "tests" / "data" / kind["out"])

    import llama_cpp
    lc = LlamaCpp(args.model, args.threads)
    gen = {"script": "tools/gen_llm_golden.py", "llama_cpp_python": llama_cpp.__version__,
           "llama_cpp_commit": args.llama_cpp_commit, "numpy": np.__version__,
           "n_threads": args.threads, "n_ctx": N_CTX, "kv_cache": "f16"}
    npl = None
    if not args.no_numpy:
        import gguf
        gen["gguf"] = getattr(gguf, "__version__", None) or _dist_version("gguf")
        npl = numpy_model(args.model)
    lc32 = None
    if npl is not None and not args.no_validate:
        import tempfile
        tmpdir = tempfile.TemporaryDirectory()
        f32_path = Path(tmpdir.name) / "f32.gguf"
        write_f32_copy(args.model, f32_path)
        lc32 = LlamaCpp(f32_path, args.threads, kv_f32=True)

    cases = []
    for name, prompt in kind["prompts"]:
        prompt_ids = lc.tokenize(prompt)
        case = {"name": name, "prompt": prompt, "prompt_ids": prompt_ids}
        case["llama_cpp"] = lc.greedy(prompt_ids)
        if npl is not None:
            case["numpy_f32"] = npl.greedy(prompt_ids, lc.detokenize, lc.is_eog)
            seq = prompt_ids + case["llama_cpp"]["greedy_ids"][:-1]
            np_logits = npl.logits_after(seq)
            case["agreement"] = agreement(prompt_ids, case["llama_cpp"], lc.logits_after(seq),
                                          np_logits, case["numpy_f32"])
            if lc32 is not None:
                # Over the whole vocabulary at every generated step.
                d = np.abs(lc32.logits_after(seq) - np_logits)[len(prompt_ids) - 1:]
                case["agreement"]["f32_llama_cpp_vs_numpy_max_abs"] = round(float(d.max()), 6)
        cases.append(case)
        print(f"{name}: {len(prompt_ids)} prompt ids -> {case['llama_cpp']['greedy_text']!r}"
              + (f"  agreement {case['agreement']}" if npl is not None else ""))

    doc = {"generator": gen,
           "model": {"file": kind["file"], "sha256": sha256_file(args.model),
                     "add_bos_token": lc.add_bos},
           "n_gen": N_GEN, "n_top_steps": N_TOP_STEPS, "top_k": TOP_K, "cases": cases}
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    # One line per top-10 list and per id list keeps the file short and diffable.
    Path(args.out).write_text(_compact(text) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


def _compact(text):
    """Re-indents json.dumps(indent=1) output so lists of numbers sit on one line."""
    import re
    def flat(m):
        return re.sub(r"\s+", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]")
    text = re.sub(r"\[[^\[\]{}\"]*\]", flat, text)              # [1, 2, 3]
    return re.sub(r"\[\s*(\[[^\[\]{}\"]*\],?\s*)+\]", flat, text)  # [[1, 2.5], [3, 1.5]]


if __name__ == "__main__":
    sys.exit(main())
