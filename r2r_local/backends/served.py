"""Which serving engine answers at a URL: llama.cpp's llama-server or vLLM (no flag needed).

Both answer GET /v1/models: vLLM's entries say owned_by "vllm"; llama-server also answers
GET /props, which vLLM does not have. Anything else is refused in one line naming the URL and
what it answered.
"""

from __future__ import annotations

from typing import Any

from r2r_local.backends import Model
from r2r_local.backends.remote import LlamaServerClient, LlamaServerModel, ServerError
from r2r_local.backends.vllm import VllmModel, is_vllm
from r2r_local.config import ModelSpec
from r2r_local.errors import ModelLoadError
from r2r_local.server_bounds import ServerBounds


def open_served_model(spec: ModelSpec) -> Model:
    """The `Model` for the server at `spec.path`: a VllmModel or a LlamaServerModel (both bounded
    by `spec.server`). Raises ModelLoadError in one line."""
    bounds = spec.server or ServerBounds()
    client = LlamaServerClient(spec.path, timeout=bounds.timeout_s, retries=bounds.retries)
    try:
        card, models_said = _first_model(client, spec)
        if is_vllm(card):
            return VllmModel(spec, card=card)
        try:
            client.request("GET", "/props")
        except ServerError as e:
            raise ModelLoadError(f"{spec.role} model {spec.path}: neither llama-server nor vLLM answers there "
                                 f"(GET /v1/models: {models_said}; GET /props: {e})") from None
    finally:
        client.close()
    return LlamaServerModel(spec)


def _first_model(client: LlamaServerClient, spec: ModelSpec) -> tuple[dict[str, Any] | None, str]:
    """The first /v1/models entry (None if there is none) and a few words on what came back;
    a server that does not answer at all raises ModelLoadError."""
    try:
        answer = client.request("GET", "/v1/models")
    except ServerError as e:
        if e.status is None:
            raise ModelLoadError(f"{spec.role} model {spec.path}: {e}") from None
        return None, str(e)
    data = answer.get("data") if isinstance(answer, dict) else None
    card = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
    if card is None:
        return None, "no model list"
    return card, f"a model owned by {str(card.get('owned_by'))[:40]!r}"
