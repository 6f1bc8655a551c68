"""Drafts verified in one large-model call: speculative decoding (`spec:K`) and routed decoding
with verification (`r2r+verify`). See docs/design.md, "Policies".

The small model drafts; the large model then evaluates every drafted position in ONE call and
the draft is kept up to its first position where the large model chooses otherwise, where the
large model's token is written instead. `spec:K` drafts K tokens and adds the large model's next
token when all K are kept (lossless: greedy output equals the large model's, sampled output is
distributed as the large model's). `r2r+verify` drafts until the router escalates: the escalated
position is judged as in plain routing, and every small-model token since the last call is checked
on the way, so a divergence the router missed is corrected instead of committed.

A request with show_drafts also gets the draft as it grows and where a judgment cuts it, as
DraftEvents between the TokenEvents (the committed ones stay exactly as without).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Generator

from r2r_local.decode.transcript import Drafted
from r2r_local.metering import DraftEvent, TokenEvent
from r2r_local.sampling import accept_draft, probabilities

if TYPE_CHECKING:
    from r2r_local.backends import Dist
    from r2r_local.decode.decoder import Decoding
    from r2r_local.decode.policies import Next


Events = Generator["TokenEvent | DraftEvent", None, "Next"]


def speculate(dec: "Decoding", first: Drafted) -> Events:
    """Draft from `first` on, verify the draft in one large call, commit what holds."""
    t = dec.t
    base = len(t.committed)
    small_dists = yield from _draft(dec, first)
    if not dec.policy.spec and not t.draft[-1].escalated:  # verify: no call was asked for (a stop or a
        return (yield from _commit_unjudged(dec))  # limit came first): the draft stands as written
    lane = dec.decoder.large_lane
    bonus = dec.policy.spec > 0  # spec: the large model's next token after a fully kept draft
    drafted = [d.token for d in t.draft]
    tokens = lane.pending_for(t.committed) + (drafted if bonus else drafted[:-1])
    t0 = perf_counter()
    judged = lane.slot.decode_all(tokens, outputs=len(drafted) + bonus)
    t_large = perf_counter() - t0
    kept, final = _reconcile(dec, base, judged, small_dists)
    dec.meter.draft_kept += kept
    draft = t.take(len(t.draft))
    _rewind(dec, base + kept)
    if kept < len(draft) and dec.request.show_drafts:  # a rewind: what stands of the draft
        yield dec.commit.draft([d.token for d in draft[:kept]], cut=True)
    stopped = False
    for j, d in enumerate(draft[:kept]):
        last_judged = j == kept - 1 and final is None and not bonus
        source = "large" if last_judged and d.escalated else "small"
        call = (t_large, len(tokens)) if j == 0 else (0.0, 0)
        stopped = (yield from dec.commit(d.token, source, d.p, d.t_small, d.t_router, *call)) or _cancelled(dec)
        if stopped:
            break
    if not stopped and final is not None:
        d = draft[kept] if kept < len(draft) else Drafted(final, None, True)
        call = (t_large, len(tokens)) if kept == 0 else (0.0, 0)
        stopped = yield from dec.commit(final, "large", d.p, d.t_small, d.t_router, *call)
    if stopped:
        return True, None, 0.0, None
    out, t_small = _refill(dec)
    return False, out, t_small, None


def _cancelled(dec: "Decoding") -> bool:
    """A cancel stops between the tokens of a verified draft too, as it does between steps."""
    if dec.cancelled():
        dec.gen.stop_reason = "cancelled"
        return True
    return False


def _commit_unjudged(dec: "Decoding") -> Events:
    """Commit the draft as the small model wrote it (no large call judged any of it)."""
    for d in dec.t.take(len(dec.t.draft)):
        if (yield from dec.commit(d.token, "small", d.p, d.t_small, d.t_router)) or _cancelled(dec):
            return True, None, 0.0, None
    out, t_small = _refill(dec)
    return False, out, t_small, None


def _draft(dec: "Decoding", first: Drafted) -> Generator[DraftEvent, None, list["Dist"]]:
    """Fill the draft from `first`: spec:K up to K tokens, verify up to the next escalated
    proposal; both stop at an end-of-generation token and where a limit would be passed.
    Returns the small model's distribution at each drafted position (for sampled acceptance);
    with show_drafts, yields the draft's text each time it grows."""
    t, settings, show = dec.t, dec.settings, dec.request.show_drafts
    room = min(settings.max_tokens - t.n_generated, dec.n_ctx - len(t.committed) - 1)
    want = min(dec.policy.spec or room, room)
    t.draft.append(first)
    dists = [dec.last_out]
    while True:
        if show:
            yield dec.commit.draft([d.token for d in t.draft])
        if len(t.draft) >= want:
            break
        last = t.draft[-1]
        if dec.proposer.is_eog(last.token) or (not dec.policy.spec and last.escalated):
            break
        out, t_last = dec.steps.step(last.token, dec.hidden)
        dists.append(out)
        t.draft.append(dec.propose(out, t.end, t_last))
    return dists


