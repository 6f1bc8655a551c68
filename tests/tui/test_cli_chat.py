"""The r2r-chat command line, up to the point where the app would start."""

import subprocess
import sys

import pytest

from r2r_local.errors import ConfigError
from r2r_tui.cli import parse_args


def test_flags_become_options_and_app_settings(tmp_path):
    options, kw = parse_args(["--small", "s.gguf", "--router", "entropy:2", "--threads", "3", "--max-tokens", "64",
                              "--temperature", "0.7", "--seed", "5", "--system", "Be brief.",
                              "--history", str(tmp_path / "h.db")])
    assert (options.small, options.large, options.router, options.threads, options.demo) == ("s.gguf", None, "entropy:2", 3, False)
    assert (kw["settings"].max_tokens, kw["sampling"].temperature, kw["sampling"].seed) == (64, 0.7, 5)
    assert (kw["system"], kw["history"]) == ("Be brief.", tmp_path / "h.db")


def test_a_bad_value_is_an_error_before_the_app_starts():
    with pytest.raises(ConfigError, match="max-tokens"):
        parse_args(["--max-tokens", "0"])


def test_console_entry_point_reports_bad_values_on_one_line():
    code = "import sys; from r2r_tui.app import main; sys.exit(main(['--temperature', '-1']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["r2r-chat: error: temperature must be >= 0, got -1.0"]
