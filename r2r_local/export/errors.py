from __future__ import annotations

from r2r_local.errors import R2RError


class ExportError(R2RError):
    """An input to a conversion is missing, malformed or unsupported (the message names it)."""

    title = "Conversion failed"
