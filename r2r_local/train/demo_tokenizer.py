"""The demo pair's byte-level BPE tokenizer, trained with HF `tokenizers`.

Pre-tokenization is Qwen2's (digits split one by one, then byte-level), so llama.cpp reads the
GGUF with `tokenizer.ggml.pre = "qwen2"` and tokenizes exactly like the HF tokenizer.
"""

from __future__ import annotations

from typing import Iterable

from r2r_local.demo import template
from r2r_local.export.tokenizer import QWEN2_PATTERN

PLACE_WORDS = (" units", " ones", " tens", " hundreds", " thousands", " write", " put", " carry")


def train_tokenizer(texts: Iterable[str], vocab_size: int, single: Iterable[str] = PLACE_WORDS):
    """A `tokenizers.Tokenizer` trained on `texts` (think tags and control tokens added).

    Raises RuntimeError unless every string of `single` is one token.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(template.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in template.TEXT_TOKENS])
    for word in single:
        n = len(tok.encode(word).ids)
        if n != 1:
            raise RuntimeError(f"the tokenizer splits {word!r} into {n} tokens; raise the vocab size")
    return tok


def save_hf_tokenizer(tok, folder: str) -> None:
    """tokenizer.json and tokenizer_config.json (with the chat template) into `folder`."""
    import json
    import os

    tok.save(os.path.join(folder, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": template.BOS,
        "eos_token": template.IM_END,
        "pad_token": template.BOS,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "model_max_length": 1024,
        "clean_up_tokenization_spaces": False,
        "chat_template": template.CHAT_TEMPLATE,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
