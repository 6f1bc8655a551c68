"""A job's output as OpenAI responses: one document, or server-sent events.

Streaming: the chat stream opens with the assistant role, then one chunk per token batch
(`content`, or `reasoning_content` inside the think section), then a chunk with `finish_reason`
and the `r2r` object, then (stream_options.include_usage) a chunk with empty choices, `usage` and
`r2r`, then `data: [DONE]`. Text that could still become a stop string is held back; at the end
the rest of the generation's own text is sent, so the streamed text equals the non-streamed text.
An engine error after the stream has started is sent as one `data: {"error": ...}` event.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

from r2r_local.chat import StopBuffer
from r2r_local.decode import Generation
from r2r_local.errors import ConfigError, PromptTooLongError, R2RError
from r2r_local.metering import TokenEvent
from r2r_local.serve import think
from r2r_local.serve.errors import APIError, bad_request
from r2r_local.serve.mailbox import Mailbox
from r2r_local.serve.protocol import (AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice,
                                      Completion, CompletionChoice, Delta, PromptDetails, Routing, Usage)
from r2r_local.serve.prompts import Prepared, Served
from r2r_local.serve.scheduler import Finished, Job

DONE = b"data: [DONE]\n\n"
# At most one chunk per 10 ms per stream: slower than that (SmolLM2 on a CPU: 20-40 ms a token)
# every token is its own chunk; faster, a chunk carries the tokens of 10 ms, which spares the
# engine's thread the event loop's per-chunk work (docs/serve.md, "Speed").
MIN_CHUNK_INTERVAL_S = 0.01


@dataclass
class Reply:
    """How one request is answered. chat: a chat completion (else a text completion)."""

    prepared: Prepared
    served: Served
    chat: bool
    include_usage: bool = False
    return_tokens: bool = False
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = self.id or ("chatcmpl-" if self.chat else "cmpl-") + secrets.token_hex(12)

    def routing(self, job: Job, gen: Generation) -> Routing:
        s, w, router = gen.stats, job.work, self.served.router
        assert s is not None and job.started is not None
        routed = w.policy.routed
        return Routing(
            model=self.prepared.model, policy=w.policy.name, router=self.served.router_name if routed else None,
            threshold=(w.threshold if w.threshold is not None else router.threshold) if routed else None,
            large_tokens=s.large_tokens, large_share=s.large_share, large_calls=s.large_calls,
            mean_catch_up=s.mean_catch_up, activated_params_b=s.activated_params_b, tokens_per_s=s.tokens_per_s,
            queue_wait_s=job.queue_wait, arrival=job.arrival, started=job.started, seed=w.sampling.seed,
            tokens=[e.id for e in gen.events] if self.return_tokens else None,
        )

    def document(self, job: Job, gen: Generation) -> ChatCompletion | Completion:
        """The whole response of a finished job."""
        finish, usage, routing = finish_reason(gen), usage_of(gen), self.routing(job, gen)
        if self.chat:
            reasoning, content = think.split(gen.text, self.prepared.opened)
            message = AssistantMessage(content=content, reasoning_content=reasoning or None)
            return ChatCompletion(id=self.id, created=self.created, model=self.prepared.model,
                                  choices=[ChatChoice(message=message, finish_reason=finish)], usage=usage, r2r=routing)
        return Completion(id=self.id, created=self.created, model=self.prepared.model,
                          choices=[CompletionChoice(text=gen.text, finish_reason=finish)], usage=usage, r2r=routing)

    async def events(self, job: Job, box: "Mailbox[TokenEvent | Finished]") -> AsyncIterator[bytes]:
        """The SSE body; stops the job if the client goes away (the stream is cancelled)."""
        text = _TextStream(job.work.settings.stop, self.prepared.opened if self.chat else None)
        try:
            if self.chat:
                yield self._sse(self._chunk(Delta(role="assistant", content="")))
            sent = 0.0
            while True:
                gap = MIN_CHUNK_INTERVAL_S - (time.perf_counter() - sent)
                if gap > 0:  # tokens written meanwhile go out together in the next chunk
                    await asyncio.sleep(gap)
                items = await box.take()
                events = [i for i in items if isinstance(i, TokenEvent)]
                out = b"".join(self._pieces(text.feed("".join(e.text for e in events))))
                done = next((i for i in items if isinstance(i, Finished)), None)
                if done is not None:
                    yield out + b"".join(self._ending(job, done, text))
                    return
                if out:
                    yield out
                    sent = time.perf_counter()
        finally:
            job.stop()

    def _ending(self, job: Job, done: Finished, text: "_TextStream") -> list[bytes]:
        gen = done.gen
        if done.error is not None or gen is None or gen.stop_reason == "cancelled":
            return [self._sse(failure(done).body())]
        out = self._pieces(text.finish(gen.text))
        routing = self._routing_dict(job, gen)
        out.append(self._sse(self._chunk(Delta() if self.chat else "", finish_reason(gen)), routing))
        if self.include_usage:
            out.append(self._sse(self._usage_chunk(gen), routing))
        out.append(DONE)
        return out

    def _routing_dict(self, job: Job, gen: Generation) -> dict:
        return self.routing(job, gen).model_dump()

    def _pieces(self, parts: list[tuple[str, str]]) -> list[bytes]:
        if not self.chat:
            return [self._sse(self._chunk(t)) for _, t in parts]
        return [self._sse(self._chunk(Delta(reasoning_content=t) if p == think.REASONING else Delta(content=t)))
                for p, t in parts]

    def _chunk(self, delta: Delta | str, finish: str | None = None) -> dict:
        if self.chat:
            assert isinstance(delta, Delta)
            return ChatCompletionChunk(id=self.id, created=self.created, model=self.prepared.model,
                                       choices=[ChunkChoice(delta=delta, finish_reason=finish)]).model_dump()
        assert isinstance(delta, str)
        return Completion(id=self.id, created=self.created, model=self.prepared.model,
                          choices=[CompletionChoice(text=delta, finish_reason=finish)]).model_dump()

    def _usage_chunk(self, gen: Generation) -> dict:
        cls = ChatCompletionChunk if self.chat else Completion
        return cls(id=self.id, created=self.created, model=self.prepared.model, choices=[],
                   usage=usage_of(gen)).model_dump()

    @staticmethod
    def _sse(doc: dict, routing: dict | None = None) -> bytes:
        if routing is not None:
            doc = {**doc, "r2r": routing}
        return b"data: " + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


class _TextStream:
    """Streamed token text -> released parts: stop strings held back, then (chat) the think split.
    opened: None for text completions (no split), else whether the prompt opened a think section."""

    def __init__(self, stops: tuple[str, ...], opened: bool | None) -> None:
        self.stops = StopBuffer(stops)
        self.split = think.ThinkSplit(opened) if opened is not None else None
        self.sent = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        return self._release(self.stops.feed(text) if text else "")

    def finish(self, final: str) -> list[tuple[str, str]]:
        """The rest of the generation's text (`final`, already cut at a stop) and what is held."""
        parts = self._release(final[len(self.sent):] if final.startswith(self.sent) else "")
        return parts + (self.split.flush() if self.split is not None else [])

    def _release(self, text: str) -> list[tuple[str, str]]:
        self.sent += text
        if self.split is None:
            return [(think.CONTENT, text)] if text else []
        return self.split.feed(text)


def finish_reason(gen: Generation) -> str:
    """OpenAI's finish_reason: "length" when a limit cut the text (max_tokens, a full context)."""
    return "length" if gen.stop_reason in ("max_tokens", "context_full") else "stop"


def usage_of(gen: Generation) -> Usage:
    s = gen.stats
    assert s is not None
    return Usage(prompt_tokens=s.prompt_tokens, completion_tokens=s.n_tokens, total_tokens=s.prompt_tokens + s.n_tokens,
                 prompt_tokens_details=PromptDetails(cached_tokens=s.cached_prompt_tokens))


def failure(done: Finished) -> APIError:
    """What a job that produced no answer is answered with."""
    e = done.error
    if isinstance(e, PromptTooLongError):
        return APIError(400, str(e), code="context_length_exceeded")
    if isinstance(e, ConfigError):
        return bad_request(str(e), code=None)
    if isinstance(e, R2RError):
        return APIError(500, str(e), type="server_error", code="engine_error")
    if e is not None:
        return APIError(500, "the engine failed (the server log has the details)", type="server_error")
    return APIError(503, "the server is shutting down", type="server_error", code="shutting_down")
