#!/usr/bin/env python3
"""Writes reference token ids for the Swift CLIP tokenizer and A1111's prompt syntax.

A dev tool, never needed by the test command. Its outputs are committed:
  Tests/StableDiffusionTests/Fixtures/tokenizer.json      ids of transformers' slow CLIPTokenizer
  Tests/StableDiffusionTests/Fixtures/prompt_syntax.json  A1111 attention parsing and 77-token chunking

The reference is transformers 4.x's slow CLIPTokenizer (the class diffusers loads) WITHOUT ftfy, i.e. its
BasicTokenizer(strip_accents=False, do_split_on_punc=False) path, under Python 3.11 (Unicode 14.0, which the
Swift code pins). The tokenizer is built from the shipped demo/tokenizer/merges.txt: vocab.json and
merges.txt are written to a temporary folder as the Hugging Face CLIP repositories have them.

Run (in a virtual environment of Python 3.11):
  pip install "transformers<5" && python3 Tools/make_tokenizer_fixtures.py
"""
import json
import pathlib
import random
import re as std_re
import sys
import tempfile
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent
MERGES_TXT = ROOT / "Sources" / "StableDiffusion" / "Resources" / "demo" / "tokenizer" / "merges.txt"
OUT = ROOT / "Tests" / "StableDiffusionTests" / "Fixtures"


def fail(message):
    sys.exit(f"make_tokenizer_fixtures: {message}")


try:
    import ftfy  # noqa: F401
    fail("ftfy is installed; the fixtures must come from the no-ftfy path. Run in a venv without ftfy.")
except ImportError:
    pass
if unicodedata.unidata_version != "14.0.0":
    fail(f"Python's unicodedata is {unicodedata.unidata_version}; use Python 3.11 (Unicode 14.0), as the Swift code pins it.")

import transformers  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

if not hasattr(CLIPTokenizer, "bpe"):
    fail(f"transformers {transformers.__version__} has no slow CLIPTokenizer; pip install 'transformers<5'.")
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402


