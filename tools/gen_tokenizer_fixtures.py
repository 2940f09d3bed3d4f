#!/usr/bin/env python3
"""Generates the tokenizer conformance fixtures under tests/data/tokenizer/.

  corpus.jsonl            one {"text": ...} per line: the strings below (hand-written and generated)
  expected_<name>.jsonl   for each tokenizer, one line per corpus string, computed with the
                          Hugging Face `tokenizers` package (the only source of expected ids):
                            ids          encode(text, add_special_tokens=False).ids
                            ids_plain    the same with encode_special_tokens=True (special tokens
                                         written in the text are not recognised), when different
                            decoded      decode(ids, skip_special_tokens=False), when it is not
                                         the text itself
                            decoded_skip decode(ids, skip_special_tokens=True), when different
  special_cases.jsonl     {"tokenizer", "text", "ids"} with add_special_tokens=True
  flags/tokenizer.json    a small BPE trained here, using every added-token flag (expected ids in
                          expected_flags.jsonl)
  <name>.gguf             tokenizer-only GGUF files converted from tokenizer.json the way
                          llama.cpp's converter writes tokenizer.ggml.* (model "gpt2", pre name,
                          tokens in the byte alphabet, token_type, "a b" merges, special ids)

Gemma's tokenizer.json (33 MB) is not committed: the tests read it from REASON_SHARED_DATA, and
test_tokenizer.c also writes it as a SentencePiece GGUF (model "llama") at test time.

--check-sentencepiece (needs the `sentencepiece` and `protobuf` packages; writes nothing) checks
the assumption behind that GGUF test against the SentencePiece library itself: a BPE ModelProto
built from Gemma's pieces, scored as the test scores them (minus the rank of a piece's first
merge), must encode the corpus to the `tokenizers` ids; it also prints the ids of the small
model that test_tokenizer.c (spm_gguf_scores) expects.

Usage: tools/gen_tokenizer_fixtures.py [--shared /work/shared/data] [--out tests/data/tokenizer]
                                       [--no-gguf] [--check-sentencepiece]
"""
import argparse
import json
import os
import random
import unicodedata

from tokenizers import Tokenizer

TOKENIZERS = ["qwen3", "qwen2_5", "llama3", "llama3_2", "gpt2", "gptoss", "gemma3"]

# GGUF files written from tokenizer.json: (source tokenizer, tokenizer.ggml.pre).
# Only qwen3 is committed as GGUF: the test data must stay under 30 MB in all.
GGUF_FILES = [("qwen3", "qwen2")]

