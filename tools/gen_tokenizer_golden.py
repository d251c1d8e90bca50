#!/usr/bin/env python3
"""Golden data for the tokenizer and chat-template tests, from independent references.

Token ids, pieces and the end-of-generation set come from llama.cpp (llama-cpp-python, with
vocab_only=True: only the vocabulary is read). When transformers and tokenizers are installed,
the same texts are also encoded by Hugging Face's GGUF tokenizer conversion and every
disagreement with llama.cpp is printed; llama.cpp's ids are the ones stored (vkinfer follows
llama.cpp, and transformers' conversion has no "smollm" pre-tokenizer: it does not split
digits one by one as SmolLM2's own tokenizer.json does).

Formatted chat prompts come from rendering the real Jinja templates with jinja2, set up as
transformers' apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks). SmolLM2's
template is read from its GGUF; Gemma 3's, Llama 3's and Llama 2's are the ones in the models'
tokenizer_config.json files on Hugging Face (the Gemma 3 270M GGUF used here is converted from
the base model and carries none); Llama 3.1's, 3.2's, 3.3's and Qwen2.5's are the files in
llama.cpp's models/templates, read from the llama-cpp-python 0.3.16 sdist (sha256-checked).
vkinfer's formatted text never starts with BOS, so one leading BOS that a template writes is
removed from the rendering. No date_string and no strftime_now are given, so the Llama 3.x
templates write their own default date, "26 Jul 2024", as vkinfer does (transformers defines
strftime_now, with which Llama 3.2's template writes the day of rendering instead).

Set-up (offline tool, never needed at run time):
    python3 -m venv /tmp/venv-tok
    /tmp/venv-tok/bin/pip install llama-cpp-python jinja2 gguf   # + transformers tokenizers
                                                                 #   sentencepiece protobuf
    python3 -m pip download --no-deps --no-binary :all: -d /tmp/sdist llama-cpp-python==0.3.16
Usage:
    /tmp/venv-tok/bin/python tools/gen_tokenizer_golden.py --model-dir DIR \
        --llama-cpp-sdist /tmp/sdist/llama_cpp_python-0.3.16.tar.gz [--out tests/data] [--chat-only]
DIR holds SmolLM2-135M-Instruct.Q4_1.gguf and gemma-3-270m-q4_k_m.gguf (tools/fetch_models.sh
--gemma3 puts both in the model cache). Writes tokenizer_smollm2.json, tokenizer_gemma3.json and
chat_templates.json; with --chat-only only chat_templates.json (then only jinja2 and gguf are
needed, not llama-cpp-python).
"""

import argparse
import ctypes
import hashlib
import json
import os
import sys
import tarfile

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"

# ---------------------------------------------------------------------------------------------
# Texts: ASCII, whitespace runs, Unicode scripts, digits, code, emoji, special tokens, edge cases.

LOREM = ("Tokenizers turn text into integers. This paragraph is long enough to be a realistic "
         "prompt: it mixes words, numbers like 1234567 and 3.25, punctuation (commas, dots; "
         "colons!) and a few Unicode letters such as é, ß, Ж and 中. ")

TEXTS = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    " hello",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple   spaces    between  words",
    "\ttabs\tand\nnewlines\n\n\nmore",
    "line one\r\nline two\r\n",
    "a \t\n b",
    "   ",
    "\n",
    "\n\n\n\n",
    " \n \n ",
    "word\n\n\n\n\nword",
    "I'm sure they'll say it's YOU'RE and we've, she'd, can't.",
    "Café naïve résumé – façade, Größe, Straße, œuvre, Ångström",
    "你好，世界！这是一个测试。",
    "こんにちは世界、カタカナとひらがな。",
    "안녕하세요 세계",
    "Привет, как дела? Съешь же ещё этих мягких французских булок.",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",
    "1234567890",
    "3.14159265358979323846",
    "phone: +1 (555) 123-4567, date 2024-11-26, 1,000,000 and 99.9%",
    "0 00 000 0000 00000 123456789012345678901234567890",
    "def square(x):\n    return x ** 2  # comment\n",
    "int main(void) { printf(\"%d\\n\", 42); return 0; }",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "if (a <= b && c != d || e >= f) { x += 1; y -= 2; }",
    "I ❤️ emoji 😀👍🏽 🇺🇸 family: 👨‍👩‍👧‍👦",
    "e\u0301 combining, zero\u200bwidth, a\u00a0nbsp, a\u3000ideographic",
    "∑∫√∞≠≤≥ ∀x∈ℝ: x²≥0",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "========================================",
    "!!!??? ... --- ___ *** ###",
    "Hello Мир 世界 مرحبا 123abc ABC123 a1b2c3",
    "CamelCaseIdentifier snake_case_name kebab-case-name SCREAMING_CASE",
    "https://example.com/path?query=1&b=2#frag user@example.org",
    LOREM * 20,  # about 3.5 KB
]

