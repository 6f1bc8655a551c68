"""Reading tokenizer.json for GGUF: pre-tokenizer detection, token types, padding rows (pure JSON)."""

from __future__ import annotations

import json

import pytest

from r2r_local.export.errors import ExportError
from r2r_local.export.tokenizer import CONTROL, NORMAL, QWEN2_PATTERN, UNUSED, USER_DEFINED, read_tokenizer


def _write(folder, pre, model_type="BPE", tok_config=None):
    data = {
        "model": {"type": model_type, "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]},
        "added_tokens": [
            {"id": 3, "content": "<|im_end|>", "special": True},
            {"id": 4, "content": "<think>", "special": False},
        ],
        "pre_tokenizer": pre,
    }
    (folder / "tokenizer.json").write_text(json.dumps(data))
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config or {"eos_token": "<|im_end|>", "chat_template": "T"}))


QWEN2_PRE = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    ],
}


def test_qwen2_tokenizer_is_read(tmp_path):
    _write(tmp_path, QWEN2_PRE)
    info = read_tokenizer(str(tmp_path), 8, {})
    assert info.pre == "qwen2"
    assert info.tokens[:5] == ["a", "b", "ab", "<|im_end|>", "<think>"]
    assert info.types == [NORMAL, NORMAL, NORMAL, CONTROL, USER_DEFINED, UNUSED, UNUSED, UNUSED]
    assert info.tokens[7] == "[PAD7]"
    assert info.merges == ["a b"]
    assert info.special_ids == {"eos": 3}
    assert info.chat_template == "T" and info.add_bos is False


def test_gpt2_byte_level(tmp_path):
    _write(tmp_path, {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
    assert read_tokenizer(str(tmp_path), 5, {}).pre == "gpt-2"


def test_chat_template_file_wins(tmp_path):
    _write(tmp_path, QWEN2_PRE)
    (tmp_path / "chat_template.jinja").write_text("FROM FILE")
    assert read_tokenizer(str(tmp_path), 5, {}).chat_template == "FROM FILE"


@pytest.mark.parametrize(
    "pre,model_type,needle",
    [
        ({"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}, "BPE", "regex"),
        ({"type": "Metaspace"}, "BPE", "unsupported pre-tokenizer"),
        (QWEN2_PRE, "Unigram", "Unigram"),
    ],
)
def test_unsupported_tokenizers_are_refused(tmp_path, pre, model_type, needle):
    _write(tmp_path, pre, model_type)
    with pytest.raises(ExportError, match=needle) as e:
        read_tokenizer(str(tmp_path), 5, {})
    assert "tokenizer.json" in str(e.value)


def test_too_few_embedding_rows(tmp_path):
    _write(tmp_path, QWEN2_PRE)
    with pytest.raises(ExportError, match="only 3 embedding rows"):
        read_tokenizer(str(tmp_path), 3, {})


def test_sentencepiece_only_folder(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"\x00")
    with pytest.raises(ExportError, match="SentencePiece"):
        read_tokenizer(str(tmp_path), 5, {})


def test_bos_added_by_post_processor(tmp_path):
    _write(tmp_path, QWEN2_PRE, tok_config={"bos_token": "<|im_end|>"})
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    assert read_tokenizer(str(tmp_path), 5, {}).add_bos is True
