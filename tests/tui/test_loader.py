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
