"""Human-readable parameter counts and byte sizes (r2r_local.units)."""

from __future__ import annotations

import pytest

from r2r_local.units import format_bytes, format_params


@pytest.mark.parametrize("n, text", [
    (0, "0"), (7, "7"), (999, "999"), (1000, "1.0K"), (1499, "1.5K"), (9_949, "9.9K"), (9_960, "10K"),
    (278_000, "278K"), (277_951, "278K"), (999_499, "999K"), (999_960, "1.0M"), (2_400_000, "2.4M"),
    (134_515_008, "135M"), (1_500_000_000, "1.5B"), (14_770_033_664, "15B"), (1.2e12, "1.2T"),
    (3.4e15, "3400T"), (-2_400_000, "-2.4M"), (0.000278e9, "278K"),
])
def test_format_params(n, text):
    assert format_params(n) == text


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (512, "512 B"), (999, "999 B"), (1000, "1.0 KB"), (3_200_000, "3.2 MB"),
    (999_999_999, "1.0 GB"), (14e9, "14 GB"), (2.5e12, "2.5 TB"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text
