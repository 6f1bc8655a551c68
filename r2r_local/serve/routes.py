"""The HTTP side: thin endpoints that parse, prepare, queue and answer (Starlette).

GET /health, GET /metrics, GET /v1/models[/{id}], POST /v1/chat/completions, POST /v1/completions.
With an API key every path but /health needs `Authorization: Bearer KEY` (compared in constant
time, never logged). Bodies are read up to MAX_BODY_BYTES and must be UTF-8 JSON. Nothing here
reads or writes a file a request names.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from r2r_local.metering import TokenEvent
from r2r_local.serve.errors import HANDLERS, APIError, bad_request, from_status, from_validation
from r2r_local.serve.mailbox import Mailbox
from r2r_local.serve.metrics import CONTENT_TYPE, Metrics
from r2r_local.serve.prompts import Served, mode_policy
from r2r_local.serve.protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList
from r2r_local.serve.scheduler import Finished, QueueFull, Scheduler
from r2r_local.serve.streams import Reply, failure

MAX_BODY_BYTES = 16 * 2**20  # 16 MiB: a context of a million token ids written as JSON fits
M = TypeVar("M", bound=BaseModel)


def create_app(scheduler: Scheduler, served: Served, metrics: Metrics, api_key: str | None) -> Starlette:
    """The app; its lifespan closes the scheduler (and with it the pair) when the server stops."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(scheduler.close)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers=HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.scheduler, app.state.served, app.state.metrics = scheduler, served, metrics
    if api_key:
        app.add_middleware(ApiKey, key=api_key, metrics=metrics)
    return app


class ApiKey:
    """Refuses requests without `Authorization: Bearer KEY` (401), except /health."""

    def __init__(self, app: ASGIApp, key: str, metrics: Metrics) -> None:
        self.app, self.key, self.metrics = app, key.encode("utf-8"), metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        # Headers arrive as latin-1 text: encoding back gives the client's bytes.
        if hmac.compare_digest(token.encode("latin-1", "replace"), self.key):
            return await self.app(scope, receive, send)
        self.metrics.refused(401)
        message = "invalid API key" if token else "missing API key (send Authorization: Bearer KEY)"
        await from_status(401, message, {"WWW-Authenticate": "Bearer"}).response()(scope, receive, send)


async def health(request: Request) -> JSONResponse:
    scheduler: Scheduler = request.app.state.scheduler
    status = "shutting_down" if scheduler.closing else "ok"
    return JSONResponse({"status": status, "model": request.app.state.served.model_id,
                         "waiting": scheduler.waiting, "busy": scheduler.busy},
                        status_code=503 if scheduler.closing else 200)


async def metrics_text(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def _cards(served: Served) -> list[ModelCard]:
    return [ModelCard(id=i, created=served.created) for i in served.ids()]


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse(ModelList(data=_cards(request.app.state.served)).model_dump())


async def get_model(request: Request) -> JSONResponse:
    """A listed id, or any other per-mode id the server answers (`:spec:K` for every K)."""
    name, served = request.path_params["model_id"], request.app.state.served
    card = next((c for c in _cards(served) if c.id == name), None)
    if card is None and name.startswith(served.model_id + ":") and mode_policy(name[len(served.model_id) + 1:]):
        card = ModelCard(id=name, created=served.created)
    if card is None:
        raise APIError(404, f"no model '{name}' here (GET /v1/models lists them)", type="not_found_error",
                       param="model", code="model_not_found")
    return JSONResponse(card.model_dump())


async def chat_completions(request: Request) -> Response:
    req = await _parse(request, ChatCompletionRequest)
    served: Served = request.app.state.served
    prepared = await run_in_threadpool(served.chat, req)
    reply = Reply(prepared, served, chat=True, include_usage=req.include_usage(), return_tokens=req.return_tokens)
    return await _answer(request, reply, bool(req.stream))


async def completions(request: Request) -> Response:
    req = await _parse(request, CompletionRequest)
    served: Served = request.app.state.served
    prepared = await run_in_threadpool(served.text, req)
    reply = Reply(prepared, served, chat=False, include_usage=req.include_usage(), return_tokens=req.return_tokens)
    return await _answer(request, reply, bool(req.stream))


async def _parse(request: Request, model: type[M]) -> M:
    """The body as `model`: at most MAX_BODY_BYTES (413), UTF-8 (400), a JSON object (400), valid (400)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise from_status(413, f"the body is larger than {MAX_BODY_BYTES // 2**20} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise from_status(413, f"the body is larger than {MAX_BODY_BYTES // 2**20} MiB")
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad_request(f"the body is not UTF-8 text (byte {e.start})", code="invalid_encoding") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad_request(f"the body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                          code="invalid_json") from None
    except RecursionError:
        raise bad_request("the body is not valid JSON: nested too deeply", code="invalid_json") from None
    if not isinstance(doc, dict):
        raise bad_request("the body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise from_validation(e) from None


async def _answer(request: Request, reply: Reply, stream: bool) -> Response:
    """Queue the prepared work and answer: a stream at once, or the document when it is done."""
    scheduler: Scheduler = request.app.state.scheduler
    box: Mailbox[TokenEvent | Finished] = Mailbox(asyncio.get_running_loop())

    def sink(item: TokenEvent | Finished) -> None:
        if stream or isinstance(item, Finished):
            box.put(item)

    try:
        job = scheduler.submit(reply.prepared.work, sink)
    except QueueFull as e:
        raise from_status(429, f"the server is busy: {e} (retry later)",
                          {"Retry-After": str(max(1, math.ceil(scheduler.expected_wait())))}) from None
    except RuntimeError:
        raise from_status(503, "the server is shutting down") from None
    if stream:
        return StreamingResponse(reply.events(job, box), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    done = await _unless_gone(request, box.take())
    if done is None:  # the client went away: stop its generation; nobody reads this answer
        job.stop()
        return Response(status_code=499)
    if done.gen is None or done.error is not None or done.gen.stop_reason == "cancelled":
        raise failure(done)
    return JSONResponse(reply.document(job, done.gen).model_dump())


async def _unless_gone(request: Request, waiting: Awaitable[list[Finished]]) -> Finished | None:
    """The Finished `waiting` gives (a non-streaming sink passes nothing else), or None as soon as
    the client disconnects (the body is already read, so the next ASGI message can only be the
    disconnect)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher, result = asyncio.ensure_future(gone()), asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({watcher, result}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if result.done():
        return result.result()[0]
    result.cancel()
    return None
