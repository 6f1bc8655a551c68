"""The special tokens and chat template of each synthetic tokenizer kind.

A family (models/shapes.json) names one kind. Its special tokens follow the regular tokens in
this order, so they get the real model's ids when the family has the real number of regular
tokens (151643 for both kinds):

- "r1": DeepSeek-R1-Distill-Qwen. <think> = 151648, </think> = 151649; R1's role markers; the
  template writes the BOS and ends the generation prompt inside an open think section.
- "qwen3": Qwen3. <think> = 151667, </think> = 151668; ChatML role markers, no BOS; the model
  opens its think section itself, and `enable_thinking=false` makes the template write an
  empty one (Qwen3's switch for answering without thinking).

Control tokens are matched only when special parsing is on; the think and tool tags are plain
user-defined tokens, as in the real tokenizers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenizerKind:
    """specials: (text, is_control) in id order after the regular tokens; bos/eos: their texts;
    add_bos: whether the tokenizer itself prepends the BOS."""

    name: str
    specials: tuple[tuple[str, bool], ...]
    bos: str
    eos: str
    add_bos: bool
    chat_template: str


R1_SPECIALS: tuple[tuple[str, bool], ...] = (
    ("<｜end▁of▁sentence｜>", True), ("<｜User｜>", True), ("<｜Assistant｜>", True),
    ("<｜begin▁of▁sentence｜>", True), ("<|EOT|>", True), ("<think>", False), ("</think>", False),
    ("<|im_start|>", True), ("<|im_end|>", True), ("<|endoftext|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", True), ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True), ("<|fim_pad|>", True), ("<|file_sep|>", True),
)

QWEN3_SPECIALS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
)

# Templates of our own (Jinja, rendered as Hugging Face does).
R1_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<｜Assistant｜>{{ m['content'] }}<｜end▁of▁sentence｜>"
    "{% else %}{{ raise_exception('unknown role: ' + m['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)

QWEN3_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] not in ('system', 'user', 'assistant') %}"
    "{{ raise_exception('unknown role: ' + m['role']) }}"
    "{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)

KINDS: dict[str, TokenizerKind] = {
    "r1": TokenizerKind("r1", R1_SPECIALS, bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>",
                        add_bos=True, chat_template=R1_TEMPLATE),
    "qwen3": TokenizerKind("qwen3", QWEN3_SPECIALS, bos="<|endoftext|>", eos="<|im_end|>",
                           add_bos=False, chat_template=QWEN3_TEMPLATE),
}
