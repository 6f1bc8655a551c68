"""Stopping in the middle: a cancel while the prompt is read, Ctrl-C while work runs in a worker
thread, Ctrl-C inside a llama.cpp call. Nothing may be freed under a running call, nothing freed
twice, and the caches must still hold a prefix of the committed sequence afterwards."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import llama_cpp as C

from r2r_local import cli
from r2r_local.backends import N_BATCH
from r2r_local.backends import llama_runtime as backend_module
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import GenerationSettings, ModelSpec, SamplingParams
from r2r_local.decode import Request, routed
from r2r_local.decode.lanes import wait_quietly as _wait_quietly
from r2r_local.demo.paths import demo_pair
from r2r_local.pair import LoadedPair
from r2r_local.router.baselines import SmallOnly

from test_ahead import AheadEngine, ByToken, SlowLarge, sometimes_agrees
from test_engine_scripted import V, EveryThird, Scripted, Slow, count_up, count_up_by_two
from test_engine_scripted import Runner as Engine

LONG_PROMPT = [1 + i % (V - 1) for i in range(2 * N_BATCH + 10)]


class CancelAfter(Scripted):
    """Sets `cancel` once it has evaluated `after` calls' worth of tokens."""

    def __init__(self, rule, cancel, after=1):
        super().__init__(rule, n_ctx=4096)
        self.cancel, self.after = cancel, after

    def decode(self, tokens, *, hidden=False):
        out = super().decode(tokens, hidden=hidden)
        if len(self.calls) >= self.after:
            self.cancel.set()
        return out


def test_a_cancel_while_the_small_model_reads_the_prompt_stops_within_one_chunk():
    cancel = threading.Event()
    small, large = CancelAfter(count_up, cancel), Scripted(count_up_by_two, n_ctx=4096)
    engine = Engine(small, large, EveryThird())
    gen = engine.generate(LONG_PROMPT, SamplingParams(), GenerationSettings(max_tokens=5), cancel).run()
    assert gen.stop_reason == "cancelled" and gen.events == []
    assert small.calls == [N_BATCH] and large.calls == []
    assert small.tokens == LONG_PROMPT[:N_BATCH]


def test_a_cancel_while_the_large_model_reads_the_prompt_stops_and_the_next_run_is_unchanged():
    cancel = threading.Event()
    small, large = Scripted(count_up, n_ctx=4096), CancelAfter(count_up_by_two, cancel)
    engine = Engine(small, large, EveryThird())
    gen = engine.generate(LONG_PROMPT, SamplingParams(), GenerationSettings(max_tokens=5), cancel).run()
    assert gen.stop_reason == "cancelled" and gen.events == []
    assert large.calls == [N_BATCH] and large.tokens == LONG_PROMPT[:N_BATCH]
    # the same prompt again, without a cancel: the caches are reused and the answer is a fresh run's
    again = engine.generate(LONG_PROMPT, SamplingParams(), GenerationSettings(max_tokens=6)).run()
    fresh_engine = Engine(Scripted(count_up, n_ctx=4096), Scripted(count_up_by_two, n_ctx=4096), EveryThird())
    fresh = fresh_engine.generate(LONG_PROMPT, SamplingParams(), GenerationSettings(max_tokens=6)).run()
    assert [(e.id, e.source) for e in again.events] == [(e.id, e.source) for e in fresh.events]


def test_the_prompt_is_read_in_the_chunks_one_backend_call_would_use():
    small = Scripted(count_up, n_ctx=4096)
    engine = Engine(small, Scripted(count_up_by_two, n_ctx=4096), SmallOnly())
    engine.generate(LONG_PROMPT, SamplingParams(), GenerationSettings(max_tokens=1)).run()
    assert small.calls == [N_BATCH, N_BATCH, 10]


