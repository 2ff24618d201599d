"""JSON for Attentive bodies with exact decimals.

Prices are money: a ``Decimal('19.99')`` must go over the wire as the JSON number ``19.99``, never through a
float (``0.1 + 0.2`` style drift) and never as a string (Attentive's ``Price.value`` is a number). The standard
library cannot write a ``Decimal`` as a number, so :func:`dumps` is a small encoder of its own. :func:`loads`
is the reverse (numbers with a fraction become ``Decimal``; ``NaN``/``Infinity`` are rejected, as in JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
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
    _encode(value, parts.append)
    return "".join(parts).encode("ascii")


# Encoded object keys ('"productId":'): bodies repeat the same few names. Bounded, since property and attribute
# names come from the data.
_KEYS: dict[str, str] = {}
_KEYS_MAX = 4096


def _encode(value: Any, put: Callable[[str], None]) -> None:
    # Exact types first (one ``type()`` check each, the common case); subclasses and other Mappings and
    # sequences take the general path below.
    t = type(value)
    if t is str:
        put(_encode_str(value))
    elif t is dict:
        _encode_object(value, put)
    elif t is list:
        _encode_array(value, put)
    elif t is int:
        put(int.__repr__(value))
    elif t is Decimal:
        if not value.is_finite():
            raise ValueError("JSON cannot carry NaN or infinite numbers")
        # str() of a finite Decimal is always a valid JSON number (``19.99``, ``-0``, ``1E+2``, ``0E-7``).
        put(str(value))
    elif value is None:
        put("null")
    elif value is True:
        put("true")
    elif value is False:
        put("false")
    elif isinstance(value, str):
        put(_encode_str(value))
    elif isinstance(value, int):
        put(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON cannot carry NaN or infinite numbers")
        put(float.__repr__(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("JSON cannot carry NaN or infinite numbers")
        put(str(value))
    elif isinstance(value, Mapping):
        _encode_object(value, put)
    elif isinstance(value, list | tuple):
        _encode_array(value, put)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode_object(value: Mapping[Any, Any], put: Callable[[str], None]) -> None:
    sep = "{"
    for key, item in value.items():
        encoded = _KEYS.get(key) if type(key) is str else None
        if encoded is None:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            encoded = _encode_str(key) + ":"
            if type(key) is str and len(_KEYS) < _KEYS_MAX:
                _KEYS[key] = encoded
        put(sep)
        put(encoded)
        if type(item) is str:
            put(_encode_str(item))
        else:
            _encode(item, put)
        sep = ","
    put("}" if sep == "," else "{}")


def _encode_array(value: list[Any] | tuple[Any, ...], put: Callable[[str], None]) -> None:
    sep = "["
    for item in value:
        put(sep)
        _encode(item, put)
        sep = ","
    put("]" if sep == "," else "[]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads(..., parse_float=...) would build a new decoder and scanner on every call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping fractional numbers exact (``Decimal``); rejects ``NaN``/``Infinity``.

    Bytes may be UTF-8, -16 or -32 (detected as :func:`json.loads` does).
    """
    if isinstance(data, bytes | bytearray):
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    return _DECODER.decode(data)
