"""No pair given or configured: every command that runs models says in one line what to do (the
demo pair, a known pair to pull, or --small/--large), and none falls back to a model of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from r2r_local.choice import no_models_message
from r2r_local.cli import main
from r2r_local.config import write_user_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _prompts(dirs: Path) -> str:
    (dirs / "p.txt").write_text("1+1\n")
    return str(dirs / "p.txt")


@pytest.mark.parametrize("cmd", ["generate", "bench", "label"])
def test_each_model_command_says_what_to_do(capsys, dirs, cmd):
    extra = {"generate": ["--prompt", "hello"], "bench": [],
             "label": ["--prompts", _prompts(dirs), "--out", str(dirs / "out")]}[cmd]
    rc = main([cmd, *extra])
    err = capsys.readouterr().err
    assert rc == 1 and err.splitlines() == [f"r2r: error: {no_models_message()}"]


def test_the_line_names_the_three_ways():
    line = no_models_message()
    assert "--demo" in line and "r2r models pull NAME" in line and "--small PATH --large PATH" in line
    assert "smollm2" not in line.lower() and "\n" not in line


def test_a_config_without_a_pair_is_no_pair(capsys):
    write_user_config({"threads": 1})
    rc = main(["generate", "--prompt", "hello"])
    assert rc == 1 and capsys.readouterr().err.splitlines() == [f"r2r: error: {no_models_message()}"]


def test_the_console_script_exits_with_the_line_and_no_traceback(dirs):
    proc = subprocess.run([sys.executable, "-m", "r2r_local.cli", "generate", "--prompt", "hello"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [f"r2r: error: {no_models_message()}"]
    assert proc.stdout == ""
