"""The configured pair (`r2r models add`) is the pair `r2r generate` and `r2r bench` run: flags
win over the config file, which wins over the built-in pair; the config holds only what the
user chose (issue 15, items 3, 4 and the half-given pair of item 11). Real models: the demo pair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r2r_local.config import load_user_config, write_user_config
from r2r_local.demo import demo_pair, demo_router

TIMEOUT = 180
SMALL_F32 = str(demo_pair().small.with_name("demo-small-f32.gguf"))  # the demo's small model before quantization


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    """Private config and data dirs, inherited by the r2r processes the tests start."""
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.fixture
def configured() -> dict:
    """The demo pair set up as a user's pair, with a router and settings other than the defaults."""
    pair = demo_pair()
    models = {"small": str(pair.small), "large": str(pair.large), "router": "entropy:0.25", "n_ctx": 512,
              "threads": 1}
    write_user_config(models)
    return models


def generate_json(*flags: str) -> dict:
    proc = r2r("generate", "--prompt", "347+589", "--max-tokens", "4", "--json", *flags)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["config"]


def test_generate_runs_the_configured_pair(configured):
    config = generate_json()
    assert (config["small"]["path"], config["large"]["path"]) == (configured["small"], configured["large"])
    assert config["router"] == "entropy:0.25"
    assert config["small"]["n_ctx"] == config["large"]["n_ctx"] == 512
    assert config["small"]["threads"] == config["large"]["threads"] == 1


def test_flags_win_over_the_config_file(configured):
    config = generate_json("--router", "llm", "--n-ctx", "256", "--small", SMALL_F32)
    assert config["router"] == "llm" and config["small"]["n_ctx"] == 256
    assert config["small"]["path"] == SMALL_F32
    assert config["large"]["path"] == configured["large"]  # the side no flag names comes from the config


def test_bench_runs_the_configured_pair(configured, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("12+30\n")
    proc = r2r("bench", "--prompts", str(prompts), "--max-tokens", "2", "--modes", "small,r2r", "--json")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)["config"]
    assert (config["small"]["path"], config["large"]["path"]) == (configured["small"], configured["large"])
    assert config["router"] == "entropy:0.25" and config["small"]["n_ctx"] == 512


def test_a_router_file_is_kept_for_its_own_small_model_only(configured):
    router = demo_router()
    if router is None:
        pytest.skip("no demo router shipped")
    write_user_config({"router": str(router)})
    assert generate_json()["router"] == str(router)
    proc = r2r("generate", "--prompt", "1+2", "--max-tokens", "2", "--json", "--small", SMALL_F32)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["router"] == "slm"
    assert f"the configured router {router} belongs to the configured small model" in proc.stderr


@pytest.mark.parametrize("given,missing", [("--large", "small"), ("--small", "large")])
def test_half_a_pair_names_the_missing_flag(given, missing):
    proc = r2r("generate", "--prompt", "1+2", given, str(demo_pair().small))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert f"no {missing} model: add --{missing} PATH" in lines[0] and "smollm2" not in lines[0].lower()


def test_models_add_writes_only_what_the_user_chose(dirs):
    pair = demo_pair()
    proc = r2r("models", "add", "--small", str(pair.small), "--large", str(pair.large))
    assert proc.returncode == 0, proc.stderr
    assert load_user_config() == {"small": str(Path(pair.small).resolve()), "large": str(Path(pair.large).resolve())}
    assert "fit: made again at each load for small_gpu_layers and large_gpu_layers" in proc.stdout
    proc = r2r("models", "add", "--small", str(pair.small), "--large", str(pair.large), "--large-gpu-layers", "3",
               "--n-ctx", "1024")
    assert proc.returncode == 0, proc.stderr
    cfg = load_user_config()
    assert cfg["large_gpu_layers"] == 3 and cfg["n_ctx"] == 1024 and "small_gpu_layers" not in cfg


def test_layers_set_for_another_pair_are_left_out(dirs, smollm2):
    pair = demo_pair()
    write_user_config({"small": str(smollm2), "large": str(smollm2), "small_gpu_layers": -1, "large_gpu_layers": 9})
    proc = r2r("models", "add", "--small", str(pair.small), "--large", str(pair.large))
    assert proc.returncode == 0, proc.stderr
    cfg = load_user_config()
    assert "small_gpu_layers" not in cfg and "large_gpu_layers" not in cfg
    assert "large_gpu_layers = 9 (set for the previous pair) is left out" in proc.stderr
    write_user_config({"large_gpu_layers": 5})  # the same pair again keeps what the user set
    assert r2r("models", "add", "--small", str(pair.small), "--large", str(pair.large)).returncode == 0
    assert load_user_config()["large_gpu_layers"] == 5
