"""scripts/export.py on damaged inputs and risky outputs, on a tiny Qwen2 checkpoint built here:
one line naming the file, exit 1, no traceback, and an existing output never damaged."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="conversion tests need torch (pip install 'r2r-local[pipeline]')")
transformers = pytest.importorskip("transformers", reason="conversion tests need transformers")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="conversion tests need safetensors")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("export_script", ROOT / "scripts" / "export.py")
export_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_script)


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> Path:
    from r2r_local.train.demo_tokenizer import save_hf_tokenizer, train_tokenizer

    folder = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    tok = train_tokenizer(["hello world 123 + 456 = 579"] * 50, 300, single=())
    save_hf_tokenizer(tok, str(folder))
    cfg = transformers.Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=128, tie_word_embeddings=True)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(folder)
    return folder


def run(capsys, *args: str) -> tuple[int, str]:
    rc = export_script.main(list(args))
    return rc, capsys.readouterr().err


def assert_one_line(rc: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert rc != 0 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _edit_weights(path: Path, edit) -> None:
    tensors = safetensors_torch.load_file(str(path))
    edit(tensors)
    safetensors_torch.save_file(tensors, str(path), metadata={"format": "pt"})


Q = "model.layers.0.self_attn.q_proj.weight"
K = "model.layers.0.self_attn.k_proj.weight"
DAMAGE = {
    "config-not-object": ("config.json", lambda p: p.write_text("[1, 2]"), "not a model config"),
    "config-not-utf8": ("config.json", lambda p: p.write_bytes(b"\xff\xfe{bad"), "not UTF-8"),
    "config-missing-key": ("config.json", lambda p: _edit_json(p, lambda c: {k: v for k, v in c.items()
                                                                             if k != "num_hidden_layers"}),
                           "num_hidden_layers is missing"),
    "config-wrong-type": ("config.json", lambda p: _edit_json(p, lambda c: {**c, "hidden_size": "32"}),
                          "hidden_size must be a positive integer"),
    "config-architectures-string": ("config.json", lambda p: _edit_json(p, lambda c: {**c, "architectures": "Qwen2"}),
                                    "architectures must be a list"),
    "tokenizer-not-object": ("tokenizer.json", lambda p: p.write_text("[]"), "expected a JSON object"),
    "tokenizer-no-vocab": ("tokenizer.json", lambda p: _edit_json(p, lambda t: {**t, "model": {"type": "BPE"}}),
                           "no vocab"),
    "tokenizer-bad-id": ("tokenizer.json", lambda p: _edit_json(p, lambda t: {**t, "added_tokens": [{"content": "x"}]}),
                         "needs an integer id"),
    "weights-nan": ("model.safetensors", lambda p: _edit_weights(p, lambda t: t[Q].__setitem__((0, 0), float("nan"))),
                    f"{Q} has NaN"),
    "weights-wrong-shape": ("model.safetensors", lambda p: _edit_weights(p, lambda t: t.__setitem__(Q, torch.zeros(5, 7))),
                            f"{Q} has shape [5, 7]"),
    "weights-missing": ("model.safetensors", lambda p: _edit_weights(p, lambda t: t.pop(K)), f"has no {K}"),
    "index-invalid": ("model.safetensors", lambda p: (p.unlink(), (p.parent / "model.safetensors.index.json").write_text("{x")),
                      "model.safetensors.index.json: not valid JSON"),
    "bin-not-a-dict": ("model.safetensors", lambda p: (p.unlink(), torch.save([1, 2], p.parent / "pytorch_model.bin")),
                       "pytorch_model.bin: not a model state dict"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_gguf_damaged_input_is_one_line_and_keeps_the_old_output(case, hf, tmp_path, capsys):
    name, damage, needle = DAMAGE[case]
    folder = tmp_path / "hf"
    shutil.copytree(hf, folder)
    damage(folder / name)
    out = tmp_path / "out.gguf"
    out.write_bytes(b"old model")
    assert_one_line(*run(capsys, "gguf", str(folder), str(out)), needle)
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "out.gguf"]


@pytest.mark.parametrize("target", ["model.safetensors", "config.json", "folder"])
def test_gguf_output_that_is_an_input_or_a_folder_is_refused(target, hf, tmp_path, capsys):
    folder = tmp_path / "hf"
    shutil.copytree(hf, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = folder if target == "folder" else folder / target
    assert_one_line(*run(capsys, "gguf", str(folder), str(out)), str(out))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_gguf_ctrl_c_midway_leaves_the_old_output_and_no_temp_file(hf, tmp_path, capsys, monkeypatch):
    from r2r_local.export.hf import Checkpoint

    load, calls = Checkpoint.load, []

    def interrupted(self, name):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return load(self, name)

    monkeypatch.setattr(Checkpoint, "load", interrupted)
    out = tmp_path / "out.gguf"
    out.write_bytes(b"old model")
    rc, err = run(capsys, "gguf", str(hf), str(out))
    assert rc == 130 and err.strip().splitlines() == ["export.py gguf: interrupted; no output was written"]
    assert out.read_bytes() == b"old model" and [p.name for p in tmp_path.iterdir()] == ["out.gguf"]


@pytest.fixture(scope="module")
def gguf_pair(hf, tmp_path_factory) -> tuple[Path, Path]:
    """(a good F16 GGUF, one with a NaN weight that llama.cpp's quantizer refuses)."""
    import r2r_local.export.gguf as g

    where = tmp_path_factory.mktemp("gguf")
    g.hf_to_gguf(str(hf), str(where / "good.gguf"))
    bad = where / "hf-nan"
    shutil.copytree(hf, bad)
    _edit_weights(bad / "model.safetensors", lambda t: t[Q].__setitem__((0, 0), float("nan")))
    finite = g._finite
    g._finite = lambda name, data, ckpt, outtype: data  # write the NaN, to test the quantizer's refusal
    try:
        g.hf_to_gguf(str(bad), str(where / "nan.gguf"))
    finally:
        g._finite = finite
    return where / "good.gguf", where / "nan.gguf"


@pytest.mark.parametrize("case", ["same-file", "folder", "quantizer-fails"])
def test_quantize_never_damages_its_input_or_an_existing_output(case, gguf_pair, tmp_path, capsys):
    good, nan = gguf_pair
    src = tmp_path / "in.gguf"
    shutil.copyfile(nan if case == "quantizer-fails" else good, src)
    before = src.read_bytes()
    dst = {"same-file": src, "folder": tmp_path / "d", "quantizer-fails": tmp_path / "old.gguf"}[case]
    if case == "folder":
        dst.mkdir()
    if case == "quantizer-fails":
        dst.write_bytes(b"old model")
    rc, err = run(capsys, "quantize", str(src), str(dst), "Q8_0")
    assert rc == 1 and len(err.splitlines()) == 1 and str(dst if case != "quantizer-fails" else src) in err, err
    assert src.read_bytes() == before
    if case == "quantizer-fails":
        assert dst.read_bytes() == b"old model"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_quantizer_refusal_is_one_line_in_the_terminal(gguf_pair, tmp_path):
    """llama.cpp logs its own reasons; in a real process only the one line reaches stderr."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "export.py"
    proc = subprocess.run([sys.executable, str(script), "quantize", str(gguf_pair[1]), str(tmp_path / "q.gguf"), "Q8_0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert str(gguf_pair[1]) in proc.stderr and not (tmp_path / "q.gguf").exists()


def test_quantize_with_a_missing_input_creates_no_output_folder(tmp_path, capsys):
    rc, err = run(capsys, "quantize", str(tmp_path / "missing.gguf"), str(tmp_path / "new" / "q.gguf"), "Q8_0")
    assert_one_line(rc, err, "missing.gguf", "file not found")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("rope", [{"rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}},
                                  {"rope_theta": 1e6}])
def test_the_rope_base_is_read_where_transformers_5_writes_it(rope, hf, tmp_path, capsys):
    import gguf

    folder = tmp_path / "hf"
    shutil.copytree(hf, folder)
    _edit_json(folder / "config.json", lambda c: {**{k: v for k, v in c.items()
                                                    if k not in ("rope_theta", "rope_parameters")}, **rope})
    rc, err = run(capsys, "gguf", str(folder), str(tmp_path / "m.gguf"))
    assert rc == 0, err
    field = gguf.GGUFReader(str(tmp_path / "m.gguf")).fields["qwen2.rope.freq_base"]
    assert float(field.parts[field.data[0]][0]) == 1e6


def test_rope_parameters_of_another_rope_type_are_refused(hf, tmp_path, capsys):
    folder = tmp_path / "hf"
    shutil.copytree(hf, folder)
    _edit_json(folder / "config.json", lambda c: {**c, "rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3"}})
    rc, err = run(capsys, "gguf", str(folder), str(tmp_path / "m.gguf"))
    assert_one_line(rc, err, "rope_parameters", "is not supported")