HAND_WRITTEN = [
    # English and punctuation
    "Hello world",
    "Hello, world!",
    " Hello world",
    "Hello  world",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!!!",
    "i.e., e.g., etc. -- and so on...",
    "Wait... what?! No way!!!",
    "\"Quoted\" and 'single quoted' and `backticks`",
    "(parentheses) [brackets] {braces} <angles>",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "C:\\Users\\name\\file.txt",
    "a-b_c.d/e\\f|g~h^i",
    "!!!???...,,,;;;:::",
    "@#$%^&*()_+-=[]{}|;':\",./<>?",
    "Mr. O'Neil's dog didn't bark.",
    # contractions and case variants
    "I'm you're he's she'd we'll they've it's can't won't",
    "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S CAN'T",
    "I'm I'M i'm I'm",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "'Ll 'lL 'Re 'rE 'Ve 'vE",
    "don't DON'T Don'T dOn't",
    "'sup 'twas 'tis 'em",
    "rock 'n' roll",
    "The cat's toy; the cats' toys.",
    "He said 'hello' and left'",
    "x'''y",
    "it\u2019s curly apostrophe",
    "\u017fs long s and \u212a kelvin",
    "'\u017f '\u017f\u017f",
    # Latin with accents
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade",
    "\u00c9l\u00e8ve \u00e0 l'\u00e9cole, o\u00f9 est-il?",
    "Stra\u00dfe, \u00fcber, \u00c4rger, \u00d6l",
    "\u0141\u00f3d\u017a, \u017c\u00f3\u0142w, \u015bwi\u0119ty",
    "S\u00e3o Paulo, cora\u00e7\u00e3o, ma\u00e7\u00e3",
    "\u00c5ngstr\u00f6m \u00e6\u00f8\u00e5 \u00c6\u00d8\u00c5",
    "T\u00fcrk\u00e7e \u0130stanbul \u0131\u015f\u0131k",
    "Vi\u1ec7t Nam, Ti\u1ebfng Vi\u1ec7t",
    # Cyrillic, Greek, Armenian, Georgian
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0417\u0414\u0420\u0410\u0412\u0421\u0422\u0412\u0423\u0419\u0422\u0415 \u0442\u043e\u0432\u0430\u0440\u0438\u0449\u0438",
    "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u043c\u043e\u0432\u0430: \u0457\u0436\u0430\u043a, \u0491\u0430\u043d\u043e\u043a",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u0391\u0392\u0393\u0394 \u03b1\u03b2\u03b3\u03b4 \u03c0 \u2248 3.14159",
    "\u0532\u0561\u0580\u0565\u0582 \u0561\u0577\u056d\u0561\u0580\u0570",
    "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    # Arabic, Hebrew, Persian (RTL)
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629 \u0645\u0639 \u062a\u0634\u0643\u064a\u0644",
    "\u0661\u0662\u0663 \u0664\u0665\u0666 Arabic-Indic digits",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u05e2\u05b4\u05d1\u05b0\u05e8\u05b4\u05d9\u05ea \u05e2\u05dd \u05e0\u05d9\u05e7\u05d5\u05d3",
    "\u0633\u0644\u0627\u0645 \u062f\u0646\u06cc\u0627\u06cc \u0641\u0627\u0631\u0633\u06cc \u06f1\u06f2\u06f3",
    "mixed \u05e2\u05d1\u05e8\u05d9\u05ea and English \u0639\u0631\u0628\u064a",
    # Indic, Thai, other Asian scripts
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092e\u0947\u0902 \u0967\u0968\u0969 \u0905\u0902\u0915",
    "\u0b95\u0bae\u0bcd\u0baa\u0bcd\u0baf\u0bc2\u0b9f\u0bcd\u0b9f\u0bb0\u0bcd",
    "\u09ac\u09be\u0982\u09b2\u09be \u09ad\u09be\u09b7\u09be",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u0e02\u0e49\u0e32\u0e1e\u0e40\u0e08\u0e49\u0e32\u0e0a\u0e37\u0e48\u0e2d\u0e2a\u0e21\u0e0a\u0e32\u0e22",
    "\u1781\u17d2\u1798\u17c2\u179a \u179b\u17b6\u179c",
    "\u1019\u103c\u1014\u103a\u1019\u102c\u1005\u102c",
    "\u12a0\u121b\u122d\u129b \u134a\u12f0\u120d",
    # CJK, Korean, Japanese
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u6211\u4eec\u53bb\u516c\u56ed\u5427\uff1f",
    "\u81ea\u7136\u8bed\u8a00\u5904\u7406\u662f\u4eba\u5de5\u667a\u80fd\u7684\u4e00\u4e2a\u5206\u652f",
    "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u9ad4\u4e2d\u6587",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57",
    "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85 halfwidth",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4. \uac10\uc0ac\ud569\ub2c8\ub2e4!",
    "\u1112\u1161\u11ab\u1100\u1173\u11af conjoining jamo",
    "\uff21\uff22\uff23\uff11\uff12\uff13 fullwidth",
    "\U00020000\U0002a6d6 CJK extension B",
    "\u3000ideographic\u3000space\u3000",
    # emoji
    "\U0001F600\U0001F601\U0001F602",
    "I love \U0001F355 and \U0001F363!",
    "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 family",
    "\U0001F44D\U0001F3FB\U0001F44D\U0001F3FC\U0001F44D\U0001F3FD\U0001F44D\U0001F3FE\U0001F44D\U0001F3FF",
    "\U0001F3F3\uFE0F\u200D\U0001F308 \U0001F3F4\u200D\u2620\uFE0F",
    "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5\U0001F1E9\U0001F1EA flags",
    "\u2764\uFE0F \u2764 \u263A\uFE0F",
    "\U0001F9D1\U0001F3FD\u200D\U0001F4BB coding",
    "emoji\U0001F600inside\U0001F600words",
    "1\uFE0F\u20E3 2\uFE0F\u20E3 #\uFE0F\u20E3",
    "\U0001F926\U0001F3FC\u200D\u2642\uFE0F",
    # code
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }",
    "fn main() -> Result<(), Box<dyn Error>> {\n    let x: Vec<u8> = vec![1, 2, 3];\n    Ok(())\n}",
    "const f = async (x) => { await fetch(`/api/${x}`); };",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<div class=\"a\"><span>text</span></div>",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "if x == 0:\n\tpass\nelif x != 1:\n\t\tx **= 2\n",
    "    indented four\n        indented eight\n",
    "$ ls -la | grep '^d' > out.txt 2>&1 && echo done",
    "public static void main(String[] args) throws Exception {}",
    "x := map[string]int{\"a\": 1}; fmt.Println(x)",
    "a<<=1; b>>=2; c&&d||e; f!=g; h===i; j!==k",
    "// comment\n/* block */\n# hash\n-- dash",
    "0x1F 0b1010 0o777 1e-9 3.14e+10 1_000_000",
    # LaTeX and math
    "$\\frac{a}{b} + \\sqrt{x^2 + y^2}$",
    "\\begin{align} E &= mc^2 \\\\ F &= ma \\end{align}",
    "\\boxed{42}",
    "The answer is \\(\\int_0^1 x\\,dx = \\tfrac{1}{2}\\).",
    "\u2200x \u2208 \u211d, \u2203y: x\u00b2 + y\u00b2 \u2264 1 \u21d2 \u2211\u1d62 a\u1d62",
    "\u00bd \u00bc \u2153 \u2155 \u00b2 \u00b3 \u2070 \u2081\u2082",
    "\u2160 \u2161 \u2162 \u2163 roman numerals",
    # numbers
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678",
    "3.14159265358979", "-42", "+7", "1,234,567.89", "1.234.567,89",
    "2024-01-15T10:30:00Z", "v1.2.3-beta+build.5", "192.168.0.1:8080",
    "phone: +1 (555) 123-4567", "A1B2C3D4", "abc123def456", "x1 y22 z333 w4444",
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    "\u0966\u0967\u0968\u0969", "\uff10\uff11\uff12\uff13\uff14",
    # whitespace
    "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\n\n\n", " \n", "\n ", " \n ",
    "trailing space ", "trailing spaces   ", "   leading spaces", "\ttab\tseparated\tvalues\t",
    "line one\nline two\r\nline three\rline four",
    "a\n\n\nb", "a \n \n b", "a\t\n\tb", "end with newline\n", "end with crlf\r\n",
    "non\u00a0breaking\u00a0space", "\u00a0\u00a0leading nbsp", "thin\u2009space and em\u2003space",
    "zero\u200bwidth\u200cnon\u200djoiner", "line\u2028separator\u2029paragraph",
    "vertical\x0btab\x0cform feed", "nel\u0085next line", "mongolian\u180evowel sep",
    "!\u180e\u180e?", "word \u3000 ideographic", "  \t \n\t  mixed  \r\n  ",
    "a" + " " * 17 + "b", "\n" * 9, " " * 33, "\t" * 6 + "x",
    # control and odd characters
    "null\x00byte", "bell\x07 and escape\x1b[0m", "\x01\x02\x03\x1f", "del\x7f",
    "\ufeffBOM at start", "replacement \ufffd char", "private \ue000\uf8ff use",
    "\U0010fffd plane 16", "combining a\u0301 e\u0300 o\u0308", "a\u0301\u0301\u0301",
    "\u0915\u094d\u200d\u0937", "soft\u00adhyphen",
    # special tokens written in text
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
    "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
    "<think></think>",
    "</think>done",
    "x<think>y</think>z",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|>", "text<|endoftext|>more text", "<|endoftext|><|endoftext|>",
    "<|end_of_text|> <|eot_id|> <|reserved_special_token_5|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "< |im_start| > <|im_start <|im_start|", "<<|im_start|>>", "<|im_start|><|im_start|>",
    " <|im_start|> spaced ", "<|im_end|>\n", "<|im_start|>", "<|startoftext|>hi<|return|>",
    "<|start|>assistant<|channel|>analysis<|message|>thinking<|end|>",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<think>\u601d\u8003</think>\u7b54\u6848",
    "<|IM_START|> <THINK> </Think>",
    # added-token flags (see build_flags_tokenizer)
    "a <mask> b", "a<mask>b", "a   <mask>   b", "<mask><mask> <mask>", "x [SEP]  y", "x[SEP]\n\ny",
    "  <both>  z", "<both>", "q\t<both>\tq", "word words sword word. (word) _word word_",
    "\u1e09o c\u0327\u0301o \u1e08O caf\u00e9", "\u03a9mega \u2126mega", "<s>x</s>", "abc123def 4567",
]

