"""Measuring a large model behind a real llama-server: each call's round trip next to the
server's own compute (its timings), in the generation's stats, `r2r generate --json` and
`r2r bench` (large-only mode through the server included).

Needs the llama-server of scripts/build_llama_server.sh (skipped, saying so, without it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from settings import THREADS
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import GenerationSettings, ModelSpec, SamplingParams
from r2r_local.decode import Request, policy_for_mode
from r2r_local.pair import load_pair

SERVED = ("large_server_calls", "ms_round_trip_per_call", "ms_server_per_call", "ms_overhead_per_call")


@pytest.fixture(scope="module")
def served_pair(smollm2, smollm2_server):
    spec = dict(n_ctx=2048, threads=THREADS)
    pair = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(smollm2_server.url, role="large", **spec))
    yield pair
    pair.close()


def run(pair, text: str, mode: str = "r2r", max_tokens: int = 32):
    prompt = chat_tokens(pair.small, [Message("user", text)])
    request = Request(prompt, pair.router("random:0.3", seed=5), policy_for_mode(mode), sampling=SamplingParams(),
                      settings=GenerationSettings(max_tokens=max_tokens))
    return pair.generate(request).run()


def check_per_call(figures: dict) -> None:
    """Round trip = server compute + overhead, none of them negative."""
    trip, server, overhead = (figures[k] for k in SERVED[1:])
    assert server > 0 and overhead >= 0 and trip >= server
    assert trip == pytest.approx(server + overhead, rel=1e-9)


def test_a_generation_counts_each_call_and_its_round_trip(served_pair):
    slot = served_pair.large.slot
    calls_before = slot.counters.calls
    first = run(served_pair, "Name two rivers and one mountain.")
    assert first.stats.large_calls > 2
    # the prompt was new to the large model: it read it in one call of its own, before the catch-ups
    assert first.stats.large_server_calls == first.stats.large_calls + 1
    assert slot.counters.calls - calls_before == first.stats.large_server_calls
    check_per_call(first.stats.as_dict())
    again = run(served_pair, "Name two rivers and one mountain.")  # the prompt is in the cache now
    assert again.stats.large_server_calls == again.stats.large_calls > 2
    check_per_call(again.stats.as_dict())


def test_large_alone_through_the_server_makes_one_call_per_token(served_pair):
    gen = run(served_pair, "Count from one to ten.", mode="large", max_tokens=12)
    assert gen.stats.n_tokens == gen.stats.large_calls == gen.stats.large_server_calls == 12
    check_per_call(gen.stats.as_dict())


def test_an_in_process_large_model_has_no_served_figures(pair):
    gen = run(pair, "Name two rivers.", max_tokens=8)
    assert all(gen.stats.as_dict()[k] is None for k in SERVED)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r2r_local.cli", *args, "--threads", str(THREADS)],
                          capture_output=True, text=True, timeout=600)


def test_generate_json_reports_the_served_figures(smollm2, smollm2_server):
    proc = cli("generate", "--small", str(smollm2), "--large", smollm2_server.url, "--router", "random:0.3",
               "--seed", "2", "--prompt", "Why is the sea salty?", "--max-tokens", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["large_server_calls"] >= stats["large_calls"] > 0
    check_per_call(stats)


def test_bench_through_the_server_reports_the_overhead_per_call(smollm2, smollm2_server):
    args = ["bench", "--small", str(smollm2), "--large", smollm2_server.url, "--router", "random:0.3", "--n", "2",
            "--max-tokens", "16", "--modes", "small,large,r2r"]
    proc = cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    modes = json.loads(proc.stdout)["modes"]
    assert modes["small"]["large_server_calls"] == 0 and modes["small"]["ms_round_trip_per_call"] == 0
    # the warm-up run read both prompts' starts before; the large-only mode reads each prompt as its
    # first step (one call, counted in large_calls), so the routed mode finds it in the cache
    for mode in ("large", "r2r"):
        assert modes[mode]["large_server_calls"] == modes[mode]["large_calls"] > 0
        check_per_call(modes[mode])
    assert modes["large"]["large_calls"] == modes["large"]["n_tokens"]
    table = cli(*args)
    assert table.returncode == 0, table.stderr
    served = [line for line in table.stdout.splitlines() if "served large model" in line]
    assert [line.split()[0] for line in served] == ["large", "r2r"]
    assert f"large served large model: {modes['large']['large_calls']} calls, round trip" in served[0]
