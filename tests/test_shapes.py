"""Shape-true GGUFs: the table, the written file against its spec, llama.cpp's own quantizer as
the oracle for per-tensor types, loading and decoding in llama.cpp, pairing, bad input."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType as T

from settings import THREADS
from r2r_local.config import ModelSpec
from r2r_local.errors import ConfigError, VocabMismatchError
from r2r_local.pair import load_pair
from r2r_local.shapes import get_shape, load_table, n_params, shape_from_dict, tensor_specs
from r2r_local.shapes.quant import QUANTS, tensor_types
from r2r_local.shapes.vocab import UNUSED, build_vocab
from r2r_local.shapes.writer import planned_bytes, write_shape_model

REPO = Path(__file__).resolve().parents[1]
TINY = ("test-tiny-small", "test-tiny-large", "test-tiny-qwen3-small", "test-tiny-qwen3-large")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[tuple[str, str], Path]:
    d = tmp_path_factory.mktemp("shapes")
    out = {}
    for name in TINY:
        for quant in QUANTS:
            out[name, quant] = write_shape_model(get_shape(name), quant, d / f"{name}-{quant}.gguf", seed=1).path
    return out


# Published parameter counts (Hugging Face model pages) of the real models.
@pytest.mark.parametrize("name,billions,vocab_rows", [
    ("qwen2.5-0.5b", 0.494, 151936), ("r1-1.5b", 1.78, 151936), ("r1-7b", 7.62, 152064),
    ("r1-14b", 14.8, 152064), ("r1-32b", 32.8, 152064)])
def test_known_shapes_have_the_real_parameter_counts(name, billions, vocab_rows):
    shape = get_shape(name)
    assert shape.vocab_rows == vocab_rows and shape.family.name == "qwen2"
    assert round(n_params(shape) / 1e9, 3 if billions < 1 else (2 if billions < 10 else 1)) == billions


# Qwen3 model cards (huggingface.co/Qwen/Qwen3-*): parameters, and parameters without the
# embedding (the table counted once when tied, twice when the output head is separate).
@pytest.mark.parametrize("name,billions,non_embedding", [
    ("qwen3-0.6b", 0.6, 0.44), ("qwen3-1.7b", 1.7, 1.4), ("qwen3-4b", 4.0, 3.6), ("qwen3-8b", 8.2, 6.95),
    ("qwen3-32b", 32.8, 31.2)])
def test_qwen3_shapes_have_the_model_cards_parameter_counts(name, billions, non_embedding):
    shape = get_shape(name)
    assert (shape.arch, shape.family.name, shape.vocab_rows, shape.head_dim) == ("qwen3", "qwen3", 151936, 128)
    embedding = shape.vocab_rows * shape.hidden_size * (1 if shape.tied_embeddings else 2)
    assert round(n_params(shape) / 1e9, 1) == billions
    assert round((n_params(shape) - embedding) / 1e9, 2 if name == "qwen3-8b" else (1 if billions > 1 else 2)) == non_embedding


# The catalog's Qwen3 files (models/known_models.toml) and the shape and mix each one is.
CATALOG_SHAPES = {"qwen3-0.6b-q8_0": ("qwen3-0.6b", "Q8_0"), "qwen3-1.7b-q8_0": ("qwen3-1.7b", "Q8_0"),
                  "qwen3-4b-q4_k_m": ("qwen3-4b", "Q4_K_M"), "qwen3-8b-q4_k_m": ("qwen3-8b", "Q4_K_M"),
                  "qwen3-32b-q4_k_m": ("qwen3-32b", "Q4_K_M"), "r1-1.5b-q4_k_m": ("r1-1.5b", "Q4_K_M"),
                  "r1-1.5b-q8_0": ("r1-1.5b", "Q8_0")}


def test_catalog_sizes_are_the_shapes_tensor_data_plus_the_same_metadata():
    """Two independent sources agree: the published byte counts in the catalog, and the tensor
    data the shape and llama.cpp's mix rules give. Each file is its tensor data plus ~5.95 MB of
    metadata (the tokenizer, mostly), the same for every member of the family."""
    import tomllib

    files = tomllib.loads((REPO / "models" / "known_models.toml").read_text())["files"]
    extra = {}
    for key, (name, quant) in CATALOG_SHAPES.items():
        assert files[key]["size"] > 0, key
        extra[key] = files[key]["size"] - planned_bytes(get_shape(name), quant)
    assert all(5_900_000 < e < 6_000_000 for e in extra.values()), extra


def test_r1_1_5b_q4_k_m_and_q8_0_sizes_match_the_real_files():
    shape = get_shape("r1-1.5b")
    # The real GGUFs: 1.12 GB (Q4_K_M), 1.89 GB (Q8_0); metadata adds ~5 MB to the tensor data.
    assert round(planned_bytes(shape, "Q4_K_M") / 1e9, 2) == 1.11
    assert round(planned_bytes(shape, "Q8_0") / 1e9, 2) == 1.89


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("quant", list(QUANTS))
def test_written_file_matches_the_spec(tiny_files, name, quant):
    shape = get_shape(name)
    reader = GGUFReader(tiny_files[name, quant])
    types = tensor_types(shape, quant)
    specs = tensor_specs(shape)
    assert [t.name for t in reader.tensors] == [s.name for s in specs]
    for t, s in zip(reader.tensors, specs):
        assert tuple(int(x) for x in t.shape)[::-1] == s.shape, t.name
        assert t.tensor_type == types[s.name], t.name
    f = reader.fields
    arch = shape.arch
    assert f["general.architecture"].contents() == arch
    assert f[f"{arch}.block_count"].contents() == shape.n_layers
    assert f[f"{arch}.attention.head_count_kv"].contents() == shape.n_kv_heads
    assert f[f"{arch}.feed_forward_length"].contents() == shape.ffn_size
    if arch == "qwen3":  # its own head size, which llama.cpp needs to shape q, k and the norms
        assert f["qwen3.attention.key_length"].contents() == f["qwen3.attention.value_length"].contents() == shape.head_dim
        assert shape.head_dim * shape.n_heads != shape.hidden_size
    assert len(f["tokenizer.ggml.tokens"].contents()) == shape.vocab_rows
    assert f["general.file_type"].contents() == int(QUANTS[quant])
    assert ("output.weight" in {t.name for t in reader.tensors}) != shape.tied_embeddings


def _quantize(src: Path, dst: Path, quant: str) -> None:
    import llama_cpp as C

    params = C.llama_model_quantize_default_params()
    params.ftype = int(QUANTS[quant])
    params.nthread = 1
    assert C.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) == 0


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("quant", ["Q4_K_M", "Q8_0"])
def test_types_equal_what_llama_cpps_quantizer_picks(tiny_files, tmp_path, name, quant):
    """test-tiny-large: 12 layers (Q6_K layers of attn_v/ffn_down at 0,3,6,9,10,11, two-digit
    layer names), rows of 256 and of 288 (falls back to Q5_0 / Q8_0), separate output.
    test-tiny-small: rows of 96 (all fallbacks), tied embeddings (token_embd as output).
    The qwen3 shapes: q/k norms (1-D, kept F32), q of n_heads*head_dim rows, no biases."""
    out = tmp_path / "q.gguf"
    _quantize(tiny_files[name, "F16"], out, quant)
    real = {t.name: T(t.tensor_type) for t in GGUFReader(out).tensors}
    assert real == tensor_types(get_shape(name), quant)
    # the mix is really mixed (the qwen3 large has no fallbacks: F32, Q4_K and Q6_K only)
    assert len(set(real.values())) >= (2 if quant == "Q8_0" else 3 if name == "test-tiny-qwen3-large" else 4)


def test_random_blocks_pass_llama_cpps_tensor_validation(tiny_files):
    """check_tensors makes llama.cpp validate every row (finite fp16 scales, ...)."""
    import llama_cpp as C

    C.llama_backend_init()
    for (name, quant), path in tiny_files.items():
        params = C.llama_model_default_params()
        params.check_tensors = True
        model = C.llama_model_load_from_file(str(path).encode(), params)
        assert model, f"{name} {quant} failed validation"
        C.llama_model_free(model)


@pytest.mark.parametrize("quant", list(QUANTS))
def test_tiny_shape_loads_and_decodes(tiny_files, quant):
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.chat import Message, chat_tokens

    shape = get_shape("test-tiny-large")
    with LlamaCppBackend(ModelSpec(str(tiny_files["test-tiny-large", quant]), n_ctx=128,
                                   threads=THREADS), want_hidden=True) as b:
        assert (b.n_vocab, b.n_embd, b.n_layer) == (shape.vocab_rows, shape.hidden_size, shape.n_layers)
        assert b.n_params == n_params(shape)
        assert b.tokenize("<think>", add_special=False, parse_special=True) == [1005]
        tokens = chat_tokens(b, [Message("user", "hello there")])
        assert tokens[0] == b.bos_token and tokens[-3:] == [1002, 1005, 10]  # <｜Assistant｜><think>\n
        out = b.slot.decode(tokens, hidden=True)
        generated = []
        for _ in range(8):
            assert np.isfinite(out.logits).all() and np.isfinite(out.hidden).all()
            assert out.logits.std() > 0.01  # random weights give varied logits, not a flat row
            generated.append(int(np.argmax(out.logits)))
            out = b.slot.decode([generated[-1]], hidden=True)
        assert b.slot.n_past == len(tokens) + 8


def test_family_members_pair_with_padding_only_difference(tiny_files):
    small = ModelSpec(str(tiny_files["test-tiny-small", "Q4_K_M"]), n_ctx=64, threads=THREADS, role="small")
    large = ModelSpec(str(tiny_files["test-tiny-large", "Q8_0"]), n_ctx=64, threads=THREADS, role="large")
    pair = load_pair(small, large)
    try:
        assert (pair.small.n_vocab, pair.large.n_vocab, pair.n_shared) == (1040, 1088, 1040)
        assert pair.small.n_embd != pair.large.n_embd
    finally:
        pair.close()


def _mini(family_seed: int, vocab_rows: int) -> dict:
    table = load_table()
    families = {"qwen2": dict(table["families"]["qwen2"], seed=family_seed)}
    entry = dict(table["models"]["r1-1.5b"], hidden_size=32, n_layers=1, n_heads=2, n_kv_heads=1,
                 ffn_size=64, vocab_rows=vocab_rows, context_length=256)
    return {"entry": entry, "families": families}


def test_full_size_family_vocabularies_pair_and_another_family_does_not(tmp_path):
    """The real qwen2 family at full size (151936 vs 152064 rows, as R1-1.5B vs R1-32B), on
    one-layer models; a family built from another seed is refused."""
    paths = {}
    for key, seed, rows in (("small", 1536, 151936), ("large", 1536, 152064), ("other", 99, 152064)):
        m = _mini(seed, rows)
        shape = shape_from_dict(f"mini-{key}", m["entry"], m["families"])
        paths[key] = write_shape_model(shape, "Q8_0", tmp_path / f"{key}.gguf").path
    spec = lambda p, role: ModelSpec(str(p), n_ctx=64, threads=THREADS, role=role)  # noqa: E731
    pair = load_pair(spec(paths["small"], "small"), spec(paths["large"], "large"))
    try:
        assert pair.n_shared == 151936 and pair.large.n_vocab == 152064
    finally:
        pair.close()
    with pytest.raises(VocabMismatchError):
        load_pair(spec(paths["small"], "small"), spec(paths["other"], "large"))


def test_vocabulary_layout():
    shape = get_shape("r1-32b")
    v = build_vocab(shape.family, shape.vocab_rows)
    assert len(v.tokens) == len(set(v.tokens)) == 152064
    assert v.tokens[151643] == "<｜end▁of▁sentence｜>" == v.tokens[v.eos_id]
    assert v.tokens[v.bos_id] == "<｜begin▁of▁sentence｜>"
    assert {"<|im_start|>", "<|im_end|>", "<think>", "</think>"} <= set(v.tokens[151643:151665])
    assert v.tokens[151665] == "[PAD151665]" and set(v.token_types[151665:]) == {UNUSED}
    known = set(v.tokens[:256])
    for merge in v.merges[:2000]:  # every merge joins two tokens made before it
        a, b = merge.split(" ")
        assert a in known and b in known
        known.add(a + b)


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "make_shape_model.py"), *args],
                          capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("args,needle", [
    (["--like", "r1-99b", "--quant", "Q4_K_M"], "unknown shape 'r1-99b'"),
    (["--like", "r1-1.5b", "--quant", "Q3_K"], "unknown --quant 'Q3_K'"),
    (["--like", "r1-1.5b", "--quant", "F16", "--seed", "-1"], "--seed must be"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path, args, needle):
    r = _script(*args, "--out", str(tmp_path / "x.gguf"))
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and needle in r.stderr
    assert not list(tmp_path.iterdir())


def test_bad_output_paths(tmp_path):
    existing = tmp_path / "exists.gguf"
    existing.write_bytes(b"keep")
    for out, needle in ((tmp_path / "no" / "such" / "dir.gguf", "does not exist"),
                        (existing, "exists; pass --force"), (tmp_path, "is a directory")):
        r = _script("--like", "test-tiny-small", "--quant", "F16", "--out", str(out))
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert existing.read_bytes() == b"keep"


def test_script_writes_a_file(tmp_path):
    out = tmp_path / "m.gguf"
    r = _script("--like", "test-tiny-small", "--quant", "Q4_K_M", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > planned_bytes(get_shape("test-tiny-small"), "Q4_K_M")
    assert "[38/38]" in r.stderr and str(out) in r.stdout
    assert not (tmp_path / "m.gguf.part").exists()


def test_bad_table_entries_are_refused():
    fams = load_table()["families"]
    good = dict(load_table()["models"]["r1-1.5b"])
    for bad in ({"n_heads": 7}, {"vocab_rows": 1000}, {"family": "nope"}, {"arch": "llama"},
                {"hidden_size": 0}):
        with pytest.raises(ConfigError):
            shape_from_dict("bad", {**good, **bad}, fams)


@pytest.mark.parametrize("quant", list(QUANTS))
def test_tiny_qwen3_shape_loads_and_decodes(tiny_files, quant):
    """llama.cpp's qwen3 graph accepts the shapes (q of n_heads*head_dim rows, the q/k norms)."""
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.chat import Message, chat_tokens

    shape = get_shape("test-tiny-qwen3-large")
    with LlamaCppBackend(ModelSpec(str(tiny_files["test-tiny-qwen3-large", quant]), n_ctx=128,
                                   threads=THREADS), want_hidden=True) as b:
        assert (b.n_vocab, b.n_embd, b.n_layer) == (shape.vocab_rows, shape.hidden_size, shape.n_layers)
        assert b.n_params == n_params(shape)
        think = 1000 + 24  # Qwen3's order: <think> is the 25th special token (151667 at full size)
        assert b.tokenize("<think></think>", add_special=False, parse_special=True) == [think, think + 1]
        tokens = chat_tokens(b, [Message("user", "hello there")])
        assert tokens[0] == 1001 and b.bos_token not in tokens  # <|im_start|>; ChatML writes no BOS
        assert "".join(b.token_text(t) for t in tokens).endswith("<|im_end|>\n<|im_start|>assistant\n")
        out = b.slot.decode(tokens, hidden=True)
        for _ in range(6):
            assert np.isfinite(out.logits).all() and np.isfinite(out.hidden).all()
            assert out.logits.std() > 0.01
            out = b.slot.decode([int(np.argmax(out.logits))], hidden=True)