# SentencePiece style (Gemma): its special and added tokens, its space character written in the
# text, byte pieces written as text, characters without a piece (byte fallback). Appended last and
# left out of the flags tokenizer's training, so that the earlier fixtures keep their rows.
SENTENCEPIECE = [
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\n\n\n  two  spaces<end_of_turn>", "<eos><pad><unk><mask>",
    "<start_of_image><image_soft_token><end_of_image>", "<unused0> <unused6241>",
    "\u2581 \u2581\u2581  \u2581x\u2581\u2581y", "<0x41><0xE4> <0x0A>", "\t\t\t\t \n\n\n\n\n",
    "\U0001F9A9\U0001FAE0\U0001FAA8 \U0001F1E6\U0001F1FD", "\u2c80\u2c81 \U0001D11E \U00010348",
    "\ue000\ue001\ue002 \U000F0000\U0010FFFF", "\u3400\u4db5\U0002B740\U0002CEB0",
]

CONTRACTION_BASES = ["it", "IT", "It", "we", "WE", "they", "THEY", "you", "You"]
SUFFIXES = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL",
            "'Ll", "'lL", "'d", "'D"]
NFD_SOURCES = ["caf\u00e9", "r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m", "Vi\u1ec7t Nam",
               "\ud55c\uad6d\uc5b4", "\u00e9\u00e8\u00ea\u00eb", "na\u00efve co\u00f6perate",
               "\u1e9b\u0323", "\u212b \u2126 \u00c5", "\u0958\u0959 \u095a",
               "Stra\u00dfe \u00fcber", "\u3070\u3071 \u30d0\u30d1", "\u01c4 \u01c5 \u01c6",
               "fran\u00e7ais \u00e0 la fa\u00e7on"]
