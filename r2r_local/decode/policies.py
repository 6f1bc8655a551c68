"""Policies: what each decoding mode does differently, over the one loop of decoder.py.

A policy is data: which model proposes tokens, whether the router sends proposals to the large
model, and how an escalated position is judged:

- small:   the small model alone (the large model is never touched);
- large:   the large model alone (it proposes; its steps are booked as the large model's);
- routed:  the small model proposes, the router escalates, the large model judges escalated
           positions: at once (`judge_now`), or while the small model writes ahead (`write_ahead`);
- overlap: the small model's step on a proposal starts while the router decides (a draft of one
           token, dropped when the large model chooses another token there).

Overlap and write-ahead combine. Both give the plain loop's tokens, token for token, for routers
whose decision depends only on the step (docs/design.md, "Policies").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from time import perf_counter
from typing import TYPE_CHECKING, Generator

from r2r_local.backends import Dist
from r2r_local.decode.transcript import Drafted
from r2r_local.errors import ConfigError
from r2r_local.metering import TokenEvent

if TYPE_CHECKING:
    from r2r_local.decode.decoder import Decoding

# What an escalation hands back to the loop: (stopped, output to propose from, seconds of the
# step that produced it, a routed proposal to handle next instead of proposing again).
Next = tuple[bool, "Dist | None", float, "Drafted | None"]


@dataclass(frozen=True)
class Policy:
    """proposer: "small" | "large"; routed: the router decides which proposals the large model
    judges; overlap: start the small step on a proposal while the router decides; ahead: let the
    small model write ahead while the large model judges."""

    name: str
    proposer: str = "small"
    routed: bool = True
    overlap: bool = False
    ahead: bool = False
    spec: int = 0  # speculative decoding: draft this many tokens, verify them in one large call
    verify: bool = False  # routed: small tokens stay drafts until the next large call checks them
    audit: bool = False  # routed: count the caught-up positions where the large model disagreed
    # verify: correct a token the router let through only where the large model's log-probability
    # of its own choice is more than `margin` nats above that of the small model's token
    margin: float = 0.0
    # Benchmarks on shape-true random models only: the large model "agrees" with each small-model
    # token it checks with this probability (seeded per position) instead of comparing tokens, so
    # drafts and rewinds happen at a realistic rate while every call costs what it really costs.
    agree: float | None = None


SMALL = Policy("small", routed=False)
LARGE = Policy("large", proposer="large", routed=False)
ROUTED = Policy("r2r")
AUDIT = Policy("r2r+audit", audit=True)


def routed(*, overlap: bool = False, ahead: bool = False, verify: bool = False, audit: bool = False,
           margin: float = 0.0) -> Policy:
    """The routed policy with its opt-in variants (overlap and ahead may be combined; verify and
    audit stand alone for now; margin: verify's, in nats, see Policy)."""
    if verify and (overlap or ahead):
        raise ConfigError("--verify cannot be combined with --overlap or --ahead (yet)")
    if margin and not verify:
        raise ConfigError("--verify-margin needs --verify")
    if not (0.0 <= margin <= 100.0):
        raise ConfigError(f"--verify-margin must be between 0 and 100 nats, got {margin}")
    if audit and (overlap or ahead or verify):
        raise ConfigError("--audit cannot be combined with --overlap, --ahead or --verify (verify counts them itself)")
    if audit:
        return AUDIT
    name = "+".join(["r2r"] + [n for n, on in (("overlap", overlap), ("ahead", ahead), ("verify", verify)) if on])
    return Policy(name + (f">{margin:g}" if margin else ""), overlap=overlap, ahead=ahead, verify=verify,
                  margin=margin)


def policy_for_mode(mode: str) -> Policy:
    """A bench/chat mode name: small | large | r2r | overlap | ahead | overlap+ahead | r2r+verify |
    r2r+audit | spec:K; a mode with drafts (spec:K, r2r+verify) may end in @A, synthetic agreement
    with probability A (0 <= A <= 1; see Policy.agree)."""
    mode, at, agree = mode.partition("@")
    policy = _named_policy(mode)
    if not at:
        return policy
    if not (policy.spec or policy.verify):
        raise ConfigError(f"'{mode}@{agree}': synthetic agreement (@A) applies to spec:K and r2r+verify only")
    try:
        a = float(agree)
    except ValueError:
        a = -1.0
    if not 0.0 <= a <= 1.0:
        raise ConfigError(f"'{mode}@{agree}': the agreement after @ must be a number from 0 to 1")
    return replace(policy, name=f"{policy.name}@{agree}", agree=a)


def _named_policy(mode: str) -> Policy:
    named = {"small": SMALL, "large": LARGE, "r2r": ROUTED, "overlap": routed(overlap=True),
             "ahead": routed(ahead=True), "overlap+ahead": routed(overlap=True, ahead=True),
             "r2r+verify": routed(verify=True), "r2r+audit": AUDIT}
    kind, _, k = mode.partition(":")
    if kind == "spec" and k.isdigit() and 1 <= int(k) <= 64:
        return spec(int(k))
    if mode not in named:
        raise ConfigError(f"unknown mode '{mode}' (known: {', '.join(named)}, spec:K with 1 <= K <= 64; "
                          "spec:K and r2r+verify may end in @A, a synthetic agreement)")
    return named[mode]


def spec(k: int) -> Policy:
    """Speculative decoding: the small model drafts k tokens, the large model verifies them."""
    return Policy(f"spec:{k}", routed=False, spec=k)


def judge_now(dec: "Decoding", held: Drafted) -> Generator[TokenEvent, None, Next]:
    """The large model catches up on the committed tokens and chooses at the held position;
    everything waits for it. With `audit`, it also gives its choice at every caught-up position,
    and the committed small-model tokens it would have chosen otherwise are counted."""
    lane = dec.decoder.large_lane
    if dec.policy.audit:
        out, t_large, caught_up = _audited_catch_up(dec)
    else:
        out, t_large, caught_up = lane.catch_up(lane.pending_for(dec.t.committed))
    choice = dec.choose(out, len(dec.t.committed))
    if (yield from dec.commit(choice, "large", held.p, held.t_small, held.t_router, t_large, caught_up)):
        return True, None, 0.0, None
    out, t_small = dec.steps.step(choice, dec.hidden)
    return False, out, t_small, None


def write_ahead(dec: "Decoding", held: Drafted) -> Generator[TokenEvent, None, Next]:
    """The large model's call runs in its worker while the small model goes on from its own
    proposal (the guess) as if the large model will agree. The draft is committed when it does,
    dropped when it does not. Writing ahead stops at the next escalated proposal (kept for after
    the wait), an end-of-generation proposal, and where a limit would be passed."""
    t, lane, settings = dec.t, dec.decoder.large_lane, dec.settings
    lane.start(lane.pending_for(t.committed))
    base, i = len(t.committed), t.n_generated
    t.draft.append(held)
    out, t_last, nxt = None, 0.0, None
    if not (dec.proposer.is_eog(held.token) or base + 2 > dec.n_ctx or i + 1 >= settings.max_tokens):
        out, t_last = dec.steps.step(held.token, dec.hidden)
        while not lane.pending.done() and not dec.cancelled():
            j = i + len(t.draft)  # generated index of the next proposal
            if j + 1 >= settings.max_tokens or base + len(t.draft) + 2 > dec.n_ctx:
                break
            routed = dec.propose(out, t.end, t_last)
            if routed.escalated or dec.proposer.is_eog(routed.token):
                nxt = routed
                break
            t.draft.append(routed)
            out, t_last = dec.steps.step(routed.token, dec.hidden)
    judged, t_large, caught_up = lane.result()
    choice = dec.choose(judged, base)
    kept = t.reconcile(0, choice) and out is not None and not dec.cancelled()
    drafted = t.take(len(t.draft))
    if kept:
        dec.meter.draft_kept += len(drafted) - 1
        if (yield from dec.commit(choice, "large", held.p, held.t_small, held.t_router, t_large, caught_up)):
            return True, None, 0.0, None
        for w in drafted[1:]:
            if (yield from dec.commit(w.token, "small", w.p, w.t_small, w.t_router)):
                return True, None, 0.0, None
        return False, out, t_last, nxt
    dec.drop_draft(base)
    if (yield from dec.commit(choice, "large", held.p, held.t_small, held.t_router, t_large, caught_up)):
        return True, None, 0.0, None
    out, t_small = dec.steps.step(choice, dec.hidden)
    return False, out, t_small, None


def _audited_catch_up(dec: "Decoding") -> tuple[Dist, float, int]:
    """A catch-up with outputs at every caught-up position; counts missed divergences."""
    lane, committed = dec.decoder.large_lane, dec.t.committed
    pending = lane.pending_for(committed)
    start = len(committed) - len(pending)  # the position of pending[0]
    t0 = perf_counter()
    dists = lane.slot.decode_all(pending, outputs=len(pending))
    elapsed = perf_counter() - t0
    for j, out in enumerate(dists[:-1]):  # out predicts position start + j + 1, a committed token
        position = start + j + 1
        if position >= dec.t.n_prompt and dec.choose(out, position) != committed[position]:
            dec.meter.missed_divergences += 1
    return dists[-1], elapsed, len(pending)
