"""Counts and sizes for people: 278K parameters, 2.4M, 1.5B; 512 B, 3.2 MB, 14 GB.

One rule for both: below 10 of a unit one decimal ("2.4M"), from 10 on none ("278K"), and a
value that rounds up to 1000 of a unit is shown in the next one ("999.96K" is "1.0M"). Units
are decimal (1 KB = 1000 bytes), as the rest of r2r's output measures files and memory.
"""

from __future__ import annotations

PARAM_UNITS = ("", "K", "M", "B", "T")
BYTE_UNITS = (" B", " KB", " MB", " GB", " TB")


def _scaled(n: float, units: tuple[str, ...]) -> str:
    """n (>= 0) in the largest unit that keeps it under 1000 once rounded as shown."""
    if n < 0:
        return "-" + _scaled(-n, units)
    value = float(n)
    for i, unit in enumerate(units):
        text = f"{value:.1f}" if i > 0 else f"{value:.0f}"
        if float(text) >= 10:  # 9.96 rounds to "10.0": from 10 on, no decimal
            text = f"{value:.0f}"
        if float(text) < 1000 or i == len(units) - 1:
            return text + unit
        value /= 1000
    raise AssertionError("unreachable")  # the last unit always returns


def format_params(n: float) -> str:
    """A parameter count: 278_000 -> "278K", 2_400_000 -> "2.4M", 1.5e9 -> "1.5B", 900 -> "900"."""
    return _scaled(n, PARAM_UNITS)


def format_bytes(n: float) -> str:
    """A size in bytes: 512 -> "512 B", 3_200_000 -> "3.2 MB", 14e9 -> "14 GB"."""
    return _scaled(n, BYTE_UNITS)
