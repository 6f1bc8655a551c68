"""A Hugging Face fast tokenizer (tokenizer.json, BPE) read into what GGUF stores.

Pure Python: reads JSON only. The pre-tokenizer name llama.cpp needs is found by matching the
tokenizer's split regex against the patterns llama.cpp implements.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from r2r_local.export.errors import ExportError
from r2r_local.export.hf import read_json

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
    data = read_json(path)
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object, not {type(data).__name__}")
    return data


def _ids(data: dict, path: str) -> tuple[dict[int, str], dict[int, int]]:
    """(id -> token text, id -> token type of the added tokens) of a BPE tokenizer.json."""
    vocab = data["model"].get("vocab")
    added = data.get("added_tokens", [])
    if not isinstance(vocab, dict) or not vocab or not isinstance(added, list):
        raise ExportError(f"{path}: the BPE model has no vocab (a JSON object of token -> id)")
    by_id, types = {}, {}
    for text, i in vocab.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise ExportError(f"{path}: vocab entry {text!r} has id {i!r}, not a non-negative integer")
        by_id[i] = text
    for entry in added:
        i = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(i, int) or isinstance(i, bool) or i < 0 or not isinstance(entry.get("content"), str):
            raise ExportError(f"{path}: added token {str(entry)[:80]} needs an integer id and a content string")
        by_id[i] = entry["content"]
        types[i] = CONTROL if entry.get("special") else USER_DEFINED
    return by_id, types


def _split_pattern(pre: dict | None, path: str) -> str | None:
    """The split regex of a pre-tokenizer, None for plain byte-level; error otherwise."""
    if pre is None:
        raise ExportError(f"{path}: the tokenizer has no pre-tokenizer; only byte-level BPE is supported")
    if not isinstance(pre, dict):
        raise ExportError(f"{path}: unsupported pre-tokenizer {json.dumps(pre)[:120]}")
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
        named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
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
    model = data.get("model")
    model_type = model.get("type") if isinstance(model, dict) else None
    if model_type != "BPE":
        raise ExportError(f"{path}: tokenizer model {model_type!r} is not supported (BPE only)")
    by_id, types = _ids(data, path)
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
    merges = _merges(model.get("merges", []), path)
    info = TokenizerInfo(tokens, ttypes, merges, _pre_name(data, path))
    _read_specials(folder, info, model_config, {t: i for i, t in by_id.items()})
    if info.add_bos is None:
        info.add_bos = _post_processor_adds_bos(data.get("post_processor"), by_id.get(info.special_ids.get("bos", -1)))
    return info


def _merges(raw: object, path: str) -> list[str]:
    """BPE merges as "a b" strings (tokenizer.json stores them as strings or as pairs)."""
    ok = isinstance(raw, list) and all(
        isinstance(m, str) or (isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m)) for m in raw)
    if not ok:
        raise ExportError(f"{path}: merges must be a list of \"a b\" strings or [a, b] pairs")
    return [m if isinstance(m, str) else " ".join(m) for m in raw]


def _post_processor_adds_bos(post: dict | None, bos: str | None) -> bool:
    """Whether a TemplateProcessing post-processor puts the BOS token first (Llama 3 style)."""
    if not isinstance(post, dict) or bos is None:
        return False
    procs = post.get("processors", [post]) if post.get("type") == "Sequence" else [post]
    for proc in procs if isinstance(procs, list) else []:
        if not isinstance(proc, dict):
            continue
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
