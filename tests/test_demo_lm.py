"""Packing of the demo training corpus: the loss never covers an answer whose question was cut off."""

from __future__ import annotations

import numpy as np

from r2r_local.train.demo_lm import mask_cut_heads


def test_row_heads_before_the_first_conversation_start_leave_the_loss():
    # conversations start at 0, 5 and 14; rows of 4 tokens: [0-3] [4-7] [8-11] [12-15] [16-17]
    mask = np.ones(18, dtype=bool)
    out = mask_cut_heads(mask, np.array([0, 5, 14]), 4)
    want = np.ones(18, dtype=bool)
    want[4] = False          # row 2 starts inside conversation 1, which resumes until 5
    want[8:12] = False       # row 3 holds no start at all
    want[12:14] = False      # row 4 starts inside conversation 2
    want[16:18] = False      # the last row continues conversation 2 and holds no start
    np.testing.assert_array_equal(out, want)
    assert mask.all()        # the input is not modified


def test_tokens_already_outside_the_loss_stay_outside():
    mask = np.array([False, True, True, True, False, True, True, True])
    out = mask_cut_heads(mask, np.array([0, 4]), 4)
    np.testing.assert_array_equal(out, mask)
