import pytest

from r2r_local.backends import VocabEntry
from r2r_local.errors import VocabMismatchError
from r2r_local.vocab import shared_vocab_size, vocab_hash


def _vocab(texts, pads=0, start=None):
    start = len(texts) if start is None else start
    return [VocabEntry(t.encode(), False) for t in texts] + [
        VocabEntry(f"[PAD{i}]".encode(), True) for i in range(start, start + pads)]


def test_padding_only_difference_is_tolerated():
    small, large = _vocab(["a", "b", "c"], pads=1), _vocab(["a", "b", "c"], pads=5)
    assert shared_vocab_size(small, large, "s.gguf", "l.gguf") == 4
    assert vocab_hash(small) == vocab_hash(large)


def test_real_difference_names_both_files():
    with pytest.raises(VocabMismatchError, match="s.gguf and l.gguf.*token 1"):
        shared_vocab_size(_vocab(["a", "b"]), _vocab(["a", "x"]), "s.gguf", "l.gguf")


def test_extra_real_token_is_refused():
    with pytest.raises(VocabMismatchError, match="token 2"):
        shared_vocab_size(_vocab(["a", "b"]), _vocab(["a", "b", "c"]), "s.gguf", "l.gguf")
    assert vocab_hash(_vocab(["a", "b"])) != vocab_hash(_vocab(["a", "c"]))
