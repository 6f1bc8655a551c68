"""A Hugging Face fast tokenizer (tokenizer.json, BPE) read into what GGUF stores.

Pure Python: reads JSON only. The pre-tokenizer name llama.cpp needs is found by matching the
tokenizer's split regex against the patterns llama.cpp implements.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from r2r_local.export.errors import ExportError

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# split regex -> llama.cpp pre-tokenizer name; None stands for plain GPT-2 byte-level.
KNOWN_PRE = {QWEN2_PATTERN: "qwen2", LLAMA3_PATTERN: "llama-bpe", None: "gpt-2"}

NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


@dataclass
class TokenizerInfo:
    """Everything GGUF keeps about a tokenizer; `tokens[i]` is the byte-level text of id i."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool | None = False
    add_eos: bool = False
    chat_template: str | None = None


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _split_pattern(pre: dict | None, path: str) -> str | None:
    """The split regex of a pre-tokenizer, None for plain byte-level; error otherwise."""
    if pre is None:
        raise ExportError(f"{path}: the tokenizer has no pre-tokenizer; only byte-level BPE is supported")
    if pre.get("type") == "ByteLevel":
        return None if pre.get("use_regex", True) else ""
    if pre.get("type") == "Sequence":
        patterns = [_split_pattern(p, path) for p in pre.get("pretokenizers", [])]
        found = [p for p in patterns if p]
        if len(found) == 1 and "" in patterns:
            return found[0]
        if patterns == [None]:
            return None
    if pre.get("type") == "Split":
        pattern = pre.get("pattern", {})
        return pattern.get("Regex") or pattern.get("String") or ""
    raise ExportError(f"{path}: unsupported pre-tokenizer {json.dumps(pre)[:120]}")


def _pre_name(data: dict, path: str) -> str:
    pattern = _split_pattern(data.get("pre_tokenizer"), path)
    if pattern == "":
        raise ExportError(f"{path}: byte-level pre-tokenizer without a split regex is not supported")
    if pattern not in KNOWN_PRE:
        raise ExportError(f"{path}: the pre-tokenizer regex matches none that llama.cpp knows (qwen2, llama-bpe, gpt-2)")
    return KNOWN_PRE[pattern]


def _token_text(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _chat_template(folder: str, tok_config: dict) -> str | None:
    jinja = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    tmpl = tok_config.get("chat_template")
    if isinstance(tmpl, list):  # named templates: keep the default one
        named = {t.get("name"): t.get("template") for t in tmpl}
        tmpl = named.get("default")
    return tmpl if isinstance(tmpl, str) else None


def read_tokenizer(folder: str, n_vocab: int, model_config: dict) -> TokenizerInfo:
    """Read tokenizer.json (+ tokenizer_config.json) of `folder`, padded to `n_vocab` rows."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(folder, "tokenizer.model")):
            raise ExportError(f"{folder}: SentencePiece tokenizers (tokenizer.model) are not supported; need tokenizer.json")
        raise ExportError(f"{folder}: no tokenizer.json")
    data = _read_json(path)
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"{path}: tokenizer model {model.get('type')!r} is not supported (BPE only)")
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in data.get("added_tokens", []):
        by_id[int(added["id"])] = added["content"]
        types[int(added["id"])] = CONTROL if added.get("special") else USER_DEFINED
    n_tok = max(by_id) + 1
    if n_tok > n_vocab:
        raise ExportError(f"{path}: {n_tok} tokens but the model has only {n_vocab} embedding rows")
    tokens, ttypes = [], []
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            ttypes.append(types.get(i, NORMAL))
        else:  # padding rows of the embedding table, or holes in the id space
            tokens.append(f"[PAD{i}]")
            ttypes.append(UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    info = TokenizerInfo(tokens, ttypes, merges, _pre_name(data, path))
    _read_specials(folder, info, model_config, {t: i for i, t in by_id.items()})
    if info.add_bos is None:
        info.add_bos = _post_processor_adds_bos(data.get("post_processor"), by_id.get(info.special_ids.get("bos", -1)))
    return info


def _post_processor_adds_bos(post: dict | None, bos: str | None) -> bool:
    """Whether a TemplateProcessing post-processor puts the BOS token first (Llama 3 style)."""
    if not post or bos is None:
        return False
    procs = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for proc in procs:
        single = proc.get("single") or [] if proc.get("type") == "TemplateProcessing" else []
        if single and single[0].get("SpecialToken", {}).get("id") == bos:
            return True
    return False


def _read_specials(folder: str, info: TokenizerInfo, model_config: dict, ids: dict[str, int]) -> None:
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    tok_config = _read_json(cfg_path) if os.path.isfile(cfg_path) else {}
    for key in ("bos", "eos", "pad", "unk"):
        text = _token_text(tok_config.get(f"{key}_token"))
        if text is not None and text in ids:
            info.special_ids[key] = ids[text]
        elif isinstance(model_config.get(f"{key}_token_id"), int):
            info.special_ids[key] = model_config[f"{key}_token_id"]
    add_bos = tok_config.get("add_bos_token")
    info.add_bos = None if add_bos is None else bool(add_bos)  # None: decided by the post-processor
    info.add_eos = bool(tok_config.get("add_eos_token", False))
    info.chat_template = _chat_template(folder, tok_config)
