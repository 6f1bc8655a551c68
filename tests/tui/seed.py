"""A stored conversation with a think section, Markdown and large-model pieces (for reopen tests)."""

from __future__ import annotations

from r2r_tui.store import History, Piece

THINK = "The user greets me. SECRET-REASONING stays out of later turns."
ANSWER_PIECES = [("small", "Hello"), ("large", " there"), ("small", "! Here is a list:\n\n"),
                 ("small", "- **bold** item\n"), ("large", "- second"), ("small", " item")]
ANSWER = "".join(t for _, t in ANSWER_PIECES)
STATS = {"n_tokens": 7, "large_tokens": 2, "large_share": 2 / 7, "tokens_per_s": 42.5,
         "activated_params_b": 0.1734}


def seed_conversation(history: History) -> int:
    c = history.new_conversation("Say hello", models="seeded")
    history.add_user(c, "Say hello")
    a = history.start_answer(c, "entropy:1.5")
    pieces = [Piece(0, "large", "think", THINK)]
    pieces += [Piece(i + 1, source, "answer", text) for i, (source, text) in enumerate(ANSWER_PIECES)]
    history.add_pieces(a, 0, pieces)
    history.finish_answer(a, ANSWER, THINK, "eos", STATS)
    return c
