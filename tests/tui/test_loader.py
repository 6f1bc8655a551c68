"""Which models r2r-chat loads: the config file, then the flags; nothing without either."""

import pytest

from r2r_local.choice import NoModelsError, no_models_message
from r2r_local.config import write_user_config
from r2r_local.errors import ConfigError
from r2r_tui.loader import DEFAULT_ROUTER, ChatOptions, first_run_for, resolve_choice


def test_no_pair_given_or_configured_is_no_pair_not_a_built_in_one():
    with pytest.raises(NoModelsError) as caught:
        resolve_choice(ChatOptions())
    assert str(caught.value) == no_models_message()
    write_user_config({"n_ctx": 2048})  # a config file without a pair is no pair either
    with pytest.raises(NoModelsError):
        resolve_choice(ChatOptions(router="llm"))


def test_smollm2_named_on_both_sides(smollm2):
    choice = resolve_choice(ChatOptions(small=str(smollm2), large=str(smollm2)))
    assert (choice.router, choice.source) == (DEFAULT_ROUTER, "flags")
    assert choice.description == f"{smollm2.name} on both sides"


def test_the_welcome_view_is_offered_only_when_nothing_names_a_pair(tmp_path):
    assert first_run_for(ChatOptions()) is not None
    assert first_run_for(ChatOptions(router="llm", threads=2)) is not None
    assert first_run_for(ChatOptions(demo=True)) is None
    assert first_run_for(ChatOptions(small="/m/s.gguf", large="/m/l.gguf")) is None
    assert first_run_for(ChatOptions(small="/m/s.gguf")) is None  # half a pair: the load says what is missing
    bad = tmp_path / "bad.toml"
    bad.write_text("[models\n")
    assert first_run_for(ChatOptions(config_file=bad)) is None  # a broken config: the load says why
    write_user_config({"small": "/m/s.gguf", "large": "/m/l.gguf"})
    assert first_run_for(ChatOptions()) is None


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


def test_half_a_pair_is_refused_naming_the_other_flag():
    """--large alone, with no pair configured, is not paired with the built-in small model."""
    with pytest.raises(ConfigError, match="--large is given but no small model: add --small PATH"):
        resolve_choice(ChatOptions(large="/x/big.gguf"))
    write_user_config({"small": "/m/s.gguf", "large": "/m/l.gguf"})
    assert resolve_choice(ChatOptions(large="/x/big.gguf")).small.path == "/m/s.gguf"


def test_demo_loads_the_shipped_pair():
    from r2r_local.demo import demo_pair

    choice = resolve_choice(ChatOptions(demo=True))
    pair = demo_pair()
    assert (choice.small.path, choice.large.path, choice.source) == (str(pair.small), str(pair.large), "demo")


def test_gpu_layers_nobody_set_come_from_the_fit_plan(smollm2, monkeypatch):
    """On a build with GPU offload the plan decides; here no GPU answers, so it says so and keeps
    both models on the CPU, while a layer count given in the config is kept."""
    import r2r_local.backends.llama_cpp as backend
    import r2r_local.gpu as gpu

    monkeypatch.setattr(backend, "supports_gpu_offload", lambda: True)
    monkeypatch.setattr(gpu, "query_gpus", lambda: gpu.GpuQuery(gpus=(), driver=None, detail="no GPU in this test"))
    both = ChatOptions(small=str(smollm2), large=str(smollm2))
    choice = resolve_choice(both)
    assert "no GPU found" in choice.plan and (choice.small.n_gpu_layers, choice.large.n_gpu_layers) == (0, 0)
    write_user_config({"large_gpu_layers": 7})
    choice = resolve_choice(both)
    assert choice.large.n_gpu_layers == 7


def test_overlap_flag_reaches_the_engine():
    from r2r_tui.cli import parse_args
    from r2r_tui.loader import load_choice

    options, _ = parse_args(["--demo", "--overlap", "--threads", "1"])
    choice = resolve_choice(options)
    assert choice.overlap
    loaded = load_choice(choice, lambda message: None)
    try:
        assert loaded.policy.overlap and loaded.pair.decoder.concurrent
    finally:
        loaded.close()
    assert not resolve_choice(parse_args(["--demo"])[0]).overlap
    choice = resolve_choice(parse_args(["--demo", "--ahead", "--threads", "1"])[0])
    loaded = load_choice(choice, lambda message: None)
    try:
        assert loaded.policy.ahead and not loaded.policy.overlap
    finally:
        loaded.close()
