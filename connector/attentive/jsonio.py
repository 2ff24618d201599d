"""JSON for Attentive bodies with exact decimals.

Prices are money: a ``Decimal('19.99')`` must go over the wire as the JSON number ``19.99``, never through a
float (``0.1 + 0.2`` style drift) and never as a string (Attentive's ``Price.value`` is a number). The standard
library cannot write a ``Decimal`` as a number, so :func:`dumps` is a small encoder of its own. :func:`loads`
is the reverse (numbers with a fraction become ``Decimal``; ``NaN``/``Infinity`` are rejected, as in JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_encode_str = (
    json.encoder.encode_basestring_ascii
)  # C-accelerated; ASCII-only output is always valid on the wire


def dumps(value: Any) -> bytes:
    """Compact JSON bytes for ``value``; ``Decimal`` s are written as exact JSON numbers.

    Accepts dict/Mapping (string keys), list/tuple, str, int, float, Decimal, bool and None. Raises
    ``ValueError`` for non-finite numbers and ``TypeError`` for anything else, so a bad body fails loudly
    here instead of going out mangled.
    """
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("ascii")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON cannot carry NaN or infinite numbers")
        out.append(float.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("JSON cannot carry NaN or infinite numbers")
        # str() of a finite Decimal is always a valid JSON number (``19.99``, ``-0``, ``1E+2``, ``0E-7``).
        out.append(str(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping fractional numbers exact (``Decimal``); rejects ``NaN``/``Infinity``."""
    return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