def test_closing_an_overlap_engine_waits_for_the_step_still_running():
    small = Slow(count_up)
    engine = Engine(small, Scripted(count_up_by_two), EveryThird(), overlap=True)
    events = iter(engine.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=20)))
    next(events)
    next(events)  # a speculative step on the next proposal is running in the worker
    engine.decoder.close()
    assert not small.busy.locked() and small.clashes == 0
    assert small.tokens == engine.sequence and engine.decoder.small_lane._worker is None


def test_closing_an_ahead_engine_waits_for_the_large_models_call():
    large = SlowLarge(sometimes_agrees)
    engine = AheadEngine(Scripted(count_up), large, ByToken())
    events = iter(engine.generate([1, 2], SamplingParams(), GenerationSettings(max_tokens=40)))
    for _ in range(3):
        next(events)
    engine.decoder.close()
    assert engine.decoder.large_lane.pending is None and engine.decoder.large_lane._worker is None
    assert engine.small.tokens == engine.sequence


class SlowClosing(Slow):
    """Slow steps; records whether `running()` (work still running on the pair) held at its close."""

    cpu_threads = 1

    def __init__(self, rule, running):
        super().__init__(rule)
        self.running, self.closed_while_running = running, None

    def close(self):
        self.closed_while_running = self.running()


def test_a_pair_frees_its_models_only_after_its_engines_stopped():
    lanes = []

    def running():
        return any(lane.pending is not None and not lane.pending.future.done() for lane in lanes)

    small, large = SlowClosing(count_up, running), SlowClosing(count_up_by_two, running)
    pair = LoadedPair(small, large, V, "hash")
    lanes.append(pair.decoder.small_lane)
    events = iter(pair.generate(Request([1, 2, 3], EveryThird(), routed(overlap=True),
                                        settings=GenerationSettings(max_tokens=20))))
    next(events)
    next(events)  # the small model's step on the next proposal is running in the worker
    assert running()
    pair.close()
    assert small.closed_while_running is False and large.closed_while_running is False


def test_waiting_for_unused_work_outlasts_ctrl_c_and_raises_it_afterwards():
    finished = []

    def work():
        time.sleep(0.4)
        finished.append(True)

    main = threading.main_thread().ident
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(work)
        threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            _wait_quietly(future)
        assert finished == [True]


@pytest.fixture()
def small_demo_spec():
    return ModelSpec(str(demo_pair().small), n_ctx=256, threads=1, role="small")


def test_ctrl_c_in_llama_cpps_log_callback_is_raised_after_the_load(monkeypatch, capfd, small_demo_spec):
    if C.llama_supports_gpu_offload():
        pytest.skip("GPU builds keep llama-cpp-python's own log callback")
    LlamaCppBackend(small_demo_spec).close()  # the backend is set up, the log callback installed

    def interrupted(level, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(backend_module, "_log", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LlamaCppBackend(small_demo_spec)
    assert backend_module._interrupt_pending == [False]
    assert "Exception ignored" not in capfd.readouterr().err
    monkeypatch.undo()
    LlamaCppBackend(small_demo_spec).close()  # loading works again afterwards


def test_ctrl_c_while_freeing_a_context_never_frees_it_twice(monkeypatch, small_demo_spec):
    backend = LlamaCppBackend(small_demo_spec)
    real_free, taken = C.llama_free, []

    def interrupted_free(ctx):
        taken.append(ctx)
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "llama_free", interrupted_free)
    with pytest.raises(KeyboardInterrupt):
        backend.close()
    monkeypatch.undo()
    assert backend.slot._ctx is None and backend.slot._batch is None  # __del__ will not free them again
    real_free(taken[0])
    backend.close()  # frees the model, once
    assert backend._model is None


def test_an_import_cut_short_by_ctrl_c_is_reported_as_an_interrupt(monkeypatch, capsys):
    def run(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr("r2r_local.commands.doctor.run", run)
    assert cli.main(["doctor"]) == 130
    assert capsys.readouterr().err.strip() == "r2r: interrupted"
