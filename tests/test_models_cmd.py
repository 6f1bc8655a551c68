"""`r2r models list|pull|add`: everything but the network transfer, which is replaced by a fake
`huggingface_hub.hf_hub_download` that copies local files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import types
from pathlib import Path

import pytest

from r2r_local.cli import main
from r2r_local.config import load_user_config
from router_files import linear_router
from shape_headers import R1_1_5B, R1_32B, write_header_only


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("R2R_KNOWN_MODELS", raising=False)
    return tmp_path


def r2r(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHub:
    """Stands in for the transfer only: writes `sources[filename]`'s bytes where the hub would."""

    def __init__(self, sources: dict[str, Path | bytes]) -> None:
        self.sources, self.calls, self.local_dirs = sources, [], []

    def __call__(self, repo_id: str, filename: str, *, revision: str, local_dir: Path) -> str:
        self.calls.append((repo_id, filename, revision))
        self.local_dirs.append(Path(local_dir))
        dest = Path(local_dir) / filename  # as the hub does: the file's subfolders under local_dir
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = self.sources[filename]
        if isinstance(src, bytes):
            dest.write_bytes(src)
        else:
            shutil.copyfile(src, dest)
        return str(dest)


def fake_hub_module(monkeypatch, download) -> None:
    """huggingface_hub replaced by a module holding only `download` (the real one need not be installed)."""
    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


@pytest.fixture
def hub(monkeypatch, smollm2):
    fake = FakeHub({"small.gguf": smollm2, "large.gguf": smollm2, "default_router.pt": b"router checkpoint bytes"})
    fake_hub_module(monkeypatch, fake)
    return fake


def write_catalog(path: Path, smollm2: Path, *, small_sha: str | None = None, router_sha: str = "") -> Path:
    good = sha(smollm2)
    path.write_text(f"""
[pairs."tiny"]
description = "SmolLM2 on both sides"
small = "s"
large = "l"
router = "r"
[files."s"]
kind = "gguf"
repo = "test/small"
file = "small.gguf"
revision = "0123456789abcdef"
size = {smollm2.stat().st_size}
sha256 = "{small_sha or good}"
[files."l"]
kind = "gguf"
repo = "test/large"
file = "large.gguf"
revision = "fedcba9876543210"
sha256 = "{good}"
[files."r"]
kind = "router-checkpoint"
repo = "test/router"
file = "default_router.pt"
revision = "main"
sha256 = "{router_sha}"
""")
    return path


def test_list_shows_the_known_r1_pairs(capsys):
    rc, out, _ = r2r(capsys, "models", "list")
    assert rc == 0
    assert "r1-q4" in out and "unsloth/DeepSeek-R1-Distill-Qwen-32B-GGUF" in out and "nics-efc/R2R_router" in out
    rc, out, _ = r2r(capsys, "models", "list", "--json")
    pairs = {p["name"]: p for p in json.loads(out)["pairs"]}
    files = {f["role"]: f for f in pairs["r1-q4"]["files"]}
    assert files["small"]["sha256"] == "c2c43b6018cf7700ce0ddee8807deb1a9a26758ef878232f3a142d16df81f0fe"
    assert files["small"]["size"] == 1117320576 and files["router"]["sha256"] is None
    assert all(len(f["revision"]) == 40 for f in (files["small"], files["large"]))
    assert not files["large"]["downloaded"]


def test_pull_dry_run_downloads_nothing(capsys, hub, dirs):
    rc, out, _ = r2r(capsys, "models", "pull", "r1-q4", "--dry-run")
    assert rc == 0 and hub.calls == [] and "to download" in out
    assert not (dirs / "cfg" / "config.toml").exists()
    assert "huggingface_hub" not in out


