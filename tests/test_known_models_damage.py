"""`r2r models list` with a damaged known-models table (R2R_KNOWN_MODELS): one line naming the
file and the entry, exit 1, no traceback; never a path outside the models folder."""

from __future__ import annotations

import pytest

from r2r_local.cli import main

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