# Texts with special tokens, encoded both with and without parse_special.
SPECIAL_TEXTS = {
    "smollm2": [
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>",
        "text<|im_end|>more<|im_start|>",
        "<|im_start|><|im_start|>",
        "<|im_start",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n",
        "<reponame>x<file_sep>y<filename>z",
    ],
    "gemma3": [
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "<bos>text<eos>",
        "<start_of_turn><start_of_turn>",
        "<start_of_turn",
        "[multimodal] <start_of_image> <end_of_image>",
        "<unused0><unused6241>",
        "<pad><mask><unk>",
    ],
}

CONVERSATIONS = [
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "Hello!"}], False),
    ([{"role": "system", "content": "You are a pirate."},
      {"role": "user", "content": "Where is the treasure?"}], True),
    ([{"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "4"},
      {"role": "user", "content": "  And 3+3?  \n"}], True),
    ([{"role": "system", "content": "Answer briefly.\nUse English."},
      {"role": "user", "content": "Name a colour."},
      {"role": "assistant", "content": " Blue. "},
      {"role": "user", "content": "Another, in 日本語?"}], True),
    ([], True),
    ([{"role": "user", "content": "\u3000spaced\u00a0out\t"}], True),
]

# Rendered with the templates from the sdist only (the renders of the others stay as they were):
# system text to trim, a system turn alone, and a system message that is not the first.
SDIST_CONVERSATIONS = [
    ([{"role": "system", "content": "  Be terse.\n\n"}, {"role": "user", "content": "Hi"}], True),
    ([{"role": "system", "content": " \t "}, {"role": "user", "content": "Hi"}], False),
    ([{"role": "system", "content": "Only a system message."}], True),
    ([{"role": "user", "content": "First"}, {"role": "system", "content": " Late note "},
      {"role": "user", "content": "Second"}], True),
]

# Chat templates from the models' tokenizer_config.json on Hugging Face (template text is data).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n")

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

# The no-tools branch of Qwen2.5's template: its default system prompt is a Jinja '\n' escape.
QWEN25_EXCERPT = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")

