#!/usr/bin/env python3
"""Renders Gemma 4's real chat templates with jinja2 into tests/data/chat/gemma4.json (golden
outputs for tests/test_chat_template.c).

Sources (Apache-2.0, Google; as bundled with llama.cpp in models/templates/, here from the
llama.cpp copy inside the llama-cpp-python sdist), committed verbatim as test data because the
detection test reads them:
  gemma4.jinja              google-gemma-4-31B-it.jinja              SHA-256 85a08664d16d8f3b...
  gemma4_interleaved.jinja  google-gemma-4-31B-it-interleaved.jinja  SHA-256 65f93a25708c9524...
The full hashes are checked below and recorded in the fixture.

What the templates do with what reason_chat_message can hold (role + text, no tools):
  - "<bos>" first (bos_token), then a system turn "<|turn>system\\n...<turn|>\\n" when thinking is
    on or the first message is system/developer: "<|think|>\\n" at its top when enable_thinking,
    then the first system/developer message, trimmed;
  - other turns "<|turn>ROLE\\n" + content + "<turn|>\\n", assistant as "model"; user (and later
    system/developer) contents trimmed; assistant contents lose every "<|channel>...<channel|>"
    (past thinking is never rendered: the template keeps reasoning only beside tool calls), then
    are trimmed; the main template writes no "<|turn>model\\n" for an assistant message right
    after another one (the interleaved one does);
  - the generation prompt "<|turn>model\\n", plus an empty thought channel
    "<|channel>thought\\n<channel|>" when enable_thinking is off.
Neither template has preserve_thinking, reasoning_effort or a date.

The environment is the one transformers' apply_chat_template builds (sandboxed, trim_blocks,
lstrip_blocks, loopcontrols); enable_thinking is always passed (the library always has a value).
With --check-transformers every case is also rendered by transformers' own apply_chat_template
(Gemma 3's tokenizer from the shared data, whose bos_token is the same "<bos>", with the template
passed as chat_template) and must agree (transformers 5.24: all 120 cases agree).

Usage: python3 tools/gen_gemma4_chat_fixtures.py [--from /tmp/llamacpp/models/templates]
                                                 [--check-transformers [--shared ../shared/data]]
  (without --from, the committed copies in tests/data/chat/ are rendered)
"""
import argparse
import hashlib
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "chat")

# name -> (upstream file, SHA-256, public kind, internal variant; see src/chat_template.h)
TEMPLATES = {
    "gemma4": ("google-gemma-4-31B-it.jinja",
               "85a08664d16d8f3be4416c92427b3ac10df1024ac566cc0b4bc3bab409393f98", 8, 8),
    "gemma4_interleaved": ("google-gemma-4-31B-it-interleaved.jinja",
                           "65f93a25708c952457106a30e185ba7beffddd726121c8d7e3f3e08b23c16c67", 8,
                           20),
}


def U(c):
    return {"role": "user", "content": c}


