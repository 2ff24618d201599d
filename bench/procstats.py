"""CPU seconds and memory of one process, read from ``/proc`` so they are that process's own.

The benchmark runs the connector as a subprocess precisely so these figures exclude the broker, the sandbox and
the benchmark itself. ``utime + stime`` covers every thread of the process (librdkafka's included).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        text = f.read()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5), 0-based after "state"
    return (utime + stime) / _CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (resident peak) in KiB from ``/proc/<pid>/status``."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


@dataclass
class Sample:
    t: float
    cpu_s: float
    rss_kb: int


@dataclass
class ProcessSampler:
    """Samples a process's CPU seconds and RSS on a background thread until :meth:`stop`.

    The samples let a caller read the CPU spent inside a measurement window (not start-up) and show that
    RSS stayed bounded *throughout* a run, not only at its peak.
    """

    pid: int
    interval_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    peak_hwm_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessSampler:
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> Sample | None:
        """Take one sample now (also used by the waiting loop); ``None`` once the process is gone."""
        with self._lock:  # the waiting loop and the thread both sample; keep samples in time order
            try:
                mem = memory_kb(self.pid)
                s = Sample(time.monotonic(), cpu_seconds(self.pid), mem.get("VmRSS", 0))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                return None
            self.peak_hwm_kb = max(self.peak_hwm_kb, mem.get("VmHWM", 0))
            self.samples.append(s)
            return s

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.sample() is None:
                return

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def peak_rss_mb(self) -> float:
        """The larger of the kernel's high-water mark and the largest sampled RSS, in MiB."""
        sampled = max((s.rss_kb for s in self.samples), default=0)
        return max(self.peak_hwm_kb, sampled) / 1024

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds used between two monotonic times, from the nearest samples (interpolated)."""
        return _interpolate(self.samples, t1) - _interpolate(self.samples, t0)


def _interpolate(samples: list[Sample], t: float) -> float:
    if not samples:
        return 0.0
    if t <= samples[0].t:
        return samples[0].cpu_s
    for a, b in zip(samples, samples[1:], strict=False):
        if a.t <= t <= b.t:
            if b.t == a.t:
                return b.cpu_s
            return a.cpu_s + (b.cpu_s - a.cpu_s) * (t - a.t) / (b.t - a.t)
    return samples[-1].cpu_s