def write_hf_files(folder):
    """vocab.json and merges.txt exactly as CLIP's Hugging Face repositories ship them."""
    lines = MERGES_TXT.read_text(encoding="utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


tmp = pathlib.Path(tempfile.mkdtemp())
write_hf_files(tmp)
tok_sd1 = CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
tok_sd2 = CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"), pad_token="!")
assert tok_sd1.fix_text is None, "transformers took the ftfy path"

# ---------------------------------------------------------------------------------------------------------
# Prompts

HAND = [
    # plain and typical SD prompts
    "a photo of a cat", "", " ", "A", "a", "Hello World", "HELLO WORLD", "hello   world",
    "a photograph of an astronaut riding a horse",
    "masterpiece, best quality, 1girl, solo, long hair, looking at viewer, smile, outdoors, cherry blossoms",
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, worst quality",
    "8k uhd, dslr, soft lighting, high quality, film grain, Fujifilm XT3",
    "portrait of a woman by Alphonse Mucha, art nouveau, intricate, elegant, highly detailed",
    "H.R. Giger biomechanical landscape", "Zdzisław Beksiński dystopian painting", "Hokusai 葛飾北斎 great wave",
    "a cyberpunk city at night, neon lights, rain, reflections, blade runner style, octane render, trending on artstation",
    # numbers
    "3.14", "1,000", "1,000,000 dollars", "2024", "pi is 3.14159265358979", "1st 2nd 3rd 4th", "50% off",
    "$100 bill", "£5 €10 ¥1000 ₹500", "-273.15°C", "1e10 and 6.022e23", "v1.5 vs v2.1 vs SDXL 1.0",
    "16:9 aspect ratio", "1920x1080", "0.5x zoom", "#1 hit", "24/7", "3/4 view",
    # contractions and apostrophes
    "don't", "DON'T", "I'm here", "you're", "we've", "they'll", "he'd", "it's", "'tis", "rock'n'roll",
    "O'Neil's pub", "y'all", "''s", "'s'", "can''t", "it’s curly", "won't've", "'S 'T 'RE 'VE 'M 'LL 'D",
    "isn't it", "l'été", "'", "''", "'''", "it'ſ long s", "'ſ",
    # whitespace
    "a  b", "\tfoo\tbar", "line1\nline2\r\nline3", "   leading and trailing   ", "a\u00a0b", "a\u3000b",
    "a\u2009b", "a\u200bb", "a\u2028b", "a\u2029b", "\n\n", "\t", "a\x0bb\x0cc", "a\x1cb\x1fc", "a\x85b",
    # control characters and replacement
    "a\x00b", "bell\x07", "del\x7f", "soft\u00adhyphen", "bom\ufeffhere", "repl\ufffdacement", "private\ue000use",
    "nonchar\uffff", "rtl\u200fmark", "wj\u2060x",
    # punctuation runs
    "!!!", "???", "...", "!?!?", "---", "***", "~~~", "hello!!! world!", "wow!!", "what?!", "(((masterpiece)))",
    "[[[bad]]]", "{a|b|c}", "<lora:detail:0.8>", "a -- b", "a—b–c", "“smart quotes”", "‘single’", "«guillemets»",
    "¿qué? ¡sí!", "@user #hashtag", "e-mail@example.com", "https://example.com/a?b=c&d=e#frag", "C:\\path\\to\\file",
    "x = y + 1;", "if (a && b) { return; }", "snake_case_name", "CamelCaseName", "ALLCAPS", "x_y-z.w",
    # HTML-ish
    "<b>bold</b> &amp; &lt;tag&gt;", "<div class=\"x\">content</div>", "<br/>", "a <i>b</i> c", "&nbsp;&quot;",
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "!<|endoftext|>x", "<|ENDOFTEXT|>", "<|endoftext|",
    "<|startoftext|><|endoftext|>", "<|ſtartoftext|>", "<|endof\u200btext|>", "x<|startoftext|>y <|endoftext|>",
    # Latin with accents, combining marks, case oddities
    "café", "cafe\u0301", "naïve résumé", "Ångström", "\u212bngstrom", "Crème Brûlée", "ÀÉÎÕÜ", "Straße", "STRASSE",
    "ẞ capital sharp s", "İstanbul", "ıiIİ", "ǅemal", "ﬁne ﬂow", "Ǆ ǅ ǆ", "Tiếng Việt có dấu", "Zürich Köln",
    "Z\u0337\u0322a\u0336l\u0338g\u0335o\u0336", "e\u0301\u0301\u0301", "a\u0345b", "\u0345", "Ελληνικά",
    "Καλημέρα ΚΟΣΜΕ", "ΟΔΟΣ", "ΣΑΣ Σ", "ΌΣΟΣ.", "Σ'Σ", "ά\u0345",
    # scripts
    "Москва — столица России", "ПРИВЕТ мир", "Ёлка", "مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "١٢٣ ٤٥٦", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีครับ", "안녕하세요 세계", "\u1100\u1161\u11a8", "東京タワーの夜景、美しい", "一只可爱的猫，坐在窗台上",
    "中文English混合", "ｶﾀｶﾅ ﾊﾝｶｸ", "ＦＵＬＬＷＩＤＴＨ ＡＢＣ １２３", "𠀀𠀁 ext b", "\U00020059\u0340", "兀 \uf900 compat",
    "ქართული", "Հայերեն", "ኢትዮጵያ", "ᠮᠣᠩᠭᠣᠯ", "ᚠᚢᚦ runes", "𝓗𝓮𝓵𝓵𝓸 𝐁𝐨𝐥𝐝", "Ⅻ ⅻ roman", "½ ¾ ² ³ ①②",
    "∑∫√∞ ≠ ≤ ≥", "→ ← ↔ ⇒", "♪♫ ♥ ★", "┌─┐", "°±×÷",
    # emoji
    "🙂", "a 🙂 b", "👍🏽", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "🇯🇵 🇺🇸", "1️⃣", "❤️ love", "🫨 shaking face",
    "🐱🐶🐭", "cat🐱dog", "😀😃😄😁😆😅😂🤣",
    # repeated and long words
    "a" * 100, "ab" * 60, "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "!" * 40, "x," * 50,
]

TAGS = """masterpiece, best quality, ultra detailed, 8k, photorealistic, cinematic lighting, volumetric fog,
depth of field, bokeh, golden hour, studio lighting, rim light, portrait, full body, close-up, wide angle,
1girl, 1boy, solo, smile, blue eyes, long hair, short hair, red dress, armor, sword, castle, forest, mountains,
ocean, sunset, night sky, stars, moon, city, street, rain, snow, cherry blossoms, flowers, cat, dog, dragon,
robot, spaceship, steampunk, cyberpunk, fantasy, sci-fi, oil painting, watercolor, sketch, anime, digital art,
concept art, trending on artstation, by greg rutkowski, by artgerm, unreal engine, octane render, sharp focus,
highly detailed, intricate, elegant, smooth, illustration, hdr, lens flare, film grain, kodak portra 400""".replace("\n", " ")
TAG_LIST = [t.strip() for t in TAGS.split(",")]
WORDS = ("the of and a to in is you that it he was for on are as with his they at be this have from or one had "
         "by word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who oil its now find long down day did").split()
EXOTIC = ["é", "ñ", "ü", "ø", "ß", "Ж", "ж", "λ", "Σ", "中", "日", "한", "ا", "א", "क", "ก", "🙂", "👍🏽", "½", "²",
          "①", "’", "'", "“", "—", "…", "!", "?", ",", ".", ":", ";", "(", ")", "[", "]", "\t", "\n", "\u00a0",
          "\u200b", "\u0301", "\u0345", "3.14", "1,000", "'s", "'ll", "<|endoftext|>"]


def generated(rng):
    prompts = []
    for _ in range(70):  # tag lists, some far past 77 tokens
        n = rng.choice([3, 8, 15, 30, 45, 60])
        prompts.append(", ".join(rng.choice(TAG_LIST) for _ in range(n)))
    for _ in range(40):  # sentences with case and punctuation noise
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 40))]
        words = [w.upper() if rng.random() < 0.1 else w.capitalize() if rng.random() < 0.2 else w for w in words]
        prompts.append(rng.choice([" ", "  ", ", ", "\t", " - "]).join(words) + rng.choice(["", ".", "!", "?!", "..."]))
    for _ in range(40):  # mixtures of exotic pieces, with and without spaces between them
        pieces = [rng.choice(EXOTIC + WORDS) for _ in range(rng.randint(2, 20))]
        prompts.append(rng.choice(["", " "]).join(pieces))
    for _ in range(30):  # random scalars from many blocks (not surrogates)
        blocks = [(0x20, 0x7F), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
                  (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x22FF),
                  (0x3000, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xACFF), (0xFB00, 0xFB4F), (0xFE00, 0xFE6F),
                  (0xFF00, 0xFFEF), (0x1D400, 0x1D4FF), (0x1F300, 0x1FAFF), (0x20000, 0x2002F), (0xE0000, 0xE007F)]
        chars = []
        for _ in range(rng.randint(1, 30)):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi - 1)))
        prompts.append("".join(chars))
    return prompts


