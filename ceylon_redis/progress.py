"""Checking what a handler reports as its progress, and the form it is stored in."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ValidationError

MAX_INFO_BYTES = 16 * 1024
"""Largest progress info, JSON-encoded: progress is written often, and shown everywhere."""


def check_fraction(fraction: Any) -> float:
    """The fraction done as a float; ValidationError unless a number from 0 to 1."""
    if type(fraction) is float and 0.0 <= fraction <= 1.0:  # the common case, fast
        return fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValidationError(f"progress must be a number from 0 to 1, not {fraction!r}")
    if not 0 <= fraction <= 1:  # also rejects NaN
        raise ValidationError(f"progress must be from 0 to 1, not {fraction!r}")
    return float(fraction)


def stored_fraction(fraction: float) -> str:
    """A fraction as stored: "0.25"."""
    return f"{fraction:.6g}"


def encode_info(info: Any) -> str:
    """Progress info as stored (JSON text, '' for None); ValidationError when it is not
    JSON-encodable or is over MAX_INFO_BYTES."""
    if info is None:
        return ""
    try:
        text = json.dumps(info, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"progress info must be JSON-encodable: {exc}") from None
    if len(text.encode()) > MAX_INFO_BYTES:
        raise ValidationError(f"progress info is {len(text.encode())} bytes encoded; at most "
                              f"{MAX_INFO_BYTES} are kept")
    return text


def decode_info(raw: bytes | str | None) -> Any:
    """Stored progress info back as a value (None when absent or not JSON: edited by hand)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def decode_fraction(raw: bytes | str | None) -> float | None:
    """A stored fraction, None when absent or not a number from 0 to 1."""
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and 0 <= value <= 1 else None
