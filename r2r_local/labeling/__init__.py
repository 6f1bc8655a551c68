"""Divergence labelling (docs/design.md, "Labels") over llama.cpp backends; no torch here.

0. The large model answers each prompt (greedy): its own reasoning path.
1. The small model is teacher-forced over that answer; at every position we keep its argmax, its
   top-100 logits and its hidden state. Positions where its argmax differs from the large
   model's token are mismatches.
2. At each mismatch the large model continues after the small model's token (greedy). Its
   continuation after its own token is the rest of its original answer: greedy decoding of the
   same model from the same prefix, so it need not be generated again.
3. A verifier says whether the two continuations diverge in meaning (1) or only in wording (0).
4. Label = 1 only at divergent mismatches.
"""

from r2r_local.labeling.labeller import Labeller, LabelSummary
from r2r_local.labeling.shards import ShardStore
from r2r_local.labeling.verifiers import CorrectAnswerVerifier, ExactAnswerVerifier, LlmJudgeVerifier, Verifier

__all__ = ["CorrectAnswerVerifier", "ExactAnswerVerifier", "LabelSummary", "Labeller", "LlmJudgeVerifier", "ShardStore", "Verifier"]
