"""Which models r2r-chat loads: built-in default, then the config file, then the flags."""

import pytest

from r2r_local.config import write_user_config
from r2r_local.errors import ConfigError
from r2r_tui.loader import DEFAULT_ROUTER, ChatOptions, resolve_choice


def test_default_is_smollm2_on_both_sides(smollm2):
    choice = resolve_choice(ChatOptions())
    assert choice.small.path == choice.large.path == str(smollm2)
    assert (choice.router, choice.source) == (DEFAULT_ROUTER, "default")
    assert choice.description == f"{smollm2.name} on both sides"


def test_config_file_then_flags(tmp_path):
    write_user_config({"small": "/m/s.gguf", "large": "/m/l.gguf", "router": "entropy:2", "n_ctx": 2048,
                       "large_gpu_layers": 20, "threads": 3})
    choice = resolve_choice(ChatOptions())
    assert (choice.small.path, choice.large.path, choice.router, choice.source) == ("/m/s.gguf", "/m/l.gguf", "entropy:2", "config")
    assert (choice.large.n_gpu_layers, choice.small.n_gpu_layers, choice.large.n_ctx, choice.small.threads) == (20, 0, 2048, 3)
    assert choice.description == "small s.gguf · large l.gguf"
    choice = resolve_choice(ChatOptions(large="/x/big.gguf", router="llm", threads=1))
    assert (choice.small.path, choice.large.path, choice.router, choice.source) == ("/m/s.gguf", "/x/big.gguf", "llm", "flags")
    assert choice.small.threads == 1


def test_demo_is_refused_until_the_demo_pair_exists():
    try:
        import r2r_local.demo as demo  # noqa: F401
        has_hook = hasattr(demo, "chat_choice")
    except ImportError:
        has_hook = False
    if has_hook:
        pytest.skip("the demo pair provides chat_choice")
    with pytest.raises(ConfigError, match="--demo"):
        resolve_choice(ChatOptions(demo=True))


def test_core_loader_reports_each_stage_and_returns_a_ready_engine():
    from pilot_helpers import options
    from r2r_tui.loader import core_loader

    steps: list[str] = []
    loaded = core_loader(options(router="random:0.2"))(steps.append)
    try:
        assert loaded.engine.router.name == "random:0.2" and loaded.engine.router.threshold == 0.2
        assert loaded.choice.source == "default"  # the models; only the router came from a flag
    finally:
        loaded.close()
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert steps == ["reading the configuration", f"loading the small model {name}",
                     f"loading the large model {name}", "checking that the two models share a tokenizer",
                     "setting up the router random:0.2", "ready"]


def test_gpu_layers_nobody_set_come_from_the_fit_plan(smollm2, monkeypatch):
    """On a build with GPU offload the plan decides; here no GPU answers, so it says so and keeps
    both models on the CPU, while a layer count given in the config is kept."""
    import r2r_local.backends.llama_cpp as backend
    import r2r_local.gpu as gpu

    monkeypatch.setattr(backend, "supports_gpu_offload", lambda: True)
    monkeypatch.setattr(gpu, "query_gpus", lambda: gpu.GpuQuery(gpus=(), driver=None, detail="no GPU in this test"))
    choice = resolve_choice(ChatOptions())
    assert "no GPU found" in choice.plan and (choice.small.n_gpu_layers, choice.large.n_gpu_layers) == (0, 0)
    write_user_config({"large_gpu_layers": 7})
    choice = resolve_choice(ChatOptions())
    assert choice.large.n_gpu_layers == 7
