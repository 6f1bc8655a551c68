"""Prompts and text: chat templates, incremental UTF-8 decoding, stop strings, think sections.

Think sections are found by the model's own tokens: `think_tokens` looks up the ids of <think>
and </think> in its vocabulary (R1: 151648/151649, Qwen3: 151667/151668). Whether thinking can
be turned off is the chat template's to say: Qwen3's template reacts to `enable_thinking`
(false: it writes an empty think section after the generation prompt); R1's always opens one.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from r2r_local.backends import Model
from r2r_local.errors import ConfigError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)

# Used only for a GGUF that carries no chat template at all.
_FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


def render_template(template: str | None, messages: Sequence[Message], *, bos: str = "",
                    eos: str = "", add_generation_prompt: bool = True,
                    enable_thinking: bool | None = None) -> str:
    """Render a GGUF's Jinja chat template (as Hugging Face does) in a sandbox.

    enable_thinking: passed to the template when not None (as transformers'
    apply_chat_template(..., enable_thinking=...) does); a template without the switch ignores it."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    switch = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    try:
        return env.from_string(template or _FALLBACK_TEMPLATE).render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            bos_token=bos, eos_token=eos, add_generation_prompt=add_generation_prompt, **switch,
        )
    except TemplateError as e:
        raise ConfigError(f"the model's chat template failed: {e}") from None


def has_thinking_switch(template: str | None) -> bool:
    """Whether the template renders differently with thinking off (Qwen3's does; R1's, which
    always opens a think section, and templates without think sections do not)."""
    probe = [Message("user", "2+2?")]
    try:
        on = render_template(template, probe, enable_thinking=True)
        off = render_template(template, probe, enable_thinking=False)
    except ConfigError:
        return False
    return on != off


def chat_tokens(backend: Model, messages: Sequence[Message], *, thinking: bool | None = None) -> list[int]:
    """Token ids of `messages` rendered through the backend's own chat template.

    thinking: None leaves the template's default (Qwen3 and R1 think); False/True set its
    switch, and a template without one is a ConfigError (its model cannot be told not to think)."""
    if thinking is not None and not has_thinking_switch(backend.chat_template):
        raise ConfigError("this model's chat template has no thinking switch (enable_thinking): "
                          "it cannot be told to think or not; leave thinking at the model's default")
    bos = backend.token_text(backend.bos_token) if backend.bos_token is not None else ""
    eos = backend.token_text(backend.eos_token) if backend.eos_token is not None else ""
    text = render_template(backend.chat_template, messages, bos=bos, eos=eos, enable_thinking=thinking)
    # A template that writes the BOS text itself must not get a second BOS from the tokenizer.
    add_special = backend.add_bos and not (bos and text.startswith(bos))
    return backend.tokenize(text, add_special=add_special, parse_special=True)


def raw_tokens(backend: Model, text: str) -> list[int]:
    """Token ids of a prompt used as is (special-token text such as <|im_start|> is parsed)."""
    return backend.tokenize(text, add_special=backend.add_bos, parse_special=True)


@dataclass(frozen=True)
class ThinkTokens:
    """The ids of the model's <think> and </think> tokens."""

    open: int
    close: int


def think_tokens(backend: Model) -> ThinkTokens | None:
    """<think> and </think> as the model's own single tokens (R1: 151648/151649, Qwen3:
    151667/151668), or None when its vocabulary spells them with several tokens."""
    ids = [backend.tokenize(tag, add_special=False, parse_special=True) for tag in (THINK_OPEN, THINK_CLOSE)]
    if any(len(i) != 1 for i in ids) or ids[0] == ids[1]:
        return None
    return ThinkTokens(ids[0][0], ids[1][0])


def prompt_opens_think(backend: Model, prompt: Sequence[int]) -> bool:
    """Whether the generation prompt (the prompt's last few tokens) leaves a think section open,
    so the model's first words are thinking: R1's template ends with "<think>\n"; Qwen3's opens
    none (the model writes it), or with thinking off writes a closed, empty one.

    By the think token ids where the model has them, else by the text of the prompt's end."""
    tail = list(prompt[-6:])
    tags = think_tokens(backend)
    if tags is not None:
        last = [t for t in tail if t in (tags.open, tags.close)]
        return bool(last) and last[-1] == tags.open
    return "".join(backend.token_text(t) for t in tail).rstrip().endswith(THINK_OPEN)


def strip_think(text: str) -> str:
    """The answer without its <think>...</think> section (left out of later turns' history)."""
    return _THINK_RE.sub("", text).lstrip()


class Utf8Stream:
    """Turns token byte pieces into text without splitting multi-byte characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)

    def peek(self, data: bytes) -> str:
        """The text that feeding `data` would give now, without feeding it: the bytes still held
        (the start of a character) come first; an incomplete last character is left out."""
        held, _ = self._decoder.getstate()
        return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(held + data)


class StopBuffer:
    """Releases streamed text except what could still turn into a stop string.

    feed() returns the text that is safe to show; `stopped` tells whether a stop string was
    completed (the stop string and everything after it are never released).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        held = self._held + text
        cut = min((i for i in (held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return held[:cut]
        keep = max((_overlap(held, s) for s in self._stops), default=0)
        self._held = held[len(held) - keep:] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        out, self._held = self._held, ""
        return "" if self.stopped else out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for k in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0
