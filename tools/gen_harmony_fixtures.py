#!/usr/bin/env python3
"""Renders gpt-oss (Harmony) conversations with the openai-harmony package into
tests/data/chat/harmony.json (golden texts and token ids for tests/test_chat_template.c).

The reference is OpenAI's own renderer, `openai-harmony` 0.0.8 on PyPI (pip install
openai-harmony==0.0.8): it builds the Harmony token stream (o200k_harmony ids) from typed
messages. It needs the o200k_base vocabulary, which it downloads unless TIKTOKEN_ENCODINGS_BASE
names a folder holding o200k_base.tiktoken; this script writes that file from
../shared/data/tokenizers/gptoss/tokenizer.json (byte-level BPE vocabulary, ranks 0..199997; the
package checks its SHA-256, 446a9538..., so a wrong rebuild cannot pass) and points the package at
it, so nothing is downloaded.

What the library maps onto Harmony (and this script mirrors, independently of the C code):
  - the system block: model identity, knowledge cutoff 2024-06, "Current date: YYYY-MM-DD"
    (reason_chat_params.current_date; -1 leaves the line out, as openai-harmony does without a
    conversation_start_date), "Reasoning: low|medium|high" (reasoning_effort; default medium);
  - a first system or developer message: developer instructions ("# Instructions\\n\\n...");
    an empty one renders no developer block (as gpt-oss's Jinja template does);
  - user turns as they are;
  - assistant turns split as the Qwen templates split them ("<think>r</think>a": r the analysis,
    a the final answer; see qwen_split_think in src/chat_template.c), rendered as a final-channel
    message; the analysis message is kept only with preserve_thinking ON (openai-harmony's
    auto_drop_analysis=False), else dropped (auto_drop_analysis=True drops every analysis that
    precedes a final message, which is all of them here);
  - add_generation_prompt: render_conversation_for_completion(..., Role.ASSISTANT) (ends
    "<|start|>assistant"); without it render_conversation.
Cases the library refuses are recorded with "error" (a fragment of its message).

Where gpt-oss's Hugging Face Jinja template (chat_template.jinja) differs: it always writes today's
date (strftime_now), which is the library's default (current_date 0) but cannot be a fixture; it
ends a last assistant turn without a generation prompt with "<|return|>" (a training-time form);
it silently drops system messages after the first (the library refuses them).

Usage: python3 tools/gen_harmony_fixtures.py [--shared ../shared/data]
"""
import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "chat", "harmony.json")
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

EFFORTS = {None: 0, "low": 1, "medium": 2, "xhigh": 3, "high": 4}  # enum reason_chat_effort
KEEPS = {None: 0, True: 1, False: 2}  # enum reason_chat_preserve


