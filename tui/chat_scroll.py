"""The scrolling conversation: it follows an answer as it grows, until the user scrolls away.

Textual's anchor follows the end and lets go when the user scrolls up, but takes hold again
whenever the view is at the end, including when the content shrank under it (a think block
folding, a Markdown block laid out anew): a reader who had scrolled up was then carried back
down. Here only the user's own scrolling to the end takes hold again.
"""

from __future__ import annotations

from textual.containers import VerticalScroll


class ChatScroll(VerticalScroll):
    def _check_anchor(self) -> None:
        """Textual calls this on every change of scroll_y while the anchor is released.

        A scroll of the user's sets scroll_target_y to where it goes, within the content; a change
        of the content's size only clamps scroll_y and leaves the target beyond the new end. That
        clamp is no reason to follow again: the target is brought back to where the view is (the
        user's next scroll starts there), and the anchor stays released."""
        if self.scroll_target_y > self.max_scroll_y:
            self.scroll_target_y = self.scroll_y
            return
        super()._check_anchor()

    @property
    def following(self) -> bool:
        """Whether the view follows the end of the conversation as it grows."""
        return self.is_anchored and not self._anchor_released
