"""Counts and sizes in units that fit them (r2r_local.units)."""

import pytest

from r2r_local.units import format_bytes, format_params


@pytest.mark.parametrize("n,text", [
    (0, "0"), (512, "512"), (999, "999"), (1000, "1K"), (278_000, "278K"), (277_632, "278K"),
    (2_400_000, "2.4M"), (999_999, "1M"), (134_515_008, "135M"), (1_500_000_000, "1.5B"),
    (1_777_088_000, "1.78B"), (32_800_000_000, "32.8B"), (32_763_876_352, "32.8B"), (2 * 10**12, "2T"),
    (5 * 10**15, "5000T"),
])
def test_format_params(n, text):
    assert format_params(n) == text


@pytest.mark.parametrize("n,text", [
    (0, "0 B"), (512, "512 B"), (2400, "2.4 KB"), (175_456, "175 KB"), (999_500, "1 MB"), (2_453_856, "2.45 MB"),
    (1_100_000_000, "1.1 GB"), (1_117_320_576, "1.12 GB"), (19_851_336_448, "19.9 GB"), (3 * 10**12, "3 TB"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text
