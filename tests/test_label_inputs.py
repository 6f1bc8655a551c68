"""`r2r label` on bad flags, bad prompts files and damaged or mismatched output directories
(the demo pair: fast). Each is one line and a non-zero exit, and labelled data is never lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from settings import THREADS

from r2r_local.bench import load_problems
from r2r_local.cli import main
from r2r_local.errors import ConfigError
from r2r_local.labeling import ShardStore

PROBLEMS = [{"prompt": f"Calculate {a}+{b}", "answer": str(a + b)}
            for a, b in [(228, 891), (4618, 443), (17, 25), (305, 96), (71, 9), (1200, 34)]]


def _write(path: Path, docs: list) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _label(tmp_path: Path, *extra: str, prompts: Path | None = None, out: str | None = None) -> list[str]:
    prompts = prompts or tmp_path / "p.jsonl"
    return ["label", "--demo", "--threads", str(THREADS), "--prompts", str(prompts), "--verifier", "correct",
            "--max-tokens", "200", "--out", str(tmp_path / "out") if out is None else out, *extra]


def _error(capsys, code: int) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("r2r: error: ") and "internal error" not in err, err
    return err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.mark.parametrize("flags,message", [(["--n", "0"], "--n must be >= 1"), (["--n", "-2"], "--n must be >= 1")])
def test_label_refuses_a_count_below_one(tmp_path, capsys, flags, message):
    _write(tmp_path / "p.jsonl", PROBLEMS)
    assert message in _error(capsys, main(_label(tmp_path, *flags)))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["", "  "])
def test_label_refuses_an_empty_output_path(tmp_path, capsys, monkeypatch, out):
    _write(tmp_path / "p.jsonl", PROBLEMS)
    monkeypatch.chdir(tmp_path)
    assert "--out: empty path" in _error(capsys, main(_label(tmp_path, out=out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


@pytest.mark.parametrize("content", [b"{bad", b"[1]", b"\xff\xfe{}", b"{}", b'{"config": 3}'])
def test_label_refuses_a_damaged_manifest_and_leaves_it(tmp_path, capsys, content):
    _write(tmp_path / "p.jsonl", PROBLEMS)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_bytes(content)
    err = _error(capsys, main(_label(tmp_path)))
    assert str(tmp_path / "out" / "manifest.json") in err and "use another --out" in err
    assert _snapshot(tmp_path / "out") == {"manifest.json": content}


BAD_LINES = {  # the second line of a problems file -> the message
    '{"prompt": "", "answer": "2"}': "the prompt is empty",
    '{"prompt": "  \\n\\t", "answer": "2"}': "the prompt is empty",
    '{"prompt": "1+1", "answer": null}': "the answer must be a string or a number, got null",
    '{"prompt": "1+1", "answer": [2]}': "the answer must be a string or a number, got [2]",
    '{"prompt": "1+1", "answer": true}': "the answer must be a string or a number, got true",
    '{"prompt": "1+1", "answer": " "}': "the answer is empty",
}


@pytest.mark.parametrize("line", list(BAD_LINES))
def test_problems_reader_names_the_file_and_line(tmp_path, capsys, line):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(PROBLEMS[0]) + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: {BAD_LINES[line]}")):
        load_problems(path)
    err = _error(capsys, main(_label(tmp_path)))
    assert f"{path}:2: {BAD_LINES[line]}" in err and not (tmp_path / "out").exists()


def test_problems_reader_accepts_numbers_and_records_lines(tmp_path):
    # bench and the `correct` verifier compare answers with the last integer of a generation
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "1+1", "answer": 2}\n\n{"prompt": "10/2", "answer": 5.0}\n'
                    '{"prompt": "a", "answer": "007"}\n{"prompt": "b", "answer": "+5"}\n')
    problems = load_problems(path)
    assert [(p.answer, p.line) for p in problems] == [("2", 1), ("5", 3), ("7", 4), ("5", 5)]
    path.write_text('{"prompt": "1+1", "answer": 2}\n{"prompt": "half of 3", "answer": 1.5}\n')
    with pytest.raises(ConfigError, match=r"p.jsonl:2: the answer must be an integer"):
        load_problems(path)
    # other verifiers never compare the answer: kept as written
    path.write_text('{"prompt": "capital of France?", "answer": "Paris"}\n{"prompt": "half of 3", "answer": 1.5}\n')
    assert [p.answer for p in load_problems(path, integer_answers=False)] == ["Paris", "1.5"]


def test_the_last_integer_of_an_answer_reads_like_the_stored_answer():
    from r2r_local.bench import last_number

    assert [last_number(t) for t in ("So it is 007.", "-0", "a 1,000 b", "none")] == ["7", "0", "1000", None]


@pytest.mark.parametrize("verifier, ok", [("correct", False), ("exact", True)])
def test_label_refuses_non_integer_answers_only_for_the_verifier_that_compares_them(tmp_path, capsys, verifier, ok):
    prompts = _write(tmp_path / "p.jsonl", [{"prompt": "capital of France?", "answer": "Paris"}])
    args = [a if a != "correct" else verifier for a in _label(tmp_path, "--n", "1", "--max-tokens", "8")]
    code = main(args)
    if ok:
        assert code == 0, capsys.readouterr().err
    else:
        assert "p.jsonl:1: the answer must be an integer" in _error(capsys, code)


def test_a_changed_prompts_file_is_refused_on_resume(tmp_path, capsys):
    prompts = _write(tmp_path / "p.jsonl", PROBLEMS)
    assert main(_label(tmp_path, "--n", "3")) == 0
    capsys.readouterr()
    labelled = _snapshot(tmp_path / "out")
    for changed in ({**PROBLEMS[1], "prompt": "Calculate 4618+444"}, {**PROBLEMS[1], "answer": "5062"}):
        _write(prompts, [PROBLEMS[0], changed, *PROBLEMS[2:]])
        err = _error(capsys, main(_label(tmp_path)))
        assert f"line 2 of {prompts} changed since it was labelled" in err and "another --out" in err
        assert _snapshot(tmp_path / "out") == labelled
    _write(prompts, PROBLEMS[:2])  # a labelled prompt removed
    assert "prompt 3 is gone from" in _error(capsys, main(_label(tmp_path)))
    assert _snapshot(tmp_path / "out") == labelled
    # blank lines and changes after the labelled prompts are fine: it resumes
    prompts.write_text("\n" + "".join(json.dumps(d) + "\n" for d in [*PROBLEMS[:4], {"prompt": "Calculate 1+2",
                                                                                      "answer": "3"}]))
    assert main(_label(tmp_path)) == 0
    assert "3 of 5 prompts already labelled" in capsys.readouterr().err
    assert sorted(ShardStore(tmp_path / "out").done()) == [0, 1, 2, 3, 4]


def test_an_old_manifest_without_fingerprints_resumes_with_one_warning(tmp_path, capsys):
    _write(tmp_path / "p.jsonl", PROBLEMS)
    assert main(_label(tmp_path, "--n", "2")) == 0
    manifest = tmp_path / "out" / "manifest.json"
    manifest.write_text(json.dumps({"config": json.loads(manifest.read_text())["config"]}))
    capsys.readouterr()
    assert main(_label(tmp_path, "--n", "4")) == 0
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "kept no prompt fingerprints" in err and "2 of 4 prompts" in err
    assert main(_label(tmp_path)) == 0  # fingerprints are recorded now: no warning again
    assert "warning" not in capsys.readouterr().err
