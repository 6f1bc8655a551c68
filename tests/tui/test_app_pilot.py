"""r2r-chat driven like a user (Textual Pilot), generating for real with SmolLM2 on both sides."""

from __future__ import annotations

import asyncio
import re

import pytest

from pilot_helpers import answered, loaded, make_app, options, send, wait_until
from seed import ANSWER, THINK, seed_conversation
from r2r_local.chat import Message, chat_tokens
from r2r_local.config import GenerationSettings
from r2r_local.decode import Request
from r2r_local.pair import load_pair
from r2r_tui.answer_view import AssistantMessage
from r2r_tui.history_screen import HistoryScreen
from r2r_tui.loader import resolve_choice
from r2r_tui.prompt_input import PromptInput
from r2r_tui.store import History
from r2r_tui.user_message import UserMessage

pytestmark = pytest.mark.anyio
SIZE = (100, 32)
LARGE_COLOUR = "#ff9f1a"


def _reference_answer(prompt: str, max_tokens: int) -> str:
    """The core's own greedy answer to one user turn (same model on both sides: router-independent)."""
    choice = resolve_choice(options())
    pair = load_pair(choice.small, choice.large)
    try:
        tokens = chat_tokens(pair.small, [Message("user", prompt)])
        request = Request(tokens, pair.router("slm"), settings=GenerationSettings(max_tokens=max_tokens))
        return pair.generate(request).run().text.strip()
    finally:
        pair.close()


def _views(app) -> list[AssistantMessage]:
    return list(app.query(AssistantMessage))


def _sequence_text(app) -> str:
    small = app.loaded.pair.small
    return "".join(small.token_text(t) for t in small.slot.tokens)


async def test_send_streams_marks_large_tokens_and_updates_the_stats():
    app = make_app(router="random:0.5", max_tokens=40)
    prompt = "What is the capital of France?"
    partial: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        params = app.loaded.pair.small.n_params, app.loaded.pair.large.n_params
        await send(pilot, prompt)
        await wait_until(pilot, lambda: bool(_views(app)))
        while app.generating:
            partial.append(_views(app)[-1].answer)
            await asyncio.sleep(0.005)
        await answered(pilot)
        [view] = _views(app)
        await wait_until(pilot, lambda: view.rendered)
        answer = app.last_answer
        shown = view.answer
        marked_spans = view.large_answer_text
        svg_marked = app.export_screenshot()
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: view.rendered)
        await pilot.pause(0.1)
        svg_plain = app.export_screenshot()
        plain_spans = view.large_answer_text
        markdown_source = view.markdown.source
        markdown_blocks = len(view.markdown.query("MarkdownBlock"))
        load_steps = list(app.query_one("LoadPanel").steps)
        figures = app.status.figures
        status_text = str(app.status.render())
        stored = History().messages(app.conversation)

    # streamed: the answer grew in several steps, each a prefix of the final text
    steps = {p for p in partial if p}
    assert len(steps) >= 3, steps
    assert all(shown.startswith(p) for p in steps)
    # what was shown is the model's real output (and is what the history holds)
    assert shown == answer.answer == stored[-1].content == _reference_answer(prompt, 40)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[0].content == prompt
    # source marking: exactly the large model's pieces are coloured
    stats = answer.stats
    # (in the rendered Markdown the large model's text carries the colour: every word and number,
    # and the punctuation that is not Markdown syntax; see marked_markdown.wrappable)
    large_runs = [[]]  # the text of each run of consecutive large-model pieces
    for p in stored[-1].pieces:
        if p.source == "large":
            large_runs[-1].append(p.text)
        else:
            large_runs.append([])
    large_words = [w for run in large_runs for w in re.findall(r"[^\W_]+", "".join(run))]
    assert 0 < stats["large_tokens"] < stats["n_tokens"]
    assert [w for span in marked_spans for w in re.findall(r"[^\W_]+", span)] == large_words != []
    large_text = "".join(p.text for p in stored[-1].pieces if p.source == "large")
    assert all(not c.isspace() and c in large_text for span in marked_spans for c in span)
    assert LARGE_COLOUR in svg_marked.lower() and LARGE_COLOUR not in svg_plain.lower()
    # marking off: the same Markdown, nothing coloured
    assert plain_spans == [] and markdown_source == shown and markdown_blocks >= 1
    # loading showed its steps
    assert load_steps[0] == "reading the configuration" and load_steps[-1] == "ready"
    assert any(step.startswith("loading the large model") for step in load_steps)
    # the status bar shows this answer's figures
    assert figures.answer_share == figures.session_share == stats["large_share"]
    assert figures.tokens_per_s == stats["tokens_per_s"] > 0
    assert figures.activated_params_b == pytest.approx((params[0] + stats["large_share"] * params[1]) / 1e9)
    assert f"{100 * stats['large_share']:.1f}%" in status_text and "tok/s" in status_text
    assert "random:0.5 thr 0.50" in status_text


