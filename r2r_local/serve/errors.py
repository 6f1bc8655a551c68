"""OpenAI error objects, built in one place: `{"error": {"message", "type", "param", "code"}}`.

Every failure a request can cause leaves the server as one of these, with its HTTP status; a bug
is logged here with its traceback and answered with a 500 that carries none.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("r2r_local.serve")

INVALID = "invalid_request_error"


class APIError(Exception):
    """An error answered in OpenAI's shape. type: invalid_request_error | authentication_error |
    not_found_error | rate_limit_error | server_error; code: a short machine word or None."""

    def __init__(self, status: int, message: str, *, type: str = INVALID, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def from_validation(error: ValidationError) -> APIError:
    """A pydantic error as a 400 naming the field (`messages[0].role`). This server's own
    refusals (types starting "r2r_") come first; a field that failed every branch of a union is
    named once, with the types it may have."""
    errors = error.errors(include_url=False)
    own = [e for e in errors if e["type"].startswith("r2r_")]
    if own:
        param = _path(own[0]["loc"])
        return bad_request(f"{param}: {own[0]['msg']}", param)
    if len(errors) == 1:
        param = _path(errors[0]["loc"])
        return bad_request(f"{param}: {errors[0]['msg']}" if param else errors[0]["msg"], param or None)
    common = errors[0]["loc"]
    for e in errors[1:]:
        n = 0
        while n < min(len(common), len(e["loc"])) and common[n] == e["loc"][n]:
            n += 1
        common = common[:n]
    branches = dict.fromkeys(_BRANCHES.get(str(e["loc"][len(common)]), str(e["loc"][len(common)]))
                             for e in errors if len(e["loc"]) > len(common))
    param = _path(common)
    return bad_request(f"{param}: wrong type (expected {' or '.join(branches)})", param or None)


# How the branches of the wire's unions are named in messages.
_BRANCHES = {"str": "a string", "int": "an integer", "list[int]": "a list of token ids",
             "list[str]": "a list of strings", "list[list[int]]": "a list of token id lists",
             "list[ContentPart]": "a list of content parts"}


def _path(loc: tuple[int | str, ...]) -> str:
    """`messages[0].content` from pydantic's location, without its union branch names."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _BRANCHES and "[" not in part:
            out += f".{part}" if out else part
    return out


_STATUS = {401: ("authentication_error", "invalid_api_key"), 404: ("not_found_error", "not_found"),
           405: (INVALID, "method_not_allowed"), 413: (INVALID, "request_too_large"),
           429: ("rate_limit_error", "queue_full")}


def from_status(status: int, message: str, headers: dict[str, str] | None = None) -> APIError:
    type_, code = _STATUS.get(status, ("server_error" if status >= 500 else INVALID, None))
    return APIError(status, message, type=type_, code=code, headers=headers)


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    _count(request, exc.status)
    return exc.response()


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 / 405 (an unknown path, a wrong method) in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    message = {404: f"unknown path {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    _count(request, exc.status_code)
    return from_status(exc.status_code, message, dict(exc.headers or {})).response()


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises it after this answer, so the server log gets the traceback once.
    log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    _count(request, 500)
    return APIError(500, "internal server error (the server log has the details)", type="server_error").response()


def _count(request: Request, status: int) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.refused(status)


HANDLERS = {APIError: on_api_error, HTTPException: on_http_exception, Exception: on_unexpected}
