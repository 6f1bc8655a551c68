"""HF -> GGUF conversion fidelity: tiny random Qwen2 and Llama checkpoints built here (seeded),
converted to F32/F16 (and Q8_0), compared with transformers on tokenization and logits."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="conversion tests need torch (pip install 'r2r-local[pipeline]')")
transformers = pytest.importorskip("transformers", reason="conversion tests need transformers")
pytest.importorskip("tokenizers", reason="conversion tests need tokenizers")
pytest.importorskip("safetensors", reason="conversion tests need safetensors")

from r2r_local.backends.llama_cpp import LlamaCppBackend, quantize_gguf  # noqa: E402
from r2r_local.config import ModelSpec  # noqa: E402
from r2r_local.demo import task, template  # noqa: E402
from r2r_local.export.gguf import hf_to_gguf  # noqa: E402
from r2r_local.train.demo_tokenizer import save_hf_tokenizer, train_tokenizer  # noqa: E402

TEXTS = [template.prompt(p.message) + task.answer_text(p.a, p.b) for p in task.problems(5, 8)] + [
    template.prompt("What is 347 + 589?") + task.answer_text(347, 589),
    template.prompt("Add 12 and 9999.") + task.answer_text(12, 9999, task.Wording(True, True, True)),
    "The quick brown fox jumps over the lazy dog. It's 2026; numbers 1234567 and 3.14159!",
    "unicode: é ü ß 你好 🙂 — tabs\tand\n\nnewlines   spaces",
    "<think>plain think tags</think> and <|im_end|> control tokens",
]


def _corpus() -> list[str]:
    probs = task.problems(3, 400, task.TRAIN)
    return [template.prompt(p.message) + task.answer_text(p.a, p.b) for p in probs] + TEXTS[2:4] * 20


def _make_checkpoint(folder: str, arch: str) -> None:
    torch.manual_seed(0)
    tok = train_tokenizer(_corpus(), 320, single=())
    os.makedirs(folder, exist_ok=True)
    save_hf_tokenizer(tok, folder)
    common = dict(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_theta=10000.0, bos_token_id=0, eos_token_id=2, pad_token_id=0,
    )
    if arch == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(tie_word_embeddings=True, **common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(tie_word_embeddings=False, **common))
    _briefly_train(model, tok)
    model.save_pretrained(folder)


def _briefly_train(model, tok, steps: int = 60) -> None:
    """A few optimizer steps, so that predictions have real margins (a freshly initialised
    model has near-ties everywhere, where any rounding flips the argmax)."""
    ids = torch.tensor([i for t in _corpus()[:300] for i in tok.encode(t).ids])
    rows = ids[: len(ids) // 128 * 128].view(-1, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = rows[torch.randint(len(rows), (8,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def converted(request, tmp_path_factory):
    arch = request.param
    root = tmp_path_factory.mktemp(arch)
    folder = str(root / "hf")
    _make_checkpoint(folder, arch)
    paths = {}
    for outtype in ("f32", "f16"):
        paths[outtype] = str(root / f"{outtype}.gguf")
        hf_to_gguf(folder, paths[outtype], outtype)
    paths["q8_0"] = str(root / "q8_0.gguf")
    quantize_gguf(paths["f32"], paths["q8_0"], "Q8_0")
    return arch, folder, paths


def _hf_logits(folder: str, ids: list[int]) -> np.ndarray:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _gguf_logits(path: str, ids: list[int]) -> np.ndarray:
    with LlamaCppBackend(ModelSpec(path, n_ctx=512, threads=2)) as be:
        return np.stack([be.slot.decode([t]).logits for t in ids])


def test_tokenization_matches_transformers(converted):
    _, folder, paths = converted
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    with LlamaCppBackend(ModelSpec(paths["f16"], n_ctx=512)) as be:
        for text in TEXTS:
            expected = hf_tok(text, add_special_tokens=False)["input_ids"]
            assert be.tokenize(text, add_special=False, parse_special=True) == expected, text


def test_logits_match_transformers(converted):
    arch, folder, paths = converted
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    seqs = [hf_tok(t, add_special_tokens=False)["input_ids"][:200] for t in TEXTS]
    ref = np.concatenate([_hf_logits(folder, s) for s in seqs])
    agreement = {}
    for kind in ("f32", "f16", "q8_0"):
        got = np.concatenate([_gguf_logits(paths[kind], s) for s in seqs])
        agreement[kind] = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
        print(f"{arch} {kind}: {len(ref)} positions, argmax agreement {agreement[kind]:.4f}, "
              f"max abs logit diff {np.abs(got - ref).max():.2e} (logit std {ref.std():.2f})")
        if kind == "f32":  # llama.cpp keeps its KV cache in F16, so F32 is not bit-exact
            assert np.abs(got - ref).max() < 0.1
    assert agreement["f32"] >= 0.999
    assert agreement["f16"] >= 0.999
    assert agreement["q8_0"] >= 0.95


def test_pytorch_bin_checkpoint_converts_like_safetensors(converted, tmp_path):
    """The same weights as pytorch_model.bin give the same GGUF tensors."""
    import shutil

    from gguf import GGUFReader
    from safetensors.torch import load_file

    _, folder, paths = converted
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for name in os.listdir(folder):
        if name != "model.safetensors":
            shutil.copy(os.path.join(folder, name), bin_folder / name)
    torch.save(load_file(os.path.join(folder, "model.safetensors")), bin_folder / "pytorch_model.bin")
    out = str(tmp_path / "bin-f32.gguf")
    hf_to_gguf(str(bin_folder), out, "f32")
    a = {t.name: np.array(t.data) for t in GGUFReader(paths["f32"]).tensors}
    b = {t.name: np.array(t.data) for t in GGUFReader(out).tensors}
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