async def test_escape_stops_at_once_and_keeps_the_text():
    app = make_app(router="random:0.3", max_tokens=400)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, "Write a long story about a dragon who learns to fly.")
        await wait_until(pilot, lambda: bool(_views(app)) and len(_views(app)[-1].pieces) >= 6)
        shown_at_press = len({p.token for p in _views(app)[-1].pieces})
        await pilot.press("escape")
        await answered(pilot)
        view = _views(app)[-1]
        answer = app.last_answer
        state = app.status.figures.state
        note = str(view.note.render())
        turns = list(app.turns)
        stored = History().messages(app.conversation)[-1]
    assert answer.stop_reason == "cancelled"
    assert shown_at_press <= answer.stats["n_tokens"] <= shown_at_press + 5
    assert view.answer == answer.answer == stored.content != ""
    assert stored.complete and stored.stop_reason == "cancelled"
    assert turns[-1] == Message("assistant", answer.answer)  # kept for the next turn
    assert state.startswith("stopped") and "stopped" in note


async def test_restart_and_continue_a_conversation_from_history():
    first = make_app(router="random:0.3", max_tokens=24)
    async with first.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, "What is the capital of France?")
        await answered(pilot)
        answer = first.last_answer
    assert first.loaded is None  # the models were closed on exit

    app = make_app(router="random:0.3", max_tokens=24)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(_views(app)) == 1)
        users = [u.text for u in app.query(UserMessage)]
        reopened = _views(app)[0].answer
        reopened_share = app.status.figures.answer_share
        await send(pilot, "And of Germany?")
        await answered(pilot)
        second = app.last_answer
        sequence = _sequence_text(app)
        await send(pilot, "And of Italy?")
        await answered(pilot)
        third = app.last_answer
        conversations = History().conversations()
    assert users == ["What is the capital of France?"] and reopened == answer.answer
    assert reopened_share == answer.stats["large_share"]
    assert answer.answer in sequence and "And of Germany?" in sequence
    assert second.stats["cached_prompt_tokens"] == 0  # a fresh engine
    # the next turn reuses the cached prefix (at least the whole previous prompt)
    assert third.stats["cached_prompt_tokens"] >= second.stats["prompt_tokens"]
    assert [(c.title, c.n_messages) for c in conversations] == [("What is the capital of France?", 6)]


async def test_think_section_is_folded_and_not_fed_back():
    seed_conversation(History())
    app = make_app(max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(_views(app)) == 1)
        block = _views(app)[0].think_block
        assert block.collapsed and block.title.startswith("Thought") and block.plain == THINK
        await send(pilot, "Who are you?")
        await answered(pilot)
        sequence = _sequence_text(app)
    assert ANSWER.strip() in sequence
    assert "SECRET-REASONING" not in sequence


async def test_an_r1_style_prompt_streams_into_the_think_block():
    """R1's template ends the generation prompt with "<think>\n"; the same on the real SmolLM2
    (its own template plus that suffix): everything it writes is think text, streamed into the
    block, stored apart and left out of the next turn."""
    app = make_app(max_tokens=24)
    titles: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        small = app.loaded.pair.small
        small.chat_template = small.chat_template.replace(
            "<|im_start|>assistant\n", "<|im_start|>assistant\n<think>\n")
        await send(pilot, "What is 3+4?")
        await wait_until(pilot, lambda: bool(_views(app)))
        block = _views(app)[-1].think_block
        while app.generating:
            titles.append(str(block.title))
            await asyncio.sleep(0.005)
        await answered(pilot)
        view = _views(app)[-1]
        think = view.think_block.plain
        collapsed = view.think_block.collapsed
        stored = History().messages(app.conversation)[-1]
        small.chat_template = small.chat_template.replace("<think>\n", "")
        await send(pilot, "Thanks.")
        await answered(pilot)
        sequence = _sequence_text(app)
    assert any(t.startswith("Thinking…") for t in titles) and view.think_block.title.startswith("Thought (")
    assert think and view.answer == "" and collapsed
    assert stored.think == think.strip() and stored.content == ""
    assert think.strip() not in sequence and "What is 3+4?" in sequence