# Real templates from llama.cpp's models/templates, in the llama-cpp-python 0.3.16 sdist:
# (name, vkinfer family, file, sha256 of the file, the default system prompt vkinfer extracts).
LLAMA_CPP_SDIST_SHA256 = "34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6"
LLAMA_CPP_TEMPLATES_DIR = "llama_cpp_python-0.3.16/vendor/llama.cpp/models/templates/"
SDIST_TEMPLATES = [
    ("llama3.1-8b", "llama3.1", "meta-llama-Llama-3.1-8B-Instruct.jinja",
     "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65", ""),
    ("llama3.2-3b", "llama3.1", "meta-llama-Llama-3.2-3B-Instruct.jinja",
     "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4", ""),
    ("llama3.3-70b", "llama3.1", "meta-llama-Llama-3.3-70B-Instruct.jinja",
     "e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65", ""),
    ("qwen2.5-7b", "chatml", "Qwen-Qwen2.5-7B-Instruct.jinja",
     "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f",
     "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
]
SDIST_TEMPLATE_TOKENS = {"llama3.1": ("<|begin_of_text|>", "<|eot_id|>"), "chatml": ("", "<|im_end|>")}


def sdist_templates(path):
    """The SDIST_TEMPLATES entries as chat_golden's template records, read from the sdist."""
    if sha256(path) != LLAMA_CPP_SDIST_SHA256:
        sys.exit(f"{path}: sha256 is not {LLAMA_CPP_SDIST_SHA256} (llama-cpp-python 0.3.16)")
    out = []
    with tarfile.open(path, "r:gz") as tar:
        for name, family, file, digest, default_system in SDIST_TEMPLATES:
            data = tar.extractfile(LLAMA_CPP_TEMPLATES_DIR + file).read()
            if hashlib.sha256(data).hexdigest() != digest:
                sys.exit(f"{file} in {path} has an unexpected sha256")
            bos, eos = SDIST_TEMPLATE_TOKENS[family]
            out.append({"name": name, "family": family, "source": data.decode("utf-8"), "bos": bos,
                        "eos": eos, "default_system": default_system})
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def gguf_string(path, key):
    import gguf
    field = gguf.GGUFReader(path).fields.get(key)
    return None if field is None else field.contents()


# ---------------------------------------------------------------------------------------------
# llama.cpp

class LlamaCpp:
    def __init__(self, path):
        import llama_cpp
        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.version = llama_cpp.__version__

    def encode(self, data, add_bos, special):
        return self.llm.tokenize(data, add_bos=add_bos, special=special)

    def piece(self, token):
        buf = ctypes.create_string_buffer(256)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        assert 0 <= n <= len(buf)
        return buf.raw[:n]

    def info(self):
        n = self.lib.llama_vocab_n_tokens(self.vocab)
        return {
            "vocab_size": n,
            "bos": self.lib.llama_vocab_bos(self.vocab),
            "eos": self.lib.llama_vocab_eos(self.vocab),
            "add_bos": bool(self.lib.llama_vocab_get_add_bos(self.vocab)),
            "end_ids": [i for i in range(n) if self.lib.llama_vocab_is_eog(self.vocab, i)],
        }


# ---------------------------------------------------------------------------------------------
# Hugging Face (cross-check only)

def hf_tokenizer(path):
    """transformers' GGUF tokenizer conversion, fed by the gguf package (transformers' own GGUF
    reader needs torch, which the conversion does not)."""
    try:
        import gguf
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (GGUF_TOKENIZER_MAPPING,
                                                                            convert_gguf_tokenizer)
    except Exception as e:  # noqa: BLE001 - optional
        print(f"  (no transformers cross-check: {e})")
        return None
    reader = gguf.GGUFReader(path)
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.") or key == "general.architecture":
            meta[key] = field.contents()
    d = {name: meta[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
         if f"tokenizer.{key}" in meta}
    try:
        tok, _ = convert_gguf_tokenizer(meta["general.architecture"], d)
    except Exception as e:  # noqa: BLE001
        print(f"  (no transformers cross-check: {e})")
        return None
    return tok


# ---------------------------------------------------------------------------------------------

def render(template, messages, add_generation_prompt, bos, eos):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    text = env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos, eos_token=eos)
    return text[len(bos):] if bos and text.startswith(bos) else text


def model_golden(name, path, template, bos_text, eos_text):
    print(f"{name}: {path}")
    ref = LlamaCpp(path)
    hf = hf_tokenizer(path)
    out = {"model": os.path.basename(path), "sha256": sha256(path),
           "reference": f"llama-cpp-python {ref.version} (llama.cpp), vocab_only"}
    out.update(ref.info())
    cases, disagree, piece_ids = [], [], set()

    def add(data, special, text=None, cross_check=False):
        ids = ref.encode(data, add_bos=False, special=special)
        case = {"text": text} if text is not None else {"hex": data.hex()}
        case.update({"special": special, "ids": ids})
        cases.append(case)
        piece_ids.update(ids)
        if hf is not None and cross_check and hf.encode(text, add_special_tokens=False).ids != ids:
            disagree.append(text)

    # Cross-checked: the texts without special tokens (transformers always matches special
    # tokens, as llama.cpp does only with special=True).
    for t in TEXTS:
        add(t.encode(), False, t, cross_check=True)
    for t in SPECIAL_TEXTS[name]:
        add(t.encode(), False, t)
        add(t.encode(), True, t)
    out["cases"] = cases
    # BOS as the model wants it (llama.cpp's add_special: BOS only where add_bos_token says so).
    out["default_bos"] = {"text": "Hello", "ids": ref.encode(b"Hello", add_bos=True, special=False)}

    # Pieces: every id the cases use, the special and end ids, and the vocabulary's first and
    # last few hundred (control, byte and user-defined tokens live there).
    n = out["vocab_size"]
    piece_ids.update(range(0, min(n, 300)))
    piece_ids.update(range(max(0, n - 50), n))
    piece_ids.update(out["end_ids"])
    out["pieces"] = [{"id": i, "hex": ref.piece(i).hex()} for i in sorted(piece_ids)]

    # Where vkinfer deliberately differs: llama.cpp ends generation on any token spelled "</s>"
    # (added for PaddleOCR) and retypes it CONTROL, which also hides it in decoded text. In
    # Gemma 3's vocabulary "</s>" is a user-defined HTML tag; vkinfer keeps the file's type.
    import gguf
    reader = gguf.GGUFReader(path)
    toks, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    quirk = [i for i in out["end_ids"] if toks.contents(i) == "</s>" and types.contents(i) != 3]
    out["vkinfer_differs"] = {
        "why": "llama.cpp treats a token spelled </s> as end-of-generation and control; vkinfer keeps its type",
        "not_end_ids": quirk,
        "pieces": [{"id": i, "hex": toks.contents(i).encode().hex()} for i in quirk],
    }

    chats = []
    for messages, gen in CONVERSATIONS:
        if not messages and name == "gemma3":
            continue
        text = render(template, messages, gen, bos_text, eos_text)
        chats.append({"messages": messages, "add_generation_prompt": gen, "text": text,
                      "ids": ref.encode(text.encode(), add_bos=out["add_bos"], special=True)})
    out["chats"] = chats

    if hf is None:
        print("  transformers cross-check skipped")
    else:
        print(f"  transformers agrees with llama.cpp on {len(TEXTS) - len(disagree)} of {len(TEXTS)} texts;"
              " llama.cpp's ids are stored")
        for t in disagree:
            print(f"    differs: {t[:60]!r}")
    return out


def chat_golden(smollm2_template, extra_templates):
    templates = [
        {"name": "smollm2", "family": "chatml", "source": smollm2_template, "bos": "", "eos": "<|im_end|>"},
        {"name": "gemma3", "family": "gemma", "source": GEMMA3_TEMPLATE, "bos": "<bos>", "eos": "<eos>"},
        {"name": "llama3", "family": "llama3", "source": LLAMA3_TEMPLATE, "bos": "<|begin_of_text|>",
         "eos": "<|eot_id|>"},
        {"name": "llama2", "family": "llama2", "source": LLAMA2_TEMPLATE, "bos": "<s>", "eos": "</s>"},
        {"name": "qwen2.5-excerpt", "family": "chatml", "source": QWEN25_EXCERPT, "bos": "", "eos": "<|im_end|>"},
    ]
    defaults = {"smollm2": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                "qwen2.5-excerpt": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}
    for t in templates:
        t["default_system"] = defaults.get(t["name"], "")
    templates += extra_templates
    renders = []
    for t in templates:
        conversations = CONVERSATIONS + (SDIST_CONVERSATIONS if t in extra_templates else [])
        for messages, gen in conversations:
            try:
                text = render(t["source"], messages, gen, t["bos"], t["eos"])
            except Exception as e:  # noqa: BLE001 - templates that reject a conversation
                print(f"  {t['name']}: skipped a conversation: {e}")
                continue
            renders.append({"template": t["name"], "messages": messages, "add_generation_prompt": gen,
                            "text": text})
    return {"generator": "tools/gen_tokenizer_golden.py (jinja2, as transformers' apply_chat_template)",
            "templates": templates, "renders": renders}


def dump(path, value):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(value, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--llama-cpp-sdist", required=True,
                    help="llama_cpp_python-0.3.16.tar.gz, for the Llama 3.x and Qwen2.5 templates")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    ap.add_argument("--chat-only", action="store_true", help="write chat_templates.json only")
    args = ap.parse_args()
    smollm2 = os.path.join(args.model_dir, SMOLLM2)
    gemma3 = os.path.join(args.model_dir, GEMMA3)
    smollm2_template = gguf_string(smollm2, "tokenizer.chat_template")
    if not smollm2_template:
        sys.exit(f"{smollm2} has no tokenizer.chat_template")
    if not args.chat_only:
        dump(os.path.join(args.out, "tokenizer_smollm2.json"),
             model_golden("smollm2", smollm2, smollm2_template, "", "<|im_end|>"))
        dump(os.path.join(args.out, "tokenizer_gemma3.json"),
             model_golden("gemma3", gemma3, GEMMA3_TEMPLATE, "<bos>", "<eos>"))
    dump(os.path.join(args.out, "chat_templates.json"),
         chat_golden(smollm2_template, sdist_templates(args.llama_cpp_sdist)))


if __name__ == "__main__":
    main()
