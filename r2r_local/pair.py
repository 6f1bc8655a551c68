"""Loading a small/large pair and its router into an Engine, with the vocabulary check."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
from r2r_local.engine import Engine
from r2r_local.errors import ConfigError
from r2r_local.router import Router, parse_router
from r2r_local.vocab import shared_vocab_size, vocab_hash

log = logging.getLogger(__name__)


@dataclass
class LoadedPair:
    small: LlamaCppBackend
    large: LlamaCppBackend
    n_shared: int
    small_vocab_hash: str
    _engines: list[Engine] = field(default_factory=list, repr=False)

    def router(self, spec: str, seed: int = 0) -> Router:
        return parse_router(spec, seed=seed, n_embd=self.small.n_embd, vocab_hash=self.small_vocab_hash)

    def engine(self, router: Router, *, overlap: bool = False, ahead: bool = False) -> Engine:
        """The routed loop over this pair; `overlap` and `ahead` pick its opt-in variants
        (engine.py, ahead.py), one at a time."""
        if ahead and overlap:
            raise ConfigError("--ahead and --overlap cannot be combined (yet): choose one")
        if (ahead or overlap) and any(b.cpu_threads > 1 for b in (self.small, self.large)):
            log.warning("--%s with more than one llama.cpp thread on the CPU: two models stepping at once "
                        "make llama.cpp's spinning threads fight for the cores (far slower for small models; "
                        "see the README); --threads 1 avoids it", "ahead" if ahead else "overlap")
        if ahead:
            from r2r_local.ahead import AheadEngine

            engine: Engine = AheadEngine(self.small, self.large, router, n_shared=self.n_shared)
        else:
            engine = Engine(self.small, self.large, router, n_shared=self.n_shared, overlap=overlap)
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Free both models, once no engine of this pair has work running on them."""
        try:
            for engine in self._engines:
                engine.close()
        finally:
            self._engines.clear()
            self.small.close()
            self.large.close()


def load_pair(small: ModelSpec, large: ModelSpec,
              progress: Callable[[str, str], None] | None = None) -> LoadedPair:
    """Load both models and check that they share a tokenizer (padding rows may differ).

    progress(stage, path), when given, is called before each stage: "small", "large", "vocab".
    """
    report = progress or (lambda stage, path: None)
    report("small", small.path)
    small_backend = LlamaCppBackend(small)  # hidden states on demand: enable_hidden()
    try:
        report("large", large.path)
        large_backend = LlamaCppBackend(large)
    except Exception:
        small_backend.close()
        raise
    try:
        report("vocab", large.path)
        small_vocab = small_backend.vocab()
        n_shared = shared_vocab_size(small_vocab, large_backend.vocab(), small.path, large.path)
    except Exception:
        small_backend.close()
        large_backend.close()
        raise
    if n_shared < max(small_backend.n_vocab, large_backend.n_vocab):
        log.info("vocabularies differ only in padding: sampling over the first %d tokens", n_shared)
    return LoadedPair(small_backend, large_backend, n_shared, vocab_hash(small_vocab))
