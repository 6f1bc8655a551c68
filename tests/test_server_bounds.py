"""--large-timeout, --large-retries, --large-top-k and the config keys large_timeout,
large_retries, large_top_k: flags win over the config file, bad values and a local large model
are refused in one line (issue 17, faults: retries and timeouts bounded and configurable).
No model is loaded here: every case ends before loading (the real use is in test_remote_bounds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from r2r_local.choice import resolve_pair, specs_for
from r2r_local.config import load_user_config, write_user_config
from r2r_local.errors import ConfigError
from r2r_local.server_bounds import ServerBounds
from r2r_tui.cli import parse_args
from r2r_tui.loader import resolve_choice

URL = "http://127.0.0.1:9"
FLAGS = {"large_timeout": 2.5, "large_retries": 0, "large_top_k": 7}


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True,
                          timeout=120)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


def test_a_served_large_model_gets_the_defaults():
    choice = resolve_pair({"small": "s.gguf", "large": URL}, config={})
    assert choice.server == ServerBounds(60.0, 2, None)  # top-K: the engine's own default (100 or 20)


def test_flags_set_the_bounds_and_win_over_the_config_file():
    config = {"small": "s.gguf", "large": URL, "large_timeout": 30, "large_retries": 5, "large_top_k": 50}
    assert resolve_pair({}, config=config).server == ServerBounds(30.0, 5, 50)
    choice = resolve_pair({"large_top_k": 7}, config=config)
    assert choice.server == ServerBounds(30.0, 5, 7)
    small, large, _ = specs_for(resolve_pair(FLAGS, config=config), None)
    assert large.server == ServerBounds(2.5, 0, 7) and small.server is None


def test_the_demo_with_a_served_large_model_takes_the_flags():
    choice = resolve_pair({"large": URL, **FLAGS}, demo=True)
    assert choice.large == URL and choice.server == ServerBounds(2.5, 0, 7)
    with pytest.raises(ConfigError, match="--large-top-k: only for a large model behind a server"):
        resolve_pair({"large_top_k": 7}, demo=True)


def test_a_flag_with_a_local_large_model_is_refused():
    with pytest.raises(ConfigError) as e:
        resolve_pair({"small": "s.gguf", "large": "l.gguf", "large_timeout": 2.0, "large_top_k": 7}, config={})
    assert str(e.value) == ("--large-timeout, --large-top-k: only for a large model behind a server "
                            "(--large http://HOST:PORT); l.gguf is a local file")


def test_configured_bounds_with_a_local_large_model_are_noted_not_used():
    choice = resolve_pair({"large": "l.gguf"}, config={"small": "s.gguf", "large": URL, "large_top_k": 20})
    assert choice.server is None
    assert choice.notes == ("the configured models.large_top_k only apply to a large model behind a server: "
                            "not used with l.gguf",)


@pytest.mark.parametrize("flag, value, message", [
    ("--large-timeout", "0", "--large-timeout must be a number of seconds above 0 and at most 3600, got 0.0"),
    ("--large-timeout", "nan", "--large-timeout must be a number of seconds above 0"),
    ("--large-retries", "-1", "--large-retries must be between 0 and 10, got -1"),
    ("--large-top-k", "0", "--large-top-k must be between 1 and 1000, got 0"),
])
def test_bad_values_are_refused_in_one_line(flag, value, message):
    proc = r2r("generate", "--small", "s.gguf", "--large", URL, flag, value, "--prompt", "hi")
    assert message in one_line_error(proc)


def test_generate_refuses_a_bound_with_a_local_large_model():
    proc = r2r("generate", "--small", "s.gguf", "--large", "l.gguf", "--large-retries", "1", "--prompt", "hi")
    assert one_line_error(proc) == ("r2r: error: --large-retries: only for a large model behind a server "
                                    "(--large http://HOST:PORT); l.gguf is a local file")


@pytest.mark.parametrize("command", [["bench", "--prompts", "{p}.txt"], ["serve"],
                                     ["label", "--prompts", "{p}.txt", "--out", "{p}-out"]])
def test_every_command_with_large_has_the_flags(command, tmp_path):
    (tmp_path / "p.txt").write_text("What is 2+2?\n")
    command = [c.format(p=tmp_path / "p") for c in command]
    proc = r2r(*command, "--small", "s.gguf", "--large", "l.gguf", "--large-top-k", "5")
    assert "--large-top-k: only for a large model behind a server" in proc.stderr, proc.stderr
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_config_file_keys_are_checked(tmp_path):
    path = tmp_path / "config.toml"
    write_user_config({"small": "s.gguf", "large": URL, "large_timeout": 2.5, "large_top_k": 10}, path)
    assert load_user_config(path)["large_timeout"] == 2.5
    path.write_text('[models]\nlarge_top_k = 0\n')
    with pytest.raises(ConfigError, match="models.large_top_k must be between 1 and 1000, got 0"):
        load_user_config(path)
    path.write_text('[models]\nlarge_timeout = "soon"\n')
    with pytest.raises(ConfigError, match="models.large_timeout must be a number, got a string"):
        load_user_config(path)


def test_r2r_chat_takes_the_flags(tmp_path):
    options, _ = parse_args(["--small", "s.gguf", "--large", URL, "--large-timeout", "3", "--large-retries", "1",
                             "--large-top-k", "9"])
    assert resolve_choice(options, config={}).large.server == ServerBounds(3.0, 1, 9)
    options, _ = parse_args(["--demo", "--large", URL])
    assert resolve_choice(options, config={}).large.path == URL
    with pytest.raises(ConfigError, match="--large-top-k must be between 1 and 1000"):
        parse_args(["--small", "s.gguf", "--large", URL, "--large-top-k", "5000"])
    with pytest.raises(ConfigError, match="--large-top-k: only for a large model behind a server"):
        resolve_choice(parse_args(["--small", "s.gguf", "--large", "l.gguf", "--large-top-k", "5"])[0], config={})
