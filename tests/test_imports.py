"""Import hygiene: the runtime never pulls in torch or transformers (docs/design.md, "Import rules")."""

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
    mods = _loaded_after("import r2r_local.cli, r2r_local.pair, r2r_local.decode, r2r_local.router.onnx")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}


BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("llama_cpp", "onnxruntime", "torch", "transformers"):
            raise ImportError(name + " is not installed (blocked by the test)")
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


def test_the_decoding_core_tests_run_without_llama_cpp_or_onnxruntime():
    """The loop, its policies and sampling are pure: their tests (scripted models) need neither
    llama-cpp-python nor onnxruntime, and the shared conftest does not import them."""
    from pathlib import Path

    here = Path(__file__).parent
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(here / "test_engine_scripted.py"),
                           str(here / "test_decode_core.py")], capture_output=True, text=True, cwd=here.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
