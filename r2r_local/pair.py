"""Loading a small/large pair, with the vocabulary check, and decoding requests on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from r2r_local.backends import Model
from r2r_local.config import ModelSpec
from r2r_local.decode import Decoder, Generation, Policy, Request
from r2r_local.metering import TokenEvent, with_served
from r2r_local.router import Router, parse_router
from r2r_local.vocab import shared_vocab_size, vocab_hash

log = logging.getLogger(__name__)


@dataclass
class LoadedPair:
    """The two loaded models and the Decoder that owns their slots (one request at a time).
    Their slots give distributions over the `n_shared` tokens both vocabularies hold."""

    small: Model
    large: Model
    n_shared: int
    small_vocab_hash: str
    decoder: Decoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for model in (self.small, self.large):
            model.slot.limit_vocab(self.n_shared)
        self.decoder = Decoder(self.small, self.large)

    def router(self, spec: str, seed: int = 0) -> Router:
        return parse_router(spec, seed=seed, n_embd=self.small.n_embd, vocab_hash=self.small_vocab_hash)

    def generate(self, request: Request) -> Generation:
        if request.policy.spec and not request.sampling.greedy and not self.large.caps.dense:
            from r2r_local.errors import ConfigError

            raise ConfigError(f"sampled --spec needs the large model's whole distribution; {self.large.path} "
                              "gives its top tokens only: use greedy decoding (--temperature 0) or routing")
        gen = self.decoder.generate(request)
        if self.large.caps.served:  # add the server's per-call figures to the stats
            gen._events = self._served(gen, gen._events)
        return gen

    def _served(self, gen: Generation, events: Iterator[TokenEvent]) -> Iterator[TokenEvent]:
        """`events`, then gen.stats with the served large model's calls of this generation."""
        before = self.large.slot.counters
        try:
            yield from events
        finally:
            if gen.stats is not None:
                gen.stats = with_served(gen.stats, self.large.slot.counters.since(before))

    def warn_threads(self, policy: Policy) -> None:
        """Two models stepping at once with multi-threaded llama.cpp fight for the cores."""
        if (policy.ahead or policy.overlap) and any(m.cpu_threads > 1 for m in (self.small, self.large)):
            log.warning("--%s with more than one llama.cpp thread on the CPU: two models stepping at once "
                        "make llama.cpp's spinning threads fight for the cores (far slower for small models; "
                        "see docs/design.md, Policies); --threads 1 avoids it", "ahead" if policy.ahead else "overlap")

    def close(self) -> None:
        """Free both models, once no work of this pair is running on them."""
        try:
            self.decoder.close()
        finally:
            self.small.close()
            self.large.close()


def load_pair(small: ModelSpec, large: ModelSpec,
              progress: Callable[[str, str], None] | None = None) -> LoadedPair:
    """Load both models and check that they share a tokenizer (padding rows may differ).

    progress(stage, path), when given, is called before each stage: "small", "large", "vocab".
    """
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.backends.remote import is_remote

    report = progress or (lambda stage, path: None)
    if is_remote(large.path):
        return _load_remote_pair(small, large, report)
    report("small", small.path)
    small_backend = LlamaCppBackend(small)  # hidden states on demand: slot.enable_hidden()
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


def _load_remote_pair(small: ModelSpec, large: ModelSpec, report: Callable[[str, str], None]) -> LoadedPair:
    """A local small model and a large model behind llama-server or vLLM (`large.path` is its
    address; the engine is found out by r2r_local.backends.served); the vocabularies are compared
    by sampling (r2r_local.backends.remote.check_pairing)."""
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.backends.remote import check_pairing
    from r2r_local.backends.served import open_served_model

    report("small", small.path)
    small_backend = LlamaCppBackend(small)
    try:
        report("large", large.path)
        remote = open_served_model(large)
        try:
            report("vocab", large.path)
            n_shared = check_pairing(small_backend, remote, small.path)
        except Exception:
            remote.close()
            raise
    except Exception:
        small_backend.close()
        raise
    remote.adopt_tokenizer(small_backend)
    return LoadedPair(small_backend, remote, n_shared, vocab_hash(small_backend.vocab()))