PROMPTS = HAND + generated(random.Random(20240607))
assert len(PROMPTS) >= 250

cases = []
for index, prompt in enumerate(PROMPTS):
    case = {
        "prompt": prompt,
        "ids": tok_sd1(prompt, add_special_tokens=False, truncation=False)["input_ids"],
        "padded": tok_sd1(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"],
    }
    # The "!" pad style on a subset: every prompt with a "!" and every fifth other one.
    if "!" in prompt or index % 5 == 0:
        case["paddedExclamation"] = tok_sd2(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"]
    cases.append(case)

# A few other lengths, to pin truncation and padding at max_length != 77.
lengths = []
for prompt in ["a photo of a cat", "hello!!! world!", "one two three four five six seven eight nine ten", ""]:
    for max_length in [3, 5, 10]:  # at 2 transformers cannot truncate and returns everything
        for name, tok in [("endOfText", tok_sd1), ("exclamationMark", tok_sd2)]:
            ids = tok(prompt, padding="max_length", max_length=max_length, truncation=True)["input_ids"]
            lengths.append({"prompt": prompt, "maxLength": max_length, "padding": name, "ids": ids})

# ---------------------------------------------------------------------------------------------------------
# A1111's prompt syntax, re-implemented from modules/prompt_parser.py and modules/sd_hijack_clip.py.

ATTENTION_TOKEN = std_re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|
\(|\[|
:([+-]?[.\d]+)\)|
\)|]|
[^\\()\[\]:]+|
:
""", std_re.X)
BREAK_SPLIT = std_re.compile(r"\s*\bBREAK\b\s*", std_re.S)


def parse_attention(text):
    """Fragments [text, weight]; a BREAK is ["BREAK", -1]. Brackets multiply the weights of the fragments
    they enclose when they close (unclosed ones at the end); equal neighbours merge."""
    out, round_open, square_open = [], [], []

    def scale(start, factor):
        for item in out[start:]:
            item[1] *= factor

    for match in ATTENTION_TOKEN.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            out.append([piece[1:], 1.0])
        elif piece == "(":
            round_open.append(len(out))
        elif piece == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif piece == ")" and round_open:
            scale(round_open.pop(), 1.1)
        elif piece == "]" and square_open:
            scale(square_open.pop(), 1 / 1.1)
        else:
            for number, part in enumerate(BREAK_SPLIT.split(piece)):
                if number:
                    out.append(["BREAK", -1])
                out.append([part, 1.0])
    for start in round_open:
        scale(start, 1.1)
    for start in square_open:
        scale(start, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged = [out[0]]
    for item in out[1:]:
        if merged[-1][1] == item[1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return merged


def chunk_prompt(text, backtrack=20, pad_id=49407):
    """tokenize_line: fragments' ids filled into 75-token chunks, each wrapped in start/end and padded;
    a full chunk whose last comma is within `backtrack` tokens moves the tokens after it to the next chunk.
    Fragments go through the SD 1.x tokenizer for both pad ids: A1111 tokenizes SD 2.x prompts with
    open_clip, which has no special "!", and pads with 0 only after the end token."""
    start, end, comma, length = 49406, 49407, 267, 75
    fragments = parse_attention(text)
    chunks, count = [], 0
    state = {"tokens": [], "weights": [], "comma": -1}

    def finish(last=False):
        nonlocal count
        tokens, weights = state["tokens"], state["weights"]
        count += len(tokens) if last else length
        fill = length - len(tokens)
        tokens = [start] + tokens + [end] * max(fill, 0) + [end]
        weights = [1.0] + weights + [1.0] * max(fill, 0) + [1.0]
        if pad_id != end:  # SD 2.x: A1111's process_tokens pads after the first end token
            first = tokens.index(end)
            tokens = tokens[:first + 1] + [pad_id] * (len(tokens) - first - 1)
        chunks.append((tokens, weights))
        state.update(tokens=[], weights=[], comma=-1)

    for piece, weight in fragments:
        if piece == "BREAK" and weight == -1:
            finish()
            continue
        for token in tok_sd1(piece, truncation=False, add_special_tokens=False)["input_ids"]:
            if token == comma:
                state["comma"] = len(state["tokens"])
            elif backtrack and len(state["tokens"]) == length and state["comma"] != -1 \
                    and len(state["tokens"]) - state["comma"] <= backtrack:
                cut = state["comma"] + 1
                moved_tokens, moved_weights = state["tokens"][cut:], state["weights"][cut:]
                state["tokens"], state["weights"] = state["tokens"][:cut], state["weights"][:cut]
                finish()
                state["tokens"], state["weights"] = moved_tokens, moved_weights
            if len(state["tokens"]) == length:
                finish()
            state["tokens"].append(token)
            state["weights"].append(weight)
    if state["tokens"] or not chunks:
        finish(last=True)
    return chunks, count


ATTENTION_CASES = [
    "normal text", "an (important) word", "(unbalanced", "\\(literal\\]", "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", "(word:1.2)", "(word)", "[word]", "((word))",
    "[[word]]", "((word:1.5))", "[(word:1.5)]", "(a [b] c)", "(a (b (c (d))))", "[a [b [c]]]", "(a:0)",
    "(a:-1)", "(a:+2)", "(a:.5)", "(a:1.)", "(a:10)", "(a:1.5) (b:1.5)", "(a)(b)", "[a][b]", "(a) [b]",
    "\\(a\\)", "\\[a\\]", "\\\\", "a\\b", "a\\", "\\", "\\\\(a)", ")", "]", "a)b]c", "a:b", ":", "a:1.2)",
    "(a:b)", "(a:1.2", "(a:1.2 b)", "(a:1.2]", "[a:1.2]", "(:1.2)", "(a::1.2)", "((a:1.2):1.5)",
    "(a BREAK b)", "a BREAK b", "aBREAK b", "a BREAKb", "a BREAK_ b", "a break b", "BREAK", "BREAK BREAK",
    "a BREAK BREAK b", "a  BREAK  b", "a\nBREAK\nb", "a,BREAK,b", "(BREAK:-1)", "(BREAK:1)", "a (b BREAK c) d",
    "(a:١.٥)", "", "   ", "(", "[", "((", "()", "[]", "(())", "([)]", "a (b:0.5) c (d:0.5)", "ÀBREAK", "BREAKÀ",
    "a ½BREAK b", "café (crème:1.3) brûlée", "(🙂:1.2) [🐱]", "<lora:x:0.8>", "(masterpiece:1.2), (best quality:1.1), 1girl",
]
ATTENTION_ERRORS = ["(a:.)", "(a:1.2.3)", "(a:..5)", "(a:+.)"]

CHUNK_CASES = [
    ("", 20), ("a photo of a cat", 20), ("(masterpiece:1.2), [bad], ((good))", 20),
    ("a BREAK b", 20), ("a BREAK", 20), ("BREAK", 20), ("BREAK a", 20), ("a BREAK BREAK b", 20), ("(a BREAK b)", 20),
    (", ".join(TAG_LIST), 20), (", ".join(TAG_LIST), 0), (", ".join(TAG_LIST), 5), (", ".join(TAG_LIST * 2), 20),
    (" ".join(["word"] * 75), 20), (" ".join(["word"] * 76), 20), (" ".join(["word"] * 150), 20),
    (" ".join(["word"] * 151), 20), (" ".join(["word"] * 74) + ",", 20), (" ".join(["word"] * 74) + ", next", 20),
    (" ".join(["word"] * 60) + ", " + " ".join(["word"] * 20), 20),
    (" ".join(["word"] * 50) + ", " + " ".join(["word"] * 30), 20),
    (" ".join(["word"] * 54) + ", " + " ".join(["word"] * 30), 20),
    (" ".join(["word"] * 55) + ", " + " ".join(["word"] * 30), 20),
    (" ".join(["word"] * 60) + ", " + " ".join(["word"] * 20), 0),
    ("(" + ", ".join(TAG_LIST[:40]) + ":1.3), " + ", ".join(TAG_LIST[40:]), 20),
    (", ".join(TAG_LIST[:30]) + " BREAK " + ", ".join(TAG_LIST[30:]), 20),
    ("a, b, c BREAK " + " ".join(["x"] * 80), 20),
    (",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,", 20),
]
CHUNK_SD2_CASES = ["a photo of a cat", ", ".join(TAG_LIST), "a BREAK b", "wow!! (great:1.2)"]

attention = [{"prompt": p, "fragments": parse_attention(p)} for p in ATTENTION_CASES]
for prompt in ATTENTION_ERRORS:
    try:
        parse_attention(prompt)
        fail(f"{prompt!r} was expected to fail in float()")
    except ValueError as error:
        weight = ATTENTION_TOKEN.search(prompt, prompt.index(":")).group(1)
        attention.append({"prompt": prompt, "error": weight, "message": str(error)})

chunking = []
for prompt, backtrack in CHUNK_CASES:
    chunks, count = chunk_prompt(prompt, backtrack)
    chunking.append({"prompt": prompt, "backtrack": backtrack, "padding": "endOfText", "tokenCount": count,
                     "tokens": [c[0] for c in chunks], "weights": [c[1] for c in chunks]})
for prompt in CHUNK_SD2_CASES:
    chunks, count = chunk_prompt(prompt, 20, pad_id=0)
    chunking.append({"prompt": prompt, "backtrack": 20, "padding": "exclamationMark", "tokenCount": count,
                     "tokens": [c[0] for c in chunks], "weights": [c[1] for c in chunks]})

# ---------------------------------------------------------------------------------------------------------

about = {"transformers": transformers.__version__, "python": sys.version.split()[0],
         "unicodedata": unicodedata.unidata_version, "ftfy": False,
         "reference": "transformers CLIPTokenizer (slow), BasicTokenizer path"}


def write(name, sections):
    """One JSON object per line inside each list, so that diffs of regenerated fixtures stay readable."""
    lines = []
    for key, value in sections.items():
        if isinstance(value, list):
            items = ",\n".join(json.dumps(item, ensure_ascii=False) for item in value)
            lines.append(f"{json.dumps(key)}: [\n{items}\n]")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    (OUT / name).write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")


OUT.mkdir(parents=True, exist_ok=True)
write("tokenizer.json", {"about": about, "cases": cases, "lengths": lengths})
write("prompt_syntax.json", {"about": about, "attention": attention, "chunks": chunking})
print(f"wrote {len(cases)} tokenizer cases, {len(lengths)} length cases, {len(attention)} attention cases, "
      f"{len(chunking)} chunk cases to {OUT}")