def S(c):
    return {"role": "system", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


CONVERSATIONS = {
    "single_user": [U("What is 2+2?")],
    "system_user": [S("You are a careful mathematician."), U("Prove that sqrt(2) is irrational.")],
    "developer_user": [{"role": "developer", "content": " Be brief. "}, U("hi")],
    "multi_turn_thought": [
        U("What is 2+2?"),
        A("<|channel>thought\nThe user asks a simple sum.\n2+2=4.\n<channel|>The answer is 4."),
        U("And 3+3?"),
    ],
    "system_multi_turn": [
        S("Answer briefly."),
        U("Capital of France?"),
        A("Paris."),
        U("And of Italy?"),
        A("<|channel>thought\nEasy one.<channel|>\n\nRome.\n"),
        U("Thanks!"),
    ],
    "ends_with_assistant": [U("Say hi."), A("Hi!")],
    "consecutive_assistants": [
        U("Solve x+1=3."),
        A("<|channel>thought\nSubtract one.<channel|>x = 2."),
        A("No reasoning here, just more text."),
        A("Still x = 2."),
        U("ok"),
    ],
    "unicode": [
        S("\u3000 Réponds en français 🚀 \u00a0\n"),
        U("  Grüße, 世界! naïve café — ∑x² \t\n"),
        A("\u2003<|channel>thought\n考虑一下<channel|>\u2003答案：42 ✓\u3000"),
        U("\u00a0最后一个问题？\u2028"),
    ],
    "empty_content": [S(""), U(""), A(""), U("")],
    "whitespace_only": [U(" \n\t "), A("\n\n"), U("\n")],
    "system_in_middle": [U("Hello"), S("  Be terse. "), U("Hi again")],
    "two_systems": [S("First system."), U("q1"), S("Second system."), U("q2")],
    "assistant_first": [A("I start."), U("Go on.")],
    "channel_edge_cases": [
        U("edge"),
        A("a<|channel>x<channel|>b<channel|>c"),
        U("more"),
        A(" open <|channel>never closed"),
        U("again"),
        A("<|channel>t1<|channel>t2<channel|>  final \n"),
        U("tags"),
        A("<think>kept as text</think> and <|think|> too"),
    ],
    "newlines_in_content": [U("line1\nline2\n\n"), A("\nanswer\n"), U("\n\nlast\n")],
}


def compile_template(text):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(text)


def check_transformers(shared, sources, cases):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(shared, "tokenizers", "gemma3"))
    for c in cases:
        got = tok.apply_chat_template(c["messages"], chat_template=sources[c["template"]],
                                      tokenize=False,
                                      add_generation_prompt=bool(c["add_generation_prompt"]),
                                      enable_thinking=bool(c["enable_thinking"]))
        if got != c["expected"]:
            raise SystemExit("%s: transformers renders %r" % (c["name"], got))
    print("transformers agrees on all %d cases" % len(cases), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="src", default=None,
                    help="llama.cpp's models/templates folder; the files are copied into "
                         "tests/data/chat/ after their hashes are checked")
    ap.add_argument("--check-transformers", action="store_true")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()
    templates, cases, sources = {}, [], {}
    for name, (upstream, sha, kind, variant) in TEMPLATES.items():
        committed = os.path.join(OUT, name + ".jinja")
        with open(os.path.join(args.src, upstream) if args.src else committed, "rb") as f:
            raw = f.read()
        if hashlib.sha256(raw).hexdigest() != sha:
            raise SystemExit("%s: not the template this fixture was made from" % upstream)
        if args.src:
            with open(committed, "wb") as f:
                f.write(raw)
        templates[name] = {"file": name + ".jinja", "upstream": "llama.cpp models/templates/" +
                           upstream, "sha256": sha, "kind": kind, "variant": variant}
        sources[name] = raw.decode("utf-8")
        tpl = compile_template(sources[name])
        for conv, messages in CONVERSATIONS.items():
            for agp in (True, False):
                for think in (True, False):
                    text = tpl.render(messages=messages, add_generation_prompt=agp,
                                      enable_thinking=think, bos_token="<bos>",
                                      eos_token="<eos>", tools=None)
                    cases.append({"name": "%s/%s/agp%d/think%d" % (name, conv, agp, think),
                                  "template": name, "messages": messages,
                                  "add_generation_prompt": int(agp),
                                  "enable_thinking": int(think), "expected": text})

    if args.check_transformers:
        check_transformers(args.shared, sources, cases)

    def dumps(x):
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(OUT, "gemma4.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write('{"generator":%s,\n"templates":%s,\n"cases":[\n' % (
            dumps("tools/gen_gemma4_chat_fixtures.py (jinja2 %s)" % jinja2.__version__),
            dumps(templates)))
        f.write(",\n".join(dumps(c) for c in cases))
        f.write("\n]}\n")
    print("wrote %d cases for %d templates to %s" % (len(cases), len(templates), OUT),
          file=sys.stderr)


if __name__ == "__main__":
    main()
