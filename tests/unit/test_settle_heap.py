"""settle_heap: start-up's heap frozen, full collections made rarer (they paused the loop 40-70 ms every few
seconds under load in the shaped benchmark, finding nothing to free)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connector.pipeline.runtime import settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_settle_heap_freezes_start_up_and_makes_full_collections_rarer(restore_gc: None) -> None:
    gen0, gen1, gen2 = gc.get_threshold()
    kept = [object() for _ in range(100)]
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (gen0, gen1, 100)
    assert gen2 < 100  # Python's default (10) would run them ten times as often
