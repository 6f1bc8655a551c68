"""`r2r models list` with a damaged known-models table (R2R_KNOWN_MODELS): one line naming the
file and the entry, exit 1, no traceback; never a path outside the models folder."""

from __future__ import annotations

import json

import pytest

from r2r_local.cli import main
from r2r_local.units import format_bytes

GOOD_FILE = 'kind = "gguf"\nrepo = "o/r"\nfile = "f.gguf"\nrevision = "abc"\n'
PAIR = '[pairs.p]\nsmall = "a"\nlarge = "a"\n'


def tables(file_body: str = GOOD_FILE, pair: str = PAIR) -> str:
    return f"[files.a]\n{file_body}{pair}"


DAMAGED = {
    "files not a table": ('files = "x"\n' + PAIR, "files must be a table"),
    "pairs an array": ("pairs = [1]\n", "pairs must be a table"),
    "a pair not a table": ("[pairs]\na = 1\n", "pairs.a: must be a table"),
    "a file not a table": ('[files]\na = "x"\n' + PAIR, "files.a: must be a table"),
    "revision a number": (tables(GOOD_FILE.replace('"abc"', "5")), "files.a: revision has the wrong type"),
    "repo a number": (tables(GOOD_FILE.replace('"o/r"', "5")), "files.a: repo has the wrong type"),
    "repo without owner": (tables(GOOD_FILE.replace('"o/r"', '"r"')), "repo must be 'owner/name'"),
    "absolute file": (tables(GOOD_FILE.replace('"f.gguf"', '"/etc/passwd"')), "file must be a relative path"),
    "file climbing out": (tables(GOOD_FILE.replace('"f.gguf"', '"../../x.gguf"')), "file must be a relative path"),
    "negative size": (tables(GOOD_FILE + "size = -5\n"), "size and approx_gb must be >= 0"),
    "sha256 a number": (tables(GOOD_FILE + "sha256 = 12\n"), "sha256 has the wrong type"),
    "sha256 not hex": (tables(GOOD_FILE + 'sha256 = "xyz"\n'), "sha256 must be 64"),
    "unknown kind": (tables(GOOD_FILE.replace('"gguf"', '"zip"')), "kind must be"),
    "missing small": (tables(pair='[pairs.p]\nlarge = "a"\n'), "pairs.p: the key 'small' is missing"),
    "unknown file": (tables(pair='[pairs.p]\nsmall = "a"\nlarge = "b"\n'), 'pairs.p: large names an unknown file "b"'),
    "router is a gguf": (tables(pair=PAIR + 'router = "a"\n'), "router names files.a, of kind 'gguf'"),
    "no pairs": ("", "has no [pairs.NAME] tables"),
    "shape without quant": (tables(GOOD_FILE + 'shape = "qwen3-8b"\n'), "shape and quant go together"),
    "unknown quant": (tables(GOOD_FILE + 'shape = "qwen3-8b"\nquant = "Q3_K"\n'), "quant one of F16, Q8_0, Q4_K_M"),
    "shape a number": (tables(GOOD_FILE + "shape = 8\n"), "shape has the wrong type"),
}


@pytest.mark.parametrize("text, message", DAMAGED.values(), ids=DAMAGED.keys())
@pytest.mark.parametrize("command", [["models", "list"], ["models", "list", "--json"], ["models", "pull", "p", "--dry-run"]])
def test_a_damaged_table_is_one_line(tmp_path, monkeypatch, capsys, text, message, command):
    known = tmp_path / "known.toml"
    known.write_text(text)
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(known))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    assert main(command) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"known models file {known}" in err and message in err, err


def test_a_file_in_a_subfolder_of_its_repository_is_accepted(tmp_path, monkeypatch, capsys):
    known = tmp_path / "known.toml"
    known.write_text(tables(GOOD_FILE.replace('"f.gguf"', '"sub/f.gguf"')))
    monkeypatch.setenv("R2R_KNOWN_MODELS", str(known))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    assert main(["models", "list"]) == 0
    assert f"{tmp_path / 'data'}" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["r1-q4", "r1-q8s", "qwen3-0.6b-8b", "qwen3-1.7b-8b", "qwen3-4b-8b", "qwen3-0.6b-32b"])
@pytest.mark.parametrize("flags", [[], ["--no-router"], ["--int8-router", "--no-config"]])
def test_pull_dry_run_says_what_pull_would_fetch_and_do(tmp_path, monkeypatch, capsys, name, flags):
    from r2r_local.catalog import find_pair, local_path

    monkeypatch.delenv("R2R_KNOWN_MODELS", raising=False)
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path / "cfg"))
    pair = find_pair(name)
    assert main(["models", "pull", name, "--dry-run", "--json", *flags]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is one JSON document with --json
    known = [("small", pair.small), ("large", pair.large)] + ([] if "--no-router" in flags else [("router", pair.router)])
    assert [f["role"] for f in doc["files"]] == [role for role, _ in known]
    for got, (role, f) in zip(doc["files"], known):
        assert (got["repo"], got["file"], got["revision"]) == (f.repo, f.file, f.revision)
        assert got["sha256"] == (f.sha256 or None) and got["size"] == (f.size or None)
        assert got["path"] == str(local_path(f)) and got["present"] is False
    converts = [s for s in doc["then"] if s.startswith("convert the router checkpoint to ")]
    assert len(converts) == (0 if "--no-router" in flags else 1)
    if converts:  # the .onnx beside the checkpoint, bound to the small model, the checkpoint's threshold
        onnx = local_path(pair.router).with_suffix(".onnx")
        assert converts[0].startswith(f"convert the router checkpoint to {onnx} ")
        assert "small model's hidden size" in converts[0] and "threshold saved in the checkpoint" in converts[0]
    assert any("int8" in s for s in doc["then"]) == ("--int8-router" in flags)
    assert any("--no-config" in s for s in doc["then"]) == ("--no-config" in flags)
    assert main(["models", "pull", name, "--dry-run", *flags]) == 0
    text = capsys.readouterr().out
    for _, f in known:
        assert (f.sha256 or "no published sha256") in text and f"{f.revision}," in text
        assert (format_bytes(f.size) if f.size else f"~{f.approx_gb} GB" if f.approx_gb else "size unknown") in text
    assert not (tmp_path / "data").exists() and not (tmp_path / "cfg").exists()  # nothing written


def test_pull_dry_run_keeps_a_router_already_converted(tmp_path, monkeypatch, capsys):
    from r2r_local.catalog import find_pair, local_path

    monkeypatch.delenv("R2R_KNOWN_MODELS", raising=False)
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path / "data"))
    onnx = local_path(find_pair("r1-q4").router).with_suffix(".onnx")
    onnx.parent.mkdir(parents=True)
    for path in (onnx, onnx.with_suffix(".json"), onnx.with_name(onnx.stem + "-int8.onnx"),
                 onnx.with_name(onnx.stem + "-int8.json")):
        path.write_bytes(b"converted earlier")
    assert main(["models", "pull", "r1-q4", "--dry-run", "--json", "--int8-router", "--no-config"]) == 0
    steps = json.loads(capsys.readouterr().out)["then"]
    assert steps[:2] == [f"keep the router already converted at {onnx}",
                         f"keep its int8 copy {onnx.with_name(onnx.stem + '-int8.onnx')}"]