def test_dry_run_says_that_huggingface_hub_is_missing(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    rc, out, _ = r2r(capsys, "models", "pull", "r1-q4", "--dry-run")
    assert rc == 0
    assert "then: downloading needs huggingface_hub: pip install 'r2r-local[download]' (not installed now)" in out
    rc, out, _ = r2r(capsys, "models", "pull", "r1-q4", "--dry-run", "--json")
    assert any("huggingface_hub" in step for step in json.loads(out)["then"])


@pytest.fixture
def no_exporter(monkeypatch):
    """As in a tree without issue 4's converter (or without its torch extra)."""
    monkeypatch.setitem(sys.modules, "r2r_local.export.router", None)


def test_pull_downloads_checks_and_writes_the_config(capsys, hub, dirs, smollm2, monkeypatch, no_exporter):
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, out, err = r2r(capsys, "models", "pull", "tiny", "--n-ctx", "1024")
    assert rc == 0, err
    assert hub.calls == [("test/small", "small.gguf", "0123456789abcdef"),
                         ("test/large", "large.gguf", "fedcba9876543210"), ("test/router", "default_router.pt", "main")]
    assert "small: " in err and "(verified: sha256 matches" in err and "(recorded: no published sha256" in err
    assert "cannot convert default_router.pt" in err and "r2r-local[pipeline]" in err
    cfg = load_user_config()
    small_path = dirs / "data" / "models" / "test--small" / "small.gguf"
    assert cfg["small"] == str(small_path) and cfg["n_ctx"] == 1024 and "router" not in cfg
    assert "small_gpu_layers" not in cfg and "large_gpu_layers" not in cfg  # the plan is made at each load
    recorded = json.loads((dirs / "data" / "models" / "checksums.json").read_text())
    assert recorded == {"test/router/default_router.pt@main": sha(Path(hub.calls and dirs / "data" / "models"
                                                                        / "test--router" / "default_router.pt"))}
    # a second pull finds verified copies and downloads nothing
    hub.calls.clear()
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 0 and hub.calls == [] and "(cached: verified earlier" in err


def test_pull_refuses_a_file_whose_hash_does_not_match(capsys, hub, dirs, smollm2, monkeypatch):
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2, small_sha="0" * 64)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 1 and "does not match" in err.strip().splitlines()[-1] and err.count("r2r: error") == 1
    assert (dirs / "data" / "models" / "test--small" / "small.gguf.bad").exists()
    assert not (dirs / "data" / "models" / "test--small" / "small.gguf").exists()
    assert not (dirs / "cfg" / "config.toml").exists()


def test_a_recorded_hash_guards_later_downloads(capsys, hub, dirs, smollm2, monkeypatch, no_exporter):
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    assert r2r(capsys, "models", "pull", "tiny")[0] == 0
    (dirs / "data" / "models" / "test--router" / "default_router.pt").unlink()
    hub.sources["default_router.pt"] = b"something else"
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 1 and "default_router.pt: sha256" in err and "does not match" in err


def test_pull_converts_the_router_when_the_exporter_exists(capsys, hub, dirs, smollm2, monkeypatch):
    seen = {}

    def export_router(checkpoint: Path, out: Path, *, small_model: dict | None = None) -> None:
        seen["small_model"] = small_model  # stands in for issue 4's converter
        linear_router(Path(out), 576)

    fake = types.ModuleType("r2r_local.export.router")
    fake.export_router = export_router
    monkeypatch.setitem(sys.modules, "r2r_local.export", types.ModuleType("r2r_local.export"))
    monkeypatch.setitem(sys.modules, "r2r_local.export.router", fake)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 0, err
    assert load_user_config()["router"] == str(dirs / "data" / "models" / "test--router" / "default_router.onnx")
    assert seen["small_model"]["n_embd"] == 576 and len(seen["small_model"]["vocab_hash"]) == 64


def test_a_checkpoint_the_converter_rejects_is_one_line(capsys, hub, dirs, smollm2, monkeypatch):
    from r2r_local.errors import RouterError

    def export_router(checkpoint: Path, out: Path) -> None:
        raise RouterError(f"router checkpoint {checkpoint}: not a readable PyTorch checkpoint")

    fake = types.ModuleType("r2r_local.export.router")
    fake.export_router = export_router
    monkeypatch.setitem(sys.modules, "r2r_local.export.router", fake)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 1 and err.count("r2r: error") == 1 and "not a readable PyTorch checkpoint" in err