FRAGMENTS = ["Hello", " world", "123", " 4567", "\u00e9t\u00e9", " \u4f60\u597d", "\U0001F600",
             "'s", "'LL", "\n", "\r\n", "\t", "  ", " ", "!", "?!", "...", "<think>", "</think>",
             "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "\u00a0",
             "\u041f\u0440\u0438\u0432\u0435\u0442", "\u0645\u0631\u062d\u0628\u0627",
             "x=1;", "def", " (a, b)", "\u3002", "\u0e44\u0e17\u0e22", "99", "0", " 0.5",
             "\U0001F44D\U0001F3FD", "\u200d", "_", "--", "$\\alpha$", "\u00e9", "e\u0301"]


def build_corpus():
    corpus = list(HAND_WRITTEN)
    for n in range(1, 41):  # digit runs of every length up to 40
        corpus.append("".join(str((i * 7 + n) % 10) for i in range(n)))
    for n in (9, 10, 11, 13, 16, 20):
        corpus.append("x" + "9" * n + " " + "1" * n + "y")
    for base in CONTRACTION_BASES:
        corpus.append(" ".join(base + s for s in SUFFIXES))
    for s in NFD_SOURCES:
        corpus.append(unicodedata.normalize("NFD", s))
        corpus.append(unicodedata.normalize("NFC", s))
        corpus.append(unicodedata.normalize("NFKD", s))
    for ws in [" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "\u2009"]:
        corpus.append("a" + ws + "b" + ws)
        corpus.append(ws + "word" + ws + "word")
        corpus.append("1" + ws + "2" + ws + "!" + ws)
    rng = random.Random(20260425)
    for _ in range(120):
        k = rng.randint(2, 9)
        corpus.append("".join(rng.choice(FRAGMENTS) for _ in range(k)))
    # Long strings: a paragraph and a long whitespace run.
    corpus.append(" ".join(HAND_WRITTEN[:40]))
    corpus.append("x" + " " * 300 + "y" + "\n" * 50 + "z")
    corpus.append("ab" * 400)
    corpus += SENTENCEPIECE
    seen, unique = set(), []
    for s in corpus:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def expected_rows(tok, plain_tok, corpus):
    rows = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False).ids
        row = {"ids": ids}
        plain = plain_tok.encode(text, add_special_tokens=False).ids
        if plain != ids:
            row["ids_plain"] = plain
        decoded = tok.decode(ids, skip_special_tokens=False)
        if decoded != text:
            row["decoded"] = decoded
        skip = tok.decode(ids, skip_special_tokens=True)
        if skip != decoded:
            row["decoded_skip"] = skip
        rows.append(row)
    return rows


