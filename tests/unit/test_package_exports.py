"""Each stage package names its public API in ``__all__``, and every name there resolves (lazily)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "connector.attentive",
    "connector.avro",
    "connector.delivery",
    "connector.observability",
    "connector.pipeline",
    "connector.rules",
    "connector.sandbox",
    "connector.source",
    "connector.errors",
    "connector.formats",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    missing = [n for n in module.__all__ if getattr(module, n, None) is None]
    assert missing == [], (name, missing)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = importlib.import_module("connector.source").Nope