def test_pull_without_huggingface_hub_names_the_extra(capsys, dirs, smollm2, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 1 and "r2r-local[download]" in err and len(err.strip().splitlines()) == 1


def test_pull_reports_a_failed_transfer_in_one_line(capsys, dirs, smollm2, monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("network unreachable")

    fake_hub_module(monkeypatch, offline)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny")
    assert rc == 1 and "download of test/small/small.gguf failed: ConnectionError" in err


def test_add_registers_local_files(capsys, smollm2, dirs):
    router = dirs / "router.onnx"
    linear_router(router, 576)
    rc, out, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(smollm2),
                       "--router", str(router), "--large-gpu-layers", "12")
    assert rc == 0, err
    cfg = load_user_config()
    assert cfg["small"] == cfg["large"] == str(smollm2.resolve()) and cfg["router"] == str(router)
    assert cfg["large_gpu_layers"] == 12 and "small_gpu_layers" not in cfg  # the flag is written, the plan is not
    assert "config written" in out


def test_add_writes_the_planned_layers_for_the_r1_shapes(capsys, dirs):
    words = [f"t{i}" for i in range(50)]
    small = write_header_only(dirs / "s.gguf", R1_1_5B, tokens=words, full_size=True)
    large = write_header_only(dirs / "l.gguf", R1_32B, tokens=words, n_padding=3, full_size=True)  # padding rows differ
    rc, out, err = r2r(capsys, "models", "add", "--small", str(small), "--large", str(large),
                       "--assume-free-gb", "12", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["n_shared_vocab"] == 50
    cfg = load_user_config()
    assert cfg["small_gpu_layers"] == -1 and cfg["large_gpu_layers"] == doc["fit"]["large"]["gpu_layers"] > 0


def test_add_refuses_files_that_do_not_pair(capsys, dirs):
    small = write_header_only(dirs / "s.gguf", R1_1_5B, tokens=["a", "b", "c"], full_size=True)
    large = write_header_only(dirs / "l.gguf", R1_32B, tokens=["a", "x", "c"], full_size=True)
    rc, _, err = r2r(capsys, "models", "add", "--small", str(small), "--large", str(large))
    assert rc == 1 and "different vocabularies" in err and "s.gguf" in err and "l.gguf" in err
    assert not (dirs / "cfg" / "config.toml").exists()


def test_add_refuses_a_non_gguf_and_a_router_of_the_wrong_size(capsys, smollm2, dirs):
    bad = dirs / "notes.txt"
    bad.write_text("hello")
    rc, _, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(bad))
    assert rc == 1 and "not a GGUF file" in err
    router = dirs / "r.onnx"
    linear_router(router, 64)
    rc, _, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(smollm2), "--router", str(router))
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pull_can_configure_the_router_in_int8(capsys, hub, dirs, smollm2, monkeypatch):
    from r2r_local.export.router import quantize_router_int8

    def export_router(checkpoint: Path, out: Path, *, small_model: dict | None = None) -> None:
        linear_router(Path(out), 576)  # stands in for the torch converter

    fake = types.ModuleType("r2r_local.export.router")
    fake.export_router, fake.quantize_router_int8 = export_router, quantize_router_int8
    monkeypatch.setitem(sys.modules, "r2r_local.export.router", fake)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_catalog(dirs / "known.toml", smollm2)))
    rc, _, err = r2r(capsys, "models", "pull", "tiny", "--int8-router")
    assert rc == 0, err
    configured = Path(load_user_config()["router"])
    assert configured.name == "default_router-int8.onnx" and configured.is_file()
    assert json.loads(configured.with_suffix(".json").read_text())["precision"] == "int8"
    assert "int8 weights" in err


def test_add_keeps_what_it_does_not_manage(capsys, smollm2, dirs):
    cfg = dirs / "cfg" / "config.toml"
    cfg.parent.mkdir()
    user = '# mine\n[models]\nrouter = "entropy:0.5"\nthreads = 2\nsmall = "/old.gguf"  # old\n\n[other]\nx = 1  # keep\n'
    cfg.write_text(user)
    rc, out, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(smollm2))
    assert rc == 0, err
    text = cfg.read_text()
    assert text.startswith('# mine\n[models]\nrouter = "entropy:0.5"\nthreads = 2\n') and text.endswith("[other]\nx = 1  # keep\n")
    assert load_user_config() == {"router": "entropy:0.5", "threads": 2, "small": str(smollm2.resolve()),
                                  "large": str(smollm2.resolve())}
    assert (dirs / "cfg" / "config.toml.bak").read_text() == user  # the '# old' comment was on a changed line
    assert "previous config kept as" in out


def test_add_leaves_out_a_configured_router_that_does_not_fit(capsys, smollm2, dirs):
    router = dirs / "r64.onnx"
    linear_router(router, 64)
    cfg = dirs / "cfg" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text(f'[models]\nrouter = "{router}"\n')
    rc, _, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(smollm2))
    assert rc == 0 and f"configured router {router} is left out" in err and "hidden size 64" in err
    assert "router" not in load_user_config()


@pytest.mark.parametrize("layers", [["--small-gpu-layers", "-9"], ["--large-gpu-layers", "-2"]])
def test_add_rejects_gpu_layers_below_minus_one(capsys, smollm2, dirs, layers):
    rc, _, err = r2r(capsys, "models", "add", "--small", str(smollm2), "--large", str(smollm2), *layers)
    assert rc == 1 and "must be >= -1" in err and not (dirs / "cfg" / "config.toml").exists()