def config_token(config, key):
    v = config.get(key)
    if isinstance(v, dict):
        v = v.get("content")
    return v


def write_gguf(src_dir, pre, out_path):
    import gguf

    with open(os.path.join(src_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    config_path = os.path.join(src_dir, "tokenizer_config.json")
    config = {}
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    vocab = tj["model"]["vocab"]
    added = {t["id"]: t for t in tj.get("added_tokens", [])}
    n = max(list(vocab.values()) + list(added.keys())) + 1
    reverse = {i: s for s, i in vocab.items()}
    tokens, types = [], []
    for i in range(n):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i]["special"]
                         else gguf.TokenType.USER_DEFINED)
        elif i in reverse:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    ids = {t: i for i, t in enumerate(tokens)}

    w = gguf.GGUFWriter(out_path, "tokenizer")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key, add in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id),
                     ("pad_token", w.add_pad_token_id)):
        name = config_token(config, key)
        if name in ids:
            add(ids[name])
    # BOS is added exactly when the tokenizer.json post-processor adds it (as HF does).
    probe = Tokenizer.from_file(os.path.join(src_dir, "tokenizer.json"))
    w.add_add_bos_token(len(probe.encode("a", add_special_tokens=True).ids) >
                        len(probe.encode("a", add_special_tokens=False).ids))
    if isinstance(config.get("chat_template"), str):
        w.add_chat_template(config["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_flags_tokenizer(corpus, path):
    """A small byte-level BPE trained on the corpus, with added tokens using every flag
    (lstrip, rstrip, single_word, normalized), NFC, Digits + ByteLevel(add_prefix_space) and a
    template adding <s> ... </s>."""
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<s>", "</s>"])
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True),
                            AddedToken("[SEP]", rstrip=True, special=True),
                            AddedToken("<both>", lstrip=True, rstrip=True, special=True)])
    tok.add_tokens([AddedToken("word", single_word=True, normalized=False),
                    # Outside Latin-1 on purpose: the crate decodes added tokens through the
                    # ByteLevel decoder, so "caf\u00e9" would decode to "caf\ufffd" there, while
                    # we decode an added token as its literal content.
                    AddedToken("\u1e09o", normalized=True),
                    AddedToken("\u03a9mega", normalized=True),
                    AddedToken("<think>", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")),
                                              ("</s>", tok.token_to_id("</s>"))])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tok.save(path)


def sentencepiece_model(pieces, byte_fallback=True):
    """A SentencePiece BPE processor over (piece, score, type) triples: identity normalizer, no
    dummy prefix, spaces written as U+2581 (Gemma's settings)."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(pieces)
    m.trainer_spec.byte_fallback = byte_fallback
    unk = [i for i, (_, _, t) in enumerate(pieces) if t == 2]
    m.trainer_spec.unk_id = unk[0]
    for name in ("bos_id", "eos_id", "pad_id"):
        setattr(m.trainer_spec, name, -1)
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for piece, score, kind in pieces:
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, kind
    return sentencepiece.SentencePieceProcessor(model_proto=m.SerializeToString())


def check_sentencepiece(shared, out):
    with open(os.path.join(shared, "tokenizers", "gemma3", "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    vocab, merges = tj["model"]["vocab"], tj["model"]["merges"]
    n = max(max(vocab.values()), max(t["id"] for t in tj["added_tokens"])) + 1
    pieces = [None] * n
    for piece, i in vocab.items():
        pieces[i] = [piece, -1e7, 6 if len(piece) == 6 and piece.startswith("<0x") else 1]
    for t in tj["added_tokens"]:
        kind = 4 if not t["special"] else 2 if t["content"] == "<unk>" else 3
        pieces[t["id"]] = [t["content"], -1e7, kind]
    for rank, (a, b) in enumerate(merges):
        entry = pieces[vocab[a + b]]
        if entry[1] == -1e7:
            entry[1] = -float(rank)
    sp = sentencepiece_model(pieces)
    with open(os.path.join(out, "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line)["text"] for line in f]
    with open(os.path.join(out, "expected_gemma3.jsonl"), encoding="utf-8") as f:
        expected = [json.loads(line) for line in f]
    differ = 0
    for text, row in zip(corpus, expected):
        # SentencePiece never parses control tokens in text: compare with encode_special_tokens.
        ref = row.get("ids_plain", row["ids"])
        got = sp.encode(text)
        if got != ref:
            differ += 1
            print(f"differs: {text!r}\n  tokenizers    {ref}\n  sentencepiece {got}")
    print(f"sentencepiece vs tokenizers on gemma3: {differ} of {len(corpus)} strings differ")

    small = [("<unk>", 0, 2), ("<s>", 0, 3), ("a", -5, 1), ("b", -5, 1), ("ab", 0, 1),
             ("ba", 0, 1), ("\u2581", -5, 1), ("\u2581a", -1, 1), ("bab", -3, 1)]
    small += [(f"<0x{b:02X}>", 0, 6) for b in range(256)]
    sp = sentencepiece_model(small)
    for text in ["aba", "bab", "abab", "babab", " a", "\u00e9", "\u00e9a b", "cc\u00e9 c"]:
        print(f"spm_gguf_scores: {text!r} -> {sp.encode(text)}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=os.environ.get("REASON_SHARED_DATA", "/work/shared/data"))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "tokenizer"))
    parser.add_argument("--no-gguf", action="store_true")
    parser.add_argument("--check-sentencepiece", action="store_true")
    args = parser.parse_args()
    if args.check_sentencepiece:
        check_sentencepiece(args.shared, args.out)
        return
    os.makedirs(args.out, exist_ok=True)

    corpus = build_corpus()
    write_jsonl(os.path.join(args.out, "corpus.jsonl"), [{"text": s} for s in corpus])
    print(f"corpus: {len(corpus)} strings")

    build_flags_tokenizer([s for s in corpus if s not in SENTENCEPIECE],
                          os.path.join(args.out, "flags", "tokenizer.json"))
    special_cases = []
    special_texts = ["Hello world", "", "<|im_start|>user\nhi<|im_end|>", "<think>x</think>",
                     "<|begin_of_text|>already there", " leading space", "\u4f60\u597d",
                     "<start_of_turn>user\nhi<end_of_turn>"]
    for name in TOKENIZERS + ["flags"]:
        path = os.path.join(args.shared, "tokenizers", name, "tokenizer.json")
        if name == "flags":
            path = os.path.join(args.out, "flags", "tokenizer.json")
        tok = Tokenizer.from_file(path)
        plain = Tokenizer.from_file(path)
        plain.encode_special_tokens = True
        write_jsonl(os.path.join(args.out, f"expected_{name}.jsonl"),
                    expected_rows(tok, plain, corpus))
        for text in special_texts:
            special_cases.append({"tokenizer": name, "text": text,
                                  "ids": tok.encode(text, add_special_tokens=True).ids})
        print(f"{name}: done")
    write_jsonl(os.path.join(args.out, "special_cases.jsonl"), special_cases)

    if not args.no_gguf:
        for name, pre in GGUF_FILES:
            out = os.path.join(args.out, f"{name}.gguf")
            write_gguf(os.path.join(args.shared, "tokenizers", name), pre, out)
            print(f"{out}: {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
