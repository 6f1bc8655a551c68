"""Import hygiene: the runtime never pulls in torch or transformers (STYLE.md rule 4)."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "textual")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_r2r_local_is_light():
    mods = _loaded_after("import r2r_local")
    assert not {m for m in mods if m.split(".")[0] in HEAVY + ("llama_cpp", "onnxruntime", "numpy")}


def test_the_runtime_path_stays_free_of_torch():
    mods = _loaded_after("import r2r_local.cli, r2r_local.pair, r2r_local.engine, r2r_local.router.onnx")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}
