"""From a validated request to the engine's Work: model id -> policy, messages or prompt -> token
ids, limits and sampling, all checked against the loaded pair before anything is queued.

Chat: `messages` go through the small model's chat template; earlier assistant turns lose their
think section (never fed back, as in the chat app); "developer" is OpenAI's new name for
"system". Text completions take a string (tokenized as is, no template) or token ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from r2r_local.config import GenerationSettings, SamplingParams
from r2r_local.decode import LARGE, SMALL, Policy, policy_for_mode, routed
from r2r_local.errors import ConfigError
from r2r_local.serve.errors import APIError, bad_request
from r2r_local.serve.protocol import ChatCompletionRequest, CompletionRequest
from r2r_local.serve.scheduler import Work

if TYPE_CHECKING:
    from r2r_local.backends import Model
    from r2r_local.pair import LoadedPair
    from r2r_local.router import Router


MAX_SPEC = 64  # the most tokens a spec:K draft may have (the core's bound, policy_for_mode)
LISTED_MODES = ("small", "large", "verify", "spec:4")


def mode_policy(mode: str) -> Policy | None:
    """The policy of a per-mode id's suffix: small | large | verify (routed, each small-model
    token checked at the next large call) | spec:K (1 <= K <= MAX_SPEC); None for anything else."""
    if mode in ("small", "large", "verify"):
        return {"small": SMALL, "large": LARGE, "verify": routed(verify=True)}[mode]
    kind, _, k = mode.partition(":")
    if kind != "spec" or not k.isdigit() or str(int(k)) != k:  # one spelling per mode: no spec:04
        return None
    try:
        return policy_for_mode(mode)
    except ConfigError:  # K out of range
        return None


@dataclass(frozen=True)
class Prepared:
    """A request ready to queue. model: the id answered in responses; opened: the prompt leaves
    a think section open (R1), so the first text is reasoning."""

    work: Work
    model: str
    opened: bool = False


@dataclass(frozen=True)
class Served:
    """The served pair as the API shows it: one routed model id and its per-mode ids (small or
    large alone, routed with verify, speculative decoding; see mode_policy).
    n_vocab: token ids below it are valid in both models; sampling: the server's defaults;
    small_file, large_file: the GGUF file names (without their folders)."""

    model_id: str
    policy: Policy
    router: "Router"
    small: "Model"
    n_ctx: int
    n_vocab: int
    sampling: SamplingParams
    small_file: str = ""
    large_file: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def of(cls, pair: "LoadedPair", router: "Router", policy: Policy, sampling: SamplingParams,
           small_path: str, large_path: str) -> "Served":
        model_id = f"{Path(small_path).stem}+{Path(large_path).stem}"
        n_vocab = min(pair.small.n_vocab, pair.large.n_vocab)
        return cls(model_id, policy, router, pair.small, pair.decoder.n_ctx, n_vocab, sampling,
                   Path(small_path).name, Path(large_path).name)

    @property
    def router_name(self) -> str:
        """The router as clients see it: a router file by its name only (no server paths)."""
        name = self.router.name
        return Path(name).name if "/" in name or "\\" in name else name

    def ids(self) -> list[str]:
        """The ids GET /v1/models lists (speculative decoding as spec:4; any K in 1..64 is served)."""
        return [self.model_id] + [f"{self.model_id}:{mode}" for mode in LISTED_MODES]

    def resolve(self, name: str | None) -> tuple[str, Policy]:
        """(id, policy) for a request's `model`: a per-mode id picks that mode; any other name
        (clients hard-code "default" or a cloud model's name) gets the served pair. The served
        id with a mode this server does not have (`:spec:99`, `:fast`) is refused (404)."""
        if name is None or not name.startswith(self.model_id + ":"):
            return self.model_id, self.policy
        policy = mode_policy(name[len(self.model_id) + 1:])
        if policy is None:
            raise APIError(404, f"no model '{name}' here: the modes of {self.model_id} are "
                                f":small, :large, :verify and :spec:K with 1 <= K <= {MAX_SPEC}",
                           param="model", code="model_not_found")
        return name, policy

    def chat(self, req: ChatCompletionRequest) -> Prepared:
        """Tokenize and check a chat request (runs in a worker thread: templates and tokenizing
        a long conversation take a while)."""
        from r2r_local.chat import Message, chat_tokens, has_thinking_switch, prompt_opens_think, strip_think

        model, policy = self.resolve(req.model)
        thinking = _thinking_switch(req)
        if thinking is not None and not has_thinking_switch(self.small.chat_template):
            raise bad_request("chat_template_kwargs.enable_thinking: this model's chat template has no thinking "
                              "switch (it thinks as it always does)", "chat_template_kwargs")
        messages = []
        for m in req.messages:
            text = m.text()
            role = "system" if m.role == "developer" else m.role
            messages.append(Message(role, strip_think(text) if role == "assistant" else text))
        try:
            prompt = chat_tokens(self.small, messages, thinking=thinking)
        except ConfigError as e:
            raise bad_request(str(e), "messages") from None
        except UnicodeEncodeError:
            raise bad_request("messages: text that is not valid Unicode (a lone surrogate)", "messages") from None
        return Prepared(self._work(req, prompt, policy, req.limit()), model, prompt_opens_think(self.small, prompt))

    def text(self, req: CompletionRequest) -> Prepared:
        """Tokenize (a string, as is) or check (token ids) a text completion's prompt."""
        from r2r_local.chat import raw_tokens

        model, policy = self.resolve(req.model)
        if isinstance(req.prompt, str):
            if not req.prompt:
                raise bad_request("prompt: the prompt is empty", "prompt")
            try:
                prompt = raw_tokens(self.small, req.prompt)
            except UnicodeEncodeError:
                raise bad_request("prompt: text that is not valid Unicode (a lone surrogate)", "prompt") from None
        else:
            prompt = self._check_ids(req.prompt)
        return Prepared(self._work(req, prompt, policy, req.limit()), model)

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        if not ids:
            raise bad_request("prompt: the prompt is empty", "prompt")
        bad = next((i for i, t in enumerate(ids) if not 0 <= t < self.n_vocab), None)
        if bad is not None:
            raise bad_request(f"prompt[{bad}]: token id {ids[bad]} is outside the vocabulary (0..{self.n_vocab - 1})",
                              f"prompt[{bad}]", "invalid_token")
        return list(ids)

    def _work(self, req: ChatCompletionRequest | CompletionRequest, prompt: list[int], policy: Policy,
              limit: int | None) -> Work:
        if len(prompt) >= self.n_ctx:
            raise APIError(400, f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx} "
                                "(shorten it, or restart the server with a larger --n-ctx)",
                           param="messages" if isinstance(req, ChatCompletionRequest) else "prompt",
                           code="context_length_exceeded")
        if limit is not None and limit > self.n_ctx:
            name = "max_completion_tokens" if getattr(req, "max_completion_tokens", None) else "max_tokens"
            raise bad_request(f"{name}: at most the context, {self.n_ctx} tokens; got {limit}", name)
        d = self.sampling
        try:
            sampling = SamplingParams(_pick(req.temperature, d.temperature), _pick(req.top_k, d.top_k),
                                      _pick(req.top_p, d.top_p), _pick(req.seed, d.seed))
            settings = GenerationSettings(limit if limit is not None else self.n_ctx - len(prompt), req.stops())
        except ConfigError as e:
            raise bad_request(str(e)) from None
        return Work(prompt, policy, req.threshold, sampling, settings)


def _pick(value, default):  # type: ignore[no-untyped-def]
    return default if value is None else value


def _thinking_switch(req: ChatCompletionRequest) -> bool | None:
    """`chat_template_kwargs.enable_thinking` (vLLM's and llama-server's spelling), if given."""
    kwargs = (req.model_extra or {}).get("chat_template_kwargs")
    if kwargs is None:
        return None
    value = kwargs.get("enable_thinking") if isinstance(kwargs, dict) else None
    if not isinstance(kwargs, dict) or (value is not None and not isinstance(value, bool)):
        raise bad_request("chat_template_kwargs.enable_thinking: must be true or false", "chat_template_kwargs")
    return value
