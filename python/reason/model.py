"""Model: a loaded GGUF file, its metadata, tokenizer, chat template and text generation."""

import ctypes
from dataclasses import dataclass

from . import _ffi
from ._handle import Handle
from .errors import ReasonError, check, read_string
from .tokenizer import Tokenizer, _path_arg

TEMPLATES = {
    "auto": _ffi.REASON_TEMPLATE_AUTO,
    "chatml": _ffi.REASON_TEMPLATE_CHATML,
    "qwen3": _ffi.REASON_TEMPLATE_QWEN3,
    "deepseek_r1": _ffi.REASON_TEMPLATE_DEEPSEEK_R1,
    "llama3": _ffi.REASON_TEMPLATE_LLAMA3,
    "smollm2": _ffi.REASON_TEMPLATE_SMOLLM2,
    "qwen35": _ffi.REASON_TEMPLATE_QWEN35,
    "harmony": _ffi.REASON_TEMPLATE_HARMONY,
    "gemma4": _ffi.REASON_TEMPLATE_GEMMA4,
}


@dataclass(frozen=True)
class ModelInfo:
    """reason_model_info with Python types."""

    architecture: str
    name: str
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_params: int
    weight_bytes: int
    active_weight_bytes: int
    n_expert: int
    n_expert_used: int


def detect_template(source):
    """The kind name ("qwen3", "llama3", ...) of a Jinja chat template source;
    ReasonError REASON_ERR_UNSUPPORTED when unknown."""
    kind = ctypes.c_int32()
    check(_ffi.reason_chat_detect(None if source is None else source.encode("utf-8"),
                                  ctypes.byref(kind)))
    return {v: k for k, v in TEMPLATES.items()}.get(kind.value, kind.value)


