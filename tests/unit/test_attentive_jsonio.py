"""jsonio: exact decimals both ways; the fast exact-type paths and the general path write the same JSON."""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from decimal import Decimal

import pytest

from connector.attentive import jsonio
from connector.attentive.jsonio import dumps, loads


class Kind(enum.StrEnum):
    A = "sa"


class Count(enum.IntEnum):
    X = 3


def test_every_type_and_subclass() -> None:
    value = {
        "a": [1, 2.5, Decimal("1.10"), None, True, False, 'x\u00e9"', {}, [], ()],
        "b": OrderedDict(k=Kind.A),
        Kind.A: Count.X,
        "t": (1, Decimal("-0"), Decimal("1E+2")),
    }
    assert (
        dumps(value)
        == b'{"a":[1,2.5,1.10,null,true,false,"x\\u00e9\\"",{},[],[]],"b":{"k":"sa"},"sa":3,"t":[1,-0,1E+2]}'
    )
    assert json.loads(dumps(value))["a"][6] == 'x\u00e9"'


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"x": float("nan")}, ValueError),
        ({"x": [float("inf")]}, ValueError),
        ({"x": Decimal("NaN")}, ValueError),
        ({1: 2}, TypeError),
        ({"x": object()}, TypeError),
        ({"x": {1, 2}}, TypeError),
    ],
)
def test_refuses_what_json_cannot_carry(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        dumps(bad)


def test_the_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "_KEYS", {})
    monkeypatch.setattr(jsonio, "_KEYS_MAX", 3)
    assert (
        dumps({f"k{i}": i for i in range(10)})
        == ("{" + ",".join(f'"k{i}":{i}' for i in range(10)) + "}").encode()
    )
    assert len(jsonio._KEYS) == 3


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_loads_keeps_decimals_and_reads_bytes_like_json_loads(encoding: str) -> None:
    text = '{"price": 19.990, "n": 2, "s": "\u00e9"}'
    assert loads(text.encode(encoding)) == {"price": Decimal("19.990"), "n": 2, "s": "\u00e9"}
    assert loads(text) == loads(text.encode(encoding))


def test_loads_rejects_nan_and_garbage() -> None:
    for bad in ("NaN", "[Infinity]", b"\xff{", "{"):
        with pytest.raises(ValueError):
            loads(bad)
