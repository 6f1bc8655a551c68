"""`r2r bench --demo`: what a user reads back (--modes, --out files, the config block, answers)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from r2r_local.bench import load_problems
from r2r_local.errors import ConfigError


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("modes", ["r2r,r2r", "small,r2r,small", "small, small"])
def test_a_mode_named_twice_is_refused(modes):
    proc = r2r("bench", "--demo", "--n", "1", "--modes", modes)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "more than once" in proc.stderr


def test_out_files_match_the_document_and_a_second_run_replaces_them(tmp_path):
    out = tmp_path / "out"
    first = r2r("bench", "--demo", "--n", "2", "--max-tokens", "40", "--modes", "small,r2r", "--json", "--out", str(out))
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert json.loads((out / "bench.json").read_text()) == doc
    config = doc["config"]
    assert config["modes"] == ["small", "r2r"] and config["seed"] == 0 and config["n_problems"] == 2
    assert config["versions"]
    assert all(doc["modes"][m]["n_problems"] == 2 for m in ("small", "r2r"))
    rows = list(csv.DictReader((out / "tokens.csv").open()))
    for m in ("small", "r2r"):
        assert sum(r["mode"] == m for r in rows) == doc["modes"][m]["n_tokens"]
    stale = out / "share_along_answer.png"
    stale.write_bytes(b"an earlier run's plot")
    second = r2r("bench", "--demo", "--n", "1", "--max-tokens", "20", "--modes", "small", "--json", "--out", str(out))
    assert second.returncode == 0, second.stderr
    doc2 = json.loads(second.stdout)
    assert json.loads((out / "bench.json").read_text()) == doc2
    rows = list(csv.DictReader((out / "tokens.csv").open()))
    assert {r["mode"] for r in rows} == {"small"} and len(rows) == doc2["modes"]["small"]["n_tokens"]
    assert not stale.exists()  # no r2r mode, no plot: the earlier one must not pass for this run's
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "tokens.csv"]  # no temporary files left


@pytest.mark.parametrize("answer, expected", [('"5"', "5"), ("5", "5"), ("5.0", "5"), ('" 1,000 "', "1000"),
                                              ('"-3"', "-3"), ("-0", "0")])
def test_problem_answers_are_read_as_the_checker_compares_them(tmp_path, answer, expected):
    f = tmp_path / "p.jsonl"
    f.write_text(f'{{"prompt": "q", "answer": {answer}}}\n')
    assert load_problems(f)[0].answer == expected


@pytest.mark.parametrize("answer", ['"five"', "3.5", '"3.5"', '"  "', "1e400"])
def test_an_answer_no_generation_could_match_is_refused(tmp_path, answer):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "q", "answer": "1"}\n' f'{{"prompt": "q", "answer": {answer}}}\n')
    with pytest.raises(ConfigError, match=f"{f}:2: the answer"):
        load_problems(f)


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path):
    from r2r_local.bench import load_prompts

    prompts = tmp_path / "p.txt"
    prompts.write_bytes("\ufeffWhat is 2 + 2?\r\n\r\n  \nWhat is 3 + 4?\n".encode())
    assert [p.prompt for p in load_prompts(prompts)] == ["What is 2 + 2?", "What is 3 + 4?"]
    problems = tmp_path / "p.jsonl"
    problems.write_bytes('\ufeff{"prompt": "q", "answer": "4"}\r\n'.encode())
    assert load_problems(problems)[0].answer == "4"


def test_a_plot_that_cannot_be_written_leaves_the_new_numbers_and_no_old_plot(tmp_path, monkeypatch, capsys):
    import errno

    from r2r_local.commands import bench as bench_cmd

    for name, data in (("bench.json", b"{}"), ("tokens.csv", b"mode\n"), ("share_along_answer.png", b"old plot")):
        (tmp_path / name).write_bytes(data)

    def full_disk(path, records):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench_cmd, "_plot_share", full_disk)
    bench_cmd._write_out(tmp_path, {"new": True}, [])
    assert json.loads((tmp_path / "bench.json").read_text()) == {"new": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "tokens.csv"]
    assert "the plot could not be written (No space left on device)" in capsys.readouterr().err
