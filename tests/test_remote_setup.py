"""A served large model in `r2r doctor` and `r2r models add` (issue 17: a URL wherever a large model
path is accepted): the doctor reports the server, what it serves and the pairing with the small
model, or one line when it is not there; `models add` stores a pair whose large side is a URL,
and `r2r generate` without model flags then runs it. Real llama-server and SmolLM2."""

from __future__ import annotations

import json
import subprocess
import sys

from llama_server import free_port
from settings import THREADS
from r2r_local.config import load_user_config, write_user_config

PROMPT = "Name three colours."


def r2r(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args], capture_output=True, text=True, timeout=300)


def doctor_json(*args: str) -> tuple[int, dict]:
    proc = r2r("doctor", "--strict", "--json", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_reports_a_served_large_model_and_its_pairing(smollm2, smollm2_server):
    rc, report = doctor_json("--small", str(smollm2), "--large", smollm2_server.url)
    large = report["models"]["large"]
    assert rc == 0 and report["ok"] and report["fit"] is None
    assert large == {"path": smollm2_server.url, "served": True, "reachable": True, "engine": "llama-server",
                     "model": str(smollm2), "n_ctx": 2048, "n_vocab": 49152, "n_params": large["n_params"],
                     "n_shared_vocab": 49152, "pairing": "ok"}
    assert 130e6 < large["n_params"] < 140e6  # SmolLM2-135M
    text = r2r("doctor", "--small", str(smollm2), "--large", smollm2_server.url).stdout
    assert (f"  large: {smollm2_server.url}: reachable, llama-server serving {smollm2} (context 2048, vocabulary 49152, "
            "135M params)\n    pairing with the small model: ok\n") in text


def test_doctor_names_a_server_of_another_tokenizer(smollm2_server):
    rc, report = doctor_json("--demo", "--large", smollm2_server.url)
    pairing = report["models"]["large"]["pairing"]
    assert rc == 1 and "different vocabularies: 356 tokens in the small model, 49152 in the served one" in pairing
    assert [f["what"] for f in report["findings"] if f["severity"] == "problem"] == [pairing]


def test_doctor_says_in_one_line_that_the_configured_server_is_not_there(smollm2):
    url = f"http://127.0.0.1:{free_port()}"
    write_user_config({"small": str(smollm2), "large": url})
    proc = r2r("doctor", "--strict", "--large-retries", "0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"  large: not reachable: large model {url}: connection refused (is the server running?)\n" in proc.stdout


def test_models_add_stores_a_served_large_model_that_generate_then_uses(smollm2, smollm2_server):
    proc = r2r("models", "add", "--small", str(smollm2), "--large", smollm2_server.url, "--large-top-k", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["served"]["engine"] == "llama-server" and done["n_shared_vocab"] == 49152
    assert load_user_config() == {"small": str(smollm2), "large": smollm2_server.url, "large_top_k": 20}
    gen = r2r("generate", "--router", "llm", "--prompt", PROMPT, "--max-tokens", "8", "--json", "--threads", str(THREADS))
    assert gen.returncode == 0, gen.stderr
    config = json.loads(gen.stdout)["config"]
    assert config["large"]["path"] == smollm2_server.url and config["large"]["server"]["top_k"] == 20
    assert json.loads(gen.stdout)["stats"]["large_tokens"] == 8


def test_models_add_refuses_a_server_that_is_not_there_and_writes_nothing(smollm2):
    url = f"http://127.0.0.1:{free_port()}"
    proc = r2r("models", "add", "--small", str(smollm2), "--large", url, "--large-retries", "0")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"r2r: error: large model {url}: connection refused (is the server running?)"]
    assert load_user_config() == {}


def test_models_add_then_a_local_large_model_drops_the_servers_bounds(smollm2, smollm2_server):
    proc = r2r("models", "add", "--small", str(smollm2), "--large", smollm2_server.url, "--large-timeout", "5")
    assert proc.returncode == 0 and f"large: llama-server serving {smollm2} (context 2048, vocabulary 49152;" in proc.stdout
    assert "made again at each load" not in proc.stdout and "  large_timeout = 5.0\n" in proc.stdout
    proc = r2r("models", "add", "--small", str(smollm2), "--large", str(smollm2))
    assert proc.returncode == 0, proc.stderr
    assert load_user_config() == {"small": str(smollm2), "large": str(smollm2)}
    proc = r2r("models", "add", "--small", str(smollm2), "--large", str(smollm2), "--large-top-k", "5")
    assert proc.returncode == 1 and "--large-top-k: only for a large model behind a server" in proc.stderr