def write_o200k(tokenizer_json, folder):
    """o200k_base.tiktoken ("base64(token bytes) rank" per line) from a HF tokenizer.json."""
    with open(tokenizer_json, encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    # GPT-2's byte-to-character table, inverted
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    char_to_byte = {chr(c): b for b, c in zip(bs, cs)}
    lines = []
    for text, rank in sorted(vocab.items(), key=lambda kv: kv[1]):
        if rank >= 199998:  # the specials are the package's own
            continue
        raw = bytes(char_to_byte[ch] for ch in text)
        lines.append("%s %d\n" % (base64.b64encode(raw).decode(), rank))
    data = "".join(lines).encode()
    if hashlib.sha256(data).hexdigest() != O200K_SHA256:
        raise SystemExit("o200k_base rebuilt from %s does not match the published file" %
                         tokenizer_json)
    with open(os.path.join(folder, "o200k_base.tiktoken"), "wb") as f:
        f.write(data)


def split_think(content):
    """Qwen's split: (reasoning, answer); no "</think>": ("", content)."""
    if "</think>" not in content:
        return "", content
    before = content[:content.index("</think>")].rstrip("\n")
    if "<think>" in before:
        before = before[before.rindex("<think>") + len("<think>"):]
    answer = content[content.rindex("</think>") + len("</think>"):].lstrip("\n")
    return before.lstrip("\n"), answer


def U(c):
    return {"role": "user", "content": c}


def S(c):
    return {"role": "system", "content": c}


def D(c):
    return {"role": "developer", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


CONVERSATIONS = {
    "single_user": [U("What is 2+2?")],
    "system_user": [S("You are a careful mathematician."), U("Prove that sqrt(2) is irrational.")],
    "developer_user": [D("Always answer in French."), U("What is the capital of Italy?")],
    "multi_turn": [
        S("Answer briefly."),
        U("Capital of France?"),
        A("<think>\nThe user asks about France.\n</think>\n\nParis."),
        U("And of Italy?"),
        A("Rome."),
        U("Thanks!"),
    ],
    "assistant_last": [U("Say hi."), A("<think>Greet back.</think>Hi!")],
    "empty_system": [S(""), U("hello")],
    "empty_answer": [U("q"), A("<think>only thoughts</think>"), U("again")],
    "unicode": [S("Réponds en français 🚀"), U("Grüße, 世界! naïve café — ∑x²"),
                A("<think>考虑一下</think>答案：42 ✓"), U("最后一个问题？")],
    "newlines": [U("line1\nline2\n\n"), A("\nanswer\n"), U("\n\nlast\n")],
}

# (conversation, add_generation_prompt, reasoning_effort, preserve_thinking, current_date)
CASES = [
    ("single_user", True, None, None, 20250628),
    ("single_user", True, "low", None, 20250628),
    ("single_user", True, "medium", None, 20251231),
    ("single_user", True, "high", None, 20260101),
    ("single_user", True, None, None, -1),
    ("single_user", False, "high", None, 20240229),
    ("system_user", True, None, None, 20250805),
    ("system_user", True, "high", None, -1),
    ("developer_user", True, "low", None, 20250805),
    ("multi_turn", True, None, None, 20250628),
    ("multi_turn", True, "high", True, 20250628),
    ("multi_turn", True, "low", False, 20250628),
    ("multi_turn", False, None, True, 20250628),
    ("assistant_last", False, None, None, 20250628),
    ("assistant_last", False, None, True, 20250628),
    ("assistant_last", True, "medium", True, 20250628),
    ("empty_system", True, None, None, 20250628),
    ("empty_answer", True, None, None, 20250628),
    ("empty_answer", True, None, True, 20250628),
    ("unicode", True, "low", True, 20250628),
    ("unicode", True, None, None, 20250628),
    ("newlines", True, "high", None, 20250628),
]
# What the library refuses: (conversation, effort, message fragment)
ERRORS = [
    ([U("Hello"), S("Be terse."), U("Hi again")], None, "must be the first"),
    ([U("Hello")], "xhigh", "low, medium or high"),
]


def render(h, enc, messages, agp, effort, keep, date):
    sys_content = h.SystemContent.new().with_reasoning_effort(
        {None: h.ReasoningEffort.MEDIUM, "low": h.ReasoningEffort.LOW,
         "medium": h.ReasoningEffort.MEDIUM, "high": h.ReasoningEffort.HIGH}[effort])
    if date > 0:
        sys_content = sys_content.with_conversation_start_date(
            "%04d-%02d-%02d" % (date // 10000, date // 100 % 100, date % 100))
    msgs = [h.Message.from_role_and_content(h.Role.SYSTEM, sys_content)]
    rest = messages
    if messages and messages[0]["role"] in ("system", "developer"):
        rest = messages[1:]
        if messages[0]["content"]:
            msgs.append(h.Message.from_role_and_content(
                h.Role.DEVELOPER, h.DeveloperContent.new().with_instructions(
                    messages[0]["content"])))
    for m in rest:
        if m["role"] == "user":
            msgs.append(h.Message.from_role_and_content(h.Role.USER, m["content"]))
        else:
            assert m["role"] == "assistant"
            reasoning, answer = split_think(m["content"])
            if keep and reasoning:
                msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, reasoning)
                            .with_channel("analysis"))
            msgs.append(h.Message.from_role_and_content(h.Role.ASSISTANT, answer)
                        .with_channel("final"))
    convo = h.Conversation.from_messages(msgs)
    config = h.RenderConversationConfig(auto_drop_analysis=not keep)
    if agp:
        return enc.render_conversation_for_completion(convo, h.Role.ASSISTANT, config)
    return enc.render_conversation(convo, config)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="o200k")
    try:
        write_o200k(os.path.join(args.shared, "tokenizers", "gptoss", "tokenizer.json"), tmp)
        os.environ["TIKTOKEN_ENCODINGS_BASE"] = tmp
        import openai_harmony as h
        # the vocabulary is read once, here; the folder is not needed afterwards
        enc = h.load_harmony_encoding(h.HarmonyEncodingName.HARMONY_GPT_OSS)
    finally:
        shutil.rmtree(tmp)
    from importlib.metadata import version

    cases = []
    for conv, agp, effort, keep, date in CASES:
        ids = render(h, enc, CONVERSATIONS[conv], agp, effort, keep, date)
        cases.append({
            "name": "harmony/%s/agp%d/effort_%s/preserve_%s/date%d" % (conv, agp, effort, keep,
                                                                     date),
            "messages": CONVERSATIONS[conv], "add_generation_prompt": int(agp),
            "reasoning_effort": EFFORTS[effort], "preserve_thinking": KEEPS[keep],
            "current_date": date, "expected": enc.decode_utf8(ids), "ids": ids})
    for i, (messages, effort, fragment) in enumerate(ERRORS):
        cases.append({"name": "harmony/error%d" % i, "messages": messages,
                      "add_generation_prompt": 1, "reasoning_effort": EFFORTS[effort],
                      "preserve_thinking": 0, "current_date": 20250628, "error": fragment})

    def dumps(x):
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write('{"generator":%s,\n"cases":[\n' % dumps(
            "tools/gen_harmony_fixtures.py (openai-harmony %s)" % version("openai-harmony")))
        f.write(",\n".join(dumps(c) for c in cases))
        f.write("\n]}\n")
    print("wrote %d cases to %s" % (len(cases), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