async def test_a_load_error_is_shown_in_the_app(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    app = make_app(small=str(broken), large=str(broken))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one("LoadPanel").error is not None)
        title, message = app.query_one("LoadPanel").error
        panel = str(app.query_one("LoadPanel").render())
        await send(pilot, "hello")
        await pilot.pause(0.1)
        assert app.is_running and app.loaded is None and not list(app.query(UserMessage))
        assert app.status.figures.state == "no models"
    assert title == "Model failed to load"
    assert str(broken) in message and "small" in message and "\n" not in message
    assert message in panel and "Traceback" not in panel


async def test_regenerate_small_only_after_large_only():
    app = make_app(router="llm", max_tokens=16)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await send(pilot, "Name a colour.")
        await answered(pilot)
        large_only = app.last_answer
        await pilot.press("f3", "ctrl+r")
        await answered(pilot)
        small_only = app.last_answer
        status_text = str(app.status.render())
        stored = History().messages(app.conversation)
    assert large_only.stats["large_share"] == 1.0 and small_only.stats["large_tokens"] == 0
    assert small_only.answer == large_only.answer  # greedy, same model on both sides
    assert [(m.role, m.router) for m in stored] == [("user", None), ("assistant", "slm")]
    assert "small only" in status_text and "large 0.0% answer" in status_text and "thr" not in status_text


async def test_threshold_keys_change_the_router():
    app = make_app(router="random:0.3")
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("f9")
        raised = app.threshold
        await pilot.press("f8", "f8")
        lowered, text = app.threshold, str(app.status.render())
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("f9", "escape")  # the dialog takes Esc; the chat's keys are off meanwhile
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        after_dialog = app.threshold
    assert (raised, lowered, after_dialog) == (0.35, 0.25, 0.25)
    assert "random:0.25 thr 0.25" in text


async def test_system_prompt_multiline_input_and_new_chat():
    app = make_app(max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        for ch in "You are a pirate.":
            await pilot.press(ch)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        for ch in "Line one":
            await pilot.press(ch)
        await pilot.press("ctrl+j")
        await send(pilot, "Line two")
        await answered(pilot)
        sequence = _sequence_text(app)
        first = app.conversation
        await pilot.press("ctrl+n")
        await pilot.pause(0.1)
        cleared = not list(app.query(UserMessage)) and not _views(app)
        await send(pilot, "Hello")
        await answered(pilot)
        second = app.conversation
        history = History()
    assert "You are a pirate." in sequence and "Line one\nLine two" in sequence
    assert cleared and first != second
    assert history.conversation(first).system == "You are a pirate."
    assert history.conversation(second).system == ""
    assert history.messages(first)[0].content == "Line one\nLine two"


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_message_longer_than_the_context_goes_back_to_the_prompt_box():
    """It is removed from the screen and the history (nothing stored blocks the conversation),
    its text is back in the prompt box, one line says why; a short message then works."""
    app = make_app(n_ctx=64, max_tokens=8)
    long_text = "Please tell me, in great detail and with many examples, " * 40 + "why?"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        # llama.cpp rounds a context up (to 256 here): a pasted prompt well beyond it
        app.query_one(PromptInput).text = long_text
        await send(pilot, "")
        await answered(pilot)
        await pilot.pause(0.1)
        n_ctx = app.loaded.pair.decoder.n_ctx
        box = app.query_one(PromptInput).text
        on_screen = len(list(app.query(UserMessage))), len(_views(app))
        turns, conversation = list(app.turns), app.conversation
        notes = _notes(app)
        stored = History().conversations()
        state = app.status.figures.state
        app.query_one(PromptInput).text = ""
        await send(pilot, "Hi")
        await answered(pilot)
        after = [(m.role, m.stop_reason) for m in History().messages(app.conversation)]
        assert app.is_running and not app.generating
    assert box == long_text.strip() and on_screen == (0, 0) and turns == [] and conversation is None
    assert stored == []
    assert [n for n in notes if f"does not fit the context of {n_ctx} tokens" in n and "ctrl+n" in n
            and "--n-ctx" in n]
    assert state == "error"
    assert after[0] == ("user", None) and after[1][0] == "assistant" and after[1][1] != "error"
