"""What `r2r COMMAND --help` promises matches what the command does (issue 15, item 11)."""

from __future__ import annotations

import pytest

from r2r_local.cli import main


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def help_of(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width


def test_label_help_offers_no_router(capsys):
    """label runs no router: its --demo brings the demo pair only."""
    text = help_of(capsys, "label")
    assert "router" not in text.lower() and "--demo the built-in demo pair" in text


def test_generate_help_still_offers_the_demo_router(capsys):
    assert "and its router when shipped" in help_of(capsys, "generate")


def test_bench_help_says_the_answers_are_integers(capsys):
    text = help_of(capsys, "bench")
    assert '{"prompt": str, "answer": int}' in text


def test_bench_refuses_a_jsonl_file_as_prompts(capsys, tmp_path):
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"prompt": "1+2", "answer": 3}\n')
    rc = main(["bench", "--demo", "--prompts", str(problems)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "--problems" in lines[0] and str(problems) in lines[0]
