"""The demo models' chat template and special tokens.

The template is stored in both demo GGUFs as `tokenizer.chat_template`. It is ChatML-like:
system messages are dropped (the models never saw one), user and assistant turns are wrapped
in `<|im_start|>role\\n ... <|im_end|>\\n`. The models parse the user's wording themselves.
`render` is the same text computed without jinja2 (a test checks that they agree).
"""

from __future__ import annotations

from typing import Mapping, Sequence

BOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# Control tokens (not rendered as text) and the think tags (plain text, like R1's).
SPECIAL_TOKENS = (BOS, IM_START, IM_END)
TEXT_TOKENS = (THINK_OPEN, THINK_CLOSE)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def render(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """What CHAT_TEMPLATE renders for `messages`, without jinja2."""
    parts = [
        f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n"
        for m in messages
        if m["role"] != "system"
    ]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


def prompt(message: str) -> str:
    """The prompt text for one user message, ready for the assistant's answer."""
    return render([{"role": "user", "content": message}])


def training_text(message: str, answer: str) -> tuple[str, str]:
    """(prompt, completion) of one training conversation; the loss covers the completion."""
    return prompt(message), f"{answer}{IM_END}\n"
