"""Reading vLLM's answers: recorded responses, in the shapes vLLM's own source defines (each
fixture names where its fields come from), parsed without a server or a model."""

from __future__ import annotations

import json

import pytest

from r2r_local.backends.remote import ServerError, _message
from r2r_local.backends.vllm import _too_many_logprobs, is_vllm, parse_top_logprobs

# CompletionResponse / CompletionResponseChoice / CompletionLogProbs (text_offset, token_logprobs,
# tokens, top_logprobs: list of {token: logprob}) and UsageInfo/PromptTokenUsageInfo, from
# vllm/entrypoints/openai/completion/protocol.py and engine/protocol.py; the "token_id:{id}" keys
# are what `return_tokens_as_token_ids` asks for (its field description there, and
# tests/entrypoints/openai/test_return_tokens_as_ids.py). Values: a request with max_tokens 1,
# logprobs 3, temperature 0.
COMPLETION = {
    "id": "cmpl-5f0c1e7d", "object": "text_completion", "created": 1733480000, "model": "Qwen/Qwen2.5-32B-Instruct",
    "choices": [{
        "index": 0, "text": " Paris", "finish_reason": "length", "stop_reason": None, "prompt_logprobs": None,
        "logprobs": {"text_offset": [0], "token_logprobs": [-0.0312], "tokens": ["token_id:12095"],
                     "top_logprobs": [{"token_id:12095": -0.0312, "token_id:279": -4.2031, "token_id:264": -5.0781}]},
    }],
    "usage": {"prompt_tokens": 9, "total_tokens": 10, "completion_tokens": 1,
              "prompt_tokens_details": {"cached_tokens": 0}},
}


def test_top_logprobs_keyed_by_token_id_are_read():
    top = parse_top_logprobs(COMPLETION)
    assert sorted((e["id"], e["logprob"]) for e in top) == [(264, -5.0781), (279, -4.2031), (12095, -0.0312)]


def test_token_text_keys_are_refused_naming_the_missing_option():
    answer = json.loads(json.dumps(COMPLETION))
    answer["choices"][0]["logprobs"]["top_logprobs"] = [{" Paris": -0.0312, " the": -4.2031}]
    with pytest.raises(ValueError, match="return_tokens_as_token_ids"):
        parse_top_logprobs(answer)


@pytest.mark.parametrize("logprobs", [None, {"text_offset": [], "token_logprobs": [], "tokens": [], "top_logprobs": []}])
def test_an_answer_without_log_probabilities_is_refused(logprobs):
    answer = json.loads(json.dumps(COMPLETION))
    answer["choices"][0]["logprobs"] = logprobs
    with pytest.raises(ValueError, match="top_logprobs"):
        parse_top_logprobs(answer)


def test_an_answer_without_choices_is_refused():
    with pytest.raises(ValueError, match="choices"):
        parse_top_logprobs({"object": "text_completion", "choices": []})


# ErrorResponse: {"error": ErrorInfo(message, type, param, code)} in
# vllm/entrypoints/openai/engine/protocol.py; older releases wrote it flat (object "error",
# message, type, param, code) in vllm/entrypoints/openai/protocol.py. The message is the one
# vLLM's request validation raises for logprobs above --max-logprobs.
TOO_MANY = "Requested sample logprobs of 100, which is greater than max allowed: 20"
ERROR_NESTED = {"error": {"message": TOO_MANY, "type": "BadRequestError", "param": "logprobs", "code": 400}}
ERROR_FLAT = {"object": "error", "message": TOO_MANY, "type": "BadRequestError", "param": None, "code": 400}


@pytest.mark.parametrize("answer", [ERROR_NESTED, ERROR_FLAT], ids=["nested", "flat"])
def test_both_error_shapes_give_their_message(answer):
    assert _message(json.dumps(answer).encode()) == TOO_MANY


def test_the_max_logprobs_error_is_told_apart():
    assert _too_many_logprobs(ServerError(f"POST /v1/completions answered HTTP 400: {TOO_MANY}", 400))
    assert not _too_many_logprobs(ServerError("POST /v1/completions answered HTTP 500: stand-in failure", 500))
    assert not _too_many_logprobs(ServerError("http://x: connection refused (is the server running?)"))


# ModelCard (id, object, created, owned_by "vllm", root, parent, max_model_len, permission) in
# vllm/entrypoints/openai/engine/protocol.py; llama-server's /v1/models entries say "llamacpp".
VLLM_CARD = {"id": "Qwen/Qwen2.5-32B-Instruct", "object": "model", "created": 1733480000, "owned_by": "vllm",
             "root": "Qwen/Qwen2.5-32B-Instruct", "parent": None, "max_model_len": 32768, "permission": []}


def test_a_vllm_model_card_is_recognised():
    assert is_vllm(VLLM_CARD)
    assert not is_vllm({**VLLM_CARD, "owned_by": "llamacpp"}) and not is_vllm(None)