def test_list_shows_the_qwen3_pairs_with_sizes(capsys):
    rc, out, _ = r2r(capsys, "models", "list")
    assert rc == 0
    for line in ("qwen3-0.6b-8b: Qwen3-0.6B Q8_0 + Qwen3-8B Q4_K_M (0.64 GB + 5.03 GB) (~5.67 GB)",
                 "qwen3-1.7b-8b: Qwen3-1.7B Q8_0 + Qwen3-8B Q4_K_M (1.83 GB + 5.03 GB) (~6.86 GB)",
                 "qwen3-0.6b-32b: Qwen3-0.6B Q8_0 + Qwen3-32B Q4_K_M (0.64 GB + 19.76 GB) (~20.4 GB)",
                 "  large  Qwen/Qwen3-32B-GGUF/Qwen3-32B-Q4_K_M.gguf  19.8 GB, sha256 published, not downloaded",
                 "  router nics-efc/R2R_router_collections/Qwen3-1.7B+Qwen3-8B/default_router.pt  size unknown, "
                 "sha256 unknown (recorded on first download), not downloaded"):
        assert line in out.splitlines(), line
    rc, out, _ = r2r(capsys, "models", "list", "--json")
    pairs = {p["name"]: p for p in json.loads(out)["pairs"]}
    files = {f["role"]: f for f in pairs["qwen3-0.6b-8b"]["files"]}
    assert (files["small"]["repo"], files["small"]["size"]) == ("Qwen/Qwen3-0.6B-GGUF", 639446688)
    assert (files["large"]["file"], files["large"]["size"]) == ("Qwen3-8B-Q4_K_M.gguf", 5027783488)
    assert files["router"]["path"].endswith("nics-efc--R2R_router_collections/Qwen3-0.6B+Qwen3-8B/default_router.pt")
    assert pairs["qwen3-0.6b-8b"]["total_gb"] == 5.67


def write_qwen3_catalog(path: Path, small: Path, large: Path) -> Path:
    """A known-models file naming shape-true Qwen3 files, the router in a folder of its pair as in
    the reference's collection; no hashes, so the first downloads are recorded."""
    path.write_text(f"""
[pairs."q3"]
small = "s"
large = "l"
router = "r"
[files."s"]
kind = "gguf"
repo = "test/qwen3-small"
file = "{small.name}"
revision = "main"
size = {small.stat().st_size}
[files."l"]
kind = "gguf"
repo = "test/qwen3-large"
file = "{large.name}"
revision = "main"
[files."r"]
kind = "router-checkpoint"
repo = "test/routers"
file = "Tiny+Qwen3/default_router.pt"
revision = "main"
""")
    return path


def test_pull_of_a_qwen3_pair_converts_its_router_for_the_small_model(capsys, dirs, monkeypatch, tmp_path):
    """Everything but the transfer is real: the qwen3 GGUFs (shape-true, tiny), their check and
    pairing, the fit plan, the config; the converter is stood in for (it needs torch)."""
    from r2r_local.shapes import get_shape
    from r2r_local.shapes.writer import write_shape_model

    small = write_shape_model(get_shape("test-tiny-qwen3-small"), "Q8_0", tmp_path / "q3-small.gguf").path
    large = write_shape_model(get_shape("test-tiny-qwen3-large"), "Q4_K_M", tmp_path / "q3-large.gguf").path
    hub = FakeHub({small.name: small, large.name: large, "Tiny+Qwen3/default_router.pt": b"checkpoint"})
    fake_hub_module(monkeypatch, hub)
    seen = {}

    def export_router(checkpoint: Path, out: Path, *, small_model: dict | None = None) -> None:
        seen["small_model"] = small_model
        linear_router(Path(out), small_model["n_embd"], threshold=0.37)  # the checkpoint's own threshold

    fake = types.ModuleType("r2r_local.export.router")
    fake.export_router = export_router
    monkeypatch.setitem(sys.modules, "r2r_local.export.router", fake)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(write_qwen3_catalog(dirs / "known.toml", small, large)))
    rc, out, err = r2r(capsys, "models", "pull", "q3", "--assume-free-gb", "8", "--json")
    assert rc == 0, err
    models = dirs / "data" / "models"
    router = models / "test--routers" / "Tiny+Qwen3" / "default_router.pt"
    assert router.read_bytes() == b"checkpoint" and not (router.parent / "Tiny+Qwen3").exists()
    assert hub.local_dirs == [models / "test--qwen3-small", models / "test--qwen3-large", models / "test--routers"]
    assert seen["small_model"]["n_embd"] == 96  # the small qwen3's hidden size, not its 128-wide q
    assert "router: threshold 0.37, the one saved in the checkpoint" in err
    doc = json.loads(out)
    assert doc["router_threshold"] == 0.37 and doc["n_shared_vocab"] == 1040
    assert doc["fit"]["small"]["gpu_layers"] == 4 and doc["fit"]["large"]["gpu_layers"] == 9  # all + heads
    cfg = load_user_config()
    assert cfg["router"] == str(router.with_suffix(".onnx")) and cfg["small"] == str(models / "test--qwen3-small" / small.name)
    assert set(json.loads((models / "checksums.json").read_text())) == {
        f"test/qwen3-small/{small.name}@main", f"test/qwen3-large/{large.name}@main",
        "test/routers/Tiny+Qwen3/default_router.pt@main"}
