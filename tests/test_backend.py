"""The llama.cpp backend on the real SmolLM2 GGUF."""

from __future__ import annotations

import numpy as np
import pytest
from settings import THREADS

from r2r_local.backends.gguf_file import EmbeddingTable, find_tensor
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
from r2r_local.router.features import topk_logits

TEXT = "The quick brown fox jumps over the lazy dog because it was late for dinner."


@pytest.fixture(scope="module")
def backend(smollm2):
    with LlamaCppBackend(ModelSpec(str(smollm2), n_ctx=512, threads=THREADS), want_hidden=True) as b:
        yield b


def test_every_position_output_equals_step_by_step_decoding(backend):
    tokens = backend.tokenize(TEXT, add_special=False, parse_special=False)
    backend = backend.slot
    backend.truncate(0)
    outs = backend.decode_positions(tokens)
    assert outs.topk.shape == (len(tokens), 100) and outs.hidden.shape == (len(tokens), 576)
    backend.truncate(0)
    for i, t in enumerate(tokens):
        o = backend.decode([t], hidden=True)
        assert int(np.argmax(o.logits)) == outs.argmax[i]
        np.testing.assert_allclose(topk_logits(o.logits), outs.topk[i], atol=1e-4)
        np.testing.assert_allclose(o.hidden, outs.hidden[i], atol=1e-4)


def test_truncate_then_decode_matches_a_fresh_decode(backend):
    tokens = backend.tokenize(TEXT, add_special=False, parse_special=False)
    backend = backend.slot
    backend.truncate(0)
    full = backend.decode(tokens)
    backend.truncate(5)
    again = backend.decode(tokens[5:])
    assert backend.tokens == tokens and backend.n_past == len(tokens)
    np.testing.assert_array_equal(full.logits, again.logits)


def test_model_facts_and_text(backend):
    assert (backend.n_vocab, backend.n_embd, backend.n_layer) == (49152, 576, 30)
    assert backend.n_params == 134_515_008 and backend.is_eog(backend.eos_token)
    assert backend.token_text(backend.eos_token) == "<|im_end|>" and backend.token_bytes(backend.eos_token) == b""
    pieces = b"".join(backend.token_bytes(t) for t in backend.tokenize("héllo wörld", add_special=False, parse_special=False))
    assert pieces.decode() == "héllo wörld"
    assert "<|im_start|>" in backend.chat_template


def test_embedding_rows_come_from_the_gguf(smollm2, backend):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    tensor = next(t for t in GGUFReader(smollm2).tensors if t.name == "token_embd.weight")
    for token in (0, 1234, 49151):
        np.testing.assert_array_equal(backend.embedding_row(token), dequantize(tensor.data[token], tensor.tensor_type))
    loc = find_tensor(smollm2, "token_embd.weight")
    assert loc.shape == (576, 49152) and EmbeddingTable(smollm2).n_rows == 49152


def test_a_failed_switch_to_hidden_states_is_an_error_not_a_crash_and_can_be_retried(smollm2, monkeypatch):
    import llama_cpp as C

    from r2r_local.errors import DecodeError, ModelLoadError

    with LlamaCppBackend(ModelSpec(str(smollm2), n_ctx=256, threads=THREADS)) as model:
        b = model.slot
        b.decode([1, 2, 3])
        monkeypatch.setattr(C, "llama_init_from_model", lambda model, params: None)  # out of memory, say
        with pytest.raises(ModelLoadError):
            b.enable_hidden()
        monkeypatch.undo()
        assert b.tokens == []
        with pytest.raises(DecodeError, match="no context"):
            b.decode([1])
        b.enable_hidden()  # asked again, it now succeeds
        out = b.decode([1, 2, 3], hidden=True)
        assert out.hidden is not None and out.hidden.shape == (576,)


def test_an_abort_check_stops_an_evaluation_part_way_and_leaves_the_slot_as_it_was(backend):
    """A cancel while a long prompt chunk is read takes effect inside the chunk, not after it."""
    import itertools

    from r2r_local.errors import DecodeCancelled

    tokens = backend.tokenize(TEXT * 20, add_special=False, parse_special=False)[:300]
    slot = backend.slot
    slot.truncate(0)
    calls = itertools.count()
    slot.set_abort(lambda: next(calls) > 0)  # false the first time llama.cpp asks, true after
    try:
        with pytest.raises(DecodeCancelled):
            slot.decode(tokens)
    finally:
        slot.set_abort(None)
    assert slot.n_past == 0 and next(calls) >= 2  # llama.cpp asked again during the evaluation and stopped
    full = slot.decode(tokens)  # the slot works as before, without the check
    slot.truncate(0)
    again = slot.decode(tokens)
    np.testing.assert_array_equal(full.logits, again.logits)
