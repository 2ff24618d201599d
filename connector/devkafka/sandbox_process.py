"""Run ``attentive-connector sandbox`` as a subprocess on a free loopback port (demo, tests, benchmark).

A separate process keeps the stand-in's CPU off the connector's event loop, like the real Attentive.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from typing import IO, Any

import httpx

from connector.devkafka.jvm import end_process


class SandboxProcess:
    """A running sandbox: ``url``, ``api_key``, and the ``/__sandbox`` control API as methods."""

    def __init__(self, *flags: str, api_key: str, start_timeout_s: float = 30.0) -> None:
        self.api_key = api_key
        cmd = [sys.executable, "-m", "connector", "sandbox", "--port", "0", "--api-key", api_key, *flags]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.url = self._wait_for_url(start_timeout_s)
        for stream, sink in ((self.proc.stdout, None), (self.proc.stderr, self.stderr_tail)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _wait_for_url(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("sandbox listening on "):
                return line.split("sandbox listening on ", 1)[1].strip()
            if not line and self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"sandbox exited ({self.proc.returncode}) before listening:\n{err}")
        self.proc.kill()
        raise RuntimeError("sandbox did not print its address in time")

    @staticmethod
    def _drain(stream: IO[str] | None, sink: collections.deque[str] | None) -> None:
        # Keep reading so the child never blocks on a full pipe.
        if stream is None:
            return
        for line in stream:
            if sink is not None:
                sink.append(line)

    def set_faults(self, faults: dict[str, Any]) -> None:
        self.http.post("/__sandbox/faults", json=faults).raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        r = self.http.get("/__sandbox/requests")
        r.raise_for_status()
        data = r.json()
        return list(data["requests"] if isinstance(data, dict) else data)

    def clear(self) -> None:
        self.http.delete("/__sandbox/requests").raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = self.http.get("/__sandbox/stats")
        r.raise_for_status()
        return dict(r.json())

    def reset(self) -> None:
        self.set_faults({})
        self.clear()

    def stop(self) -> None:
        self.http.close()
        end_process(self.proc, grace_s=10)
