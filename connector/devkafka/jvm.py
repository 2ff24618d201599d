"""Start, wait for and stop the dev stack's JVM services — the Kafka broker (:mod:`.broker`) and Apicurio
Registry (:mod:`.apicurio`) — one way.

Each runs ``java`` in a session of its own (a ^C in the terminal reaches us, and we stop it in order), its
output in a log inside a throwaway work folder. Start-up polls until the service answers, fails early when the
JVM exits, and puts the log's tail in the error; an interruption while starting (SIGTERM, ^C) leaves no JVM
behind. Stopping is SIGTERM, then SIGKILL after a grace period; the log is copied to ``kept_log`` before the
work folder is deleted, so a failed run can still show it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["JvmService", "end_process", "find_java", "launch", "poll_until_ready", "started"]

S = TypeVar("S", bound="JvmService")


def find_java(error: type[Exception], what: str) -> str:
    """The ``java`` on PATH, else ``error`` saying that ``what`` needs one."""
    java = shutil.which("java")
    if java is None:
        raise error(f"java is not on PATH: {what} needs a JDK 17+")
    return java


def end_process(process: subprocess.Popen[Any], *, grace_s: float = 20.0) -> None:
    """Stop a process we started, by its own pid: SIGTERM, then SIGKILL when it has not ended after
    ``grace_s`` (the dev stack's JVMs, the sandbox, and the tests' own servers)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def launch(cmd: list[str], *, output: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own, stdout and stderr to ``output``, no stdin."""
    with output.open("wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@dataclass(kw_only=True)
class JvmService:
    """A running JVM service: its process, work folder and log. Stop it with :meth:`stop` (idempotent)."""

    label: ClassVar[str] = "service"
    """Its name in messages (``broker``, ``registry``)."""

    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    kept_log: Path
    """Where the log is copied when the work folder is deleted."""
    _stopped: bool = field(default=False, repr=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no {self.label} log)"
        return "\n".join(text[-lines:])

    def stop(self, *, keep_data: bool = False) -> None:
        """SIGTERM to its own process (SIGKILL after 20 s); unless ``keep_data``, keep the log (at
        ``kept_log``) and delete the work folder."""
        if self._stopped:
            return
        self._stopped = True
        end_process(self.process)
        if keep_data:
            return
        with contextlib.suppress(OSError):
            self.kept_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, self.kept_log)
            self.log_path = self.kept_log
        shutil.rmtree(self.workdir, ignore_errors=True)


def poll_until_ready(
    probe: Callable[[], str | None],
    *,
    process: subprocess.Popen[bytes] | None,
    timeout_s: float,
    interval_s: float,
    error: type[Exception],
    what: str,
) -> None:
    """Call ``probe`` until it returns None (ready; otherwise it returns what it saw); raise ``error`` when
    ``process`` exits first or ``timeout_s`` passes, naming ``what`` and the last thing seen."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise error(f"{what} exited with code {process.returncode} while starting")
        seen = probe()
        if seen is None:
            return
        last = seen
        time.sleep(interval_s)
    raise error(f"{what} was not ready within {timeout_s:.0f}s ({last})")


def started(
    service: S, wait: Callable[[], None], error: type[Exception], *, keep_data_on_failure: bool = False
) -> S:
    """``service`` once ``wait()`` returns. When it raises ``error``, the service is stopped and the error
    carries its log's tail; any other exception (an interruption) stops it too and propagates."""
    try:
        wait()
    except error as exc:
        tail = service.log_tail()
        service.stop(keep_data=keep_data_on_failure)
        raise error(f"{exc}\n--- {service.label} log tail ({service.log_path}) ---\n{tail}") from None
    except BaseException:
        service.stop()
        raise
    return service
