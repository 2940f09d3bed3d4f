"""The generation loop: prompt -> context -> sample -> decode, until an end token or max_tokens."""

from .context import Context
from .sampler import Sampler


def generate_tokens(model, prompt, max_tokens=256, *, chat=True, enable_thinking=True,
                    context=None, seq=0, n_ctx=None, n_threads=0, kv_type="f16",
                    sampler=None, **sampling):
    """Yields a TokenChoice per generated token; stops before an end-of-generation token.

    prompt: a str, chat messages or token ids (see Model.encode_prompt). sampling: Sampler
    options (temperature, top_k, top_p, min_p, repeat_penalty, presence_penalty,
    frequency_penalty, penalty_last_n, seed, n_logprobs, order), or a ready ``sampler``.
    The prompt goes in sequence seq of ``context`` after what it already holds, or in a fresh
    context of n_ctx slots (default: prompt + max_tokens)."""
    ids = model.encode_prompt(prompt, chat=chat, enable_thinking=enable_thinking)
    if not ids:
        raise ValueError("generate: the prompt has no tokens")
    own_context = context is None
    if own_context:
        n_ctx = n_ctx or max(len(ids) + max_tokens, 16)
        context = Context(model, n_ctx=n_ctx, n_seq_max=1, n_threads=n_threads, kv_type=kv_type)
    if sampler is None:
        sampler = Sampler(n_vocab=model.info.n_vocab, **sampling)
    elif sampling:
        raise TypeError("generate: pass sampling options or a sampler, not both")
    tokenizer = model.tokenizer
    try:
        pos = context.seq_length(seq)
        for start in range(0, len(ids), context.n_batch):
            chunk = ids[start:start + context.n_batch]
            context.decode(chunk, pos, seq)
            pos += len(chunk)
        for t in ids:
            sampler.accept(t)
        for n in range(max_tokens):
            choice = sampler.sample(context.logits_pointer(-1))
            if tokenizer.is_end(choice.token):
                return
            sampler.accept(choice.token)
            yield choice
            if n + 1 < max_tokens:
                context.decode([choice.token], pos, seq)
                pos += 1
    finally:
        if own_context:
            context.close()


def generate(model, prompt, max_tokens=256, **options):
    """Yields the generated text in pieces, each valid UTF-8 (a character split across tokens
    comes out whole). Options as generate_tokens."""
    detok = model.tokenizer.detokenizer()
    try:
        for choice in generate_tokens(model, prompt, max_tokens, **options):
            piece = detok.push(choice.token)
            if piece:
                yield piece
        tail = detok.flush()
        if tail:
            yield tail
    finally:
        detok.close()
