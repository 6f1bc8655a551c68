#!/usr/bin/env python3
"""Per-token cost of the decoding loop itself: everything outside the models.

The models are instant scripted stand-ins (a table lookup per step), so what is timed is the loop:
sampling, routing bookkeeping, the committer, events and statistics. It runs against the checkout
named on the command line, with the API that checkout has (the old Engine of commit b3e62d4 and
before, or the Decoder of r2r_local/decode), so two commits can be compared side by side:

    for i in 1 2 3 4 5 6; do
        python scripts/loop_overhead.py OLD_CHECKOUT old; python scripts/loop_overhead.py . new
    done

Prints one JSON line: mode -> the best of 7 runs of 3,000 tokens, in microseconds per token (the
best, not the median: the loop's own cost is the floor; noise only adds).
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, sys.argv[1])
V = 64
try:
    from r2r_local.backends import Dist as D
except ImportError:
    from r2r_local.backends import Output as D
class M:
    n_vocab, n_embd, n_params, n_ctx, cpu_threads = V, 4, 1000, 100000, 1
    def __init__(self, step):
        self.step, self.tokens = step, []
        try:
            from r2r_local.backends import Capabilities
            self.caps = Capabilities()
        except ImportError:
            pass
        self.logits = [np.zeros(V, np.float32) for _ in range(V)]
        for i in range(V): self.logits[i][(i * 7 + step) % (V - 1) + 1] = 10.0
    slot = property(lambda self: self)
    n_past = property(lambda self: len(self.tokens))
    def decode(self, tokens, *, hidden=False):
        self.tokens.extend(tokens); return D(self.logits[self.tokens[-1] % V], None)
    def truncate(self, n): del self.tokens[n:]
    def enable_hidden(self): pass
    def limit_vocab(self, n): pass
    def set_abort(self, check): pass
    def is_eog(self, t): return t == 0
    def token_bytes(self, t): return b"a"
    def embedding_row(self, t): return np.zeros(4, np.float32)
from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.router.baselines import RandomRouter, SmallOnly
N = 3000
def run_old(router_name):
    from r2r_local.engine import Engine
    small, large = M(1), M(2)
    if router_name == "large":
        e = Engine(large, large, SmallOnly(), n_shared=V)
    else:
        e = Engine(small, large, SmallOnly() if router_name == "small" else RandomRouter(0.15, 0), n_shared=V)
    t = time.perf_counter(); g = e.generate([1, 2, 3], SamplingParams(), GenerationSettings(max_tokens=N)).run()
    return (time.perf_counter() - t) / len(g.events) * 1e6
def run_new(router_name):
    from r2r_local.decode import Decoder, Request, SMALL, LARGE, ROUTED
    small, large = M(1), M(2)
    d = Decoder(small, large)
    policy = {"small": SMALL, "large": LARGE}.get(router_name, ROUTED)
    req = Request([1, 2, 3], RandomRouter(0.15, 0), policy, settings=GenerationSettings(max_tokens=N))
    t = time.perf_counter(); g = d.generate(req).run()
    return (time.perf_counter() - t) / len(g.events) * 1e6
run = run_old if len(sys.argv) > 2 and sys.argv[2] == "old" else run_new
print(json.dumps({m: min(run(m) for _ in range(7)) for m in ("small", "large", "r2r")}))