def test_tiny_qwen3_members_pair(tiny_files):
    small = ModelSpec(str(tiny_files["test-tiny-qwen3-small", "Q8_0"]), n_ctx=64, threads=THREADS, role="small")
    large = ModelSpec(str(tiny_files["test-tiny-qwen3-large", "Q4_K_M"]), n_ctx=64, threads=THREADS, role="large")
    pair = load_pair(small, large)
    try:
        assert (pair.small.n_vocab, pair.large.n_vocab, pair.n_shared) == (1040, 1280, 1040)
    finally:
        pair.close()


def test_qwen3_vocabulary_has_qwen3s_special_ids():
    shape = get_shape("qwen3-8b")
    v = build_vocab(shape.family, shape.vocab_rows)
    assert len(v.tokens) == len(set(v.tokens)) == 151936
    assert (v.tokens[151643], v.tokens[151644], v.tokens[151645]) == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert (v.tokens[151667], v.tokens[151668]) == ("<think>", "</think>")  # R1's are 151648/151649
    assert (v.bos_id, v.eos_id) == (151643, 151645)
    assert v.tokens[151669] == "[PAD151669]" and set(v.token_types[151669:]) == {UNUSED}
    r1 = build_vocab(get_shape("r1-1.5b").family, 151936)
    assert (r1.tokens[151648], r1.tokens[151649]) == ("<think>", "</think>")


def test_qwen3_entries_need_their_head_dim():
    fams = load_table()["families"]
    good = dict(load_table()["models"]["qwen3-0.6b"])
    assert shape_from_dict("ok", good, fams).q_dim == 2048  # 16 heads of 128 over a hidden size of 1024
    for bad in ({"head_dim": None}, {"head_dim": 0}, {"head_dim": 127}, {"head_dim": "128"}, {"n_kv_heads": 5}):
        with pytest.raises(ConfigError):
            shape_from_dict("bad", {**good, **bad}, fams)
    r1 = dict(load_table()["models"]["r1-1.5b"], head_dim=128)
    with pytest.raises(ConfigError, match="qwen2 has no head_dim"):
        shape_from_dict("bad", r1, fams)