def _reconcile(dec: "Decoding", base: int, judged: list["Dist"], small: list["Dist"]) -> tuple[int, int | None]:
    """(drafted tokens kept, the large model's token after them or None). At greedy a draft token
    is kept when the large model chooses it; sampled spec:K uses the acceptance rule; verify uses
    the plain loop's rule (the large model's choice with the same uniform number)."""
    t, sampling, agree = dec.t, dec.sampling, dec.policy.agree
    lossless = dec.policy.spec > 0 and not sampling.greedy
    for j, d in enumerate(t.draft):
        position = base + j
        if agree is not None and not d.escalated:  # synthetic agreement: a seeded coin, not the tokens;
            if t.agree_draws[position - t.n_prompt] < agree:  # a "disagreement" writes the large
                continue  # model's own choice, whatever it is, and drops the rest as a real one does
            choice = dec.choose(judged[j], position)
            return _rejected(dec, j, d), choice
        if lossless:
            p_large = probabilities(judged[j].logits, sampling)
            p_small = probabilities(small[j].logits, sampling)
            choice = accept_draft(d.token, p_small, p_large, *t.u_accept(position))
        else:
            choice = dec.choose(judged[j], position)
        if choice != d.token:
            if dec.policy.margin and not d.escalated and _lead(judged[j], choice, d.token) <= dec.policy.margin:
                continue  # the large model prefers its token, but not by the margin: the draft stands
            return _rejected(dec, j, d), choice
    if dec.policy.spec:
        return len(t.draft), dec.choose(judged[len(t.draft)], base + len(t.draft))
    return len(t.draft), None


def _lead(dist: "Dist", own: int, drafted: int) -> float:
    """How many nats the large model's log-probability of `own` exceeds that of `drafted`
    (infinite when `drafted` is not among a top-K distribution's tokens)."""
    if dist.logits is not None:
        return float(dist.logits[own] - dist.logits[drafted])
    ids = dist.top_ids.tolist()
    if drafted not in ids:
        return float("inf")
    lp = dist.top_logprobs
    return float(lp[ids.index(own)] - lp[ids.index(drafted)]) if own in ids else float("-inf")


def _rejected(dec: "Decoding", j: int, d: Drafted) -> int:
    """Book the draft's first rejected position j: one rewind, the dropped tokens, and a missed
    divergence when it was a token the router let through (verify). Returns j (tokens kept)."""
    dec.meter.rewinds += 1
    if dec.policy.verify and not d.escalated:
        dec.meter.missed_divergences += 1
    dec.meter.draft_dropped += len(dec.t.draft) - j
    return j


def _rewind(dec: "Decoding", keep: int) -> None:
    """Both caches back to the kept prefix (the small model may have evaluated drafts past it,
    the large model the whole draft)."""
    dec.steps.settle()
    for slot in (dec.steps.slot, dec.decoder.large_lane.slot):
        if slot.n_past > keep:
            slot.truncate(keep)


def _refill(dec: "Decoding") -> tuple["Dist", float]:
    """The proposing model reads the committed tokens it lacks (the last kept drafts and the large
    model's token) in one call: its distribution at the end, and the seconds it took."""
    slot, committed = dec.steps.slot, dec.t.committed
    t0 = perf_counter()
    out = slot.decode(committed[slot.n_past:], hidden=dec.hidden)
    return out, perf_counter() - t0

