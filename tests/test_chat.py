from r2r_local.chat import Message, StopBuffer, Utf8Stream, chat_tokens, render_template, strip_think


def test_utf8_stream_never_splits_a_character():
    data = "é€😀".encode()
    stream = Utf8Stream()
    out = [stream.feed(data[i:i + 1]) for i in range(len(data))]
    assert "".join(out) + stream.flush() == "é€😀"
    assert out[0] == ""  # half of 'é' is held back


def test_stop_buffer_holds_back_a_possible_stop_and_cuts_at_it():
    buf = StopBuffer(["</s>", "STOP"])
    shown = [buf.feed(p) for p in ["Hello <", "/", "x> and ST", "OP more"]]
    assert "".join(shown) == "Hello </x> and "
    assert buf.stopped and buf.feed("later") == "" and buf.flush() == ""


def test_stop_buffer_without_stops_passes_everything():
    buf = StopBuffer([])
    assert buf.feed("a<") == "a<" and buf.flush() == ""


def test_strip_think_removes_the_reasoning():
    assert strip_think("<think>\nlet me see\n</think>\n\nThe answer is 4.") == "The answer is 4."
    assert strip_think("<think>unfinished") == ""


def test_fallback_template_for_a_gguf_without_one():
    text = render_template(None, [Message("user", "hi")])
    assert text == "User: hi\nAssistant:"


def test_smollm2_template_renders_like_its_chatml(smollm2):
    from r2r_local.backends.llama_cpp import LlamaCppBackend
    from r2r_local.config import ModelSpec

    with LlamaCppBackend(ModelSpec(str(smollm2), n_ctx=256)) as b:
        tokens = chat_tokens(b, [Message("user", "What is 2+2?")])
        text = "".join(b.token_text(t) for t in tokens)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tokens.count(1) == 3  # <|im_start|> parsed as the special token, no extra BOS
