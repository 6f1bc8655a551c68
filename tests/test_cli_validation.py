"""Bad input on every command: one line naming the problem (and the file), a non-zero exit, no
traceback, nothing loaded first. Runs in-process with the demo pair; every case fails before a
model is loaded, so the whole file takes seconds."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from r2r_local.cli import main

REPO = Path(__file__).resolve().parents[1]
S = REPO / "models" / "demo" / "demo-small-q8_0.gguf"
L = REPO / "models" / "demo" / "demo-large-q8_0.gguf"


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("R2R_DEMO_DIR", raising=False)
    monkeypatch.delenv("R2R_ROUTER_THREADS", raising=False)
    return tmp_path


def one_line_error(capsys, args: list[str], *fragments: str) -> str:
    try:
        rc = main(args)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out, err = capsys.readouterr()
    assert rc not in (0, None, 70), (rc, err)  # 70 = internal error
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _prompts_file(dirs: Path) -> str:
    (dirs / "p.txt").write_text("1+1\n")
    return str(dirs / "p.txt")


THREADS = [("0", "between 1 and 1024"), ("100000", "between 1 and 1024"), ("20000", "between 1 and 1024"),
           ("9999999999999", "between 1 and 1024"), ("4294967297", "between 1 and 1024")]
N_CTX = [("8", "between 256 and 1048576"), ("4294967312", "between 256 and 1048576"),
         ("99999999999999999999", "between 256 and 1048576")]


@pytest.mark.parametrize("cmd", ["generate", "bench", "label"])
@pytest.mark.parametrize("flag,value,fragment", [("--threads", v, f) for v, f in THREADS]
                         + [("--n-ctx", v, f) for v, f in N_CTX]
                         + [("--small-gpu-layers", "-9", ">= -1"), ("--large-gpu-layers", "-2", ">= -1")])
def test_model_flags_are_bounded_everywhere(capsys, dirs, cmd, flag, value, fragment):
    extra = {"generate": ["--prompt", "hi"], "bench": [],
             "label": ["--prompts", _prompts_file(dirs), "--out", str(dirs / "out")]}[cmd]
    one_line_error(capsys, [cmd, "--demo", flag, value, *extra], fragment)


@pytest.mark.parametrize("cmd", ["generate", "bench"])
@pytest.mark.parametrize("seed", ["-3", "4294967296", "99999999999999999999999"])
def test_seeds_are_bounded(capsys, cmd, seed):
    extra = ["--prompt", "hi"] if cmd == "generate" else []
    one_line_error(capsys, [cmd, "--demo", "--seed", seed, *extra], "seed must be between 0 and 4294967295")


@pytest.mark.parametrize("n", ["-5", "0"])
def test_bench_n_must_be_positive_with_demo_problems(capsys, n):
    one_line_error(capsys, ["bench", "--demo", "--n", n], "--n must be >= 1")


def test_bench_out_is_checked_before_the_run(capsys, dirs):
    existing = dirs / "results.txt"
    existing.write_text("keep me")
    one_line_error(capsys, ["bench", "--demo", "--out", str(existing)], str(existing), "not a directory")
    assert existing.read_text() == "keep me"
    one_line_error(capsys, ["bench", "--demo", "--out", str(existing / "sub")], str(existing / "sub"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
@pytest.mark.parametrize("cmd", [["doctor"], ["models", "add", "--small", str(S), "--large", str(L)]])
def test_assume_free_gb_must_be_finite_and_non_negative(capsys, cmd, value):
    one_line_error(capsys, [*cmd, f"--assume-free-gb={value}"], "--assume-free-gb must be a finite number")


@pytest.mark.parametrize("cmd", [["doctor"], ["models", "add", "--small", str(S), "--large", str(L)]])
@pytest.mark.parametrize("flags,fragment", [(["--small-gpu-layers", "-9"], "--small-gpu-layers must be >= -1"),
                                            (["--n-ctx", "99999999999999999999"], "between 256 and 1048576"),
                                            (["--n-ctx", "0"], "between 256 and 1048576"),
                                            (["--n-ctx", "300"], "a multiple of 256")])
def test_doctor_and_models_add_check_their_flags(capsys, dirs, cmd, flags, fragment):
    one_line_error(capsys, [*cmd, *flags], fragment)
    assert not (dirs / "cfg" / "config.toml").exists()


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
@pytest.mark.parametrize("raw", [[], ["--raw"]])
def test_empty_or_whitespace_prompts(capsys, prompt, raw):
    one_line_error(capsys, ["generate", "--demo", "--prompt", prompt, *raw], "the prompt is empty")


def test_empty_prompt_file(capsys, dirs):
    (dirs / "empty.txt").write_text(" \n")
    one_line_error(capsys, ["generate", "--demo", "--prompt-file", str(dirs / "empty.txt")],
                   str(dirs / "empty.txt"), "the prompt is empty")


def test_prompt_from_a_device_is_read_with_a_cap(capsys):
    one_line_error(capsys, ["generate", "--demo", "--prompt-file", "/dev/zero"], "/dev/zero", "larger than 10 MiB")


def test_non_utf8_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe bad")))
    one_line_error(capsys, ["generate", "--demo", "--prompt-file", "-"], "stdin", "UTF-8")


def test_lone_surrogate_prompt_from_the_shell():
    # bash's printf 'a\udcff' writes bytes that are not UTF-8; Python hands them over as surrogates
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m r2r_local.cli generate --demo --prompt \"$(printf 'a\\udcff')\""],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == ["r2r: error: --prompt: not valid UTF-8 text"]


@pytest.mark.parametrize("cmd", [["generate", "--demo", "--prompt", "hi"], ["bench", "--demo"]])
@pytest.mark.parametrize("spec,fragment", [("", "the router spec is empty"), (" ", "the router spec is empty"),
                                           ("/", "is a directory")])
def test_router_specs_that_name_nothing(capsys, cmd, spec, fragment):
    one_line_error(capsys, [*cmd, "--router", spec], fragment)


@pytest.mark.parametrize("manifest", ["{}", "[]", '{"models": {"small": {}}}', '{"models": 3}', "nul"])
def test_a_broken_demo_manifest(capsys, dirs, monkeypatch, manifest):
    (dirs / "demo").mkdir()
    (dirs / "demo" / "manifest.json").write_text(manifest)
    monkeypatch.setenv("R2R_DEMO_DIR", str(dirs / "demo"))
    one_line_error(capsys, ["generate", "--demo", "--prompt", "hi"], str(dirs / "demo" / "manifest.json"))


def test_a_config_dir_that_is_a_file(capsys, dirs, monkeypatch):
    (dirs / "afile").write_text("x")
    monkeypatch.setenv("R2R_CONFIG_DIR", str(dirs / "afile"))
    one_line_error(capsys, ["models", "add", "--small", str(S), "--large", str(L)], str(dirs / "afile"), "is a file")


def test_a_directory_where_the_temporary_config_file_goes(capsys, dirs):
    (dirs / "cfg" / "config.toml.tmp").mkdir(parents=True)
    assert main(["models", "add", "--small", str(S), "--large", str(L)]) == 0
    assert "small" in (dirs / "cfg" / "config.toml").read_text()


def test_a_config_file_that_is_a_directory(capsys, dirs):
    (dirs / "cfg" / "config.toml").mkdir(parents=True)
    one_line_error(capsys, ["models", "add", "--small", str(S), "--large", str(L)], "config.toml")


def test_router_threads_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("R2R_ROUTER_THREADS", "abc")
    one_line_error(capsys, ["models", "add", "--small", str(S), "--large", str(L), "--router",
                            str(REPO / "models" / "demo" / "router.onnx")], "R2R_ROUTER_THREADS", "'abc'")


def test_config_values_are_reported_with_the_config_file(capsys, dirs):
    cfg = dirs / "cfg" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text("[models]\nn_ctx = 5\n")
    one_line_error(capsys, ["models", "add", "--small", str(S), "--large", str(L)], str(cfg), "models.n_ctx")


@pytest.mark.parametrize("edit,fragment", [
    (lambda d: d[:100_000], "the file is truncated"),
    (lambda d: d[:4] + (99).to_bytes(4, "little") + d[8:], "GGUF version 99 is not supported"),
    (lambda d: d[:8] + (2**40).to_bytes(8, "little") + d[16:], "tensor count"),
    (lambda d: d[:16] + (2**40).to_bytes(8, "little") + d[24:], "metadata count"),
    (lambda d: d[:24] + (2**62).to_bytes(8, "little") + d[32:], "string length"),
])
@pytest.mark.parametrize("cmd", ["models", "doctor"])
def test_corrupt_gguf_headers(capsys, dirs, edit, fragment, cmd):
    bad = dirs / "bad.gguf"
    bad.write_bytes(edit(S.read_bytes()))
    if cmd == "models":
        one_line_error(capsys, ["models", "add", "--small", str(bad), "--large", str(L)], str(bad), fragment)
        assert not (dirs / "cfg" / "config.toml").exists()
    else:
        assert main(["doctor", "--small", str(bad), "--large", str(L), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert any(fragment in f["what"] and str(bad) in f["what"] for f in doc["findings"])


@pytest.mark.parametrize("args,message", [
    (["generate", "--promt", "347+589"], "r2r generate: error: unrecognized arguments: --promt (did you mean --prompt?)"),
    (["generate", "--prom", "347+589"], "r2r generate: error: unrecognized arguments: --prom (did you mean --prompt?)"),
    (["generate", "--prompt", "x", "--max-tokns=3"],
     "r2r generate: error: unrecognized arguments: --max-tokns (did you mean --max-tokens?)"),
    (["models", "add", "--smal", str(S), "--large", str(L)],
     "r2r models add: error: unrecognized arguments: --smal (did you mean --small?)"),
    (["label", "--prompt", "p.txt", "--out", "o"], "r2r label: error: unrecognized arguments: --prompt (did you mean --prompts?)"),
    (["generate"], "r2r generate: error: one of the arguments --prompt --prompt-file is required"),
])
def test_an_unknown_flag_is_named_not_taken_for_a_missing_one(capsys, args, message):
    """A typo is reported as itself (with the nearest flag), never as the required flag it may
    stand for, and no flag is taken from an abbreviation."""
    assert one_line_error(capsys, args) == f"{message} (see --help)"
