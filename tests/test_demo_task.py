"""The demo task: problem generation, traces, answer checking and the chat template."""

from __future__ import annotations

import re

import numpy as np
import pytest

from r2r_local.demo import task, template


def test_generation_is_deterministic_and_seeded():
    assert task.problems(7, 50) == task.problems(7, 50)
    assert task.problems(7, 50) != task.problems(8, 50)
    assert task.problems(7, 50, task.TRAIN) != task.problems(7, 50, task.HELDOUT)


def test_splits_are_disjoint_and_cover_the_digit_range():
    train = task.problems(0, 3000, task.TRAIN)
    held = task.problems(0, 1000, task.HELDOUT)
    assert not {(p.a, p.b) for p in train} & {(p.a, p.b) for p in held}
    assert all(task.split_of(p.a, p.b) == task.HELDOUT for p in held)
    lengths = {len(str(x)) for p in held for x in (p.a, p.b)}
    assert lengths == {2, 3, 4}
    assert len({re.sub(r"\d+", "N", p.message) for p in held}) == len(task.PHRASINGS)


def test_every_message_contains_its_operands():
    for p in task.problems(1, 200):
        assert re.findall(r"\d+", p.message) == [str(p.a), str(p.b)]


@pytest.mark.parametrize("a,b", [(347, 589), (99, 1), (12, 9999), (9999, 9999), (10, 10), (5000, 4999)])
def test_trace_steps_are_correct(a, b):
    text = task.answer_text(a, b)
    p = task.Problem(a, b, f"{a}+{b}")
    assert task.check_trace(p, text)
    assert task.is_correct(p, text)
    assert text.endswith(f"So {a}+{b} = {a + b}.")


def test_trace_format_example():
    assert task.answer_text(347, 589) == (
        "<think>347+589: units 7+9=16 write 6 carry 1; tens 4+8+1=13 write 3 carry 1; "
        "hundreds 3+5+1=9 write 9 carry 0.</think>\nSo 347+589 = 936."
    )
    varied = task.answer_text(347, 589, task.Wording(ones=True, put=True, thus=True))
    assert varied.startswith("<think>347+589: ones 7+9=16 put 6 carry 1;")
    assert varied.endswith("Thus 347+589 = 936.")


def test_missing_digits_count_as_zero_and_final_carry_adds_a_digit():
    assert task.columns(47, 5891) == [(7, 1, 0, 8, 0), (4, 9, 0, 13, 1), (0, 8, 1, 9, 0), (0, 5, 0, 5, 0)]
    assert "thousands 9+9+1=19 write 9 carry 1" in task.trace(9999, 9999)


def test_wrong_traces_and_answers_are_detected():
    p = task.Problem(347, 589, "347+589")
    good = task.answer_text(347, 589)
    assert not task.check_trace(p, good.replace("4+8+1=13", "4+7+1=12"))
    assert not task.check_trace(p, good.replace("write 3", "write 4"))
    assert not task.is_correct(p, good.replace("= 936", "= 937"))
    assert task.extract_answer("<think>347+589: units 7+9=16") is None  # cut off: no answer
    assert task.extract_answer("</think>\nSo 347+589 = 936.") == 936


def test_wording_odds_are_uneven():
    rng = np.random.default_rng(0)
    draws = [task.Wording.draw(rng) for _ in range(4000)]
    assert 0.2 < np.mean([w.ones for w in draws]) < 0.3
    assert 0.25 < np.mean([w.put for w in draws]) < 0.35
    assert 0.15 < np.mean([w.thus for w in draws]) < 0.25


def test_all_carry_problems_are_frequent():
    held = task.problems(0, 2000)
    share = np.mean([all(c for *_, c in task.columns(p.a, p.b)) for p in held])
    assert share > task.P_ALL_CARRY * 0.8


def test_template_render_matches_jinja():
    jinja2 = pytest.importorskip("jinja2")
    messages = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "12+34"},
        {"role": "assistant", "content": "So 12+34 = 46."},
        {"role": "user", "content": "What is 5 + 6?"},
    ]
    env = jinja2.Environment()
    for gen in (True, False):
        out = env.from_string(template.CHAT_TEMPLATE).render(messages=messages, add_generation_prompt=gen)
        assert out == template.render(messages, add_generation_prompt=gen)
    assert template.prompt("347+589") == "<|im_start|>user\n347+589<|im_end|>\n<|im_start|>assistant\n"
