"""Import rules of the chat app: textual only in tui/, never torch or transformers."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_r2r_chat_never_imports_torch_or_transformers():
    mods = _loaded_after("import r2r_tui.app, r2r_tui.loader, r2r_local.pair, r2r_local.decode")
    assert "textual" in mods
    assert not mods & {"torch", "transformers"}


def test_textual_is_imported_only_inside_tui():
    pattern = re.compile(r"^\s*(from|import)\s+textual\b", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "r2r_local").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
    assert _loaded_after("import r2r_local.cli, r2r_local.pair").isdisjoint({"textual"})


def test_pyproject_lists_every_package():
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "r2r_local").rglob("__init__.py")}
    found |= {"r2r_tui." + ".".join(p.parent.relative_to(ROOT / "tui").parts) if p.parent != ROOT / "tui" else "r2r_tui"
              for p in (ROOT / "tui").rglob("__init__.py")}
    assert set(conf["packages"]) == found
    assert conf["package-dir"] == {"r2r_tui": "tui"}
