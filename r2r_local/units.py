"""Counts and sizes in units that fit them, for what the commands print.

Decimal units throughout (K = 1e3, MB = 1e6 bytes, GB = 1e9 bytes), three significant digits at
most, so that 278,000 parameters read "278K" and 2,400,000 bytes read "2.4 MB".
"""

from __future__ import annotations

_PARAM_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))
_BYTE_UNITS = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "KB"))


def _scaled(n: int, units: tuple[tuple[int, str], ...], sep: str, plain: str) -> str:
    """`n` in the largest unit it reaches, with 3 significant digits (trailing zeros dropped)."""
    for i, (size, name) in enumerate(units):
        if abs(n) < size:
            continue
        if i > 0 and abs(float(f"{n / size:.3g}")) >= 1000:
            size, name = units[i - 1]  # 999,999 rounds to 1000K: say 1M
        value = n / size
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"  # past the largest unit: no "1e+03"
        return f"{text}{sep}{name}"
    return f"{n}{plain}"


def format_params(n: int) -> str:
    """A parameter count: 278000 -> "278K", 2_400_000 -> "2.4M", 1_500_000_000 -> "1.5B",
    32_800_000_000 -> "32.8B"; under a thousand as the plain number ("512")."""
    return _scaled(int(n), _PARAM_UNITS, "", "")


def format_bytes(n: int) -> str:
    """A size in decimal units: 512 -> "512 B", 2400 -> "2.4 KB", 1_100_000_000 -> "1.1 GB"."""
    return _scaled(int(n), _BYTE_UNITS, " ", " B")
