"""The key line at the bottom of the chat: every key the chat has, fitted to the terminal's width.

Textual's Footer shows one fixed row and cuts whatever does not fit (at 80 columns it ended in
"f4 lar", and quitting was never shown). This line shortens first (the mode and threshold keys
share one label) and then leaves out the least needed keys, so that ^q quit always shows. A key
can be clicked, like the Footer's.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.widget import Widget


@dataclass(frozen=True)
class Keys:
    """One entry: its keys (shown, and the action each runs) and two labels, full and short.

    full: one description per key ("f2 routed f3 small"); short: one for them all ("f2/f3 mode").
    priority: the lower, the sooner it is left out when the line is too narrow."""

    keys: tuple[tuple[str, str], ...]
    full: tuple[str, ...]
    short: str
    priority: int


def _one(key: str, action: str, label: str, priority: int) -> Keys:
    return Keys(((key, action),), (label,), label, priority)


CHAT_KEYS: tuple[Keys, ...] = (
    _one("esc", "stop", "stop", 9),
    _one("^r", "regenerate", "regen", 8),
    _one("^n", "new_chat", "new", 8),
    _one("^o", "history", "history", 7),
    _one("^s", "system_prompt", "system", 4),
    _one("^t", "toggle_marking", "marks", 3),
    Keys((("f2", "mode('router')"), ("f3", "mode('slm')"), ("f4", "mode('llm')")),
         ("routed", "small", "large"), "mode", 6),
    Keys((("f5", "mode('verify')"), ("f7", "mode('spec')")), ("verify", "spec"), "checked", 3),
    Keys((("f8", "threshold(-1)"), ("f9", "threshold(1)")), ("thr-", "thr+"), "thr", 5),
    _one("^q", "quit", "quit", 10),
)


def _runs(entry: Keys, short: bool) -> list[tuple[str, str | None, bool]]:
    """The entry as (text, action to run on a click, is a key) runs."""
    if short and len(entry.keys) > 1:
        out: list[tuple[str, str | None, bool]] = []
        for i, (key, action) in enumerate(entry.keys):
            out += ([("/", None, False)] if i else []) + [(key, action, True)]
        return out + [(" " + entry.short, entry.keys[0][1], False)]
    out = []
    for i, ((key, action), label) in enumerate(zip(entry.keys, entry.full)):
        out += ([(" ", None, False)] if i else []) + [(key, action, True), (" " + label, action, False)]
    return out


def fit_keys(entries: tuple[Keys, ...], width: int) -> list[tuple[str, str | None, bool]]:
    """The runs of the widest line that fits: all full, then all short, then short without the
    lowest priorities (one at a time). Entries are separated by one space."""
    for short in (False, True):
        line = _line(entries, short)
        if sum(len(t) for t, _, _ in line) <= width:
            return line
    kept = sorted(entries, key=lambda e: e.priority)
    while kept:
        kept = kept[1:]
        line = _line(tuple(e for e in entries if e in kept), True)
        if sum(len(t) for t, _, _ in line) <= width:
            return line
    return []


def _line(entries: tuple[Keys, ...], short: bool) -> list[tuple[str, str | None, bool]]:
    out: list[tuple[str, str | None, bool]] = []
    for i, entry in enumerate(entries):
        out += ([(" ", None, False)] if i else []) + _runs(entry, short)
    return out


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { height: 1; background: $footer-background; color: $footer-description-foreground; }
    KeyBar > .key-bar--key { color: $footer-key-foreground; text-style: bold; }
    """
    COMPONENT_CLASSES = {"key-bar--key"}

    def __init__(self, entries: tuple[Keys, ...] = CHAT_KEYS, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.entries = entries
        self._runs: list[tuple[str, str | None, bool]] = []

    def render(self) -> Text:
        self._runs = fit_keys(self.entries, self.content_size.width or 10_000)
        key_style = self.get_component_rich_style("key-bar--key")
        text = Text(no_wrap=True, overflow="crop")
        for run, _, is_key in self._runs:
            text.append(run, style=key_style if is_key else None)
        return text

    @property
    def shown(self) -> str:
        """The line as it is on screen now."""
        return "".join(t for t, _, _ in self._runs)

    async def on_click(self, event: events.Click) -> None:
        x = 0
        for run, action, _ in self._runs:
            if x <= event.x < x + len(run) and action is not None:
                await self.app.run_action(action)
                return
            x += len(run)
