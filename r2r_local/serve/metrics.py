"""Prometheus metrics of the server, through prometheus_client (a registry per server).

r2r_tokens_total{source}           generated tokens, by who chose them (small | large)
r2r_large_calls_total              large-model calls; r2r_catch_up_tokens_total: tokens they evaluated
r2r_prompt_tokens_total            prompt tokens; r2r_cached_prompt_tokens_total: those reused from the cache
r2r_requests_total{outcome}        stop | length | cancelled | error (the engine ran or skipped the job),
                                   rejected (429), invalid (400), unauthorized (401), not_found (404), ...
r2r_phase_seconds_total{phase}     queue | prompt | small | router | large | other
r2r_queue_depth, r2r_busy          requests waiting now; 1 while a generation runs
r2r_queue_wait_seconds, r2r_request_seconds, r2r_cancel_seconds   histograms
r2r_served_info{model,small,large,router,policy}   1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info,
                               disable_created_metrics, generate_latest)

if TYPE_CHECKING:
    from r2r_local.serve.scheduler import Job, Scheduler

CONTENT_TYPE = CONTENT_TYPE_LATEST
_REFUSED = {400: "invalid", 401: "unauthorized", 404: "not_found", 405: "not_allowed", 413: "too_large",
            429: "rejected", 503: "unavailable"}
_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The server's metrics; `finished(job)` is the scheduler's observer, `refused(status)` counts
    requests answered with an error before reaching the engine."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
        r = self.registry = CollectorRegistry()
        self.tokens = Counter("r2r_tokens", "Generated tokens by the model that chose them", ["source"], registry=r)
        self.large_calls = Counter("r2r_large_calls", "Large-model calls (catch-ups)", registry=r)
        self.catch_up = Counter("r2r_catch_up_tokens", "Tokens the large model evaluated in its calls", registry=r)
        self.prompt = Counter("r2r_prompt_tokens", "Prompt tokens of the requests run", registry=r)
        self.cached = Counter("r2r_cached_prompt_tokens", "Prompt tokens reused from the cache", registry=r)
        self.requests = Counter("r2r_requests", "Requests by outcome", ["outcome"], registry=r)
        self.phase = Counter("r2r_phase_seconds", "Seconds spent per phase", ["phase"], registry=r)
        self.depth = Gauge("r2r_queue_depth", "Requests waiting for the engine", registry=r)
        self.busy = Gauge("r2r_busy", "1 while the engine runs a generation", registry=r)
        self.queue_wait = Histogram("r2r_queue_wait_seconds", "Seconds a request waited for the engine",
                                    buckets=_BUCKETS, registry=r)
        self.duration = Histogram("r2r_request_seconds", "Seconds from arrival to the end of the generation",
                                  buckets=_BUCKETS, registry=r)
        self.cancel_delay = Histogram("r2r_cancel_seconds", "Seconds from a cancel to the engine being free",
                                      buckets=_BUCKETS, registry=r)
        self.info = Info("r2r_served", "The served pair", registry=r)
        for source in ("small", "large"):
            self.tokens.labels(source)
        for outcome in ("stop", "length", "cancelled", "error", "rejected", "invalid"):
            self.requests.labels(outcome)

    def watch(self, scheduler: "Scheduler", info: dict[str, str]) -> None:
        self.depth.set_function(lambda: scheduler.waiting)
        self.busy.set_function(lambda: 1 if scheduler.busy else 0)
        self.info.info(info)

    def refused(self, status: int) -> None:
        self.requests.labels(_REFUSED.get(status, str(status))).inc()

    def finished(self, job: "Job") -> None:
        """Count one job the engine took (run, skipped because cancelled, or failed)."""
        result = job.result
        assert result is not None and job.ended_at is not None
        self.queue_wait.observe(job.queue_wait)
        self.duration.observe(job.ended_at - job.submitted_at)
        self.phase.labels("queue").inc(job.queue_wait)
        if job.cancelled_at is not None:
            self.cancel_delay.observe(max(0.0, job.ended_at - job.cancelled_at))
        gen = result.gen
        if result.error is not None:
            self.requests.labels("error").inc()
        elif gen is None:
            self.requests.labels("cancelled").inc()
        else:
            self.requests.labels(outcome(gen.stop_reason)).inc()
        if gen is None or gen.stats is None:
            return
        s = gen.stats
        self.tokens.labels("small").inc(s.n_tokens - s.large_tokens)
        self.tokens.labels("large").inc(s.large_tokens)
        self.large_calls.inc(s.large_calls)
        self.catch_up.inc(round(s.mean_catch_up * s.large_calls))
        self.prompt.inc(s.prompt_tokens)
        self.cached.inc(s.cached_prompt_tokens)
        for phase, seconds in (("prompt", s.time_prompt_s), ("small", s.time_small_s), ("router", s.time_router_s),
                               ("large", s.time_large_s), ("other", s.time_other_s)):
            self.phase.labels(phase).inc(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def outcome(stop_reason: str | None) -> str:
    """The core's stop reason as a request outcome: OpenAI's finish_reason, or cancelled."""
    if stop_reason == "cancelled":
        return "cancelled"
    return "length" if stop_reason in ("max_tokens", "context_full") else "stop"
