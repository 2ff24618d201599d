"""The buffer bound on the real broker: a deep single-partition backlog that drains slowly.

The field report this reproduces: 20,000 signups waiting, ``max_buffered_records: 5000``, and the
``buffered_records`` gauge at 19,918. Here, scaled to run in seconds: 2,000 signups on one partition, a
buffer of 100 records, and the client's own limiter pacing subscribe calls (the slow drain) against the
project's sandbox over real HTTP. The engine must never hold more than its bound, and every record is
delivered once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from connector.pipeline.connector import Connector
from tests.integration.engine_support import FAST_RATES, make_stack, produce_samples
from tests.support import SandboxProcess

pytestmark = pytest.mark.integration


async def test_a_deep_backlog_on_one_partition_drained_slowly_stays_within_the_bound(
    tmp_path: Path, kafka_bootstrap: str, make_topic: Callable[..., str], sandbox: SandboxProcess
) -> None:
    stack = make_stack(tmp_path, kafka_bootstrap, make_topic, sandbox, kinds=["signups"], partitions=1)
    cfg = stack.config_path.read_text()
    produced = produce_samples(stack, "signups", 2000, seed=4)
    assert produced == 2000
    raw = yaml.safe_load(cfg)
    raw["delivery"]["max_buffered_records"] = 100
    raw["attentive"]["rate_limits"] = {
        **FAST_RATES,
        "subscribe": 300,
        "unsubscribe": 300,
        "custom_attributes": 300,
    }
    stack.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    connector = Connector(stack.config)
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not task.done():
            runtime = connector.runtime
            if (
                runtime is not None
                and runtime.engine.stats()["consumed"] >= 2000
                and (runtime.engine.stats()["pending"] == 0)
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert connector.runtime is not None
    engine = connector.runtime.engine
    stats = engine.stats()
    assert stats["consumed"] == 2000
    assert stats["pending"] == 0
    assert stats["delivered"] + stats["skipped"] + stats["stale"] + stats["dead_lettered"] == 2000
    assert 0 < engine.buffer.peak <= 100  # the bound held (the field saw 4× over it)
    assert connector.runtime.poller is not None