def _messages(messages):
    """[{"role", "content"}] from a str (one user message), dicts or (role, content) pairs."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [m if isinstance(m, dict) else {"role": m[0], "content": m[1]} for m in messages]


WEIGHTS = {"auto": _ffi.REASON_WEIGHTS_AUTO, "mapped": _ffi.REASON_WEIGHTS_MAPPED,
           "copied": _ffi.REASON_WEIGHTS_COPIED}


class Model(Handle):
    """A GGUF model, immutable once loaded; use as a context manager or call close()."""

    _free = _ffi.reason_model_free

    def __init__(self, path, n_threads=0, weights="auto"):
        """weights: "auto" (copied into memory in 2 MiB pages when the file is large and fits,
        else mapped), "mapped" or "copied" — see enum reason_weights in reason.h."""
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {sorted(WEIGHTS)}, not {weights!r}")
        p = _ffi.reason_model_params()
        _ffi.reason_model_params_default(ctypes.byref(p))
        p.n_threads = n_threads
        p.weights = WEIGHTS[weights]
        out = _ffi.reason_model_p()
        check(_ffi.reason_model_load(_path_arg(path), ctypes.byref(p), ctypes.byref(out)))
        super().__init__(out.value)
        self.path = path
        self._info = None
        self._tokenizer = None

    @property
    def info(self):
        if self._info is None:
            out = _ffi.reason_model_info()
            check(_ffi.reason_model_get_info(self._ptr, ctypes.byref(out)))
            values = {name: getattr(out, name) for name, _ in out._fields_}
            for key in ("architecture", "name"):
                values[key] = values[key].decode("utf-8", "replace")
            self._info = ModelInfo(**values)
        return self._info

    @property
    def tokenizer(self):
        """The tokenizer embedded in the model (valid while the model is open)."""
        if self._tokenizer is None or self._tokenizer.closed:
            self._tokenizer = Tokenizer._of_model(self)
        return self._tokenizer

    def meta(self, key, default=None):
        """A string metadata value (e.g. "general.name"); default when absent or not a string."""
        try:
            data = read_string(lambda buf, cap, out: _ffi.reason_model_meta_string(
                self._ptr, key.encode("utf-8"), buf, cap, out))
        except ReasonError as e:
            if e.status == _ffi.REASON_ERR_INVALID_ARG and not self.closed:
                return default
            raise
        return data.decode("utf-8", "replace")

    @property
    def chat_template(self):
        """The Jinja source of tokenizer.chat_template, or None."""
        return self.meta("tokenizer.chat_template")

    def chat(self, messages, enable_thinking=True, add_generation_prompt=True, template="auto",
             preserve_thinking=None, reasoning_effort=None, current_date=None):
        """The prompt text for messages (a str, dicts with role/content, or (role, content) pairs)
        rendered with the model's chat template, or with ``template`` (see TEMPLATES).
        preserve_thinking (bool) and reasoning_effort are Qwen3.8's ("low", "medium", "xhigh") and
        gpt-oss's ("low", "medium", "high") switches; None leaves the template's default.
        current_date is gpt-oss's "Current date" (a datetime.date, an int YYYYMMDD, or -1 for no
        date line); None: today."""
        msgs = _messages(messages)
        encoded = [(m["role"], m["content"]) for m in msgs]
        arr = (_ffi.reason_chat_message * len(encoded))()
        for i, (role, content) in enumerate(encoded):
            arr[i].role = None if role is None else role.encode("utf-8")
            arr[i].content = None if content is None else content.encode("utf-8")
        p = _ffi.reason_chat_params()
        _ffi.reason_chat_params_default(ctypes.byref(p))
        p.template_kind = TEMPLATES[template] if isinstance(template, str) else int(template)
        p.add_generation_prompt = 1 if add_generation_prompt else 0
        p.enable_thinking = 1 if enable_thinking else 0
        if preserve_thinking is not None:
            p.preserve_thinking = (_ffi.REASON_CHAT_PRESERVE_ON if preserve_thinking
                                   else _ffi.REASON_CHAT_PRESERVE_OFF)
        if reasoning_effort is not None:
            p.reasoning_effort = {"low": _ffi.REASON_CHAT_EFFORT_LOW,
                                  "medium": _ffi.REASON_CHAT_EFFORT_MEDIUM,
                                  "xhigh": _ffi.REASON_CHAT_EFFORT_XHIGH,
                                  "high": _ffi.REASON_CHAT_EFFORT_HIGH}[reasoning_effort]
        if current_date is not None:
            p.current_date = (int(current_date) if isinstance(current_date, int)
                              else current_date.year * 10000 + current_date.month * 100
                              + current_date.day)
        guess = 256 + sum(len(c or "") for _, c in encoded) * 2
        data = read_string(lambda buf, cap, out: _ffi.reason_chat_apply(
            self._ptr, arr, len(encoded), ctypes.byref(p), buf, cap, out), guess=guess)
        return data.decode("utf-8")

    def encode_prompt(self, prompt, chat=True, enable_thinking=True):
        """Token ids for a prompt: a list of ids as is; a str or messages through the chat
        template when chat, else a str as raw text (with BOS where the tokenizer adds one)."""
        if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
            return list(prompt)
        if chat:
            text = self.chat(prompt, enable_thinking=enable_thinking)
            return self.tokenizer.encode(text, add_special=False, parse_special=True)
        return self.tokenizer.encode(prompt, add_special=True, parse_special=True)

    def generate(self, prompt, max_tokens=256, *, stream=True, **options):
        """Generates a continuation of prompt (see reason.generate.generate for the options).
        stream=True: a generator of text pieces; stream=False: the whole text."""
        from .generate import generate
        pieces = generate(self, prompt, max_tokens=max_tokens, **options)
        return pieces if stream else "".join(pieces)

    def generate_text(self, prompt, max_tokens=256, **options):
        """The generated text as one str."""
        return self.generate(prompt, max_tokens, stream=False, **options)

    def generate_tokens(self, prompt, max_tokens=256, **options):
        """A generator of TokenChoice (see reason.generate.generate_tokens)."""
        from .generate import generate_tokens
        return generate_tokens(self, prompt, max_tokens=max_tokens, **options)

    def reason(self, question, n=1, **options):
        """Runs question (a user message, rendered with the model's chat template; with
        raw_prompt=True an already rendered prompt) as n parallel traces that think, answer and
        vote (reason_run); returns a reason.Result: .traces (Trace: thinking, answer, extracted,
        thinking_tokens, answer_tokens, finish_reason, mean_logprob, lowest_group_confidence),
        .answer (the vote's winner, "" when none), .share, .tally ([Vote(answer, count, weight)])
        and .usage.

        Budgets: think_budget (None: unlimited, or by effort "low" 512 / "medium" 2048 / "high"
        8192), min_think (an earlier end of thinking is replaced by ``continuation``, default
        "\nWait"), answer_budget (512; None: unlimited), wrap_up (text injected when the budget
        ends the thinking). thinking: "auto", "model", "prompted" or "off"; system: a system
        message. A trace whose budget ends its thinking has exactly think_budget + tokens(wrap_up)
        + tokens("\n</think>\n\n") thinking tokens (include/reason.h, "Counting").

        Answers and votes: extract "auto", "boxed", "number", "line", "regex:PATTERN" or a
        callable(answer_text) -> str or None; vote "majority", "logprob" or "group";
        early_stop=True cancels the unfinished traces once the vote is decided (share: the
        leader's share of all n traces' weight that decides it; 0: when it can no longer be
        overtaken); prune, prune_warmup, keep_percent, confidence_window: DeepConf pruning.
        Loop guard: loop_ngram (0: off), loop_repeats, loop_action "end" or "nudge" (nudge: its
        text). stop: strings that end an answer.

        Sampling: temperature, top_k, top_p, min_p, repeat_penalty, seed (trace i uses seed + i),
        n_logprobs, and the other reason.Sampler options (presence_penalty, frequency_penalty,
        penalty_last_n, order). Callbacks on_text(trace, phase, text) and on_token(trace, phase,
        TokenChoice), phase "thinking" or "answer", return None to go on, reason.END_THINKING or
        reason.STOP; they run on the calling thread, and an exception they raise is raised here
        after the run (see reason.runtime).

        The run uses ``context`` (sequences 0..n empty; n_seq_max >= n + 1, n_outputs_max >= n)
        or a fresh one of n_ctx slots (default: prompt + n x budgets, an unlimited budget counting
        4096), n_threads (0: all cores) and kv_type. Invalid arguments raise ReasonError
        (InvalidArgumentError)."""
        from .runtime import reason
        return reason(self, question, n, **options)

    def reason_stream(self, question, n=1, **options):
        """Model.reason as an iterator of Event(trace, phase, text) tuples while the traces stream;
        the Result is the generator's return value and the stream's ``.result``. reason_run runs
        on a worker thread, where the callbacks given here run too (see reason.ReasonStream)."""
        from .runtime import ReasonStream
        return ReasonStream(self, question, n, **options)
