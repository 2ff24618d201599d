"""Unit-test fixtures: rigs that start tasks are fixtures, so a failed test still tears them down."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.engine_fakes import Rigs


@pytest.fixture
async def make_rig() -> AsyncIterator[Rigs]:
    """``await make_rig(settings=..., sender=..., auth_ok=..., endpoint_limits=...) -> Rig``: an engine over
    the fakes of :mod:`tests.unit.engine_fakes`, started; every rig built is closed when the test ends."""
    rigs = Rigs()
    try:
        yield rigs
    finally:
        await rigs.close_all()
