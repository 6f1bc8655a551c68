"""The wire: OpenAI's request and response shapes as pydantic models, with OpenAI's field names.

Requests are validated strictly (a string is not a number, true is not 1, NaN is not a
temperature); fields this server does not know are accepted and ignored, as OpenAI's clients
send many. Fields it knows but cannot honour (n > 1, tools, logprobs, ...) are refused with a
400 naming the field rather than silently ignored. Limits that depend on the loaded models (the
context, the vocabulary) are checked in prompts.py.

Responses carry one extra object, `r2r` (the routing figures of that request); `usage` stays
OpenAI's, with the reused prompt cache as `prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer
from pydantic_core import PydanticCustomError

from r2r_local.config import MAX_SEED

ROLES = ("system", "developer", "user", "assistant")
MAX_STOPS = 16


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


def _refuse(kind: str, message: str) -> PydanticCustomError:
    """A refusal of this server's own (its type starts "r2r_", so error messages put it first)."""
    return PydanticCustomError(f"r2r_{kind}", message)


class ContentPart(_In):
    """One part of a message's content; only text parts are understood."""

    type: str
    text: str | None = None

    @field_validator("type")
    @classmethod
    def _text_only(cls, v: str) -> str:
        if v != "text":
            raise _refuse("unsupported_content", f"only text content is supported, not '{v}'")
        return v


class ChatMessage(_In):
    role: str
    content: str | list[ContentPart] | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        if v in ("tool", "function"):
            raise _refuse("unsupported_role", f"'{v}' messages are not supported (this server has no tool calls)")
        if v not in ROLES:
            raise _refuse("unknown_role", f"unknown role '{v}' (known: {', '.join(ROLES)})")
        return v

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content)
        return self.content or ""


class StreamOptions(_In):
    include_usage: bool = False


class _Generate(_In):
    """What chat and text completions share. threshold, top_k and return_tokens are this
    server's own: the router's threshold for this request, top-k sampling, and the generated
    token ids in the `r2r` object."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=0, lt=MAX_SEED)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = 1
    threshold: float | None = Field(None, ge=0, le=1)
    return_tokens: bool = False

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v not in (None, 1):
            raise _refuse("unsupported_n", "only n=1 is supported (one choice per request)")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > MAX_STOPS:
            raise _refuse("too_many_stops", f"at most {MAX_STOPS} stop strings")
        if any(not s for s in stops):
            raise _refuse("empty_stop", "a stop string must not be empty")
        return v

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Generate):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, v: list[Any] | None) -> list[Any] | None:
        if v:
            raise _refuse("unsupported_tools", "tools are not supported")
        return v

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise _refuse("unsupported_logprobs", "logprobs are not supported")
        return v

    @field_validator("response_format")
    @classmethod
    def _text_format(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and v.get("type") != "text":
            raise _refuse("unsupported_format", "only the text response format is supported")
        return v

    def limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(_Generate):
    """prompt: a string or a list of token ids (or a list holding one of them: one prompt per request)."""

    prompt: str | list[int] | list[str] | list[list[int]]
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: Any) -> str | list[int]:
        if isinstance(v, list) and v and isinstance(v[0], (str, list)):
            if len(v) != 1:
                raise _refuse("several_prompts", "one prompt per request (a list of several is not supported)")
            return v[0]
        return v

    @field_validator("echo", "logprobs", "suffix")
    @classmethod
    def _unsupported(cls, v: Any, info: Any) -> Any:
        if v:
            raise _refuse("unsupported_field", f"{info.field_name} is not supported")
        return v

    @field_validator("best_of")
    @classmethod
    def _best_of_one(cls, v: int | None) -> int | None:
        if v not in (None, 1):
            raise _refuse("unsupported_best_of", "only best_of=1 is supported")
        return v

    def limit(self) -> int | None:
        return self.max_tokens


# --- responses ----------------------------------------------------------------------------------


class _Out(BaseModel):
    """A response model; fields named in `omit_if_none` are left out when None (the rest are
    written as null, as OpenAI does)."""

    omit_if_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _sparse(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for name in self.omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class PromptDetails(_Out):
    cached_tokens: int


class Usage(_Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptDetails


class Routing(_Out):
    """The `r2r` object: how this request was decoded and how much the large model did.
    arrival / started: the request's place in arrival order and in the engine's order."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("tokens",)

    model: str
    policy: str
    router: str | None
    threshold: float | None
    large_tokens: int
    large_share: float
    large_calls: int
    mean_catch_up: float
    activated_params_b: float
    tokens_per_s: float
    queue_wait_s: float
    arrival: int
    started: int
    seed: int
    tokens: list[int] | None = None


FinishReason = Literal["stop", "length"]


class AssistantMessage(_Out):
    omit_if_none: ClassVar[tuple[str, ...]] = ("reasoning_content",)

    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = None


class ChatChoice(_Out):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(_Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    r2r: Routing


class Delta(_Out):
    omit_if_none: ClassVar[tuple[str, ...]] = ("role", "content", "reasoning_content")

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(_Out):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(_Out):
    omit_if_none: ClassVar[tuple[str, ...]] = ("usage", "r2r")

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    r2r: Routing | None = None


class CompletionChoice(_Out):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class Completion(_Out):
    """A text completion, or (with finish_reason None and no usage) one streamed chunk of one."""

    omit_if_none: ClassVar[tuple[str, ...]] = ("usage", "r2r")

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    r2r: Routing | None = None


class ModelCard(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "r2r-local"


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]
